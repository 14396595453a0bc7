"""Question -> candidate passages: a wide, cheap funnel over every window, then a cross-encoder.

1. The question is spelt out and expanded (bot.query): chat-speak written in full, typos corrected
   towards the articles' words, and glossary terms it implies that the articles use.
2. First stage (chunks): dense (FAISS), lexical (BM25) and late interaction (token MaxSim) rankings
   fused by reciprocal rank. Chunks of ~96 tokens carry enough context to be found.
3. Windows: every run of up to ``window_sentences`` sentences of one paragraph is a candidate quote.
   Each window gets a cheap prior from three rankings fused by reciprocal rank: the late-interaction
   score of its own tokens read in their chunk's context, its BM25 score, and the first-stage rank of
   the best chunk it lies in. Scoring every window this way costs a few milliseconds and finds
   answers that sit in a chunk the first stage ranked low.
4. The cross-encoder reads the ``rerank_windows`` best windows (with the article title as context);
   a window's score is its logit plus ``prior_weight`` times its prior, so two weak-but-agreeing
   signals can outvote a cross-encoder that misreads a casual question.

``compose`` (bot.answer) turns the scored windows into quotes or a decline.
"""

from __future__ import annotations

import functools
import math
import re
import time
import unicodedata
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from bot.config import QuestionSettings, RetrievalSettings
from bot.errors import InvalidQuestion
from bot.late import LateScorer, Segments
from bot.query import Query, QueryAnalyzer
from bot.records import Hit, SentenceSpan
from bot.sequences import LazySequence
from bot.store import LoadedIndex
from bot.store.build import bm25_index, english_stemmer
from bot.store.layout import WORD, article_texts, compute_layout

if TYPE_CHECKING:
    from bot.late import LateInteraction
    from bot.rerank import CrossEncoder

Mode = Literal["hybrid", "dense", "lexical"]
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
# Discord mentions and markdown decoration carry no meaning for the models (the asker still sees them).
_MENTION = re.compile(r"<(?:@[!&]?|#|a?:\w+:)\d+>")
_MARKUP = re.compile(r"[*_~`|>]+")
_WORD = WORD  # a run of letters, as the build counts the articles' words


def clean_question(text: object, settings: QuestionSettings) -> str:
    """Strip control characters and extra whitespace; refuse empty or overlong questions."""
    if not isinstance(text, str):
        raise InvalidQuestion("Ask a question in words.")
    text = _CONTROL.sub(" ", unicodedata.normalize("NFC", text))
    text = re.sub(r"\s+", " ", text).strip()
    if not text or not re.search(r"\w", text):
        raise InvalidQuestion("The question is empty: ask something about the directive, e.g. 'Who is affected?'.")
    if len(text) > settings.max_chars:
        raise InvalidQuestion(
            f"The question is {len(text)} characters long; the limit is {settings.max_chars}. Shorten it and ask again."
        )
    return text


# --- rank fusion -------------------------------------------------------------------------------


def rrf(rankings: Iterable[Sequence[int]], k: int = 60) -> dict[int, float]:
    """Reciprocal rank fusion: ``sum(1 / (k + rank))`` over the rankings an item appears in (ranks from 1)."""
    fused: dict[int, float] = {}
    for order in rankings:
        for rank, item in enumerate(order, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


def _rank_array(scores: np.ndarray) -> np.ndarray:
    """1 for the highest score; ties keep their order.

    Scores that are never negative and mostly zero (BM25 over every window; late interaction above the
    full-scan size) sort only their positive entries: the zeros rank after them in index order, where a
    full sort puts them. At 10,000 articles the full sort of 170,000 windows took 7 ms a question."""
    n = len(scores)
    out = np.empty(n, dtype=np.int64)
    if n and scores.min() >= 0:  # False for NaN, which takes the full sort
        positive = np.flatnonzero(scores)
        out[positive[np.argsort(-scores[positive], kind="stable")]] = np.arange(1, len(positive) + 1)
        out[np.flatnonzero(scores == 0)] = np.arange(len(positive) + 1, n + 1)
        return out
    out[np.argsort(-scores, kind="stable")] = np.arange(1, n + 1)
    return out


# --- typo correction ---------------------------------------------------------------------------


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (a swap of neighbours counts 1), or ``limit + 1`` when larger."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


class TypoCorrector:
    """Maps a misspelt question word to the nearest word of the knowledge base.

    Only words that are neither in the knowledge base nor whole words of the models' vocabulary
    (``known``) are touched, and only when they are long enough for a small edit to be telling:
    one edit from 6 letters on, two from 9. Candidates come from a deletion index (SymSpell-style),
    so a lookup costs a few dictionary probes, not a scan of the vocabulary.
    """

    MIN_LENGTH = 6
    TWO_EDITS_FROM = 9

    def __init__(self, frequency: Mapping[str, int], known: Container[str]) -> None:
        """``frequency``: the knowledge base's casefolded words and their counts (``word_counts``)."""
        self.frequency = frequency
        self.known = known
        self._deletes: dict[str, set[str]] = {}
        for word in self.frequency:
            if len(word) >= self.MIN_LENGTH - 1:
                for variant in self._variants(word, 2):
                    self._deletes.setdefault(variant, set()).add(word)

    @staticmethod
    def _variants(word: str, depth: int) -> set[str]:
        out = {word}
        frontier = {word}
        for _ in range(depth):
            frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
            out |= frontier
        return out

    def correct_word(self, word: str) -> str:
        low = word.casefold()
        if len(low) < self.MIN_LENGTH or low in self.frequency or low in self.known:
            return word
        limit = 2 if len(low) >= self.TWO_EDITS_FROM else 1
        candidates = {c for v in self._variants(low, limit) for c in self._deletes.get(v, ())}
        best: tuple[int, int, str] | None = None
        for cand in candidates:
            d = edit_distance(low, cand, limit)
            if d <= limit:
                key = (d, -self.frequency[cand], cand)
                if best is None or key < best:
                    best = key
        return best[2] if best else word

    def __call__(self, text: str) -> str:
        return _WORD.sub(lambda m: self.correct_word(m.group(0)), text)


def model_query(question: str, corrector: TypoCorrector | None = None) -> str:
    """The text the models read: mentions and markdown removed, typos corrected; never empty."""
    text = re.sub(r"\s+", " ", _MARKUP.sub(" ", _MENTION.sub(" ", question))).strip()
    if not re.search(r"\w", text):
        text = question
    return corrector(text) if corrector is not None else text


# Windows a question's prior hands on (best first): the cross-encoder reads at most 16 of them, and
# making every window of a large knowledge base into an object cost 0.3 s a question at 10,000 articles.
# A sentence lies in at most three windows, so 100 always hold 16 disjoint ones: on 299 questions, at 5
# and at 2,000 articles, the 16 windows read were the same as with 500 (which cost 20 ms a question).
MAX_CANDIDATE_WINDOWS = 100

_NAME = re.compile(r"\b[A-Z][A-Za-z’'-]{2,}\b")


def unknown_names(question: str, index: LoadedIndex) -> tuple[str, ...]:
    """Capitalised words of the question (names, places, bodies) that no article ever uses.

    A question about the European Union cannot be answered by articles that never mention it,
    however close their wording; the answer should say so rather than quote confidently.
    The question's first word and words after sentence punctuation are skipped (capitalised by grammar).
    """
    if index.bm25 is None:
        return ()
    import bm25s.stopwords

    vocab = index.bm25.vocab_dict
    stop = set(bm25s.stopwords.STOPWORDS_EN)
    stemmer = english_stemmer()
    text = _MARKUP.sub(" ", _MENTION.sub(" ", question))
    found: list[str] = []
    for match in _NAME.finditer(text):
        before = text[: match.start()].rstrip()
        if not before or before[-1] in '.?!:;"“(':
            continue
        word = match.group(0).strip("’'-")
        low = word.lower()
        parts = [p for p in re.split(r"[’'-]", low) if p]
        if not parts or low in stop or parts[0] in stop:
            continue
        stems = {p for p in parts} | ({stemmer.stemWord(p) for p in parts} if stemmer else set())
        if not stems & vocab.keys():
            found.append(word)
    return tuple(dict.fromkeys(found))


def _content_words(text: str, understood: Container[str], stop: Container[str]) -> list[str]:
    """The question's words that carry its subject: three letters or more, not stop words, not understood."""
    words = _WORD.findall(_MARKUP.sub(" ", _MENTION.sub(" ", text)).casefold())
    return list(dict.fromkeys(w for w in words if len(w) >= 3 and w not in stop and w not in understood))


def _used(word: str, words: Container[str], stemmer: object | None) -> bool:
    return word in words or (stemmer is not None and stemmer.stemWord(word) in words)  # type: ignore[attr-defined]


def unknown_terms(text: str, index: LoadedIndex, understood: Container[str] = ()) -> tuple[str, ...]:
    """Content words of the question (any case) whose stem no article uses: what the question asks
    about that the knowledge base cannot speak to ("refund", "benchmarks", "amodei"). One signal of
    a question on the topic that the articles do not answer; persona details ("homework") count too,
    so evaluation weighs it against the passage score rather than trusting it alone. Words the
    question analysis ``understood`` (a nationality, a glossary cue such as "app") are not unknown."""
    if index.bm25 is None:
        return ()
    import bm25s.stopwords

    vocab = index.bm25.vocab_dict
    stemmer = english_stemmer()
    words = _content_words(text, understood, set(bm25s.stopwords.STOPWORDS_EN))
    return tuple(w for w in words if not _used(w, vocab, stemmer))


@functools.lru_cache(maxsize=65536)
def commonness(word: str) -> float:
    """How common ``word`` is in general English, on wordfreq's Zipf scale (log10 of uses per billion
    words: "the" 7.7, "good" 6.1, "still" 5.9, "european" 5.1, "jailbreak" 3.0, an unseen word 0).

    An everyday word a question uses but the articles or the best passage do not ("is claude pro still
    good??") says little about whether the passage answers; a rarer one ("IPO", "European") says a lot.
    A general measure from a maintained corpus, not from the knowledge base or any question list."""
    from wordfreq import zipf_frequency

    return float(zipf_frequency(word, "en"))


def rarer_than(words: Iterable[str], common: float) -> tuple[str, ...]:
    """The ``words`` less common than ``common`` (Zipf): the ones the hedge counts."""
    return tuple(w for w in words if commonness(w) < common)


def uncovered_terms(text: str, passage: str, index: LoadedIndex, understood: Container[str] = ()) -> tuple[str, ...]:
    """Content words of the question that some article uses but ``passage`` does not.

    A question on the topic that the articles do not answer ("when is the IPO?", "what did the EU say?")
    still finds a close passage, but that passage rarely says what the question asks about; an
    answerable question's best passage usually does. Words no article uses are ``unknown_terms``, a
    signal of their own, so they are not counted here; nor are function words ("what", "did", "about"),
    which say nothing of the subject (bm25s's longer English list)."""
    if index.bm25 is None:
        return ()
    import bm25s.stopwords

    vocab = index.bm25.vocab_dict
    stemmer = english_stemmer()
    said = set(_WORD.findall(passage.casefold()))
    if stemmer is not None:
        said |= {stemmer.stemWord(w) for w in said}
    words = _content_words(text, understood, set(bm25s.stopwords.STOPWORDS_EN_PLUS))
    return tuple(w for w in words if _used(w, vocab, stemmer) and not _used(w, said, stemmer))


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Passage:
    """A candidate quote: sentences ``first..last`` (inclusive) of one article, ``body[start:end]``."""

    article_id: str
    first: int
    last: int
    start: int
    end: int
    prior: float  # cheap evidence: reciprocal ranks of late interaction, BM25 and chunk rank, fused
    chunk_id: str  # the best-ranked chunk the window lies in
    rerank_score: float | None = None  # cross-encoder logit, when it read this window
    prior_weight: float = 0.0  # how much the prior adds to the logit (RetrievalSettings.prior_weight)
    # The cross-encoder's logit for the member's ask alone (``Query.ask``), when the question introduces
    # the member and this window may be the answer (see ``judged_score``).
    ask_score: float | None = None

    @property
    def key(self) -> tuple[str, int, int]:
        """Which window this is: the same window read twice has the same key."""
        return (self.article_id, self.first, self.last)

    @property
    def sentences(self) -> frozenset[tuple[str, int]]:
        """(article id, sentence index) of each sentence the window spans: what two windows can share."""
        return frozenset((self.article_id, i) for i in range(self.first, self.last + 1))

    @property
    def score(self) -> float:
        """The ranking score: logit plus weighted prior when the cross-encoder read it, else the prior."""
        if self.rerank_score is None:
            return self.prior
        return self.rerank_score + self.prior_weight * self.prior

    @property
    def judged_score(self) -> float:
        """The score the hedge reads ("the closest passages" or the answer): ``score`` with the better of
        the two logits, the whole question's and the member's ask's. A member's introduction ("korean grad
        student, my deadline is in 3 weeks and i kinda need fable, will it be back by then") drags the
        logit of the passage that answers the ask (-9.0 here) far below what the ask alone earns (-6.2), so
        answers to "does this affect me?" were hedged for the words the member spent on themself."""
        if self.ask_score is None or self.rerank_score is None:
            return self.score
        return self.score + max(0.0, self.ask_score - self.rerank_score)


@dataclass(frozen=True)
class Retrieval:
    hits: tuple[Hit, ...]  # first-stage chunks, best first
    # Candidate windows. Reranked: the windows the cross-encoder read, best score first; the rest are
    # not quoted. Otherwise the best windows by prior.
    passages: tuple[Passage, ...]
    dense_top: float  # best dense cosine over all chunks: the plainly-off-topic signal
    embed_ms: float
    search_ms: float
    rerank_ms: float = 0.0
    query: Query | None = None  # what the models read, and why
    reranked: bool = False
    unknown_terms: tuple[str, ...] = ()  # question words no article uses (see unknown_terms)

    @property
    def query_text(self) -> str:
        return self.query.expanded if self.query is not None else ""

    def reweighted(
        self,
        read: int,
        prior_weight: float,
        *,
        first: int | None = None,
        decisive: float = math.inf,
        neighbours: int = 0,
    ) -> Retrieval:
        """The same retrieval as if the cross-encoder had read only the ``read`` first windows in reading order
        (stopping after ``first`` when one scored ``decisive``), then ``neighbours`` windows overlapping
        the best, scored with ``prior_weight``: how evaluation tries counts and weights without running
        models again (the observation read the neighbours of every window it read)."""
        if not self.reranked:
            return self
        weighted = [replace(p, prior_weight=prior_weight) for p in self.passages]
        in_order = reading_order(weighted)
        head = in_order[: first or read]
        if first is None or max((p.score for p in head), default=-math.inf) < decisive:
            head = in_order[:read]
        if neighbours and head:
            best = max(head, key=lambda p: p.score)
            head = head + unread_neighbours(best, weighted, head, neighbours)
        return replace(self, passages=tuple(sorted(head, key=lambda p: -p.score)))


@dataclass(frozen=True)
class _Stage:
    """One reading of a question through the first stage: its chunks, candidate windows, best cosine."""

    hits: tuple[Hit, ...]
    passages: list[Passage]
    dense_top: float
    embed_ms: float  # the models reading the question


def _better_prior(passages: Iterable[Passage]) -> list[Passage]:
    """Each window once, with the best prior it was given, best first."""
    best: dict[tuple[str, int, int], Passage] = {}
    for p in passages:
        if p.key not in best or p.prior > best[p.key].prior:
            best[p.key] = p
    return sorted(best.values(), key=lambda p: -p.prior)


def reading_order(passages: Iterable[Passage], limit: int | None = None) -> list[Passage]:
    """Windows in the order the cross-encoder reads them: best prior first, but a window that shares a
    sentence with one already taken waits until every disjoint one has been taken.

    One strong sentence makes every window around it strong ("s", "s-1..s", "s..s+1"); read in plain
    prior order they fill the cross-encoder's few reads with one passage three times, and the answer
    is grown to whole sentences afterwards anyway. On every question file, the gold window is among
    the 10 read for 91.3% of answerable questions instead of 90.4% (held-out MRR 0.735 -> 0.750).
    ``limit``: stop once that many disjoint windows are taken (the cross-encoder reads no more), so a
    large knowledge base's thousands of windows are not all walked.
    """
    taken: set[tuple[str, int]] = set()
    first: list[Passage] = []
    later: list[Passage] = []
    for p in sorted(passages, key=lambda p: -p.prior):
        if p.sentences & taken:
            later.append(p)
        else:
            first.append(p)
            taken |= p.sentences
            if limit is not None and len(first) >= limit:
                break
    return first + later


def unread_neighbours(best: Passage, candidates: Iterable[Passage], read: Iterable[Passage], n: int) -> list[Passage]:
    """The ``n`` windows with the best priors that share a sentence with ``best`` and are not in ``read``.

    The reading order passes over a window overlapping one already taken, so the better half of a
    strong passage ("s..s+1" when "s-1..s" was read) is never read without this: with 2,000 unrelated
    articles added, one development question in 25 was lost that way.
    """
    if n <= 0:
        return []
    done = {p.key for p in read}
    near = [
        p for p in candidates if p.article_id == best.article_id and p.sentences & best.sentences and p.key not in done
    ]
    return sorted(near, key=lambda p: (-p.prior, p.first, p.last))[:n]


# --- windows -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    article_id: str
    first: int
    last: int
    sentences: tuple[int, ...]  # global sentence numbers
    start: int  # body[start:end] is the window's text
    end: int


def window_passage(
    window: _Window,
    prior: float,
    chunk_id: str,
    *,
    rerank_score: float | None = None,
    prior_weight: float = 0.0,
) -> Passage:
    """The candidate quote a window stands for: its sentences' span of the article body."""
    return Passage(
        window.article_id, window.first, window.last, window.start, window.end, prior, chunk_id, rerank_score,
        prior_weight,
    )  # fmt: skip


class _Layout:
    """Views over the index's sentence, chunk and window tables (``bot.store.layout``).

    The tables are flat arrays stored with the build, so a start reads them instead of walking every
    sentence and chunk in Python; only the windows a question needs become objects."""

    def __init__(self, index: LoadedIndex, window_sentences: int) -> None:
        self.index = index
        size = max(1, window_sentences)
        stored = index.layout
        lacks_segments = stored is not None and index.late is not None and "segment_start" not in stored
        if stored is None or int(stored["window_size"]) != size or lacks_segments:
            texts = article_texts(index.articles.values())
            stored = compute_layout(index.sentences, index.chunks, size, _token_spans(index), texts, forms=False)
        self.t = stored
        self.article_ids: list[str] = [str(a) for a in stored["article_ids"]]
        self.article_of = {aid: i for i, aid in enumerate(self.article_ids)}
        self.window_grid: np.ndarray = stored["window_grid"]
        # The grid's columns, contiguous: each window's first sentence, its second (or -1), ...
        self._grid_columns = [np.ascontiguousarray(c) for c in self.window_grid.T] if len(self.window_grid) else []
        self.windows = _Windows(self)
        self.sentences = _Sentences(self)
        self.chunk_sentences = _Groups(stored["chunk_sentences"], stored["chunk_sentences_first"])
        self.sentence_chunks = _Groups(stored["sentence_chunks"], stored["sentence_chunks_first"])
        self.segments = self._token_segments(index)
        self._bm25: object | None = None
        # How the articles write each term the analyser may add (None: never), when the build found them.
        self.forms: dict[str, str | None] = (
            {t: f or None for t, f in zip(stored["term"].tolist(), stored["term_form"].tolist(), strict=True)}
            if "term" in stored
            else {}
        )
        # The articles' words and their counts: the typo corrector's dictionary and the glossary's filter.
        self.words: dict[str, int] = dict(zip(stored["word"].tolist(), stored["word_count"].tolist(), strict=True))

    def sentence_of(self, article_id: str, position: int) -> int:
        """The global number of an article's ``position``-th sentence."""
        return int(self.t["article_first"][self.article_of[article_id]]) + position

    def window_keys(self) -> list[tuple[str, int, int]]:
        """(article id, first sentence, last sentence) of every window, as the build's stores key them."""
        t, ids = self.t, self.article_ids
        return [
            (ids[a], int(lo), int(hi))
            for a, lo, hi in zip(t["window_article"], t["window_first"], t["window_last"], strict=True)
        ]

    def heading_of(self, g: int) -> str | None:
        """The section heading of sentence ``g``: that of the first chunk holding it."""
        holders = self.sentence_chunks[g]
        return self.index.chunks[int(holders[0])].heading if len(holders) else None

    @property
    def window_texts(self) -> list[str]:
        """Each window's text (made on demand: the build's window BM25 index means a start needs none)."""
        return [self.index.articles[w.article_id].body[w.start : w.end] for w in self.windows]

    @property
    def window_bm25(self) -> object | None:
        """The build's window BM25 (memory-mapped) when it was made for these windows, else one indexed
        now: indexing at every start took a second at 500 articles and grew with the knowledge base."""
        if self._bm25 is None:
            info = self.index.manifest.get("window_bm25") or {}
            stored = self.index.window_bm25
            size = int(self.t["window_size"])
            if stored is not None and info.get("window_sentences") == size and info.get("windows") == len(self.windows):
                self._bm25 = stored
            else:
                self._bm25 = bm25_index(self.window_texts)
        return self._bm25

    def _token_segments(self, index: LoadedIndex) -> LateScorer | None:
        """The late-interaction scorer over the packed token matrix, with one segment per (chunk,
        sentence) pair, so a sentence is scored with the vectors its chunk's context gave it."""
        if index.late is None or index.late_packed is None or "segment_start" not in self.t:
            return None
        vectors, offsets = index.late_packed
        t = self.t
        segments = Segments(
            t["segment_start"], t["segment_end"], t["segment_sentence"], t["segment_first"], int(t["segment_total"])
        )
        return LateScorer(vectors, offsets, segments)

    def article_chunks(self, chunks: Sequence[int], min_chunks: int = 2) -> np.ndarray:
        """``chunks`` and every chunk of the articles at least ``min_chunks`` of them belong to: an article
        the first stage found more than once is worth reading whole; one found once seldom is, and
        reading every such article costs as much again (the chunks alone when the build does not say)."""
        picked = np.unique(np.asarray(chunks, dtype=np.int64))
        owner = self.t.get("chunk_article")
        if owner is None or not len(picked):
            return picked
        articles, counts = np.unique(owner[picked], return_counts=True)
        return np.union1d(picked, np.flatnonzero(np.isin(owner, articles[counts >= min_chunks])))

    def window_max(self, per_sentence: np.ndarray) -> np.ndarray:
        """Each window's best sentence score.

        Column by column: indexing the whole grid and reducing its short rows took 7 ms a call at
        10,000 articles (170,000 windows), twice a question."""
        padded = np.append(per_sentence, -np.inf)  # index -1 reads the padding
        columns = self._grid_columns
        out = padded[columns[0]] if columns else np.full(0, -np.inf)
        for column in columns[1:]:
            np.maximum(out, padded[column], out=out)
        return out

    def best_chunk_rank(self, chunk_order: Sequence[int]) -> np.ndarray:
        """For each sentence, the best (lowest) first-stage rank among the chunks holding it (``chunk_order``
        is best first); inf when none ranks. Only the ranked chunks' sentences are visited, a few dozen
        chunks, not every sentence of the knowledge base."""
        out = np.full(len(self.sentence_chunks), np.inf)
        for rank in range(len(chunk_order), 0, -1):  # worst first, so a sentence keeps its best rank
            out[self.chunk_sentences[int(chunk_order[rank - 1])]] = rank
        return out


def _token_spans(index: LoadedIndex) -> tuple[np.ndarray, np.ndarray] | None:
    """The packed token spans and chunk offsets of an index with token vectors."""
    if index.late is None or index.late_packed is None:
        return None
    spans = [np.asarray(m.spans) for m in index.late]
    return (np.concatenate(spans) if spans else np.zeros((0, 2), np.int32)), np.asarray(index.late_packed[1])


class _Groups:
    """Rows of integers stored flat with offsets (``flat[first[i]:first[i + 1]]`` is row ``i``)."""

    def __init__(self, flat: np.ndarray, first: np.ndarray) -> None:
        self.flat, self.first = flat, first

    def __len__(self) -> int:
        return len(self.first) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.flat[self.first[i] : self.first[i + 1]]


class _Windows(LazySequence[_Window]):
    """Every candidate window, made into a :class:`_Window` only when asked for."""

    def __init__(self, layout: _Layout) -> None:
        self.layout = layout

    def __len__(self) -> int:
        return len(self.layout.window_grid)

    def _item(self, j: int) -> _Window:
        t, layout = self.layout.t, self.layout
        aid = layout.article_ids[int(t["window_article"][j])]
        row = layout.window_grid[j]
        ids = tuple(int(g) for g in row[row >= 0])
        start, end = int(t["sentence_start"][ids[0]]), int(t["sentence_end"][ids[-1]])
        return _Window(aid, int(t["window_first"][j]), int(t["window_last"][j]), ids, start, end)


class _Sentences(LazySequence[tuple[str, int, SentenceSpan]]):
    """Every sentence of the knowledge base by global number: (article id, position, span)."""

    def __init__(self, layout: _Layout) -> None:
        self.layout = layout

    def __len__(self) -> int:
        return len(self.layout.t["sentence_start"])

    def _item(self, g: int) -> tuple[str, int, SentenceSpan]:
        t, layout = self.layout.t, self.layout
        a = int(t["sentence_article"][g])
        aid = layout.article_ids[a]
        para, start, end = (int(t[f"sentence_{k}"][g]) for k in ("paragraph", "start", "end"))
        return aid, g - int(t["article_first"][a]), SentenceSpan(aid, para, start, end)


def _known_words(model: object, query: str) -> list[str]:
    """The query's tokens, stemmed as the index was, that the index ``model`` knows."""
    import bm25s

    tokens = bm25s.tokenize([query], stopwords="en", stemmer=english_stemmer(), return_ids=False, show_progress=False)
    vocab = model.vocab_dict  # type: ignore[attr-defined]
    return [t for t in tokens[0] if t in vocab]


def _bm25_scores(model: object | None, query: str, n: int) -> np.ndarray:
    """BM25 score of every document of ``model`` for ``query`` (zeros when no query word is known)."""
    out = np.zeros(n, dtype=np.float32)
    if model is None or not n:
        return out
    words = _known_words(model, query)
    if words:
        out[:] = model.get_scores(words)  # type: ignore[attr-defined]
    return out


def _top_k(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """(index, score) of the ``k`` best positive scores, best first, ties in index order.

    Scoring every chunk and selecting here takes 1 ms at 10,000 articles; ``bm25s``'s ``retrieve``
    took 17 ms for the same result (its per-call set-up, not the scoring)."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k > 0:
        kth = np.partition(scores[positive], len(positive) - k)[len(positive) - k]
        positive = positive[scores[positive] >= kth]
    best = positive[np.lexsort((positive, -scores[positive]))][: max(k, 0)]
    return [(int(i), float(scores[i])) for i in best]


def _reciprocal_ranks(scores: np.ndarray, k: int, present: np.ndarray | None = None) -> np.ndarray:
    """``1 / (k + rank)`` per item, ranks from 1 by descending score; 0 where ``present`` is False."""
    rr = 1.0 / (k + _rank_array(scores))
    return rr if present is None else np.where(present, rr, 0.0)


class Retriever:
    """Hybrid first stage over chunks, a prior over every window, the cross-encoder over the best."""

    def __init__(
        self,
        index: LoadedIndex,
        embedder,  # noqa: ANN001 - bot.embedding.Embedder or a test double
        settings: RetrievalSettings,
        *,
        late: LateInteraction | None = None,
        reranker: CrossEncoder | None = None,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings
        if settings.dense_search_threads > 0:
            import faiss  # already loaded with the index

            faiss.omp_set_num_threads(settings.dense_search_threads)  # process-wide: FAISS has one pool
        self.late = late if index.late is not None else None
        self.reranker = reranker
        self.layout = _Layout(index, settings.window_sentences)
        self.corrector = self._make_corrector() if settings.typo_correction else None
        self.analyzer = (
            QueryAnalyzer(
                self._texts, home_country=settings.home_country, vocabulary=self.layout.words, forms=self.layout.forms
            )
            if settings.query_expansion
            else None
        )

    def _texts(self) -> list[str]:
        return article_texts(self.index.articles.values())

    def _make_corrector(self) -> TypoCorrector | None:
        tokenizer = getattr(self.reranker, "tokenizer", None) or getattr(self.late, "tokenizer", None)
        if tokenizer is None:  # without a vocabulary of real words a rare word cannot be told from a typo
            return None
        known = {w for w in tokenizer.get_vocab() if not w.startswith("##")}
        return TypoCorrector(self.layout.words, known)

    def understand(self, question: str) -> Query:
        """The question as the models read it: markup removed, spelt out, typos corrected, expanded."""
        text = model_query(question)
        if self.analyzer is not None:
            return self.analyzer.analyze(text, self.corrector)
        corrected = self.corrector(text) if self.corrector is not None else text
        return Query(question, corrected, (), (), ())

    # --- first stage ---------------------------------------------------------------------------

    def _lexical(self, question: str, k: int) -> list[tuple[int, float]]:
        if self.index.bm25 is None:
            return []
        words = _known_words(self.index.bm25, question)
        if not words:
            return []
        return _top_k(np.asarray(self.index.bm25.get_scores(words)), k)  # type: ignore[attr-defined]

    def _dense(self, qvec: np.ndarray) -> list[tuple[int, float]]:
        """The ``dense_candidates`` chunks nearest the question's vector, with their cosines."""
        n = len(self.index.chunks)
        if not n:
            return []
        k = min(self.settings.dense_candidates, n)
        scores, ids = self.index.faiss_index.search(qvec.reshape(1, -1).astype(np.float32), k)
        return [(int(i), float(v)) for i, v in zip(ids[0], scores[0], strict=True) if i >= 0]

    def _late_scores(
        self, qtok: np.ndarray | None, candidates: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """MaxSim of the question against chunks, and against every sentence in its chunk's context.

        Up to ``late_full_scan_chunks`` chunks every chunk is scored (one matrix product, a few ms).
        Above it, given the first stage's ``candidates`` (dense and BM25 top lists), every chunk of the
        candidates' articles is scored and every other chunk and sentence scores 0: scoring all stored
        tokens grows with the knowledge base (235 ms a question at 2,000 articles), scoring the articles
        the first stage found does not. Whole articles, not only the candidate chunks, so that an
        article's other passages are ranked as they are in a small knowledge base (with 2,000 unrelated
        articles, candidate chunks alone put dev.yaml at 22 of 25, whole articles 23 as with 5).
        """
        n_chunks, n_sent = len(self.index.chunks), len(self.layout.sentences)
        scorer = self.layout.segments
        if qtok is None or scorer is None or len(qtok) == 0 or not n_chunks:
            return np.zeros(n_chunks, dtype=np.float32), np.zeros(n_sent, dtype=np.float32)
        if n_chunks <= self.settings.late_full_scan_chunks or candidates is None:
            return scorer.full(qtok, n_sent)
        return scorer.candidates(qtok, self.layout.article_chunks(candidates), n_sent)

    def _first_stage(
        self,
        dense: list[tuple[int, float]],
        lexical: list[tuple[int, float]],
        late_chunk: np.ndarray | None,
        mode: Mode,
    ) -> tuple[list[int], dict[int, float], dict[str, dict[int, int]]]:
        """Chunks fused by reciprocal rank: order, fused score, rank in each ranking."""
        s = self.settings
        rankings: dict[str, list[int]] = {}
        if mode in ("hybrid", "dense"):
            rankings["dense"] = [i for i, _ in dense]
        if mode in ("hybrid", "lexical"):
            rankings["lexical"] = [i for i, _ in lexical]
        if mode == "hybrid" and late_chunk is not None and len(late_chunk):
            rankings["late"] = [int(i) for i in np.argsort(-late_chunk, kind="stable")[: s.dense_candidates]]
        fused = rrf(rankings.values(), s.rrf_k)
        rank_of = {name: {c: r for r, c in enumerate(order, start=1)} for name, order in rankings.items()}
        order = sorted(fused, key=lambda i: -fused[i])
        return order, fused, rank_of

    def search(
        self, question: str, *, mode: Mode = "hybrid", rerank: bool = True, read: int | None = None
    ) -> Retrieval:
        """Rank candidate quotes for a question. ``read`` overrides how many windows the cross-encoder reads."""
        t0 = time.perf_counter()
        query = self.understand(question)
        t1 = time.perf_counter()
        stage = self._candidates(query.expanded, mode)
        stages = [stage]
        if query.introduces_member:
            # The member's own ask read alone as well: a window keeps the better of its two priors.
            stages.append(self._candidates(self.understand(query.ask).expanded, mode))
        passages = stage.passages if len(stages) == 1 else _better_prior(p for s in stages for p in s.passages)
        t2 = time.perf_counter()
        embed_ms = (t1 - t0) * 1000 + sum(s.embed_ms for s in stages)  # understanding counts with embedding
        reranked = False
        if rerank and self.reranker is not None and passages:
            passages = self._rerank(query.text, passages, read)  # windows it did not read are not quoted
            passages = self._judge_ask(query, passages, every=bool(read))
            reranked = True
        t3 = time.perf_counter()
        return Retrieval(
            hits=stage.hits,
            passages=tuple(passages),
            dense_top=stage.dense_top,
            embed_ms=embed_ms,
            search_ms=(t2 - t0) * 1000 - embed_ms,
            rerank_ms=(t3 - t2) * 1000,
            query=query,
            reranked=reranked,
            # Counted in the ask only: what a member says of themselves is their case, not their question.
            unknown_terms=unknown_terms(query.ask or query.text, self.index, frozenset(query.understood)),
        )

    def _candidates(self, text: str, mode: Mode) -> _Stage:
        """The first stage and the candidate windows for one reading of the question."""
        t0 = time.perf_counter()
        # Embedded in every mode: the dense top score is the off-topic signal.
        qvec = self.embedder.encode([text])[0]
        qtok = self.late.encode_query(text) if self.late is not None else None
        t1 = time.perf_counter()
        # One dense search and one BM25 retrieval a question: the fusion ranks them, and above the
        # full-scan size they are also the chunks late interaction scores.
        dense = self._dense(qvec)
        lexical = self._lexical(text, self.settings.lexical_candidates) if mode != "dense" else []
        late_chunk, late_sentence = self._late_scores(qtok, [i for i, _ in dense] + [i for i, _ in lexical])
        order, fused, rank_of = self._first_stage(dense, lexical, late_chunk if qtok is not None else None, mode)
        dense_score = dict(dense)
        hits = tuple(
            Hit(
                chunk=self.index.chunks[i],
                score=fused[i],
                dense_score=dense_score.get(i, 0.0),
                dense_rank=rank_of.get("dense", {}).get(i),
                lexical_rank=rank_of.get("lexical", {}).get(i),
                late_rank=rank_of.get("late", {}).get(i),
            )
            for i in order
        )
        use_late = qtok is not None and mode == "hybrid"
        passages = self._windows(order, late_sentence if use_late else None, text, lexical=mode != "dense")
        return _Stage(hits, passages, dense[0][1] if dense else 0.0, (t1 - t0) * 1000)

    def _rerank(self, text: str, passages: list[Passage], read: int | None) -> list[Passage]:
        """The cross-encoder over the best windows in reading order (:func:`reading_order`): ``rerank_first``
        of them, then the rest of ``rerank_windows`` only when no window read so far scores
        ``rerank_decisive`` or more.

        It reads the member's question spelt out, without the glossary terms: they widen the search but
        would pull its judgement towards the concept and away from the question asked (cross-validated:
        persona hit@3 0.62 with them, 0.71 without). ``read`` (evaluation) reads that many, no early stop.
        """
        s = self.settings
        limit = read or s.rerank_windows
        first = limit if read else min(s.rerank_first, limit)
        in_order = reading_order(passages, limit=limit)
        scored: list[Passage] = []
        for lo, hi in ((0, first), (first, limit)):
            head = in_order[lo:hi]
            if not head or (scored and scored[0].score >= s.rerank_decisive):
                break
            scored = self._read(text, head, scored)
        # Evaluation reads the neighbours of every window, so that any count it tries finds its best's read.
        for best in scored if read else scored[:1]:
            scored = self._read(text, unread_neighbours(best, passages, scored, s.rerank_neighbours), scored)
        return scored

    def _judge_ask(self, query: Query, passages: list[Passage], *, every: bool) -> list[Passage]:
        """The best window read again with the member's ask alone (``Passage.judged_score``), when the
        question introduces the member: one more cross-encoder pair. Evaluation (``every``) reads every
        window so, so that whichever window a setting it tries puts first has its ask read."""
        if not passages or not query.introduces_member:
            return passages
        judged = passages if every else passages[:1]
        logits = self.reranker.score(query.ask, [self._window_text(p) for p in judged])  # type: ignore[union-attr]
        asked = [replace(p, ask_score=float(v)) for p, v in zip(judged, logits, strict=True)]
        return asked + passages[len(judged) :]

    def _read(self, text: str, windows: list[Passage], scored: list[Passage]) -> list[Passage]:
        """``scored`` and the cross-encoder's reading of ``windows``, best score first."""
        if not windows:
            return scored
        logits = self.reranker.score(text, [self._window_text(p) for p in windows])  # type: ignore[union-attr]
        weight = self.settings.prior_weight
        read = [replace(p, rerank_score=float(v), prior_weight=weight) for p, v in zip(windows, logits, strict=True)]
        return sorted(scored + read, key=lambda p: -p.score)

    # --- windows -------------------------------------------------------------------------------

    def _windows(
        self, chunk_order: list[int], late_sentence: np.ndarray | None, text: str, *, lexical: bool = True
    ) -> list[Passage]:
        """The windows with the best priors over the whole knowledge base, best first, at most
        ``MAX_CANDIDATE_WINDOWS`` (windows with no evidence at all are left out)."""
        layout = self.layout
        n = len(layout.windows)
        if not n:
            return []
        k = self.settings.window_rrf_k
        # Rank of the best first-stage chunk each window lies in (chunks outside the fusion: none).
        chunk_rank = np.full(len(self.index.chunks), np.inf)
        chunk_rank[np.array(chunk_order, dtype=np.int64)] = np.arange(1, len(chunk_order) + 1)
        window_chunk_rank = -layout.window_max(-layout.best_chunk_rank(chunk_order))
        in_stage = np.isfinite(window_chunk_rank)
        prior = np.where(in_stage, 1.0 / (k + np.where(in_stage, window_chunk_rank, 0)), 0.0)
        evidence = in_stage.copy()
        if late_sentence is not None:
            late = layout.window_max(late_sentence)
            prior += _reciprocal_ranks(late, k)
            evidence |= late > 0
        if lexical:
            bm = _bm25_scores(layout.window_bm25, text, n)
            prior += _reciprocal_ranks(bm, k, bm > 0)
            evidence |= bm > 0
        best = np.nonzero(evidence)[0]
        best = best[np.argsort(-prior[best], kind="stable")][:MAX_CANDIDATE_WINDOWS]
        out = []
        for j in best:
            win = layout.windows[int(j)]
            out.append(window_passage(win, float(prior[j]), self._best_chunk_id(win, chunk_rank)))
        return out

    def _best_chunk_id(self, win: _Window, chunk_rank: np.ndarray) -> str:
        """The id of the best-ranked chunk holding the window's first sentence."""
        holders = self.layout.sentence_chunks[win.sentences[0]]
        if not len(holders):
            return self.index.chunks[0].id if self.index.chunks else ""
        return self.index.chunks[int(holders[np.argmin(chunk_rank[holders])])].id

    def _window_text(self, p: Passage) -> str:
        """What the cross-encoder reads: the headline (and section) as context, then the window."""
        art = self.index.articles[p.article_id]
        heading = self.layout.heading_of(self.layout.sentence_of(p.article_id, p.first))
        context = f"{art.title} — {heading}" if heading else art.title
        return f"{context}\n{art.body[p.start : p.end]}" if context else art.body[p.start : p.end]
