"""The deep check behind ``index verify``: more than loading, every stored fact is re-derived."""

from __future__ import annotations

import numpy as np

from bot.config import Settings
from bot.errors import IndexDamaged
from bot.store.load import load_index
from bot.store.manifest import REPAIR, check_files
from bot.store.records import LoadedIndex


def verify_index(settings: Settings, *, expect_model: str | None = None, expect_dim: int | None = None) -> LoadedIndex:
    """Files, whole-file hashes, counts, vectors readable and unit length, chunk text == body slice."""
    index = load_index(settings.paths.index_dir, expect_model=expect_model, expect_dim=expect_dim)
    check_files(index.path, index.manifest, full=True)  # a start samples the largest files; this reads every byte
    # Loading already checked every article against its manifest hash and every sentence span.
    for c in index.chunks:
        art = index.articles.get(c.article_id)
        if art is None or art.body[c.start : c.end] != c.text:
            raise IndexDamaged(f"Chunk {c.id} does not match its article's text; {REPAIR}.")
    n = index.faiss_index.ntotal
    if n:
        vectors = index.faiss_index.reconstruct_n(0, n)
        norms = np.linalg.norm(vectors, axis=1)
        if not np.all(np.isfinite(vectors)) or np.any(np.abs(norms - 1.0) > 1e-3):
            raise IndexDamaged(f"Index vectors are not unit-length finite floats; {REPAIR}.")
    return index
