"""Load the live build into memory, refusing one that is damaged or made for another model."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bot.errors import IndexDamaged, IndexMismatch, IndexMissing
from bot.late import unpack
from bot.records import Article, Chunk, SentenceSpan
from bot.store.layout import load_layout, sentences_by_article
from bot.store.lazy import ChunkStore, SentenceStore
from bot.store.manifest import (
    FORMAT_VERSION,
    LATE_FILES,
    LAYOUT,
    REPAIR,
    WINDOW_BM25,
    check_files,
    read_build_manifest,
    read_pointer,
    read_pointer_text,
)
from bot.store.records import LoadedIndex

# Token vectors larger than this are memory-mapped, not read: their pages stay in the page cache, shared
# by every process serving the build, and a question reads only the rows it scores (bot.late.LateScorer).
# Smaller ones are read into memory, where a file damaged in place under a running process cannot reach
# them (a mapped file truncated under a process stops it with SIGBUS; builds never change a live build).
MAP_ABOVE_BYTES = 64 * 1024 * 1024


def check_manifest(manifest: dict, expect_model: str | None, expect_dim: int | None) -> None:
    """The index was built for this format, model and dimension (a mismatch means: rebuild)."""
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(
            f"Index format {manifest.get('format_version')} is not {FORMAT_VERSION}; run `directive-bot index build`."
        )
    model = manifest["model"]
    if expect_model is not None and model.get("name") != expect_model:
        raise IndexMismatch(
            f"The index was built with model {model.get('name')!r} but settings use {expect_model!r}; "
            "run `directive-bot index build`."
        )
    if expect_dim is not None and model.get("dimension") != expect_dim:
        raise IndexMismatch(
            f"The index has dimension {model.get('dimension')} but the model gives {expect_dim}; "
            "run `directive-bot index build`."
        )


def load_index(index_dir: Path, *, expect_model: str | None = None, expect_dim: int | None = None) -> LoadedIndex:
    """Load the live build, refusing one that does not match the model or its own manifest.

    A reader racing several rebuilds can find the build it started on already pruned; when the
    ``CURRENT`` pointer moved meanwhile, it simply loads the newer build instead.
    """
    for _attempt in range(5):
        before = read_pointer_text(index_dir)
        try:
            return _load_build(Path(index_dir), expect_model, expect_dim)
        except (IndexMismatch, IndexMissing, OSError):
            if read_pointer_text(index_dir) == before:
                raise
    return _load_build(Path(index_dir), expect_model, expect_dim)


def _load_build(index_dir: Path, expect_model: str | None, expect_dim: int | None) -> LoadedIndex:
    import bm25s
    import faiss

    pointer = read_pointer(index_dir)
    if pointer is None:
        raise IndexMissing(f"No index in {index_dir}; run `directive-bot index build`.")
    build = index_dir / "builds" / pointer.name
    if not build.is_dir():
        raise IndexDamaged(f"The live build {pointer.name} named by {index_dir / 'CURRENT'} is missing; {REPAIR}.")
    manifest = read_build_manifest(build, pointer.manifest_sha)  # this build's, even if CURRENT moves on
    check_manifest(manifest, expect_model, expect_dim)
    check_files(build, manifest)
    try:
        articles = {}
        for line in (build / "articles.jsonl").read_text(encoding="utf-8").splitlines():
            art = _article_from_json(json.loads(line))
            articles[art.id] = art
        layout = load_layout(build / LAYOUT) if manifest.get("layout") else None
        chunks = ChunkStore(build / "chunks.jsonl", MAP_ABOVE_BYTES) if layout is not None else _read_chunks(build)
        sentences = SentenceStore(layout) if layout is not None else _read_sentences(build)
        faiss_index = faiss.read_index(str(build / "vectors.faiss"))
        bm25 = bm25s.BM25.load(str(build / "bm25")) if chunks else None
        windows = (manifest.get("window_bm25") or {}).get("windows", 0)
        window_bm25 = bm25s.BM25.load(str(build / WINDOW_BM25), mmap=True) if windows else None
        late = None
        late_packed = None
        if manifest.get("late_interaction"):
            mapped = (build / LATE_FILES[0]).stat().st_size > MAP_ABOVE_BYTES
            late_vectors, late_spans, late_offsets = (
                np.load(build / f, mmap_mode="r" if mapped else None, allow_pickle=False) for f in LATE_FILES
            )
            late = unpack(late_vectors, late_spans, np.asarray(late_offsets))
            late_packed = (late_vectors, np.asarray(late_offsets))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        raise IndexDamaged(f"The index in {build} is unreadable ({type(exc).__name__}); {REPAIR}.") from None
    if faiss_index.ntotal != len(chunks) or len(chunks) != manifest["counts"]["chunks"]:
        raise IndexDamaged(f"The index's vector and chunk counts disagree; {REPAIR}.")
    if late is not None and len(late) != len(chunks):
        raise IndexDamaged(f"The index's token vectors and chunk counts disagree; {REPAIR}.")
    if len(articles) != manifest["counts"]["articles"]:
        raise IndexDamaged(f"The index's article count disagrees with its manifest; {REPAIR}.")
    check_article_text(manifest, articles, sentences)
    return LoadedIndex(
        path=build,
        manifest=manifest,
        articles=articles,
        chunks=chunks,
        sentences=sentences,
        faiss_index=faiss_index,
        bm25=bm25,
        late=late,
        late_packed=late_packed,
        window_bm25=window_bm25,
        layout=layout,
    )


def _read_chunks(build: Path) -> list[Chunk]:
    """Every chunk of a build made before the layout file (its stores are parsed whole)."""
    return [Chunk(**json.loads(line)) for line in (build / "chunks.jsonl").read_text(encoding="utf-8").splitlines()]


def _read_sentences(build: Path) -> dict[str, list[SentenceSpan]]:
    lines = (build / "sentences.jsonl").read_text(encoding="utf-8").splitlines()
    return sentences_by_article(json.loads(line) for line in lines)


def check_article_text(
    manifest: dict, articles: dict[str, Article], sentences: Mapping[str, Sequence[SentenceSpan]]
) -> None:
    """Every article is the text the index was built from (its manifest hash); every sentence lies in it.

    Quotes are slices of these bodies by these spans, so an index failing this is refused, not served.
    """
    if set(articles) != set(manifest["articles"]):
        raise IndexDamaged(f"The index's articles are not the ones its manifest lists; {REPAIR}.")
    for aid, art in articles.items():
        if manifest["articles"][aid] != art.content_hash:
            raise IndexDamaged(f"Article {aid} in the index does not match its manifest hash; {REPAIR}.")
    if isinstance(sentences, SentenceStore):  # the layout's arrays: one vectorised check
        if not sentences.within({aid: len(a.body) for aid, a in articles.items()}):
            raise IndexDamaged(f"The index's sentences lie outside their articles' bodies; {REPAIR}.")
        return
    for aid, spans in sentences.items():
        size = len(articles[aid].body) if aid in articles else -1
        if any(not 0 <= s.start < s.end <= size for s in spans):
            raise IndexDamaged(f"The sentences of article {aid} lie outside its body; {REPAIR}.")


def _article_from_json(d: dict) -> Article:
    return Article(
        id=d["id"],
        title=d["title"],
        body=d["body"],
        publisher=d.get("publisher"),
        url=d.get("url"),
        published=dt.date.fromisoformat(d["published"]) if d.get("published") else None,
        added=dt.date.fromisoformat(d["added"]) if d.get("added") else None,
        author=d.get("author"),
        notes=d.get("notes"),
    )
