"""Hits -> Answer: the tightest verbatim span that answers, collapsed across outlets, or a decline.

Every quote is a slice of the stored article body (``body[start:end]``) and is checked to be
exactly that before it leaves this module: nothing here writes words of its own.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from dataclasses import dataclass
from difflib import SequenceMatcher

from bot.config import RetrievalSettings
from bot.late import maxsim
from bot.models import Answer, Excerpt, Hit, Source, Timings
from bot.retrieval import Retrieval
from bot.store import LoadedIndex, SentenceSpan

# A sentence that leans on the one before it ("It said...", "This means...") needs it to be understood.
_ANAPHORIC = re.compile(
    r"^(it|its|this|that|these|those|they|their|he|she|his|her|the company|the firm|but|however|then|so|also|such)\b",
    re.IGNORECASE,
)
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class ScoredSpan:
    article_id: str
    start: int
    end: int
    score: float
    chunk_id: str


def _norm(text: str) -> str:
    return " ".join(_WORDS.findall(text.casefold()))


def similar(a: str, b: str, threshold: float) -> bool:
    """Near-identical wording (outlets copying each other, or one quote inside another)."""
    na, nb = _norm(a), _norm(b)
    if not na or not nb:
        return False
    if na in nb or nb in na:
        return True
    return SequenceMatcher(None, na, nb, autojunk=False).ratio() >= threshold


def _chunk_sentences(index: LoadedIndex, hit: Hit) -> list[tuple[int, SentenceSpan]]:
    """(position in the article's sentence list, sentence) for the sentences of one chunk."""
    chunk = hit.chunk
    return [
        (pos, s)
        for pos, s in enumerate(index.sentences.get(chunk.article_id, []))
        if s.start >= chunk.start and s.end <= chunk.end
    ]


def sentence_scores(
    index: LoadedIndex, hit: Hit, sents: list[tuple[int, SentenceSpan]], retrieval: Retrieval, embedder=None
) -> list[float]:
    """How well each sentence of a chunk answers, using the chunk's own (contextual) token vectors."""
    chunk = hit.chunk
    position = index.chunk_positions.get(chunk.id)
    if retrieval.query_tokens is not None and index.late is not None and position is not None:
        mat = index.late[position]
        shift = len(chunk.embed_text) - len(chunk.text) - chunk.start  # embed_text = prefix + chunk text
        q = retrieval.query_tokens
        out = []
        for _, s in sents:
            lo, hi = s.start + shift, s.end + shift
            mask = (mat.spans[:, 0] >= lo) & (mat.spans[:, 1] <= hi)
            out.append(maxsim(q, mat.vectors[mask]) if mask.any() else 0.0)
        return out
    body = index.articles[chunk.article_id].body
    vecs = embedder.encode([body[s.start : s.end] for _, s in sents])
    return [float(v) for v in vecs @ retrieval.query_vector]


def _span(
    index: LoadedIndex, sents: list[tuple[int, SentenceSpan]], scores: list[float], margin: float
) -> tuple[int, int]:
    """The best sentence, grown into at most three whole sentences of the same paragraph when needed."""
    best = max(range(len(sents)), key=lambda i: scores[i])
    lo = hi = best
    body = index.articles[sents[best][1].article_id].body
    same_para = lambda a, b: sents[a][1].paragraph == sents[b][1].paragraph  # noqa: E731
    text = lambda i: body[sents[i][1].start : sents[i][1].end]  # noqa: E731
    # A question heading its answer ("Is this a permanent ban? Anthropic has stated...") travels with it.
    if text(hi).endswith("?") and hi + 1 < len(sents) and same_para(hi, hi + 1):
        hi += 1
    # "It said..." needs the sentence naming "it".
    if lo > 0 and same_para(lo - 1, lo) and (_ANAPHORIC.match(text(lo)) or text(lo - 1).endswith("?")):
        lo -= 1
    while hi - lo < 2 and hi + 1 < len(sents) and same_para(hi, hi + 1) and scores[hi + 1] >= scores[best] - margin:
        hi += 1
    return sents[lo][1].start, sents[hi][1].end


def compose(
    question: str,
    index: LoadedIndex,
    retrieval: Retrieval,
    settings: RetrievalSettings,
    *,
    embedder=None,
    max_excerpts: int | None = None,
    covered_topics: tuple[str, ...] = (),
) -> Answer:
    """Pick a span in each of the best chunks, collapse duplicates, decide whether to decline."""
    limit = max_excerpts or settings.max_excerpts
    t0 = time.perf_counter()
    hits = list(retrieval.hits)
    reranked = [h for h in hits if h.rerank_score is not None]
    if reranked:
        best = max(h.rerank_score for h in reranked)
        pool = reranked
        floor = max(settings.decline_threshold, best - settings.relative_cutoff)
        score_of = lambda h: h.rerank_score  # noqa: E731
    else:
        # No cross-encoder: dense cosine on a logit-like scale keeps one threshold meaningful.
        pool = hits[: max(settings.rerank_chunks, limit + 2)]
        best = max((h.dense_score for h in pool), default=0.0) * 10.0 - 5.0
        floor = max(settings.decline_threshold, best - settings.relative_cutoff)
        score_of = lambda h: h.dense_score * 10.0 - 5.0  # noqa: E731

    def decline(reason: str) -> Answer:
        return Answer(
            question=question,
            abstained=True,
            excerpts=(),
            index_version=index.version,
            confidence=_sigmoid(best) if pool else 0.0,
            covered_topics=covered_topics,
            reason=reason,
            timings=Timings(
                retrieval.embed_ms, retrieval.search_ms + retrieval.rerank_ms, 0.0, (time.perf_counter() - t0) * 1000
            ),
        )

    if not pool:
        return decline("nothing in the knowledge base matches")
    if retrieval.dense_top < settings.dense_floor:
        return decline("the question is not about the directive")
    if best < settings.decline_threshold:
        return decline("the knowledge base does not answer this")

    t1 = time.perf_counter()
    chosen: list[ScoredSpan] = []
    also: list[list[str]] = []
    for hit in pool:
        score = float(score_of(hit))
        if score < floor:
            continue
        sents = _chunk_sentences(index, hit)
        if not sents:
            continue
        scores = sentence_scores(index, hit, sents, retrieval, embedder)
        start, end = _span(index, sents, scores, settings.span_margin)
        aid = hit.chunk.article_id
        quote = index.articles[aid].body[start:end]
        merged = False
        for j, prev in enumerate(chosen):
            prev_quote = index.articles[prev.article_id].body[prev.start : prev.end]
            if prev.article_id == aid and start < prev.end and prev.start < end:
                merged = True  # the same passage, reached through an overlapping chunk
                break
            if similar(quote, prev_quote, settings.duplicate_similarity):
                if aid != prev.article_id and aid not in also[j]:
                    also[j].append(aid)
                merged = True
                break
        if merged:
            continue
        chosen.append(ScoredSpan(aid, start, end, score, hit.chunk.id))
        also.append([])
    t2 = time.perf_counter()

    excerpts = []
    for span, others in list(zip(chosen, also, strict=True))[:limit]:
        art = index.articles[span.article_id]
        quote = art.body[span.start : span.end]
        excerpts.append(
            Excerpt(
                quote=quote,
                start=span.start,
                end=span.end,
                score=span.score,
                source=art.source,
                chunk_id=span.chunk_id,
                also_reported_by=tuple(index.articles[o].source for o in others if o in index.articles),
            )
        )
    if not excerpts:
        return decline("the knowledge base does not answer this")
    return Answer(
        question=question,
        abstained=False,
        excerpts=tuple(excerpts),
        index_version=index.version,
        confidence=_sigmoid(best),
        covered_topics=covered_topics,
        reason="",
        timings=Timings(
            retrieval.embed_ms,
            retrieval.search_ms + retrieval.rerank_ms,
            (t2 - t1) * 1000,
            (time.perf_counter() - t2) * 1000,
        ),
    )


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


def source_of(index: LoadedIndex, article_id: str) -> Source:
    return index.articles[article_id].source
