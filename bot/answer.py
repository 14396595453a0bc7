"""Scored windows -> Answer: the tightest verbatim span that answers, collapsed across outlets, or a decline.

Every quote is a slice of the stored article body (``body[start:end]``), taken through
``LoadedIndex.quote``, which checks the article against the content hash the manifest recorded when the
index was built: nothing here writes words of its own, and an inconsistent index is refused.

A candidate window (one or two sentences, see bot.retrieval) becomes a quote of at most three whole
sentences of one paragraph, grown only when a sentence cannot stand alone:
- a question travels with its answer ("Is this a permanent ban? Anthropic has stated ..."), and a bare
  "Yes."/"No." answer with the sentence that explains it;
- a sentence that leans on the one before it ("It said ...", "For everyone.", an unattributed
  quotation) takes that one;
- a quotation continued by further unattributed quoted sentences keeps them together.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Protocol

from bot.config import RetrievalSettings
from bot.records import Answer, Excerpt, SentenceSpan, Timings
from bot.retrieval import Passage, Retrieval, rarer_than, uncovered_terms, unknown_names
from bot.store import LoadedIndex

# A sentence that leans on the one before it needs it to be understood.
_ANAPHORIC = re.compile(
    r"^[“\"‘']?(it|its|this|that|these|those|they|their|he|she|his|her|the company|the firm|but|however|then|"
    r"so|also|such|and|or|yet|still|instead|meanwhile|there)\b",
    re.IGNORECASE,
)
_SPEECH = re.compile(
    r"\b(said|says|say|wrote|writes|stated|states|noted|notes|added|adds|told|according to|remarked|argued|"
    r"posted|declared|explained|warned)\b",
    re.IGNORECASE,
)
_OPEN_QUOTE = ("“", '"')
_WORDS = re.compile(r"\w+")
MAX_SENTENCES = 3
ELLIPTICAL_WORDS = 4  # "For everyone." / "Not yet." lean on what came before
BARE_ANSWER_WORDS = 2  # "Yes." / "No, not quite."
MIN_CONTAINED_WORDS = 4  # "No." inside another quote is not a copy of it


def _words(text: str) -> int:
    return len(_WORDS.findall(text))


def _pure_quotation(text: str) -> bool:
    """A quoted sentence that does not say who is speaking: the speaker is named nearby."""
    return text.startswith(_OPEN_QUOTE) and not _SPEECH.search(text)


def expand_span(
    spans: Sequence[SentenceSpan], body: str, first: int, last: int, *, max_sentences: int = MAX_SENTENCES
) -> tuple[int, int]:
    """Grow sentences ``first..last`` of one article into a quote that stands on its own (at most three)."""

    def text(i: int) -> str:
        return body[spans[i].start : spans[i].end]

    def same_para(a: int, b: int) -> bool:
        return 0 <= a < len(spans) and 0 <= b < len(spans) and spans[a].paragraph == spans[b].paragraph

    def room() -> bool:
        return last - first + 1 < max_sentences

    # A question is quoted with its answer; a bare "Yes."/"No." with the sentence explaining it.
    if text(last).endswith("?") and same_para(last, last + 1) and room():
        last += 1
    if _words(text(last)) <= BARE_ANSWER_WORDS and same_para(last, last + 1) and room():
        last += 1
    # Leading context: the first sentence leans on the one before it.
    while room() and same_para(first - 1, first):
        lead = text(first)
        if (
            _ANAPHORIC.match(lead)
            or _words(lead) <= ELLIPTICAL_WORDS
            or _pure_quotation(lead)
            or text(first - 1).endswith("?")
        ):
            first -= 1
        else:
            break
    # A quotation goes on in the next sentence without naming the speaker again.
    while room() and same_para(last, last + 1):
        if not (text(last).startswith(_OPEN_QUOTE) and _pure_quotation(text(last + 1))):
            break
        last += 1
    return first, last


def _norm(text: str) -> str:
    return " ".join(_WORDS.findall(text.casefold()))


def similar(a: str, b: str, threshold: float) -> bool:
    """Near-identical wording (outlets copying each other, or one quote inside another)."""
    na, nb = _norm(a), _norm(b)
    if not na or not nb:
        return False
    short, long = sorted((na, nb), key=len)
    if len(short.split()) >= MIN_CONTAINED_WORDS and f" {short} " in f" {long} ":
        return True  # one quote inside the other, word for word
    matcher = SequenceMatcher(None, na, nb, autojunk=False)
    # The cheap upper bounds settle most pairs before the quadratic ratio.
    return (
        matcher.real_quick_ratio() >= threshold and matcher.quick_ratio() >= threshold and matcher.ratio() >= threshold
    )


@dataclass
class _Quote:
    article_id: str
    first: int
    last: int
    score: float
    chunk_id: str
    also: list[str]


def select_quotes(
    index: LoadedIndex, passages: Sequence[Passage], settings: RetrievalSettings, limit: int
) -> list[_Quote]:
    """Best first: expand each passage, merge overlapping or adjacent ones, collapse copies across outlets."""
    chosen: list[_Quote] = []
    for p in passages:
        if len(chosen) >= limit:
            break
        spans = index.sentences.get(p.article_id, [])
        body = index.articles[p.article_id].body
        if not spans or p.last >= len(spans):
            continue
        first, last = expand_span(spans, body, p.first, p.last)
        quote = body[spans[first].start : spans[last].end]
        merged = False
        for q in chosen:
            if q.article_id == p.article_id:
                if first <= q.last and q.first <= last:  # the same passage, reached twice
                    merged = True
                    break
                lo, hi = min(first, q.first), max(last, q.last)
                adjacent = first == q.last + 1 or last + 1 == q.first
                if adjacent and hi - lo < MAX_SENTENCES and spans[lo].paragraph == spans[hi].paragraph:
                    q.first, q.last = lo, hi  # one quote of neighbouring sentences, not two
                    merged = True
                    break
            else:
                other = index.articles[q.article_id].body
                prev = other[index.sentences[q.article_id][q.first].start : index.sentences[q.article_id][q.last].end]
                if similar(quote, prev, settings.duplicate_similarity):
                    if p.article_id not in q.also:
                        q.also.append(p.article_id)
                    merged = True
                    break
        if not merged:
            chosen.append(_Quote(p.article_id, first, last, p.score, p.chunk_id, []))
    return chosen


def compose(
    question: str,
    index: LoadedIndex,
    retrieval: Retrieval,
    settings: RetrievalSettings,
    *,
    max_excerpts: int | None = None,
    covered_topics: tuple[str, ...] = (),
) -> Answer:
    """Quote the best windows, or decline: too far from the topic, or nothing the cross-encoder believes."""
    limit = max_excerpts or settings.max_excerpts
    t0 = time.perf_counter()
    missing = unknown_names(member_ask(question, retrieval), index)
    passages = list(retrieval.passages)
    best = max((p.score for p in passages), default=-math.inf)
    # Confidence: the cross-encoder's logit when it ran; otherwise a dense-cosine proxy on a similar scale.
    confidence_logit = best if retrieval.reranked else retrieval.dense_top * 10.0 - 5.0
    # The hedge reads the ask's logit too when the question introduces the member (judged_best); the
    # decline does not: read alone, an ask like "any good fable books for kids?" (the member's "my
    # daughter loves aesop" cut as an introduction) lifted off-topic questions over the decline line
    # (held out, 95.4% -> 93.5% of them declined for 1.2% -> 1.1% of answerable ones).
    hedge_logit = judged_best(passages) if retrieval.reranked else confidence_logit

    def timings(select_ms: float, compose_ms: float) -> Timings:
        return Timings(
            embed_ms=retrieval.embed_ms,
            search_ms=retrieval.search_ms,
            rerank_ms=retrieval.rerank_ms,
            select_ms=select_ms,
            compose_ms=compose_ms,
        )

    def decline(reason: str) -> Answer:
        return Answer(
            question=question,
            declined=True,
            excerpts=(),
            index_version=index.version,
            confidence=_sigmoid(confidence_logit) if passages else 0.0,
            covered_topics=covered_topics,
            reason=reason,
            timings=timings(0.0, (time.perf_counter() - t0) * 1000),
        )

    if not passages:
        return decline("nothing in the knowledge base matches")
    if retrieval.dense_top < settings.dense_floor:
        return decline("the question is not about the directive")
    if retrieval.reranked:
        if (
            decline_score(best, len(retrieval.unknown_terms), retrieval.dense_top, settings)
            < settings.decline_threshold
        ):
            return decline("the knowledge base does not answer this")
        # The decline threshold judges the question (on its own scale); passages are kept by distance from the best.
        passages = [p for p in passages if p.score >= best - settings.relative_cutoff]

    quotes = select_quotes(index, passages, settings, limit)
    t1 = time.perf_counter()
    excerpts = []
    for q in quotes:
        art = index.articles[q.article_id]
        spans = index.sentences[q.article_id]
        start, end = spans[q.first].start, spans[q.last].end
        quote = index.quote(q.article_id, start, end)  # the built article's own words, or IndexDamaged
        excerpts.append(
            Excerpt(
                quote=quote,
                start=start,
                end=end,
                score=q.score,
                source=art.source,
                chunk_id=q.chunk_id,
                also_reported_by=tuple(index.articles[o].source for o in q.also if o in index.articles),
            )
        )
    if not excerpts:
        return decline("the knowledge base does not answer this")
    return Answer(
        question=question,
        declined=False,
        excerpts=tuple(excerpts),
        index_version=index.version,
        confidence=_sigmoid(confidence_logit),
        covered_topics=covered_topics,
        reason="",
        tentative=hedged(hedge_logit, retrieval, index, settings) or bool(missing),
        unknown_names=missing,
        timings=timings((t1 - t0) * 1000, (time.perf_counter() - t1) * 1000),
    )


def judged_best(passages: Iterable[Passage]) -> float:
    """What the hedge reads: the best-ranked passage's ``judged_score`` (its logit or, when the
    question introduces the member, the better of that and the ask's). The decline reads the logit."""
    top = max(passages, key=lambda p: p.score, default=None)
    return top.judged_score if top is not None else -math.inf


class DecisionWeights(Protocol):
    """The weights of the answer/decline rule: RetrievalSettings, or evaluation's Params trying others."""

    decline_unknown_weight: float
    decline_dense_weight: float
    unknown_term_weight: float
    uncovered_term_weight: float


def decline_score(best: float, unknown: int, dense_top: float, settings: DecisionWeights) -> float:
    """The answer-or-decline signal: the best passage's score, less a weight per question word no article
    uses, plus a weight times the best dense cosine. Off-topic questions that happen to share a name with
    the articles ("weather in Washington") get a fair cross-encoder score but a low cosine and unknown words."""
    return best - settings.decline_unknown_weight * unknown + settings.decline_dense_weight * dense_top


def hedge_score(best: float, unknown: int, uncovered: int, settings: DecisionWeights) -> float:
    """The answer-or-hedge signal: the best passage's score, less a weight per question word no article
    uses and per question word the best passage does not use (``uncovered``)."""
    return best - settings.unknown_term_weight * unknown - settings.uncovered_term_weight * uncovered


def hedged(best: float, retrieval: Retrieval, index: LoadedIndex, settings: RetrievalSettings) -> bool:
    """Show as "closest passages": the hedge score is below ``tentative_below``. It counts the unknown
    and uncovered words rarer than ``hedge_common_zipf`` in general English (an everyday word such as
    "good" or "still" missing from the passage is no sign that it misses the question)."""
    common = settings.hedge_common_zipf
    unknown = len(rarer_than(retrieval.unknown_terms, common))
    missing = len(rarer_than(uncovered(retrieval, index), common))
    return hedge_score(best, unknown, missing, settings) < settings.tentative_below


def member_ask(question: str, retrieval: Retrieval) -> str:
    """The question without the clauses in which the member introduces themself (``Query.ask``).

    Names there are the member's case ("I'm Canadian and work at Anthropic. Am I still allowed to work on
    Mythos?"), which the articles speak to as the people the order covers, not what the member asks
    about: "my articles never mention Canadian" would hedge the passage that settles their case. A name
    in the ask itself ("what did the Canadian government say?") still marks what the articles lack."""
    query = retrieval.query
    return query.ask if query is not None and query.ask else question


def uncovered(retrieval: Retrieval, index: LoadedIndex) -> tuple[str, ...]:
    """Words of the member's ask that the articles use but the best passage does not (``uncovered_terms``)."""
    if not retrieval.passages or retrieval.query is None:
        return ()
    best = max(retrieval.passages, key=lambda p: p.score)
    query = retrieval.query
    text = index.articles[best.article_id].body[best.start : best.end]
    return uncovered_terms(query.ask or query.text, text, index, frozenset(query.understood))


def _sigmoid(x: float) -> float:
    if x == -math.inf:
        return 0.0
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


def covered_topics(index: LoadedIndex, limit: int = 6) -> tuple[str, ...]:
    """Article headlines, newest first: what a declined asker can ask about instead."""
    arts = sorted(
        index.articles.values(),
        key=lambda a: (a.published or a.added or dt.date.min, a.title),
        reverse=True,
    )
    return tuple(a.title for a in arts[:limit])
