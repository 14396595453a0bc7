"""Build the index for ``knowledge/`` and swap it in atomically; embed only chunk texts not seen before.

Steps, each its own function: clear what killed builds left behind, chunk, embed (through the
cache), write a complete build directory under a temporary name, swap ``CURRENT`` with
``os.replace``, prune old builds. A crash or a full disk at any step leaves the previous build
serving; the failure leaves as one ``DirectiveError`` line saying what to do.
"""

from __future__ import annotations

import datetime as dt
import errno
import functools
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.chunking import TokenCounter, article_sentences, chunk_article
from bot.config import Settings
from bot.errors import IndexMismatch, StorageError
from bot.knowledge import atomic_write_text, load_knowledge, source_stamps
from bot.late import LateInteraction, TokenMatrix, pack
from bot.records import Article, Chunk
from bot.sqlite import storage_error
from bot.store.cache import EmbeddingCache, compact
from bot.store.layout import article_texts, compute_layout, save_layout, sentences_by_article
from bot.store.lock import BuildLock
from bot.store.manifest import (
    BUILDS,
    FILES,
    FORMAT_VERSION,
    LATE_FILES,
    LAYOUT,
    POINTER,
    WINDOW_BM25,
    chunker_settings,
    compute_version,
    file_samples,
    file_sha,
    pointer_text,
    read_manifest,
)
from bot.store.multilingual import MULTILINGUAL_FILES, WindowEncoder, window_keys, window_texts, write_multilingual
from bot.store.records import BuildReport, EmbedderLike
from bot.store.status import diff
from bot.store.verify import verify_index

log = logging.getLogger(__name__)

KEEP_BUILDS = 2
LATE_BATCH = 16
# Chunks embedded between two cache commits: a killed build loses at most this much work.
EMBED_BATCH = 512
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Embedded:
    """The vectors of one build's chunks, in chunk order, and how many had to be computed."""

    matrix: np.ndarray
    late: list[TokenMatrix] | None
    computed: int
    used: frozenset[tuple[str, str]] = frozenset()  # (model key, text hash) of every cache entry this build read


def build_index(
    settings: Settings,
    embedder: EmbedderLike,
    *,
    count_tokens: TokenCounter,
    articles: list[Article] | None = None,
    progress: Progress | None = None,
    started_by: str = "cli",
    force: bool = False,
    late: LateInteraction | None = None,
    multilingual: WindowEncoder | None = None,
) -> BuildReport:
    """Build, swap in and report; a damaged or unreadable live build is treated as missing and replaced.

    With a ``multilingual`` encoder, every candidate window is also embedded for questions in other
    languages (bot.store.multilingual); the manifest records the model and the version includes it."""
    t0 = time.perf_counter()
    index_dir = Path(settings.paths.index_dir)
    with BuildLock(index_dir, started_by):
        try:
            remove_leftovers(index_dir)
            # Stamped before reading: a file changed meanwhile no longer matches, so it is read next time.
            stamps = source_stamps(settings.paths.knowledge_dir) if articles is None else None
            arts = (
                load_knowledge(settings.paths.knowledge_dir, max_bytes=settings.knowledge.max_article_bytes)
                if articles is None
                else articles
            )
            hashes = {a.id: a.content_hash for a in arts}
            chunker = chunker_settings(settings)
            late_info = {"name": late.name, "dimension": late.dim} if late is not None else None
            ml_info = (
                {
                    "name": multilingual.name,
                    "dimension": multilingual.dimension,
                    "window_sentences": settings.retrieval.window_sentences,
                }
                if multilingual is not None
                else None
            )
            extra = {"multilingual": ml_info} if ml_info else {}  # absent: English-only versions stay as they were
            version = compute_version(
                embedder.name, embedder.dimension, {**chunker, "late": late_info, **extra}, hashes
            )
            previous, damage = _previous_manifest(index_dir)
            added, changed, removed = diff(previous["articles"] if previous else {}, hashes)
            if previous and previous["index_version"] == version and not force:
                try:
                    verify_index(settings, expect_model=embedder.name, expect_dim=embedder.dimension)
                except IndexMismatch as exc:
                    damage = str(exc)
                    log.warning("the live index is damaged, rebuilding it: %s", exc)
                else:
                    return BuildReport(
                        version, version, len(arts), previous["counts"]["chunks"], 0, time.perf_counter() - t0,
                        unchanged=True,
                    )  # fmt: skip
            chunks = chunk_all(settings, arts, count_tokens)
            embedded = embed(index_dir, chunks, embedder, late, progress)
            manifest = {
                "format_version": FORMAT_VERSION,
                "index_version": version,
                "model": {"name": embedder.name, "dimension": embedder.dimension},
                "late_interaction": late_info,
                **({"multilingual": ml_info} if ml_info else {}),
                "chunker": chunker,
                "articles": hashes,
                **({"sources": stamps} if stamps else {}),
                "embedded": embedded.computed,
                "started_by": started_by,
            }
            name, manifest_sha = write_build(
                index_dir, version, arts, chunks, embedded, manifest, t0, multilingual=multilingual,
                window_sentences=settings.retrieval.window_sentences,
                ann_min_chunks=settings.retrieval.ann_min_chunks, ann_ef_search=settings.retrieval.ann_ef_search,
            )  # fmt: skip
            swap(index_dir, name, manifest_sha)
        except OSError as exc:
            raise _write_failed(exc, index_dir) from exc
        except sqlite3.Error as exc:
            raise _still_serving(storage_error(exc, "the embedding cache", index_dir / "cache")) from exc
        except StorageError as exc:  # the embedding cache, already one line
            raise _still_serving(exc) from exc
        prune(index_dir / BUILDS, keep=name)
        prune_cache(index_dir, vacuum=False)
    return BuildReport(
        index_version=version,
        previous_version=previous["index_version"] if previous else None,
        articles=len(arts),
        chunks=len(chunks),
        embedded=embedded.computed,
        seconds=time.perf_counter() - t0,
        added=added,
        changed=changed,
        removed=removed,
        repaired=damage,
    )


def _previous_manifest(index_dir: Path) -> tuple[dict | None, str | None]:
    """The live manifest, or (None, why) when it is damaged: an unreadable build counts as missing."""
    try:
        return read_manifest(index_dir), None
    except IndexMismatch as exc:
        log.warning("the live index is damaged, rebuilding it: %s", exc)
        return None, str(exc)


def _still_serving(exc: StorageError) -> StorageError:
    return StorageError(f"{str(exc).rstrip('.')}; the previous index is still serving.")


def _write_failed(exc: OSError, index_dir: Path) -> StorageError:
    what = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        advice = "free some space"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        advice = "make the index directory writable"
    else:
        advice = "fix the problem"
    return StorageError(
        f"The index could not be written to {index_dir} ({what}); the previous index is still serving. "
        f"{advice[0].upper() + advice[1:]}, then run `directive-bot index build` again."
    )


def remove_leftovers(index_dir: Path) -> list[Path]:
    """What builds killed mid-way left: temporary build directories and pointer files.

    Called under the build lock, so nothing else can be writing them; returns what was removed.
    """
    removed: list[Path] = []
    builds = index_dir / BUILDS
    candidates = [*builds.glob(".tmp-*"), *index_dir.glob(f".{POINTER}.*.tmp")] if index_dir.is_dir() else []
    for path in candidates:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            log.warning("could not remove the leftover %s: %s", path, exc)
            continue
        removed.append(path)
    if removed:
        log.info("removed %d leftover(s) of interrupted builds", len(removed))
    return removed


def chunk_all(settings: Settings, arts: list[Article], count_tokens: TokenCounter) -> list[Chunk]:
    chunks: list[Chunk] = []
    for art in arts:
        chunks.extend(
            chunk_article(
                art,
                target_tokens=settings.chunking.target_tokens,
                overlap_sentences=settings.chunking.overlap_sentences,
                count_tokens=count_tokens,
                max_sentence_chars=settings.chunking.max_sentence_chars,
            )
        )
    return chunks


def embed(
    index_dir: Path,
    chunks: list[Chunk],
    embedder: EmbedderLike,
    late: LateInteraction | None,
    progress: Progress | None,
) -> Embedded:
    """Vectors for every chunk: from the cache, or computed and cached. ``progress(done, total)`` follows along."""
    cache = EmbeddingCache(index_dir / "cache" / "embeddings.sqlite3")
    try:
        model_key = f"{embedder.name}|{embedder.dimension}"
        text_hashes = [c.text_hash for c in chunks]
        cached = cache.get_many(model_key, text_hashes)
        todo: dict[str, str] = {}
        for c in chunks:
            if c.text_hash not in cached:
                todo.setdefault(c.text_hash, c.embed_text)
        late_key = f"{late.name}|{late.dim}" if late is not None else ""
        late_cached = cache.get_late(late_key, late.dim, text_hashes) if late is not None else {}
        late_todo = {c.text_hash: c.embed_text for c in chunks if c.text_hash not in late_cached} if late else {}
        total = len(todo) + len(late_todo)
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, total)

        if progress:
            progress(0, total)
        keys = list(todo)
        for i in range(0, len(keys), EMBED_BATCH):  # committed batch by batch: a killed build keeps them
            part = keys[i : i + EMBED_BATCH]
            fresh = dict(zip(part, embedder.encode([todo[h] for h in part], progress=tick), strict=True))
            cache.put_many(model_key, fresh)
            cached.update({h: compact(v) for h, v in fresh.items()})  # as a later build reads them back
        late_mats: list[TokenMatrix] | None = None
        if late is not None:
            keys, texts = list(late_todo), list(late_todo.values())
            for i in range(0, len(texts), LATE_BATCH):
                mats = late.encode_documents(texts[i : i + LATE_BATCH])
                fresh_late = dict(zip(keys[i : i + LATE_BATCH], mats, strict=True))
                cache.put_late(late_key, fresh_late)
                late_cached.update(fresh_late)
                tick(len(mats))
            late_mats = [late_cached[h] for h in text_hashes]
        used = cache.touched
    finally:
        cache.close()
    matrix = (
        np.vstack([cached[h] for h in text_hashes]).astype(np.float32)
        if chunks
        else np.zeros((0, embedder.dimension), dtype=np.float32)
    )
    # Unit length again (float16 storage moves a norm by ~1e-4): the dense index's inner product is cosine.
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return Embedded(matrix, late_mats, len(todo), frozenset(used))


def write_build(
    index_dir: Path,
    version: str,
    arts: list[Article],
    chunks: list[Chunk],
    embedded: Embedded,
    manifest: dict,
    t0: float,
    *,
    multilingual: WindowEncoder | None = None,
    window_sentences: int = 2,
    ann_min_chunks: int = 20000,
    ann_ef_search: int = 128,
) -> tuple[str, str]:
    """Write a complete build under a temporary name, then rename it; returns its name and manifest hash."""
    import faiss

    builds = index_dir / BUILDS
    builds.mkdir(parents=True, exist_ok=True)
    name = f"{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S%f')}-{version}"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=builds))
    try:
        faiss_index, dense_info = dense_index(embedded.matrix, ann_min_chunks, ann_ef_search)
        faiss.write_index(faiss_index, str(tmp / "vectors.faiss"))
        write_jsonl(tmp / "chunks.jsonl", (_chunk_json(c) for c in chunks))
        write_jsonl(tmp / "articles.jsonl", (_article_json(a) for a in arts))
        max_chars = manifest["chunker"]["max_sentence_chars"]
        sentences = [
            [a.id, para, s.start, s.end] for a in arts for para, s in article_sentences(a, max_chars=max_chars)
        ]
        write_jsonl(tmp / "sentences.jsonl", sentences)
        _write_bm25(tmp / "bm25", [c.embed_text for c in chunks])
        window_info = _write_window_bm25(tmp / WINDOW_BM25, arts, sentences, window_sentences)
        token_spans = None
        if embedded.late is not None:
            vectors, spans, offsets = pack(embedded.late)
            token_spans = (spans, offsets)
            for file, array in zip(LATE_FILES, (vectors, spans, offsets), strict=True):
                with (tmp / file).open("wb") as fh:
                    np.save(fh, array, allow_pickle=False)
        tables = compute_layout(
            sentences_by_article(sentences), chunks, window_sentences, token_spans, article_texts(arts)
        )
        save_layout(tmp / LAYOUT, tables)
        cache = EmbeddingCache(index_dir / "cache" / "embeddings.sqlite3")
        try:
            if multilingual is not None:
                write_multilingual(tmp, arts, sentences, multilingual, window_sentences=window_sentences, cache=cache)
            cache.record_use(name, embedded.used | cache.touched)
        finally:
            cache.close()
        manifest = {
            **manifest,
            "counts": {"articles": len(arts), "chunks": len(chunks), "sentences": len(sentences)},
            "window_bm25": window_info,
            "layout": {"window_sentences": max(1, window_sentences)},
            "dense_index": dense_info,
            "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - t0, 3),
            "files": {
                f: file_sha(tmp / f)
                for f in (*FILES, *LATE_FILES, *MULTILINGUAL_FILES, WINDOW_BM25, LAYOUT)
                if f != "manifest.json" and (tmp / f).exists()
            },
            "samples": file_samples(tmp, (*FILES, *LATE_FILES, *MULTILINGUAL_FILES, LAYOUT)),
        }
        data = json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")
        with (tmp / "manifest.json").open("wb") as fh:
            fh.write(data)
        _fsync_tree(tmp)
        os.replace(tmp, builds / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return name, hashlib.sha256(data).hexdigest()


def dense_index(matrix: np.ndarray, ann_min_chunks: int, ef_search: int) -> tuple[object, dict[str, object]]:
    """The FAISS index of the chunk vectors, and what the manifest says about it.

    Exact inner product (flat) below ``ann_min_chunks`` chunks; HNSW at or above it, where a flat scan
    stops being cheap (bench/scale.py measures both and the recall@50 of HNSW against the exact search).
    ``efSearch`` is saved inside the index file, so a loaded index searches as it was built to.
    """
    import faiss

    dim = matrix.shape[1]
    if len(matrix) < max(1, ann_min_chunks):
        flat = faiss.IndexFlatIP(dim)
        if len(matrix):
            flat.add(matrix)
        return flat, {"type": "flat"}
    hnsw = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    hnsw.add(np.ascontiguousarray(matrix, dtype=np.float32))
    hnsw.hnsw.efSearch = ef_search
    return hnsw, {"type": "hnsw", "m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": ef_search}


def write_jsonl(path: Path, rows: object) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:  # type: ignore[attr-defined]
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def bm25_index(texts: list[str]) -> object | None:
    """A BM25 index (bm25s) of ``texts``, tokenized as questions are; None for no texts. The chunks' and
    the windows' indexes are made by it, at build time and (for another window size) at start."""
    import bm25s

    if not texts:
        return None
    model = bm25s.BM25()
    model.index(bm25_tokenize(texts), show_progress=False)
    return model


def _write_bm25(path: Path, texts: list[str]) -> None:
    """An empty directory for no texts: the build's file list stays the same."""
    model = bm25_index(texts)
    if model is None:
        path.mkdir()
    else:
        model.save(str(path))  # type: ignore[attr-defined]


def _write_window_bm25(path: Path, arts: list[Article], sentences: list[list], window_sentences: int) -> dict[str, int]:
    """The BM25 index over every window quotes can come from (``bot.retrieval`` scores them all for
    each question). Built here rather than at every start: at 500 articles that took a second of
    start-up, growing with the knowledge base. The manifest records the window size it was made for;
    a server configured with another size indexes its own windows at start."""
    texts = window_texts({a.id: a.body for a in arts}, sentences, window_keys(sentences, window_sentences))
    _write_bm25(path, texts)
    return {"window_sentences": max(1, window_sentences), "windows": len(texts)}


def _fsync_tree(root: Path) -> None:
    """Flush a build to disk before CURRENT points at it, so a power cut cannot leave it half written."""
    for path in [*root.rglob("*"), root]:
        if path.is_file() or path.is_dir():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def swap(index_dir: Path, name: str, manifest_sha: str) -> None:
    """Point CURRENT at the new build in one ``os.replace``: readers see the old build or the new one."""
    atomic_write_text(index_dir / POINTER, pointer_text(name, manifest_sha))


def prune(builds: Path, keep: str) -> None:
    """Keep the live build and the one before it (a process may still be loading it)."""
    try:
        done = sorted((p for p in builds.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    except OSError as exc:
        log.warning("could not list old builds to prune: %s", exc)
        return
    for path in [p for p in done if p.name != keep][: -(KEEP_BUILDS - 1) or None]:
        shutil.rmtree(path, ignore_errors=True)


def prune_cache(index_dir: Path, *, vacuum: bool = True) -> tuple[int, int]:
    """Drop cached vectors that no build on disk uses; returns (entries removed, entries kept).

    Runs after every build (without ``vacuum``: freed pages are reused by later builds) and from
    ``index prune-cache`` (with it, to give the space back). Entries of a killed build are kept until
    then, so a resumed build does not embed them again. A cache that cannot be pruned is only a cache:
    the failure is logged, never raised from a build.
    """
    path = index_dir / "cache" / "embeddings.sqlite3"
    if not path.exists():
        return 0, 0
    builds = index_dir / BUILDS
    live = [p.name for p in builds.iterdir() if p.is_dir() and not p.name.startswith(".")] if builds.is_dir() else []
    cache = EmbeddingCache(path)
    try:
        return cache.prune(live, vacuum=vacuum)
    except StorageError as exc:
        if vacuum:
            raise
        log.warning("could not prune the embedding cache: %s", exc)
        return 0, 0
    finally:
        cache.close()


@functools.lru_cache(maxsize=1)
def english_stemmer():  # noqa: ANN201 - a PyStemmer object, or None without PyStemmer
    """The stemmer every BM25 index and query uses (stemming is an improvement, not a requirement)."""
    try:
        import Stemmer

        return Stemmer.Stemmer("english")
    except ImportError:
        return None


def bm25_tokenize(texts: list[str]) -> object:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", stemmer=english_stemmer(), show_progress=False)


def _chunk_json(c: Chunk) -> dict:
    return {
        "id": c.id,
        "article_id": c.article_id,
        "n": c.n,
        "start": c.start,
        "end": c.end,
        "text": c.text,
        "heading": c.heading,
        "title": c.title,
    }


def _article_json(a: Article) -> dict:
    return {
        "id": a.id,
        "title": a.title,
        "publisher": a.publisher,
        "url": a.url,
        "published": a.published.isoformat() if a.published else None,
        "added": a.added.isoformat() if a.added else None,
        "author": a.author,
        "notes": a.notes,
        "body": a.body,
        "content_hash": a.content_hash,
    }
