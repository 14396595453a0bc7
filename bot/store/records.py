"""The records the index stages pass to each other and to the edges: build reports, status, a loaded index."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from bot.errors import IndexDamaged
from bot.late import TokenMatrix
from bot.records import Article, Chunk, SentenceSpan
from bot.store.manifest import REPAIR


class EmbedderLike(Protocol):
    """The part of ``bot.embedding.Embedder`` the store needs (a fake in unit tests)."""

    name: str
    dimension: int

    def encode(self, texts: list[str], *, progress: Callable[[int], None] | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class BuildReport:
    index_version: str
    previous_version: str | None
    articles: int
    chunks: int
    embedded: int
    seconds: float
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: bool = False
    repaired: str | None = None  # why the previous build could not be used, when it was damaged

    def to_json(self) -> dict[str, object]:
        return {
            "index_version": self.index_version,
            "articles": self.articles,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "seconds": round(self.seconds, 3),
            "previous_version": self.previous_version,
            "added": list(self.added),
            "changed": list(self.changed),
            "removed": list(self.removed),
            "repaired": self.repaired,
        }


@dataclass(frozen=True)
class IndexStatus:
    built: bool
    fresh: bool
    index_version: str | None
    built_at: str | None
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    settings_changed: tuple[str, ...] = ()
    articles: int = 0
    chunks: int = 0
    damaged: str | None = None  # why the live build cannot be used; `index build` repairs it

    @property
    def summary(self) -> str:
        if self.damaged is not None:
            return f"damaged: {self.damaged}"
        if not self.built:
            return "no index built yet"
        if self.fresh:
            return f"fresh ({self.index_version}, {self.articles} articles, {self.chunks} chunks)"
        parts = []
        for label, ids in (("added", self.added), ("changed", self.changed), ("removed", self.removed)):
            if ids:
                parts.append(f"{len(ids)} {label}")
        parts.extend(f"{s} changed" for s in self.settings_changed)
        return f"stale ({self.index_version}): " + ", ".join(parts)


@dataclass
class LoadedIndex:
    """Everything a query needs, in memory."""

    path: Path
    manifest: dict
    articles: dict[str, Article]
    chunks: Sequence[Chunk]  # bot.store.lazy.ChunkStore: parsed when read
    sentences: Mapping[str, Sequence[SentenceSpan]]  # bot.store.lazy.SentenceStore: made when read
    faiss_index: object
    bm25: object
    late: Sequence[TokenMatrix] | None = None  # bot.late.TokenMatrices: sliced when read
    late_packed: tuple[np.ndarray, np.ndarray] | None = None  # all token vectors (float16; mapped when large), offsets
    window_bm25: object | None = None  # BM25 over the windows (manifest "window_bm25" says for which size)
    layout: dict[str, np.ndarray] | None = None  # the retriever's tables (bot.store.layout), when the build has them

    @property
    def version(self) -> str:
        return self.manifest["index_version"]

    def chunks_of(self, article_id: str) -> list[Chunk]:
        """The chunks of one article, in order: found in the layout's table when the build stored it, so
        only they are parsed (walking all 116,000 chunks of 10,000 articles took 4 s)."""
        layout = self.layout
        if layout is not None and "chunk_article" in layout:
            position = np.flatnonzero(layout["article_ids"] == article_id)  # none for an unknown article
            rows = np.flatnonzero(np.isin(layout["chunk_article"], position))
            return [self.chunks[int(i)] for i in rows]
        return [c for c in self.chunks if c.article_id == article_id]

    def quote(self, article_id: str, start: int, end: int) -> str:
        """``body[start:end]`` of the article exactly as the index was built from it.

        The article's content hash is checked against the one its manifest recorded at build time, so
        a quote can only ever be the words of the article the index was made from; anything else means
        the index in memory is inconsistent and is refused rather than served.
        """
        art = self.articles.get(article_id)
        if art is None or self.manifest["articles"].get(article_id) != art.content_hash:
            raise IndexDamaged(f"Article {article_id} in the index does not match its manifest hash; {REPAIR}.")
        if not 0 <= start < end <= len(art.body):
            raise IndexDamaged(f"A quote of article {article_id} lies outside its body; {REPAIR}.")
        return art.body[start:end]
