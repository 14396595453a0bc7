"""The manifest of a build and the ``index/CURRENT`` pointer that names it, both integrity-checked.

``CURRENT`` is one line, ``<build name> <sha256 of that build's manifest.json>``, replaced with
``os.replace``. The manifest lists the sha256 of every other file of the build, so one hash in the
pointer covers the whole build: a garbled, truncated, deleted or edited file anywhere is reported
as damage (``IndexDamaged``), never loaded and never reported as fresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bot.config import Settings
from bot.errors import IndexDamaged
from bot.records import sha256
from bot.store.multilingual import MULTILINGUAL_FILES

FORMAT_VERSION = 2  # 2: CURRENT carries the manifest's hash
FILES = ("manifest.json", "vectors.faiss", "chunks.jsonl", "sentences.jsonl", "articles.jsonl", "bm25")
LATE_FILES = ("late_vectors.npy", "late_spans.npy", "late_offsets.npy")
# The BM25 index over the windows quotes are taken from, stored so a start does not rebuild it.
WINDOW_BM25 = "window_bm25"
# The retriever's sentence, chunk and window tables as flat arrays (bot.store.layout).
LAYOUT = "layout.npz"
POINTER = "CURRENT"
BUILDS = "builds"
MAX_POINTER_BYTES = 512
# Files larger than this are checked at start by size and sampled blocks, not hashed whole (sampled_sha).
SAMPLE_ABOVE_BYTES = 64 * 1024 * 1024
SAMPLE_BLOCKS = 256
SAMPLE_BLOCK_BYTES = 64 * 1024
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
REPAIR = "run `directive-bot index build` to repair it"


@dataclass(frozen=True)
class Pointer:
    """What ``index/CURRENT`` says: the live build's directory name and its manifest's hash."""

    name: str
    manifest_sha: str


def file_sha(path: Path) -> str:
    """sha256 of a file, or of a directory's files and their relative names."""
    h = hashlib.sha256()
    if path.is_dir():
        for sub in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(sub.relative_to(path)).encode())
            h.update(file_sha(sub).encode())
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
        "max_sentence_chars": settings.chunking.max_sentence_chars,
        "unit": "model tokens",
    }


def compute_version(model: str, dimension: int, chunker: dict, article_hashes: dict[str, str]) -> str:
    """A hash of every input that changes what the index holds."""
    payload = json.dumps(
        {"format": FORMAT_VERSION, "model": model, "dim": dimension, "chunker": chunker, "articles": article_hashes},
        sort_keys=True,
    )
    return sha256(payload)[:12]


def read_small(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of a regular file; anything else (FIFO, device, too big) is refused.

    Opened non-blocking so a FIFO planted in place of an index file cannot hang the reader.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IndexDamaged(f"{path} is not a regular file; {REPAIR}.")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise IndexDamaged(f"{path} is larger than an index file can be ({limit} bytes); {REPAIR}.")
    return data


def read_pointer(index_dir: Path) -> Pointer | None:
    """The live build named by ``index/CURRENT``; None when there is no pointer yet."""
    path = Path(index_dir) / POINTER
    try:
        raw = read_small(path, MAX_POINTER_BYTES)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexDamaged(f"{path} cannot be read ({exc.strerror or exc}); {REPAIR}.") from None
    try:
        parts = raw.decode("ascii").split()
    except UnicodeDecodeError:
        raise IndexDamaged(f"{path} holds undecodable bytes; {REPAIR}.") from None
    if len(parts) == 1 and parts[0] and "/" not in parts[0] and not parts[0].startswith("."):
        raise IndexDamaged(f"{path} holds no manifest hash (an index made by an older version); {REPAIR}.")
    if (
        len(parts) != 2
        or "/" in parts[0]
        or parts[0].startswith(".")
        or len(parts[1]) != 64
        or any(c not in "0123456789abcdef" for c in parts[1])
    ):
        raise IndexDamaged(f"{path} is corrupt; {REPAIR}.")
    return Pointer(parts[0], parts[1])


def pointer_text(name: str, manifest_sha: str) -> str:
    return f"{name} {manifest_sha}\n"


def current_build_dir(index_dir: Path) -> Path | None:
    """The live build's directory; None when nothing was built; ``IndexDamaged`` when it is gone."""
    pointer = read_pointer(index_dir)
    if pointer is None:
        return None
    path = Path(index_dir) / BUILDS / pointer.name
    if not path.is_dir():
        raise IndexDamaged(f"The live build {pointer.name} named by {Path(index_dir) / POINTER} is missing; {REPAIR}.")
    return path


def read_pointer_text(index_dir: Path) -> str | None:
    """Cheap change detector for pollers: the CURRENT pointer's content (whatever its state)."""
    try:
        return read_small(Path(index_dir) / POINTER, MAX_POINTER_BYTES).decode("utf-8", "replace").strip() or None
    except (OSError, IndexDamaged):
        return None


def _need(manifest: dict, key: str, kind: type | tuple[type, ...], where: Path) -> object:
    value = manifest.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise IndexDamaged(f"The manifest in {where} has no valid {key!r}; {REPAIR}.")
    return value


def parse_manifest(data: bytes, build: Path) -> dict:
    """Decode and shape-check a manifest: every field the loaders read is there, with its type."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise IndexDamaged(f"The manifest in {build} is unreadable; {REPAIR}.") from None
    if not isinstance(manifest, dict):
        raise IndexDamaged(f"The manifest in {build} is not a JSON object; {REPAIR}.")
    _need(manifest, "format_version", int, build)
    _need(manifest, "index_version", str, build)
    _need(manifest, "built_at", str, build)
    model = _need(manifest, "model", dict, build)
    counts = _need(manifest, "counts", dict, build)
    articles = _need(manifest, "articles", dict, build)
    files = _need(manifest, "files", dict, build)
    _need(manifest, "chunker", dict, build)
    assert isinstance(model, dict) and isinstance(counts, dict) and isinstance(articles, dict)
    assert isinstance(files, dict)
    _need(model, "name", str, build)
    _need(model, "dimension", int, build)
    for key in ("articles", "chunks", "sentences"):
        _need(counts, key, int, build)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in (*articles.items(), *files.items())):
        raise IndexDamaged(f"The manifest in {build} has invalid article or file hashes; {REPAIR}.")
    late = manifest.get("late_interaction")
    if late is not None and not (
        isinstance(late, dict) and isinstance(late.get("name"), str) and isinstance(late.get("dimension"), int)
    ):
        raise IndexDamaged(f"The manifest in {build} has an invalid 'late_interaction'; {REPAIR}.")
    multilingual = manifest.get("multilingual")
    if multilingual is not None and not (isinstance(multilingual, dict) and isinstance(multilingual.get("name"), str)):
        raise IndexDamaged(f"The manifest in {build} has an invalid 'multilingual'; {REPAIR}.")
    samples = manifest.get("samples", {})
    if not (isinstance(samples, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in samples.items())):
        raise IndexDamaged(f"The manifest in {build} has invalid 'samples'; {REPAIR}.")
    sources = manifest.get("sources", {})
    if not (
        isinstance(sources, dict)
        and all(isinstance(v, list) and len(v) == 2 and all(type(x) is int for x in v) for v in sources.values())
    ):
        raise IndexDamaged(f"The manifest in {build} has invalid 'sources'; {REPAIR}.")
    layout = manifest.get("layout")
    if layout is not None and not (isinstance(layout, dict) and isinstance(layout.get("window_sentences"), int)):
        raise IndexDamaged(f"The manifest in {build} has an invalid 'layout'; {REPAIR}.")
    return manifest


def read_build_manifest(build: Path, expected_sha: str) -> dict:
    """A build's manifest, checked against the hash the pointer recorded for it."""
    path = build / "manifest.json"
    try:
        data = read_small(path, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise IndexDamaged(f"The manifest of {build} is missing; {REPAIR}.") from None
    except OSError as exc:
        raise IndexDamaged(f"The manifest of {build} cannot be read ({exc.strerror or exc}); {REPAIR}.") from None
    if hashlib.sha256(data).hexdigest() != expected_sha:
        raise IndexDamaged(f"The manifest of {build} does not match its hash in CURRENT (edited or corrupt); {REPAIR}.")
    return parse_manifest(data, build)


def read_current(index_dir: Path) -> tuple[Path, dict] | None:
    """The live build and its verified manifest; None when nothing was built yet."""
    pointer = read_pointer(index_dir)
    if pointer is None:
        return None
    build = current_build_dir(index_dir)
    assert build is not None
    return build, read_build_manifest(build, pointer.manifest_sha)


def read_manifest(index_dir: Path) -> dict | None:
    """The live build's verified manifest; None when nothing was built; ``IndexDamaged`` otherwise."""
    current = read_current(index_dir)
    return None if current is None else current[1]


def required_files(manifest: dict) -> tuple[str, ...]:
    """The files a build of this manifest must hold besides the manifest itself."""
    names = [f for f in FILES if f != "manifest.json"]
    if manifest.get("late_interaction"):
        names.extend(LATE_FILES)
    if manifest.get("multilingual"):
        names.extend(MULTILINGUAL_FILES)
    if manifest.get("window_bm25"):  # builds before it lack it; their windows are indexed at start
        names.append(WINDOW_BM25)
    if manifest.get("layout"):  # builds before it lack it; their tables are computed at start
        names.append(LAYOUT)
    return tuple(names)


def sampled_sha(path: Path) -> str:
    """sha256 of a file's size and of ``SAMPLE_BLOCKS`` blocks spread evenly over it, first and last
    included: what a start checks of a file over ``SAMPLE_ABOVE_BYTES`` (the token vectors reach
    gigabytes at 10,000 articles, and hashing them whole took seconds of every start)."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        last = max(0, size - SAMPLE_BLOCK_BYTES)
        for k in range(SAMPLE_BLOCKS):
            fh.seek(last * k // (SAMPLE_BLOCKS - 1))
            h.update(fh.read(SAMPLE_BLOCK_BYTES))
    return h.hexdigest()


def file_samples(build: Path, names: Iterable[str]) -> dict[str, str]:
    """``sampled_sha`` of each regular file of ``names`` over ``SAMPLE_ABOVE_BYTES`` (the manifest's "samples")."""
    return {
        n: sampled_sha(build / n)
        for n in names
        if (build / n).is_file() and (build / n).stat().st_size > SAMPLE_ABOVE_BYTES
    }


def check_files(build: Path, manifest: dict, *, full: bool = False) -> None:
    """Every file the build needs is present and has the hash its manifest recorded.

    A start checks files the manifest lists under "samples" by size and sampled blocks (``sampled_sha``):
    a truncated, extended or replaced file is refused, and damage inside it is found by ``full`` (what
    ``index verify`` runs), which hashes every byte."""
    listed = manifest["files"]
    samples = {} if full else manifest.get("samples") or {}
    for name in required_files(manifest):
        path = build / name
        if name not in listed:
            raise IndexDamaged(f"The manifest of {build} does not list {name}; {REPAIR}.")
        if not path.exists():
            raise IndexDamaged(f"The index is missing {name}; {REPAIR}.")
        try:
            if not (path.is_dir() or stat.S_ISREG(path.stat().st_mode)):
                raise IndexDamaged(f"{path} is not a regular file; {REPAIR}.")
            sampled = name in samples
            digest = sampled_sha(path) if sampled else file_sha(path)
        except OSError as exc:
            raise IndexDamaged(f"{name} in the index cannot be read ({exc.strerror or exc}); {REPAIR}.") from None
        if digest != (samples[name] if sampled else listed[name]):
            raise IndexDamaged(f"{name} in the index does not match its manifest (corrupt?); {REPAIR}.")
