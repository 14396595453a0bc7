"""Stores read on demand: a start no longer turns every chunk, sentence and token matrix into objects.

At 10,000 articles parsing ``chunks.jsonl`` and ``sentences.jsonl`` whole and slicing the token
matrix per chunk took 4.5 s of every start and hundreds of megabytes; a question reads a few dozen
chunks and sentences. These views make each one when it is first asked for and keep the recent ones.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np

from bot.records import Chunk, SentenceSpan
from bot.sequences import LazySequence


class ChunkStore(LazySequence[Chunk]):
    """``chunks.jsonl`` as a sequence: line ``i`` is parsed when chunk ``i`` is first read.

    Files above ``map_above`` bytes are memory-mapped (pages shared by every process serving the build);
    smaller ones are read, so a file damaged in place cannot reach a running process."""

    def __init__(self, path: Path, map_above: int) -> None:
        with path.open("rb") as fh:
            size = path.stat().st_size
            self._data: bytes | mmap.mmap = (
                mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size > map_above else fh.read()
            )
        raw = np.frombuffer(self._data, dtype=np.uint8) if size else np.zeros(0, dtype=np.uint8)
        ends = np.flatnonzero(raw == ord("\n"))
        self._starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64) if len(ends) else ends
        self._ends = ends
        self._parse = lru_cache(maxsize=8192)(self._line)

    def __len__(self) -> int:
        return len(self._ends)

    def _item(self, i: int) -> Chunk:
        return self._parse(i)

    def _line(self, i: int) -> Chunk:
        return Chunk(**json.loads(self._data[self._starts[i] : self._ends[i]]))


class SentenceStore(Mapping[str, list[SentenceSpan]]):
    """Each article's sentence spans, made from the build's layout arrays (``bot.store.layout``) when asked."""

    def __init__(self, tables: dict[str, np.ndarray]) -> None:
        self._ids = [str(a) for a in tables["article_ids"]]
        self._row = {aid: i for i, aid in enumerate(self._ids)}
        self._first = tables["article_first"]
        self._para = tables["sentence_paragraph"]
        self._start = tables["sentence_start"]
        self._end = tables["sentence_end"]
        self._spans = lru_cache(maxsize=4096)(self._make)

    def __getitem__(self, article_id: str) -> list[SentenceSpan]:
        if article_id not in self._row:
            raise KeyError(article_id)
        return self._spans(article_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def _make(self, article_id: str) -> list[SentenceSpan]:
        a = self._row[article_id]
        lo, hi = int(self._first[a]), int(self._first[a + 1])
        return [
            SentenceSpan(article_id, int(p), int(s), int(e))
            for p, s, e in zip(self._para[lo:hi], self._start[lo:hi], self._end[lo:hi], strict=True)
        ]

    def within(self, lengths: Mapping[str, int]) -> bool:
        """Every sentence lies inside its article's body (``lengths``: body length by article id)."""
        if set(self._ids) - set(lengths):
            return False
        size = np.repeat(np.array([lengths[a] for a in self._ids], dtype=np.int64), np.diff(self._first))
        return bool(((self._start >= 0) & (self._start < self._end) & (self._end <= size)).all())
