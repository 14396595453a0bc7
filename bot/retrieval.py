"""Question -> ranked chunks: dense (FAISS) and lexical (BM25) candidates fused by reciprocal rank."""

from __future__ import annotations

import functools
import re
import time
import unicodedata
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from bot.config import QuestionSettings, RetrievalSettings
from bot.errors import InvalidQuestion
from bot.models import Hit
from bot.store import LoadedIndex

Mode = Literal["hybrid", "dense", "lexical"]
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


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


@dataclass(frozen=True)
class Retrieval:
    hits: tuple[Hit, ...]
    query_vector: np.ndarray
    query_tokens: np.ndarray | None
    dense_top: float
    embed_ms: float
    search_ms: float
    rerank_ms: float = 0.0


@functools.lru_cache(maxsize=1)
def _stemmer():
    try:
        import Stemmer

        return Stemmer.Stemmer("english")
    except ImportError:
        return None


def late_scores(query: np.ndarray, index: LoadedIndex) -> np.ndarray:
    """MaxSim of the question against every chunk at once (one matrix product)."""
    late = index.late_packed
    if late is None or len(query) == 0:
        return np.zeros(len(index.chunks), dtype=np.float32)
    vectors, offsets = late
    sims = query @ vectors.T  # (query tokens, all tokens)
    starts = offsets[:-1]
    nonempty = offsets[1:] > starts
    out = np.zeros(len(index.chunks), dtype=np.float32)
    if nonempty.any():
        best = np.maximum.reduceat(sims, starts[nonempty], axis=1)  # per chunk, per query token
        out[nonempty] = best.mean(axis=0)
    return out


class Retriever:
    """Hybrid first stage (dense + BM25 + late interaction, fused by reciprocal rank), then rerank."""

    def __init__(self, index: LoadedIndex, embedder, settings: RetrievalSettings, *, late=None, reranker=None) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self.late = late if index.late is not None else None
        self.reranker = reranker

    def _lexical(self, question: str, k: int) -> list[tuple[int, float]]:
        import bm25s

        if self.index.bm25 is None:
            return []
        tokens = bm25s.tokenize([question], stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)
        vocab = self.index.bm25.vocab_dict
        words = [t for t in tokens[0] if t in vocab]
        if not words:
            return []
        k = min(k, len(self.index.chunks))
        docs, scores = self.index.bm25.retrieve([words], k=k, show_progress=False, n_threads=1)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]

    def search(self, question: str, *, mode: Mode = "hybrid", rerank: bool = True) -> Retrieval:
        n = len(self.index.chunks)
        k_rrf = self.settings.rrf_k
        t0 = time.perf_counter()
        # Embedded in every mode: the dense top score is the off-topic signal.
        qvec = self.embedder.encode([question])[0]
        qtok = self.late.encode_query(question) if self.late is not None else None
        t1 = time.perf_counter()
        dense: list[tuple[int, float]] = []
        if n:
            k = min(self.settings.dense_candidates, n)
            scores, ids = self.index.faiss_index.search(qvec.reshape(1, -1).astype(np.float32), k)
            dense = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        dense_top = dense[0][1] if dense else 0.0
        rankings: dict[str, list[int]] = {}
        if mode in ("hybrid", "dense"):
            rankings["dense"] = [i for i, _ in dense]
        if mode in ("hybrid", "lexical"):
            rankings["lexical"] = [i for i, _ in self._lexical(question, self.settings.lexical_candidates)]
        if mode == "hybrid" and qtok is not None and n:
            late = late_scores(qtok, self.index)
            top = np.argsort(-late)[: self.settings.dense_candidates]
            rankings["late"] = [int(i) for i in top]
        fused: dict[int, float] = {}
        ranks: dict[str, dict[int, int]] = {name: {} for name in ("dense", "lexical", "late")}
        for name, order in rankings.items():
            for rank, i in enumerate(order):
                fused[i] = fused.get(i, 0.0) + 1.0 / (k_rrf + rank + 1)
                ranks[name][i] = rank + 1
        dense_score = dict(dense)
        order = sorted(fused, key=lambda i: -fused[i])
        hits = [
            Hit(
                chunk=self.index.chunks[i],
                score=fused[i],
                dense_score=dense_score.get(i, 0.0),
                dense_rank=ranks["dense"].get(i),
                lexical_rank=ranks["lexical"].get(i),
                late_rank=ranks["late"].get(i),
            )
            for i in order
        ]
        t2 = time.perf_counter()
        if rerank and self.reranker is not None and hits:
            head = hits[: self.settings.rerank_chunks]
            logits = self.reranker.score(question, [h.chunk.embed_text for h in head])
            head = [replace(h, rerank_score=float(s)) for h, s in zip(head, logits, strict=True)]
            head.sort(key=lambda h: -(h.rerank_score or 0.0))
            hits = head + hits[len(head) :]
        t3 = time.perf_counter()
        return Retrieval(tuple(hits), qvec, qtok, dense_top, (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000)
