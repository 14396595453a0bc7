"""``index status``: the built index against ``knowledge/``, without loading any model."""

from __future__ import annotations

from bot.config import Settings
from bot.errors import IndexDamaged
from bot.knowledge import load_knowledge, source_stamps
from bot.store.manifest import FORMAT_VERSION, check_files, chunker_settings, read_current
from bot.store.multilingual import manifest_entry
from bot.store.records import IndexStatus


def diff(old: dict[str, str], new: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Article ids added, changed (another content hash) and removed between two hash maps."""
    added = tuple(sorted(set(new) - set(old)))
    removed = tuple(sorted(set(old) - set(new)))
    changed = tuple(sorted(k for k in set(new) & set(old) if new[k] != old[k]))
    return added, changed, removed


def _article_hashes(settings: Settings, manifest: dict) -> dict[str, str]:
    """Each article's content hash: the manifest's when every file has the size and modification time
    the build recorded (``source_stamps``; as ``git status`` trusts its index), else read and parsed."""
    directory = settings.paths.knowledge_dir
    if manifest.get("sources") and manifest["sources"] == source_stamps(directory):
        return dict(manifest["articles"])
    arts = load_knowledge(directory, max_bytes=settings.knowledge.max_article_bytes)
    return {a.id: a.content_hash for a in arts}


def index_status(settings: Settings, *, model_name: str | None = None) -> IndexStatus:
    """Fresh, stale (and what changed) or damaged (and why): a damaged index is never "fresh"."""
    try:
        current = read_current(settings.paths.index_dir)
        if current is not None:
            check_files(*current)
    except IndexDamaged as exc:
        return IndexStatus(built=True, fresh=False, index_version=None, built_at=None, damaged=str(exc))
    if current is None:
        return IndexStatus(built=False, fresh=False, index_version=None, built_at=None)
    manifest = current[1]
    hashes = _article_hashes(settings, manifest)
    added, changed, removed = diff(manifest["articles"], hashes)
    settings_changed = []
    if manifest["chunker"] != chunker_settings(settings):
        settings_changed.append("chunking")
    if manifest["model"]["name"] != (model_name or settings.embedding.model):
        settings_changed.append("model")
    if manifest["format_version"] != FORMAT_VERSION:
        settings_changed.append("format")
    r = settings.retrieval
    want_late = {"name": r.late_model, "dimension": r.late_dim} if r.late_interaction else None
    if manifest.get("late_interaction") != want_late:
        settings_changed.append("late interaction")
    # Vectors of another multilingual model (or of one no longer installed) are stale; an index without
    # them is not: the service that has the model adds them (KnowledgeService.open).
    if manifest.get("multilingual") is not None and manifest.get("multilingual") != manifest_entry(settings):
        settings_changed.append("multilingual model")
    fresh = not (added or changed or removed or settings_changed)
    return IndexStatus(
        built=True,
        fresh=fresh,
        index_version=manifest["index_version"],
        built_at=manifest["built_at"],
        added=added,
        changed=changed,
        removed=removed,
        settings_changed=tuple(settings_changed),
        articles=manifest["counts"]["articles"],
        chunks=manifest["counts"]["chunks"],
    )
