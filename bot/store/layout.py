"""The retriever's tables over sentences, chunks and windows, computed once at build time.

Which sentences each chunk holds, which chunks hold each sentence, the sentences of every candidate
window, and where each sentence's tokens lie in the packed late-interaction matrix. Made from the
stores at every start, they took 9 s and 300 MB of Python objects at 10,000 articles; stored as flat
arrays in ``layout.npz`` (no pickle) they load in milliseconds, and the retriever reads them through
small views (``bot.retrieval._Layout``). A build without the file, or a server configured for another
window size, computes them at start by the same function.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from bot.late import chunk_segments
from bot.query import written_forms
from bot.records import Article, Chunk, SentenceSpan
from bot.store.manifest import LAYOUT
from bot.store.multilingual import window_keys

__all__ = [
    "LAYOUT",
    "WORD",
    "article_texts",
    "compute_layout",
    "load_layout",
    "save_layout",
    "sentences_by_article",
    "word_counts",
]

WORD = re.compile(r"[^\W\d_]+", re.UNICODE)  # a word, for counting and correcting: a run of letters


def compute_layout(
    sentences: Mapping[str, Sequence[SentenceSpan]],
    chunks: Sequence[Chunk],
    window_sentences: int,
    token_spans: tuple[np.ndarray, np.ndarray] | None = None,
    texts: Iterable[str] = (),
    *,
    forms: bool = True,
) -> dict[str, np.ndarray]:
    """Every table as arrays. Sentences are numbered in the order of ``sentences`` (the build's order);
    ``token_spans`` are the packed late-interaction token spans and their chunk offsets, when the index
    has token vectors; ``texts`` (titles and bodies) give the articles' words and how often each occurs,
    which the typo corrector and the glossary's lookups need (counting them took seconds a start), and
    with ``forms`` how the articles write each term the question analyser may add (``bot.query``)."""
    texts = list(texts)
    size = max(1, window_sentences)
    article_ids = list(sentences)
    rows = [(aid, s.paragraph, s.start, s.end) for aid in article_ids for s in sentences[aid]]
    counts = [len(sentences[aid]) for aid in article_ids]
    article_first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    position = {aid: i for i, aid in enumerate(article_ids)}
    starts = np.array([r[2] for r in rows], dtype=np.int64)
    ends = np.array([r[3] for r in rows], dtype=np.int64)
    chunk_ids = _chunk_sentences(chunks, position, article_first, starts, ends)
    keys = window_keys(rows, size)
    out = {
        "window_size": np.array(size, dtype=np.int64),
        "article_ids": np.array(article_ids, dtype=str),
        "article_first": article_first,
        "sentence_article": np.repeat(np.arange(len(article_ids), dtype=np.int32), counts),
        "sentence_paragraph": np.array([r[1] for r in rows], dtype=np.int32),
        "sentence_start": starts,
        "sentence_end": ends,
        "chunk_article": np.array([position.get(c.article_id, -1) for c in chunks], dtype=np.int32),
        **_csr("chunk_sentences", chunk_ids),
        **_csr("sentence_chunks", _invert(chunk_ids, len(rows))),
        **_windows(keys, position, article_first),
        **_words(texts, forms=forms),
    }
    if token_spans is not None:
        out.update(_segments(chunks, chunk_ids, starts, ends, *token_spans))
    return out


def article_texts(articles: Iterable[Article]) -> list[str]:
    """The titles, then the bodies, of ``articles``: the text whose words the layout counts."""
    articles = list(articles)
    return [a.title for a in articles] + [a.body for a in articles]


def sentences_by_article(rows: Iterable[Sequence]) -> dict[str, list[SentenceSpan]]:
    """``(article id, paragraph, start, end)`` rows, in order, as each article's sentence spans."""
    out: dict[str, list[SentenceSpan]] = {}
    for aid, para, start, end in rows:
        out.setdefault(aid, []).append(SentenceSpan(aid, para, start, end))
    return out


def word_counts(texts: Iterable[str]) -> Counter[str]:
    """Each casefolded run of letters in ``texts`` and how often it occurs."""
    return Counter(w.casefold() for text in texts for w in WORD.findall(text))


def _words(texts: list[str], *, forms: bool) -> dict[str, np.ndarray]:
    counts = word_counts(texts)
    words = sorted(counts)
    out = {"word": np.array(words, dtype=str), "word_count": np.array([counts[w] for w in words], dtype=np.int64)}
    if forms:
        written = written_forms(texts, counts)
        out["term"] = np.array(list(written), dtype=str)
        out["term_form"] = np.array([f or "" for f in written.values()], dtype=str)  # "": never used
    return out


def save_layout(path: Path, tables: dict[str, np.ndarray]) -> None:
    with path.open("wb") as fh:
        np.savez(fh, **tables)


def load_layout(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _chunk_sentences(
    chunks: Sequence[Chunk], position: dict[str, int], first: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> list[np.ndarray]:
    """Global numbers of the sentences lying wholly inside each chunk (an article's sentences are in order)."""
    out = []
    for chunk in chunks:
        a = position.get(chunk.article_id)
        if a is None:
            out.append(np.zeros(0, dtype=np.int64))
            continue
        lo, hi = int(first[a]), int(first[a + 1])
        begin = lo + int(np.searchsorted(starts[lo:hi], chunk.start, side="left"))
        stop = lo + int(np.searchsorted(ends[lo:hi], chunk.end, side="right"))
        out.append(np.arange(begin, max(begin, stop), dtype=np.int64))
    return out


def _invert(chunk_ids: list[np.ndarray], n_sentences: int) -> list[np.ndarray]:
    """The chunks holding each sentence, in chunk order."""
    holders: list[list[int]] = [[] for _ in range(n_sentences)]
    for ci, ids in enumerate(chunk_ids):
        for g in ids:
            holders[g].append(ci)
    return [np.array(h, dtype=np.int64) for h in holders]


def _csr(name: str, groups: list[np.ndarray]) -> dict[str, np.ndarray]:
    first = np.concatenate([[0], np.cumsum([len(g) for g in groups])]).astype(np.int64)
    flat = np.concatenate(groups).astype(np.int64) if groups else np.zeros(0, dtype=np.int64)
    return {name: flat, f"{name}_first": first}


def _windows(keys: list[tuple[str, int, int]], position: dict[str, int], first: np.ndarray) -> dict[str, np.ndarray]:
    """Each window's article and sentence range, and its global sentence numbers padded with -1."""
    article = np.array([position[aid] for aid, _, _ in keys], dtype=np.int32)
    lo = np.array([k[1] for k in keys], dtype=np.int32)
    hi = np.array([k[2] for k in keys], dtype=np.int32)
    width = int((hi - lo).max()) + 1 if len(keys) else 1
    base = first[article] + lo if len(keys) else np.zeros(0, dtype=np.int64)
    grid = base[:, None] + np.arange(width)[None, :]
    grid = np.where(np.arange(width)[None, :] <= (hi - lo)[:, None], grid, -1).astype(np.int64)
    return {"window_article": article, "window_first": lo, "window_last": hi, "window_grid": grid.reshape(-1, width)}


def _segments(
    chunks: Sequence[Chunk],
    chunk_ids: list[np.ndarray],
    starts: np.ndarray,
    ends: np.ndarray,
    spans: np.ndarray,
    offsets: np.ndarray,
) -> dict[str, np.ndarray]:
    """Token runs of each (chunk, sentence) pair in the packed matrix (``bot.late.Segments``); the rows of
    chunk ``c`` are ``segment_first[c]:segment_first[c + 1]``."""
    rows: list[tuple[int, int, int]] = []
    first = [0]
    for ci, chunk in enumerate(chunks):
        shift = len(chunk.embed_text) - len(chunk.text) - chunk.start  # embed_text = prefix + text
        ids = chunk_ids[ci]
        bounds = [(int(starts[g]) + shift, int(ends[g]) + shift, int(g)) for g in ids]
        lo, hi = int(offsets[ci]), int(offsets[ci + 1])
        rows += chunk_segments(np.asarray(spans[lo:hi]), lo, bounds)
        first.append(len(rows))
    table = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return {
        "segment_start": table[:, 0],
        "segment_end": table[:, 1],
        "segment_sentence": table[:, 2],
        "segment_first": np.array(first, dtype=np.int64),
        "segment_total": np.array(int(offsets[-1]) if len(offsets) else 0, dtype=np.int64),
    }
