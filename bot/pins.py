"""Moderator pins: quotes chosen by people for questions their server asks again and again.

Retrieval misses some questions and declines others; moderators know the handful that matter.
A pin stores a question, example phrasings of it, and one to three passages quoted verbatim from
the articles (by article id, offsets, and a hash of the article body they were checked against).

Three rules keep pins honest:

- **Verbatim, always.** A passage is stored as ``body[start:end]`` of its article and is checked
  again against the article text the live index serves whenever an index is loaded (every build,
  every start). A pin whose passage changed or disappeared becomes *stale*: it is not served,
  and moderators see why in ``/kb pins``. A passage that only moved (text edited elsewhere in the
  article) is found again and keeps serving.
- **Matched by meaning, cautiously.** An incoming question is embedded with the model the bot
  already loads and compared with the pinned question and its phrasings (cosine of normalised
  vectors); the best pin at or above :data:`MATCH_THRESHOLD` is used. The threshold was chosen by
  :func:`calibrate_threshold` on paraphrase pairs written for it
  (``tests/fixtures/pin_paraphrases.yaml``), counting a wrong pinned quote as three times worse
  than a missed one: a miss still gets the automatic answer, a false match puts the moderators'
  quote above it.
- **Added, never substituted.** Pinned quotes come first, marked as chosen by the moderators; the
  automatic excerpts follow (minus any that repeat a pinned passage).

This module is the core: records, checks, matching, YAML export. Storage is in ``bot.db`` and the
service (``bot.service.KnowledgeService``) ties them to the live index.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.errors import PinError
from bot.records import Answer, Article, Excerpt, sha256

if TYPE_CHECKING:
    from bot.records import SentenceSpan
    from bot.store.records import EmbedderLike

# Cosine similarity of question embeddings at or above which a question counts as a pinned one.
# Chosen by calibrate_threshold() on the calibration pairs of tests/fixtures/pin_paraphrases.yaml
# (tests/test_pins.py recomputes it with the real model and fails if it drifts).
MATCH_THRESHOLD = 0.69
# A wrong pinned quote costs this many missed matches (see the module docstring).
FALSE_MATCH_COST = 3.0

MIN_QUOTES = 1
MAX_QUOTES = 3
MAX_PHRASINGS = 25
# A passage is a few sentences; a whole article pasted as a "passage" is a mistake.
MAX_QUOTE_CHARS = 1500
EXPORT_FORMAT = 1


# -- records ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PinnedQuote:
    """A passage chosen by a moderator: ``article.body[start:end] == quote`` when it was checked."""

    article_id: str
    start: int
    end: int
    quote: str
    article_hash: str  # sha256 of the article body the span was checked against

    @property
    def ref(self) -> str:
        """``article@start-end``: short enough for a Discord select value (at most 100 characters)."""
        return f"{self.article_id}@{self.start}-{self.end}"

    def to_json(self) -> dict[str, object]:
        return {
            "article_id": self.article_id,
            "start": self.start,
            "end": self.end,
            "quote": self.quote,
            "article_hash": self.article_hash,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PinnedQuote:
        return cls(
            article_id=str(data["article_id"]),
            start=int(data["start"]),
            end=int(data["end"]),
            quote=str(data["quote"]),
            article_hash=str(data.get("article_hash") or ""),
        )


@dataclass(frozen=True)
class PinDraft:
    """A pin before it is saved: what the moderator confirms in the preview."""

    question: str
    quotes: tuple[PinnedQuote, ...]
    phrasings: tuple[str, ...] = ()

    @property
    def questions(self) -> tuple[str, ...]:
        return (self.question, *self.phrasings)


@dataclass(frozen=True)
class Pin:
    """A saved pin; ``stale_reason`` is None while every passage is still in its article word for word."""

    id: int
    question: str
    quotes: tuple[PinnedQuote, ...]
    phrasings: tuple[str, ...]
    created_by: str
    created_at: dt.datetime
    stale_reason: str | None = None
    hits: int = 0
    votes_up: int = 0
    votes_down: int = 0

    @property
    def active(self) -> bool:
        return self.stale_reason is None

    @property
    def questions(self) -> tuple[str, ...]:
        return (self.question, *self.phrasings)

    @property
    def content_hash(self) -> str:
        """What the audit log records before and after a change to this pin."""
        return pin_hash(self.question, self.phrasings, self.quotes)


def pin_hash(question: str, phrasings: Sequence[str], quotes: Sequence[PinnedQuote]) -> str:
    payload = {"q": question, "p": list(phrasings), "s": [[q.ref, q.quote] for q in quotes]}
    return sha256(json.dumps(payload, ensure_ascii=False, sort_keys=True))


def body_hash(article: Article) -> str:
    """Only the body matters to a quote: a new headline or date leaves every pin as it was."""
    return sha256(article.body)


# -- verbatim checks --------------------------------------------------------------------------


def quote_at(article: Article, start: int, end: int) -> PinnedQuote:
    """The passage ``body[start:end]`` of ``article``; refused when the offsets are not in its body."""
    if not 0 <= start < end <= len(article.body):
        raise PinError(f"That passage is no longer in “{article.title}”; choose it again.")
    return PinnedQuote(article.id, start, end, article.body[start:end], body_hash(article))


def relocate(quote: PinnedQuote, article: Article | None) -> PinnedQuote | None:
    """The passage checked against ``article`` as it is now, or None when it is gone or changed.

    Same body hash and same slice: unchanged. Otherwise the exact text, found once elsewhere in
    the body (an edit above it moved it), is the same passage at new offsets.
    """
    if article is None:
        return None
    body = article.body
    current = body_hash(article)
    if body[quote.start : quote.end] == quote.quote:
        return quote if quote.article_hash == current else replace(quote, article_hash=current)
    first = body.find(quote.quote)
    if first < 0 or body.find(quote.quote, first + 1) >= 0:
        return None
    return replace(quote, start=first, end=first + len(quote.quote), article_hash=current)


def verify(pin: Pin, articles: Mapping[str, Article]) -> Pin:
    """The pin checked against the articles served now: quotes re-located, stale reason set or cleared."""
    quotes: list[PinnedQuote] = []
    problems: list[str] = []
    for quote in pin.quotes:
        article = articles.get(quote.article_id)
        found = relocate(quote, article)
        if found is None:
            quotes.append(quote)
            if article is None:
                problems.append(f"article `{quote.article_id}` was removed")
            else:
                problems.append(f"the passage “{_short(quote.quote)}” is no longer in `{quote.article_id}`")
        else:
            quotes.append(found)
    reason = "; ".join(problems) or None
    return replace(pin, quotes=tuple(quotes), stale_reason=reason)


_SPACES = re.compile(r"\s+")


def find_verbatim(text: str, articles: Iterable[Article]) -> PinnedQuote:
    """Pasted text located word for word in an article (line breaks and spacing may differ).

    What is stored is the article's own slice, so the quote stays verbatim even when the paste
    wrapped lines differently. Refused, saying so, when no article contains it.
    """
    wanted = text.strip().strip('"“”').strip()
    if not wanted:
        raise PinError("The pasted passage is empty; paste a sentence or two copied from an article.")
    if len(wanted) > MAX_QUOTE_CHARS:
        raise PinError(
            f"The pasted passage is {len(wanted)} characters long; pin at most {MAX_QUOTE_CHARS} "
            "(a few sentences), or split it into up to three passages."
        )
    words = wanted.split()
    pattern = re.compile(r"\s+".join(re.escape(w) for w in words))
    for article in sorted(articles, key=lambda a: a.id):
        match = pattern.search(article.body)
        if match is not None:
            return PinnedQuote(article.id, match.start(), match.end(), match.group(0), body_hash(article))
    raise PinError(
        f"“{_short(wanted)}” is not in any article word for word; copy it from the article "
        "(curly quotes and dashes included) and paste it again."
    )


def parse_ref(ref: str) -> tuple[str, int, int]:
    """``article@start-end`` -> its parts; anything else is refused with what to do instead."""
    match = re.fullmatch(r"([a-z0-9-]{1,80})@(\d+)-(\d+)", ref.strip())
    if match is None:
        raise PinError("Choose a passage from the suggestions (type a few words of it).")
    return match[1], int(match[2]), int(match[3])


def quote_from_ref(ref: str, articles: Mapping[str, Article]) -> PinnedQuote:
    article_id, start, end = parse_ref(ref)
    article = articles.get(article_id)
    if article is None:
        raise PinError(f"No article `{article_id}` is served now; choose a passage from the suggestions.")
    return quote_at(article, start, end)


# -- drafts -----------------------------------------------------------------------------------


def normalise(question: str) -> str:
    """The grouping form shared with declined questions (case, punctuation and spacing folded)."""
    from bot.db import normalise_question

    return normalise_question(question)


def clean_phrasings(question: str, phrasings: Iterable[str], *, max_chars: int) -> tuple[str, ...]:
    """Phrasings one per entry, trimmed; blanks, repeats and the question itself dropped."""
    seen = {normalise(question)}
    out: list[str] = []
    for raw in phrasings:
        text = " ".join(raw.split())
        if not text:
            continue
        if len(text) > max_chars:
            raise PinError(f"The phrasing “{_short(text)}” is {len(text)} characters long; the limit is {max_chars}.")
        key = normalise(text)
        if not key or key in seen:
            continue
        seen.add(key)
        out.append(text)
    if len(out) > MAX_PHRASINGS:
        raise PinError(f"A pin takes at most {MAX_PHRASINGS} phrasings; keep the most common ones.")
    return tuple(out)


def make_draft(question: str, quotes: Sequence[PinnedQuote], phrasings: Sequence[str] = ()) -> PinDraft:
    """A draft with one to three distinct passages; refused with a clear line otherwise."""
    distinct: list[PinnedQuote] = []
    for quote in quotes:
        if not any(overlaps(quote, other) for other in distinct):
            distinct.append(quote)
    if len(distinct) < MIN_QUOTES:
        raise PinError("Choose at least one passage to pin; nothing was pinned.")
    if len(distinct) > MAX_QUOTES:
        raise PinError(f"A pin quotes at most {MAX_QUOTES} passages; choose the best {MAX_QUOTES}.")
    for quote in distinct:
        if len(quote.quote) > MAX_QUOTE_CHARS:
            raise PinError(f"A pinned passage may be at most {MAX_QUOTE_CHARS} characters; choose a shorter one.")
    return PinDraft(question, tuple(distinct), tuple(phrasings))


def overlaps(a: PinnedQuote | Excerpt, b: PinnedQuote | Excerpt) -> bool:
    a_id = a.article_id if isinstance(a, PinnedQuote) else a.source.article_id
    b_id = b.article_id if isinstance(b, PinnedQuote) else b.source.article_id
    return a_id == b_id and a.start < b.end and b.start < a.end


# -- matching ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PinMatch:
    pin: Pin
    similarity: float
    matched: str  # the pinned question or phrasing it matched


class PinBook:
    """The active pins of one index version with their embedded questions; immutable once built.

    The service replaces the whole book when pins or the index change, so a question in flight
    keeps the book (and the article text) it started with.
    """

    def __init__(
        self,
        pins: Sequence[Pin],
        excerpts: Mapping[int, tuple[Excerpt, ...]],
        vectors: np.ndarray,
        owners: Sequence[tuple[int, str]],
        index_version: str | None,
        generation: int,
        threshold: float = MATCH_THRESHOLD,
    ) -> None:
        self.pins = {p.id: p for p in pins}
        self.excerpts = dict(excerpts)
        self.vectors = vectors
        self.owners = tuple(owners)
        self.index_version = index_version
        self.generation = generation
        self.threshold = threshold
        self._exact = {normalise(text): pin_id for pin_id, text in self.owners}

    @classmethod
    def build(
        cls,
        pins: Sequence[Pin],
        articles: Mapping[str, Article],
        embedder: EmbedderLike,
        *,
        index_version: str | None,
        generation: int,
        chunk_of: Mapping[str, Sequence[tuple[int, int, str]]] | None = None,
        threshold: float = MATCH_THRESHOLD,
    ) -> PinBook:
        """Embed every question and phrasing of the active pins; pins not verified here are left out."""
        active = [p for p in pins if p.active]
        owners = [(p.id, text) for p in active for text in p.questions]
        vectors = embedder.encode([text for _, text in owners]) if owners else np.zeros((0, embedder.dimension))
        excerpts = {p.id: pinned_excerpts(p, articles, chunk_of or {}) for p in active}
        return cls(
            active, excerpts, np.asarray(vectors, dtype=np.float32), owners, index_version, generation, threshold
        )

    @classmethod
    def empty(cls, generation: int = 0) -> PinBook:
        return cls((), {}, np.zeros((0, 1), dtype=np.float32), (), None, generation)

    def __len__(self) -> int:
        return len(self.pins)

    def match(self, question: str, embed: Callable[[str], np.ndarray]) -> PinMatch | None:
        """The best pin for ``question`` at or above the threshold (the same words always match).

        ``embed`` is only called when there are pins and no exact match: no pins, no extra cost.
        """
        if not self.owners:
            return None
        exact = self._exact.get(normalise(question))
        if exact is not None:
            return PinMatch(self.pins[exact], 1.0, question)
        scores = self.vectors @ np.asarray(embed(question), dtype=np.float32)
        best = int(np.argmax(scores))
        if float(scores[best]) < self.threshold:
            return None
        pin_id, text = self.owners[best]
        return PinMatch(self.pins[pin_id], float(scores[best]), text)


def pinned_excerpts(
    pin: Pin, articles: Mapping[str, Article], chunk_of: Mapping[str, Sequence[tuple[int, int, str]]]
) -> tuple[Excerpt, ...]:
    """The pin's passages as excerpts of the served articles, flagged as chosen by the moderators."""
    out = []
    for quote in pin.quotes:
        article = articles[quote.article_id]
        assert article.body[quote.start : quote.end] == quote.quote  # verify() ran first
        chunk_id = next(
            (cid for s, e, cid in chunk_of.get(quote.article_id, ()) if s <= quote.start < e),
            f"{quote.article_id}:pin",
        )
        out.append(
            Excerpt(
                quote=quote.quote,
                start=quote.start,
                end=quote.end,
                score=1.0,
                source=article.source,
                chunk_id=chunk_id,
                pinned=True,
            )
        )
    return tuple(out)


def apply_match(answer: Answer, match: PinMatch, pinned: Sequence[Excerpt], *, max_excerpts: int | None) -> Answer:
    """The pinned quotes first, then the automatic excerpts that do not repeat them."""
    rest = [e for e in answer.excerpts if not any(overlaps(e, p) for p in pinned)]
    excerpts = (*[replace(p, score=match.similarity) for p in pinned], *rest)
    if max_excerpts is not None:
        excerpts = excerpts[: max(max_excerpts, len(pinned))]
    return replace(
        answer,
        excerpts=tuple(excerpts),
        declined=False,
        tentative=False,
        unknown_names=(),
        reason=f"pin {match.pin.id}",
        pin_id=match.pin.id,
    )


# -- calibration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    threshold: float
    same_matched: int
    same_total: int
    different_matched: int
    different_total: int

    @property
    def recall(self) -> float:
        return self.same_matched / self.same_total if self.same_total else 0.0

    @property
    def false_match_rate(self) -> float:
        return self.different_matched / self.different_total if self.different_total else 0.0


def score_threshold(threshold: float, same: Sequence[float], different: Sequence[float]) -> Calibration:
    return Calibration(
        threshold,
        sum(1 for s in same if s >= threshold),
        len(same),
        sum(1 for s in different if s >= threshold),
        len(different),
    )


def calibrate_threshold(
    same: Sequence[float], different: Sequence[float], *, false_match_cost: float = FALSE_MATCH_COST
) -> Calibration:
    """The threshold (rounded to 0.01) with the least cost: missed paraphrases + cost × false matches.

    Candidates are the midpoints between neighbouring observed similarities; ties go to the
    higher threshold (the cautious side).
    """
    values = sorted({round(float(v), 4) for v in (*same, *different)})
    candidates = [round((a + b) / 2, 2) for a, b in itertools.pairwise(values)] + [1.0]
    best: tuple[float, float] | None = None
    for t in sorted(set(candidates)):
        c = score_threshold(t, same, different)
        cost = (c.same_total - c.same_matched) + false_match_cost * c.different_matched
        if best is None or cost <= best[0]:
            best = (cost, t)
    assert best is not None
    return score_threshold(best[1], same, different)


# -- sentences for the search -----------------------------------------------------------------


@dataclass(frozen=True)
class SentenceChoice:
    ref: str
    text: str
    article_id: str


def search_sentences(
    text: str,
    articles: Mapping[str, Article],
    sentences: Mapping[str, Sequence[SentenceSpan]],
    *,
    limit: int = 25,
) -> list[SentenceChoice]:
    """Sentences containing every word typed (case-insensitive), in article order: autocomplete."""
    words = [w for w in re.findall(r"\w+", text.casefold()) if len(w) > 1 or w.isdigit()]
    if not words:
        return []
    out: list[SentenceChoice] = []
    for article_id in sorted(sentences):
        article = articles.get(article_id)
        if article is None:
            continue
        for span in sentences[article_id]:
            sentence = article.body[span.start : span.end]
            folded = sentence.casefold()
            if all(w in folded for w in words):
                out.append(SentenceChoice(f"{article_id}@{span.start}-{span.end}", sentence, article_id))
                if len(out) >= limit:
                    return out
    return out


# -- export and import ------------------------------------------------------------------------


def export_yaml(pins: Sequence[Pin], path: Path) -> int:
    """Write the pins as YAML (questions, phrasings, passages with offsets and hashes); returns how many."""
    import yaml

    doc = {
        "format": EXPORT_FORMAT,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "pins": [
            {
                "question": p.question,
                "phrasings": list(p.phrasings),
                "quotes": [q.to_json() for q in p.quotes],
                "created_by": p.created_by,
                "created_at": p.created_at.isoformat(timespec="seconds"),
            }
            for p in pins
        ],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100), encoding="utf-8")
    tmp.replace(path)
    return len(pins)


def read_export(path: Path) -> list[PinDraft]:
    """Drafts from an export file; a malformed file is refused naming the pin and what is wrong."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PinError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PinError(f"{path} is not a pins export (not valid YAML: {type(exc).__name__}).") from None
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT or not isinstance(doc.get("pins"), list):
        raise PinError(f"{path} is not a pins export (written by `directive-bot kb pins export`).")
    drafts = []
    for n, item in enumerate(doc["pins"], start=1):
        try:
            quotes = tuple(PinnedQuote.from_json(q) for q in item["quotes"])
            drafts.append(PinDraft(str(item["question"]), quotes, tuple(str(p) for p in item.get("phrasings") or ())))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise PinError(f"{path}: pin {n} is incomplete (it needs question, quotes and their offsets).") from None
    return drafts


def check_imported(draft: PinDraft, articles: Mapping[str, Article]) -> PinDraft:
    """An imported pin with every passage found word for word in this deployment's articles."""
    quotes = []
    for quote in draft.quotes:
        found = relocate(quote, articles.get(quote.article_id))
        if found is None:
            where = "no such article here" if quote.article_id not in articles else "not in it word for word"
            raise PinError(
                f"The pin “{_short(draft.question)}” quotes `{quote.article_id}` ({where}): "
                f"“{_short(quote.quote)}”. Nothing was imported."
            )
        quotes.append(found)
    return replace(draft, quotes=tuple(quotes))


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
