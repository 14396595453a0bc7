"""The built index on disk: FAISS vectors, a BM25 index, chunk and sentence stores and a manifest.

Layout: ``index/builds/<name>/`` holds one complete build; ``index/CURRENT`` names the live one and
is swapped with ``os.replace`` only after a build is complete, so a crash mid-build leaves the
previous index loadable and readers never see half an index. Nothing is pickled.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bot.chunking import TokenCounter, article_sentences, chunk_article
from bot.config import Settings
from bot.errors import IndexMismatch, IndexMissing, RebuildInProgress
from bot.knowledge import atomic_write_text, load_knowledge
from bot.late import LateInteraction, TokenMatrix, pack, unpack
from bot.models import Article, Chunk, sha256

FORMAT_VERSION = 1
KEEP_BUILDS = 2
FILES = ("manifest.json", "vectors.faiss", "chunks.jsonl", "sentences.jsonl", "articles.jsonl", "bm25")
LATE_FILES = ("late_vectors.npy", "late_spans.npy", "late_offsets.npy")


class EmbedderLike:  # the part of bot.embedding.Embedder the store needs (a fake in unit tests)
    name: str
    dimension: int

    def encode(self, texts: list[str], *, progress: Callable[[int], None] | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class SentenceSpan:
    article_id: str
    paragraph: int
    start: int
    end: int


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

    @property
    def summary(self) -> str:
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
    chunks: list[Chunk]
    sentences: dict[str, list[SentenceSpan]]
    faiss_index: object
    bm25: object
    chunk_positions: dict[str, int] = field(default_factory=dict)
    late: list[TokenMatrix] | None = None
    late_packed: tuple[np.ndarray, np.ndarray] | None = None  # all token vectors (float32), chunk offsets

    @property
    def version(self) -> str:
        return self.manifest["index_version"]


# --- helpers ----------------------------------------------------------------------------------


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():
        for sub in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(sub.relative_to(path)).encode())
            h.update(_file_sha(sub).encode())
        return h.hexdigest()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def chunker_settings(settings: Settings) -> dict[str, object]:
    """What changes chunk boundaries; part of the index version."""
    return {
        "target_tokens": settings.chunking.target_tokens,
        "overlap_sentences": settings.chunking.overlap_sentences,
        "unit": "model tokens",
    }


def compute_version(model: str, dimension: int, chunker: dict, article_hashes: dict[str, str]) -> str:
    """A hash of every input that changes what the index holds."""
    payload = json.dumps(
        {"format": FORMAT_VERSION, "model": model, "dim": dimension, "chunker": chunker, "articles": article_hashes},
        sort_keys=True,
    )
    return sha256(payload)[:12]


def current_build_dir(index_dir: Path) -> Path | None:
    pointer = Path(index_dir) / "CURRENT"
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    if not name or "/" in name or name.startswith("."):
        raise IndexMismatch(f"{pointer} is corrupt; run `directive-bot index build`.")
    path = Path(index_dir) / "builds" / name
    return path if path.is_dir() else None


def read_manifest(index_dir: Path) -> dict | None:
    build = current_build_dir(index_dir)
    if build is None:
        return None
    try:
        return json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise IndexMismatch(f"The manifest in {build} is unreadable; run `directive-bot index build`.") from None


def manifest_signature(index_dir: Path) -> str | None:
    """Cheap change detector for pollers: the CURRENT pointer's content."""
    pointer = Path(index_dir) / "CURRENT"
    try:
        return pointer.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


# --- embedding cache --------------------------------------------------------------------------


class EmbeddingCache:
    """Vectors keyed by (model, text hash), so unchanged chunks are never embedded twice."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path))
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS vectors "
            "(model TEXT, hash TEXT, dim INTEGER, vector BLOB, PRIMARY KEY (model, hash))"
        )

    def get_many(self, model: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        wanted = list(dict.fromkeys(hashes))
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            rows = self.db.execute(
                f"SELECT hash, dim, vector FROM vectors WHERE model = ? AND hash IN ({marks})", [model, *part]
            )
            for h, dim, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape[0] == dim:
                    found[h] = vec
        return found

    def put_many(self, model: str, items: dict[str, np.ndarray]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
                [(model, h, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes()) for h, v in items.items()],
            )

    def get_late(self, model: str, dim: int, hashes: Iterable[str]) -> dict[str, TokenMatrix]:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS late (model TEXT, hash TEXT, n INTEGER, data BLOB, PRIMARY KEY (model, hash))"
        )
        found: dict[str, TokenMatrix] = {}
        wanted = list(dict.fromkeys(hashes))
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            for h, n, blob in self.db.execute(
                f"SELECT hash, n, data FROM late WHERE model = ? AND hash IN ({marks})", [model, *part]
            ):
                split = n * dim * 2
                if len(blob) != split + n * 8:
                    continue
                vecs = np.frombuffer(blob[:split], dtype=np.float16).reshape(n, dim)
                spans = np.frombuffer(blob[split:], dtype=np.int32).reshape(n, 2)
                found[h] = TokenMatrix(vecs, spans)
        return found

    def put_late(self, model: str, items: dict[str, TokenMatrix]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO late VALUES (?, ?, ?, ?)",
                [
                    (
                        model,
                        h,
                        len(m.vectors),
                        m.vectors.astype(np.float16).tobytes() + m.spans.astype(np.int32).tobytes(),
                    )
                    for h, m in items.items()
                ],
            )

    def close(self) -> None:
        self.db.close()


# --- build ------------------------------------------------------------------------------------


class BuildLock:
    """One build at a time per index directory, across processes; says who holds it."""

    def __init__(self, index_dir: Path, holder: str) -> None:
        self.path = Path(index_dir) / ".build.lock"
        self.holder = holder
        self.fh = None

    def __enter__(self) -> BuildLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            info = fh.read().strip() or "another process"
            fh.close()
            raise RebuildInProgress(f"A rebuild is already running ({info}); wait for it to finish.") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"started by {self.holder} at {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}")
        fh.flush()
        self.fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            self.fh.seek(0)
            self.fh.truncate()
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()


def _diff(old: dict[str, str], new: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    added = tuple(sorted(set(new) - set(old)))
    removed = tuple(sorted(set(old) - set(new)))
    changed = tuple(sorted(k for k in set(new) & set(old) if new[k] != old[k]))
    return added, changed, removed


def build_index(
    settings: Settings,
    embedder: EmbedderLike,
    *,
    count_tokens: TokenCounter,
    articles: list[Article] | None = None,
    progress: Callable[[int, int], None] | None = None,
    started_by: str = "cli",
    force: bool = False,
    late: LateInteraction | None = None,
) -> BuildReport:
    """Build the index for ``knowledge/`` and swap it in atomically; embeds only new chunk texts."""
    import bm25s
    import faiss

    t0 = time.perf_counter()
    index_dir = Path(settings.paths.index_dir)
    with BuildLock(index_dir, started_by):
        arts = load_knowledge(settings.paths.knowledge_dir) if articles is None else articles
        hashes = {a.id: a.content_hash for a in arts}
        chunker = chunker_settings(settings)
        late_info = {"name": late.name, "dimension": late.dim} if late is not None else None
        version = compute_version(embedder.name, embedder.dimension, {**chunker, "late": late_info}, hashes)
        try:
            previous = read_manifest(index_dir)
        except IndexMismatch:
            previous = None
        prev_hashes = previous.get("articles", {}) if previous else {}
        added, changed, removed = _diff(prev_hashes, hashes)
        if previous and previous.get("index_version") == version and not force:
            try:
                verify_index(settings, expect_model=embedder.name, expect_dim=embedder.dimension)
                return BuildReport(
                    version,
                    version,
                    len(arts),
                    previous["counts"]["chunks"],
                    0,
                    time.perf_counter() - t0,
                    unchanged=True,
                )
            except IndexMismatch:
                pass  # damaged: rebuild it below

        chunks: list[Chunk] = []
        for art in arts:
            chunks.extend(
                chunk_article(
                    art,
                    target_tokens=settings.chunking.target_tokens,
                    overlap_sentences=settings.chunking.overlap_sentences,
                    count_tokens=count_tokens,
                )
            )
        cache = EmbeddingCache(index_dir / "cache" / "embeddings.sqlite3")
        try:
            model_key = f"{embedder.name}|{embedder.dimension}"
            text_hashes = [c.text_hash for c in chunks]
            cached = cache.get_many(model_key, text_hashes)
            todo: dict[str, str] = {}
            for c in chunks:
                if c.text_hash not in cached:
                    todo.setdefault(c.text_hash, c.embed_text)
            done = 0

            def tick(n: int) -> None:
                nonlocal done
                done += n
                if progress:
                    progress(done, len(todo))

            if progress:
                progress(0, len(todo))
            if todo:
                vectors = embedder.encode(list(todo.values()), progress=tick)
                fresh = dict(zip(todo.keys(), vectors, strict=True))
                cache.put_many(model_key, fresh)
                cached.update(fresh)
            late_mats: list[TokenMatrix] = []
            if late is not None:
                late_key = f"{late.name}|{late.dim}"
                late_cached = cache.get_late(late_key, late.dim, text_hashes)
                late_todo = {c.text_hash: c.embed_text for c in chunks if c.text_hash not in late_cached}
                if late_todo:
                    fresh_late = dict(zip(late_todo, late.encode_documents(list(late_todo.values())), strict=True))
                    cache.put_late(late_key, fresh_late)
                    late_cached.update(fresh_late)
                late_mats = [late_cached[h] for h in text_hashes]
        finally:
            cache.close()

        matrix = (
            np.vstack([cached[h] for h in text_hashes]).astype(np.float32)
            if chunks
            else np.zeros((0, embedder.dimension), dtype=np.float32)
        )
        builds = index_dir / "builds"
        builds.mkdir(parents=True, exist_ok=True)
        name = f"{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S%f')}-{version}"
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=builds))
        try:
            faiss_index = faiss.IndexFlatIP(embedder.dimension)
            if len(matrix):
                faiss_index.add(matrix)
            faiss.write_index(faiss_index, str(tmp / "vectors.faiss"))
            with (tmp / "chunks.jsonl").open("w", encoding="utf-8") as fh:
                for c in chunks:
                    fh.write(json.dumps(_chunk_json(c), ensure_ascii=False) + "\n")
            with (tmp / "articles.jsonl").open("w", encoding="utf-8") as fh:
                for a in arts:
                    fh.write(json.dumps(_article_json(a), ensure_ascii=False) + "\n")
            n_sentences = 0
            with (tmp / "sentences.jsonl").open("w", encoding="utf-8") as fh:
                for a in arts:
                    for para, s in article_sentences(a):
                        fh.write(json.dumps([a.id, para, s.start, s.end]) + "\n")
                        n_sentences += 1
            retriever = bm25s.BM25()
            corpus = bm25_tokenize([c.embed_text for c in chunks]) if chunks else None
            if corpus is not None:
                retriever.index(corpus, show_progress=False)
                retriever.save(str(tmp / "bm25"))
            else:
                (tmp / "bm25").mkdir()
            if late is not None:
                vectors, spans, offsets = pack(late_mats)
                np.save(tmp / "late_vectors.npy", vectors, allow_pickle=False)
                np.save(tmp / "late_spans.npy", spans, allow_pickle=False)
                np.save(tmp / "late_offsets.npy", offsets, allow_pickle=False)
            seconds = time.perf_counter() - t0
            manifest = {
                "format_version": FORMAT_VERSION,
                "index_version": version,
                "model": {"name": embedder.name, "dimension": embedder.dimension},
                "late_interaction": late_info,
                "chunker": chunker,
                "articles": hashes,
                "counts": {"articles": len(arts), "chunks": len(chunks), "sentences": n_sentences},
                "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "build_seconds": round(seconds, 3),
                "embedded": len(todo),
                "started_by": started_by,
                "files": {
                    f: _file_sha(tmp / f) for f in (*FILES, *LATE_FILES) if f != "manifest.json" and (tmp / f).exists()
                },
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, builds / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        atomic_write_text(index_dir / "CURRENT", name + "\n")
        _prune(builds, keep=name)
        return BuildReport(
            index_version=version,
            previous_version=previous.get("index_version") if previous else None,
            articles=len(arts),
            chunks=len(chunks),
            embedded=len(todo),
            seconds=time.perf_counter() - t0,
            added=added,
            changed=changed,
            removed=removed,
        )


def _prune(builds: Path, keep: str) -> None:
    """Keep the live build and the one before it (a process may still be loading it)."""
    done = sorted((p for p in builds.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    old = [p for p in done if p.name != keep][: -(KEEP_BUILDS - 1) or None]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    for tmp in builds.glob(".tmp-*"):
        if time.time() - tmp.stat().st_mtime > 3600:
            shutil.rmtree(tmp, ignore_errors=True)


def bm25_tokenize(texts: list[str]) -> object:
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
    try:
        import Stemmer

        stemmer = Stemmer.Stemmer("english")
    except ImportError:  # stemming is an improvement, not a requirement
        stemmer = None
    return bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)


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


# --- load, verify, status ---------------------------------------------------------------------


def _check_manifest(manifest: dict, build: Path, expect_model: str | None, expect_dim: int | None) -> None:
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(
            f"Index format {manifest.get('format_version')} is not {FORMAT_VERSION}; run `directive-bot index build`."
        )
    model = manifest.get("model", {})
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
    for name in FILES:
        if not (build / name).exists():
            raise IndexMismatch(f"The index is missing {name}; run `directive-bot index build`.")


def load_index(index_dir: Path, *, expect_model: str | None = None, expect_dim: int | None = None) -> LoadedIndex:
    """Load the live build, refusing one that does not match the model or its own manifest.

    A reader racing several rebuilds can find the build it started on already pruned; when the
    ``CURRENT`` pointer moved meanwhile, it simply loads the newer build instead.
    """
    for _attempt in range(5):
        before = manifest_signature(index_dir)
        try:
            return _load_build(index_dir, expect_model, expect_dim)
        except (IndexMismatch, IndexMissing, OSError):
            if manifest_signature(index_dir) == before:
                raise
    return _load_build(index_dir, expect_model, expect_dim)


def _load_build(index_dir: Path, expect_model: str | None, expect_dim: int | None) -> LoadedIndex:
    import bm25s
    import faiss

    build = current_build_dir(index_dir)
    if build is None:
        raise IndexMissing(f"No index in {index_dir}; run `directive-bot index build`.")
    try:  # this build's own manifest, even if CURRENT moves on meanwhile
        manifest = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise IndexMismatch(f"The manifest in {build} is unreadable; run `directive-bot index build`.") from None
    _check_manifest(manifest, build, expect_model, expect_dim)
    for name, digest in manifest.get("files", {}).items():
        if _file_sha(build / name) != digest:
            raise IndexMismatch(
                f"{name} in the index does not match its manifest (corrupt?); run `directive-bot index build`."
            )
    try:
        articles = {}
        for line in (build / "articles.jsonl").read_text(encoding="utf-8").splitlines():
            art = _article_from_json(json.loads(line))
            articles[art.id] = art
        chunks = [
            Chunk(**json.loads(line)) for line in (build / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        sentences: dict[str, list[SentenceSpan]] = {}
        for line in (build / "sentences.jsonl").read_text(encoding="utf-8").splitlines():
            aid, para, start, end = json.loads(line)
            sentences.setdefault(aid, []).append(SentenceSpan(aid, para, start, end))
        faiss_index = faiss.read_index(str(build / "vectors.faiss"))
        bm25 = bm25s.BM25.load(str(build / "bm25")) if chunks else None
        late = None
        late_packed = None
        if manifest.get("late_interaction"):
            late_vectors, late_spans, late_offsets = (np.load(build / f, allow_pickle=False) for f in LATE_FILES)
            late = unpack(late_vectors, late_spans, late_offsets)
            late_packed = (late_vectors.astype(np.float32), late_offsets)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexMismatch(
            f"The index in {build} is unreadable ({type(exc).__name__}); run `directive-bot index build`."
        ) from None
    if faiss_index.ntotal != len(chunks) or len(chunks) != manifest["counts"]["chunks"]:
        raise IndexMismatch("The index's vector and chunk counts disagree; run `directive-bot index build`.")
    if late is not None and len(late) != len(chunks):
        raise IndexMismatch("The index's token vectors and chunk counts disagree; run `directive-bot index build`.")
    if len(articles) != manifest["counts"]["articles"]:
        raise IndexMismatch("The index's article count disagrees with its manifest; run `directive-bot index build`.")
    return LoadedIndex(
        path=build,
        manifest=manifest,
        articles=articles,
        chunks=chunks,
        sentences=sentences,
        faiss_index=faiss_index,
        bm25=bm25,
        chunk_positions={c.id: i for i, c in enumerate(chunks)},
        late=late,
        late_packed=late_packed,
    )


def verify_index(settings: Settings, *, expect_model: str | None = None, expect_dim: int | None = None) -> LoadedIndex:
    """Deep check: files, hashes, counts, vectors readable and unit length, chunk text == body slice."""
    index = load_index(settings.paths.index_dir, expect_model=expect_model, expect_dim=expect_dim)
    manifest = index.manifest
    for aid, art in index.articles.items():
        if manifest["articles"].get(aid) != art.content_hash:
            raise IndexMismatch(f"Article {aid} in the index does not match its manifest hash; rebuild.")
    for c in index.chunks:
        art = index.articles.get(c.article_id)
        if art is None or art.body[c.start : c.end] != c.text:
            raise IndexMismatch(f"Chunk {c.id} does not match its article's text; rebuild.")
    n = index.faiss_index.ntotal
    if n:
        vectors = index.faiss_index.reconstruct_n(0, n)
        norms = np.linalg.norm(vectors, axis=1)
        if not np.all(np.isfinite(vectors)) or np.any(np.abs(norms - 1.0) > 1e-3):
            raise IndexMismatch("Index vectors are not unit-length finite floats; rebuild.")
    return index


def index_status(settings: Settings, *, model_name: str | None = None) -> IndexStatus:
    """Compare the built index with ``knowledge/`` without loading any model."""
    manifest = read_manifest(settings.paths.index_dir)
    if manifest is None:
        return IndexStatus(built=False, fresh=False, index_version=None, built_at=None)
    arts = load_knowledge(settings.paths.knowledge_dir)
    hashes = {a.id: a.content_hash for a in arts}
    added, changed, removed = _diff(manifest.get("articles", {}), hashes)
    settings_changed = []
    if manifest.get("chunker") != chunker_settings(settings):
        settings_changed.append("chunking")
    if manifest.get("model", {}).get("name") != (model_name or settings.embedding.model):
        settings_changed.append("model")
    if manifest.get("format_version") != FORMAT_VERSION:
        settings_changed.append("format")
    r = settings.retrieval
    want_late = {"name": r.late_model, "dimension": r.late_dim} if r.late_interaction else None
    if manifest.get("late_interaction") != want_late:
        settings_changed.append("late interaction")
    fresh = not (added or changed or removed or settings_changed)
    return IndexStatus(
        built=True,
        fresh=fresh,
        index_version=manifest.get("index_version"),
        built_at=manifest.get("built_at"),
        added=added,
        changed=changed,
        removed=removed,
        settings_changed=tuple(settings_changed),
        articles=manifest.get("counts", {}).get("articles", 0),
        chunks=manifest.get("counts", {}).get("chunks", 0),
    )
