"""The built index on disk: FAISS vectors, a BM25 index, chunk and sentence stores and a manifest.

Layout: ``index/builds/<name>/`` holds one complete build; ``index/CURRENT`` names the live one
(with its manifest's hash) and is swapped with ``os.replace`` only after a build is complete, so a
crash mid-build leaves the previous index loadable and readers never see half an index. Nothing
is pickled.

One module per responsibility: ``records`` (what the stages pass around), ``manifest`` (the
pointer, the manifest and their integrity), ``cache`` (embedding cache), ``lock`` (one build at a
time), ``build``, ``load``, ``verify`` and ``status``. The names below are the public surface.
"""

from bot.store.build import build_index, remove_leftovers
from bot.store.cache import EmbeddingCache
from bot.store.load import load_index
from bot.store.lock import BuildLock
from bot.store.manifest import (
    FORMAT_VERSION,
    chunker_settings,
    current_build_dir,
    read_manifest,
    read_pointer_text,
)
from bot.store.records import BuildReport, EmbedderLike, IndexStatus, LoadedIndex
from bot.store.status import index_status
from bot.store.verify import verify_index

__all__ = [
    "FORMAT_VERSION",
    "BuildLock",
    "BuildReport",
    "EmbedderLike",
    "EmbeddingCache",
    "IndexStatus",
    "LoadedIndex",
    "build_index",
    "chunker_settings",
    "current_build_dir",
    "index_status",
    "load_index",
    "read_manifest",
    "read_pointer_text",
    "remove_leftovers",
    "verify_index",
]
