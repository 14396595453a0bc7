"""What the models read: the member's question in the articles' register.

Members ask in chat ("r ppl in canada affected rn?"), name their own case ("im an indian student")
and expect the bot to know what that case is an instance of. Three general steps, none of them
written from the knowledge base or from any question list:

1. Chat-speak and apostrophe-less contractions are spelt out (``resources/chatspeak.yaml``).
2. Nationalities and countries are recognised (from the ``countryinfo`` package): a demonym brings
   its country's name ("canadians" -> Canada) and the reverse, so lexical search meets either form.
3. Domain concepts (``resources/glossary.yaml``): a cue ("green card", a nationality other than the
   home country) adds the concept's terms, but only those the knowledge base itself uses.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources

import yaml

_WORDS = re.compile(r"[^\W_]+(?:[-/][^\W_]+)*")
_LETTERS = re.compile(r"[^\W\d_]+")  # runs of letters: how bot.store.layout counts the articles' words
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9/;'’-]*|\S")


def _resource(name: str) -> object:
    """A YAML file of ``bot/resources``: general language resources shipped with the package."""
    return yaml.safe_load(resources.files("bot.resources").joinpath(name).read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def chatspeak() -> dict[str, str]:
    data = _resource("chatspeak.yaml")
    return {str(k).casefold(): str(v or "") for k, v in (data or {}).items()}


@functools.lru_cache(maxsize=1)
def glossary() -> dict[str, dict[str, tuple[str, ...]]]:
    data = _resource("glossary.yaml")
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for name, concept in (data or {}).get("concepts", {}).items():
        out[str(name)] = {
            "terms": tuple(str(t) for t in concept.get("terms", ())),
            "cues": tuple(str(c).casefold() for c in concept.get("cues", ())),
        }
    return out


@dataclass(frozen=True)
class Country:
    code: str  # ISO 3166-1 alpha-2
    name: str


@functools.lru_cache(maxsize=1)
def _countries() -> dict[str, Country]:
    """Lower-case name, alternative spelling or demonym -> country; then the regular forms made from a
    name (:func:`derived_demonyms`) and the informal names of ``resources/nationalities.yaml``, neither
    of which displaces an entry the package gives. Two-letter codes are left out ("in", "us" are
    words); a name or demonym several countries share ("American", "Korean") goes to the most
    populous of them."""
    from countryinfo import all_countries

    names: dict[str, tuple[int, Country]] = {}
    demonyms: dict[str, tuple[int, Country]] = {}
    derived: dict[str, tuple[int, Country]] = {}

    def offer(table: dict[str, tuple[int, Country]], key: str, people: int, country: Country) -> None:
        if len(key) >= 4 and (key not in table or table[key][0] < people):
            table[key] = (people, country)

    for info in all_countries():
        try:
            country = Country(info.iso(2), info.name())
            spellings = [info.name(), *info.alt_spellings()]
            demonym = info.demonym() or ""
            people = int(info.population() or 0)
        except (KeyError, TypeError, ValueError, AttributeError):  # a country with missing fields is skipped
            continue
        for name in spellings:
            if not name.isupper():  # codes such as "IN" and "US" are words
                offer(names, name.casefold(), people, country)
                for form in derived_demonyms(name.casefold()):
                    offer(derived, form, people, country)
        for dem in re.split(r"[,/]", demonym):
            dem = dem.strip().casefold()
            last = dem.split()[-1] if dem else ""
            for key in {dem, dem + "s", last, last + "s"}:  # "south korean" -> "korean", "canadians"
                offer(demonyms, key, people, country)
    table = {k: c for k, (_, c) in derived.items()}
    table.update({k: c for k, (_, c) in demonyms.items()})
    table.update({k: c for k, (_, c) in names.items()})
    by_code = {c.code: c for _, c in sorted(names.values(), key=lambda pc: pc[0])}  # the most populous last
    for alias, code in (_resource("nationalities.yaml") or {}).items():
        country = by_code.get(str(code).upper())
        if country is not None:
            table.setdefault(str(alias).casefold(), country)
    return table


@functools.lru_cache(maxsize=1)
def _places() -> frozenset[str]:
    """Lower-case names of the countries' provinces, states and capitals (the ``countryinfo`` package)."""
    from countryinfo import all_countries

    places: set[str] = set()
    for info in all_countries():
        try:
            capital = info.capital() or ()
            names = [*(info.provinces() or ()), *(capital if isinstance(capital, list) else [capital])]
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        places.update(" ".join(_LETTERS.findall(n.casefold())) for n in names if isinstance(n, str))
    places.discard("")
    return frozenset(places)


# A lookahead, so that matches may overlap: "in new york to boston" finds both places.
_LOCATIVE = re.compile(r"\b(?:in|from|at|near|around|outside|to)\s+(?=((?:[^\W\d_]+\s+){0,2}[^\W\d_]+))")


def place_words(text: str) -> tuple[str, ...]:
    """Words of the places a question says the member is in or from ("on opt in texas", "from lagos"):
    a province, state or capital after "in", "from", "at", "near", "around", "outside" or "to", longest
    name first. Where a member lives is part of their case, never something the articles must mention;
    the preposition keeps place names that are also common words ("lake", "bank") from counting as
    places anywhere else."""
    places = _places()
    found: list[str] = []
    for match in _LOCATIVE.finditer(text.casefold()):
        words = match.group(1).split()
        for n in range(len(words), 0, -1):
            if " ".join(words[:n]) in places:
                found.extend(words[:n])
                break
    return tuple(dict.fromkeys(found))


def derived_demonyms(name: str) -> set[str]:
    """The regular ways English makes a nationality from a one-word country name, singular and plural.

    The country package lists one demonym a country ("Argentinean"), and members write others
    ("argentinian", "nepali", "kazakh", "icelandic"). Only the weakest entries of the table: a word
    that is a name or a listed demonym keeps its country.
    """
    if not name.isalpha() or len(name) < 4:
        return set()
    stem = name[:-1] if name[-1] in "aeiouy" else name
    forms = {stem + "ian", stem + "ean", name + "n", name + "i", name + "ese", name + "ic", name + "ish"}
    if name.endswith("istan"):
        forms.add(name[: -len("istan")])
    elif name.endswith("stan"):
        forms.add(name[: -len("stan")])
    return {f for form in forms for f in (form, form + "s")}


def find_countries(text: str) -> tuple[Country, ...]:
    """Countries a question names by name or nationality, longest phrase first, each once."""
    table = _countries()
    words = re.findall(r"[^\W\d_]+", text.casefold())
    found: list[Country] = []
    i = 0
    while i < len(words):
        for n in (4, 3, 2, 1):
            phrase = " ".join(words[i : i + n])
            if len(words[i : i + n]) == n and phrase in table:
                found.append(table[phrase])
                i += n
                break
        else:
            i += 1
    return tuple(dict.fromkeys(found))


_CLAUSE = re.compile(r"(?<=[.,;:!?])\s+|\s+-\s+")
_ASKING = re.compile(
    r"^(?:what|why|how|when|who|whom|which|where|is|are|am|can|could|does|do|did|will|would|should|was|were|has|"
    r"have|any|so)\b",
    re.IGNORECASE,
)
_SELF = re.compile(r"^(?:i am|i'm|im|my|we are|we're|our)\b")


def the_ask(text: str) -> str:
    """The question without the clauses that only introduce the member: "korean grad student, my deadline
    is in 3 weeks, will it be back by then" -> "will it be back by then"; the text itself when nothing is
    left out or nothing would be left.

    A clause is an introduction when it names a country, a nationality or a place the member is in or
    from (``place_words``) or starts with "I am", "my", "we are", "our", and is not itself a question.
    Why: the member's case takes most of the words of such a question, and the glossary terms it
    implies (foreign nationals, developers, API access) outweigh a four-word ask in every model
    ("polish dev, when is fable back" found passages about developers losing access; "when is fable
    back" finds "Anthropic has not yet given a timeframe").
    """
    kept = []
    for clause in filter(None, (c.strip() for c in _CLAUSE.split(text))):
        low = clause.casefold()
        introduces = bool(find_countries(clause) or place_words(clause) or _SELF.match(low))
        if introduces and not clause.endswith("?") and not _ASKING.match(clause):
            continue
        kept.append(clause)
    return " ".join(kept) if kept else text


def spell_out(text: str) -> str:
    """Chat-speak and contractions written in full; everything else untouched."""
    lexicon = chatspeak()

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        key = token.casefold().replace("’", "'")
        if key in lexicon:
            return lexicon[key]
        stripped = key.rstrip("?!.,;:")
        if stripped != key and stripped in lexicon:
            return lexicon[stripped] + token[len(stripped) :]
        return token

    out = _TOKEN.sub(one, text)
    return re.sub(r"\s+", " ", out).strip() or text


@functools.lru_cache(maxsize=1)
def acknowledgements() -> frozenset[str]:
    data = _resource("acknowledgements.yaml")
    return frozenset(str(w).casefold() for w in (data.get("words", ()) if isinstance(data, dict) else ()))


def is_acknowledgement(text: str) -> bool:
    """Whether a message only thanks or acknowledges ("thanks!", "ok cool"): in a thread that is
    conversation, not a question (every word in ``resources/acknowledgements.yaml``)."""
    words = [w.casefold() for w in _WORDS.findall(text)]
    return bool(words) and all(w in acknowledgements() for w in words)


def is_follow_up(question: str, max_words: int) -> bool:
    """Whether a message is short enough (``max_words`` words at most, 0 = never) to be read after the
    question it follows rather than on its own."""
    return max_words > 0 and len(_WORDS.findall(question)) <= max_words


def in_context(question: str, context: str | None, *, max_words: int, max_chars: int | None = None) -> str:
    """A short message in a conversation, read together with the question it follows.

    In a thread members do not repeat themselves: after "are foreigners cut off from Fable?" they
    write "how long?" or "what about students". A message of at most ``max_words`` words is asked as
    ``context`` followed by the message; a longer one stands on its own (a new question). The
    combined text is what the models read, what the answer cache keys and what the reply's title
    shows, so the member sees how the message was read. ``max_chars``: beyond it the message stands
    alone rather than be refused.
    """
    if not context or not context.strip() or not is_follow_up(question, max_words):
        return question
    combined = f"{context.strip()} {question.strip()}"
    return question if max_chars is not None and len(combined) > max_chars else combined


@dataclass(frozen=True)
class Query:
    """A question as the models read it, and what was added to it and why."""

    question: str  # the member's words (cleaned)
    text: str  # spelt out: what the models read
    countries: tuple[Country, ...]
    concepts: tuple[str, ...]  # glossary concepts the question is an instance of
    added: tuple[str, ...]  # terms appended for the models (all used by the knowledge base)
    # Words recognised as a country, a nationality, a place the member is in or from, or a glossary cue
    # ("kenyan", "in texas", "app"), and words the chat-speak normaliser wrote ("okay" for "ok"):
    # understood even when no article uses them, so they do not count as what the articles cannot speak to.
    understood: tuple[str, ...] = ()
    # The question without the clauses that introduce the member (``the_ask``): the first stage reads it
    # too when it differs from ``text``.
    ask: str = ""

    @property
    def introduces_member(self) -> bool:
        """Whether the question has clauses that only introduce the member, so its ask is read apart."""
        return bool(self.ask) and self.ask != self.text

    @property
    def expanded(self) -> str:
        return f"{self.text} ({', '.join(self.added)})" if self.added else self.text


# Glossary concepts a named country implies: another country's, the people the order is about; only
# the home country's, its own citizens ("americans too?").
FOREIGN_PERSON = "foreign person"
HOME_PERSON = "US person"


class QueryAnalyzer:
    """Turns a question into a :class:`Query` for one knowledge base (its vocabulary decides what may be added)."""

    def __init__(
        self,
        knowledge_texts: Iterable[str] | Callable[[], Iterable[str]],
        *,
        home_country: str = "US",
        vocabulary: Container[str] | None = None,
        forms: Mapping[str, str | None] | None = None,
    ) -> None:
        """``knowledge_texts`` may be a function giving them: the joined text is then made only when a
        term first needs looking up. With the knowledge base's ``vocabulary`` (casefolded words), a term
        with a word no article uses is known absent without scanning the text at all. ``forms``: terms'
        written forms found at build time (``written_forms``); scanning a large knowledge base for a
        term costs a few hundred milliseconds the first time a question needs it."""
        self.home = home_country.upper()
        self._texts = knowledge_texts
        self._corpus: str | None = None
        self._vocabulary = vocabulary
        self._forms = forms or {}
        self._form = functools.lru_cache(maxsize=4096)(self.form)

    def form(self, term: str) -> str | None:
        """How the knowledge base writes ``term``, or None when it never uses it (see ``_surface``)."""
        if term in self._forms:
            return self._forms[term]
        if self._vocabulary is not None and any(w not in self._vocabulary for w in _LETTERS.findall(term.casefold())):
            return None
        if self._corpus is None:
            texts = self._texts() if callable(self._texts) else self._texts
            self._corpus = " ".join(texts).casefold()
        return _surface(self._corpus, term)

    def analyze(self, question: str, correct: Callable[[str], str] | None = None) -> Query:
        text = spell_out(question)
        if correct is not None:
            text = correct(text)
        low = " " + " ".join(_WORDS.findall(text.casefold())) + " "
        countries = find_countries(text)
        concepts: list[str] = []
        understood = [w for w in low.split() if w in _countries()] + list(place_words(text))
        said = set(_WORDS.findall(question.casefold()))
        understood += [w for w in low.split() if w not in said]  # spelt out: the member's word was slang
        for name, concept in glossary().items():
            cues = [cue for cue in concept["cues"] if f" {cue} " in low]
            if cues:
                concepts.append(name)
                understood.extend(w for cue in cues for w in _WORDS.findall(cue))
        if any(c.code != self.home for c in countries) and FOREIGN_PERSON in glossary():
            concepts.append(FOREIGN_PERSON)
        elif countries and HOME_PERSON in glossary():  # only the home country: "americans too?"
            concepts.append(HOME_PERSON)
        added: list[str] = []
        for name in dict.fromkeys(concepts):
            forms = (self._form(t) for t in glossary()[name]["terms"])
            added.extend(f for f in forms if f and f" {f.casefold()} " not in low)
        for country in countries:
            if self._form(country.name) and f" {country.name.casefold()} " not in low:
                added.append(country.name)
        unique = {a.casefold(): a for a in reversed(added)}  # each term once, as first spelt
        terms = tuple(dict.fromkeys(unique[a.casefold()] for a in added))
        return Query(
            question,
            text,
            countries,
            tuple(dict.fromkeys(concepts)),
            terms,
            tuple(dict.fromkeys(understood)),
            the_ask(text),
        )


def expansion_terms() -> tuple[str, ...]:
    """Every term the analyser may add to a question: the glossary's terms and the countries' names."""
    terms = {t for concept in glossary().values() for t in concept["terms"]}
    terms |= {c.name for c in _countries().values()}
    return tuple(sorted(terms))


def written_forms(knowledge_texts: Iterable[str], vocabulary: Container[str]) -> dict[str, str | None]:
    """The written form of every term of ``expansion_terms`` in these texts (None: never used), found
    once when an index is built so that no question pays for scanning the articles."""
    analyzer = QueryAnalyzer(knowledge_texts, vocabulary=vocabulary)
    return {term: analyzer.form(term) for term in expansion_terms()}


def _surface(corpus: str, term: str) -> str | None:
    """How the knowledge base writes a glossary term, if it uses it: the term itself, or for a phrase
    its words with at most one word between each pair ("older models" -> "older ai models"), so the
    glossary's general wording meets the articles' own. None when the articles never use it."""
    if re.search(rf"(?<!\w){re.escape(term.casefold())}(?!\w)", corpus):
        return term
    words = term.casefold().split()
    if len(words) < 2:
        return None
    gap = r"(?:\s+[^\W_]+)?\s+"
    match = re.search(r"(?<!\w)" + gap.join(map(re.escape, words)) + r"(?!\w)", corpus)
    return match.group(0) if match else None
