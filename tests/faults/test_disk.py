"""A full or read-only disk during a build or a knowledge-base change: one line, nothing half-made.

As root with tmpfs available, the index lives on a real 1 MB tmpfs (really full) or a tmpfs
remounted read-only; otherwise the same failures are injected as ``OSError(ENOSPC)``/``EROFS``.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from bot.config import Settings
from bot.db import Database
from bot.errors import StorageError
from bot.kb import KnowledgeBase
from bot.knowledge import article_path
from bot.records import Article
from bot.service import KnowledgeService
from bot.store import build as build_module
from bot.store import cache as cache_module
from tests.faults.conftest import answers_from, build, disk_index_is

NEW = Article(id="new-article", title="New", body="A new article about the directive and its reach.")


def can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path("/tmp") / f"directive-bot-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
        if ok.returncode != 0:
            return False
        subprocess.run(["umount", str(probe)], check=True)
        return True
    finally:
        probe.rmdir()


needs_tmpfs = pytest.mark.skipif(not can_mount(), reason="needs root and tmpfs (the injected-error tests cover it)")


@pytest.fixture
def small_disk(tmp_path: Path, settings: Settings):
    """The index directory on a fresh tmpfs of ``size`` bytes, unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size: str, index_copy: Path | None = None) -> Settings:
        point = tmp_path / "disk"
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], check=True)
        mounted.append(point)
        if index_copy is not None:
            shutil.copytree(index_copy, point / "index")
        return replace(settings, paths=replace(settings.paths, index_dir=point / "index"))

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def leftovers(index_dir: Path) -> list[Path]:
    return [*index_dir.glob("builds/.tmp-*"), *index_dir.glob(".CURRENT.*.tmp"), *index_dir.rglob("*-journal")]


@needs_tmpfs
def test_a_really_full_disk_fails_the_build_in_one_line_and_the_old_index_serves(
    settings: Settings, built, small_disk, live: KnowledgeService
) -> None:
    # The first build fits in 3 MB; a second one beside it (a changed article) does not fit in what is left.
    full = small_disk("3m", settings.paths.index_dir)
    disk_index_is(full, built.index_version)
    filler = full.paths.index_dir.parent / "filler"
    free = shutil.disk_usage(filler.parent).free
    filler.write_bytes(b"\0" * max(0, free - 64 * 1024))
    (full.paths.knowledge_dir / "new-article.md").write_text(
        "---\nid: new-article\ntitle: New\n---\n" + "A new article about the directive. " * 400, encoding="utf-8"
    )
    with pytest.raises(StorageError, match="still serving") as caught:
        build(full)
    line = str(caught.value)
    assert "\n" not in line
    assert "No space left" in line or "full" in line
    disk_index_is(full, built.index_version)
    answers_from(live, built.index_version)
    assert leftovers(full.paths.index_dir) == []


@needs_tmpfs
def test_a_really_read_only_disk_fails_the_build_in_one_line(settings: Settings, built, small_disk) -> None:
    ro = small_disk("8m", settings.paths.index_dir)
    subprocess.run(["mount", "-o", "remount,ro", str(ro.paths.index_dir.parent)], check=True)
    (ro.paths.knowledge_dir / "new-article.md").write_text(
        "---\nid: new-article\ntitle: New\n---\nA new body.\n", encoding="utf-8"
    )
    with pytest.raises(StorageError, match="build lock") as caught:
        build(ro)
    assert "Read-only file system" in str(caught.value)
    disk_index_is(ro, built.index_version)


def test_enospc_while_writing_the_build_leaves_no_temp_directory(
    settings: Settings, built, live: KnowledgeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path, rows: object) -> None:
        path.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(build_module, "write_jsonl", full)
    with pytest.raises(StorageError, match=r"No space left on device.*previous index is still serving") as caught:
        build(settings, force=True)
    assert "\n" not in str(caught.value)
    assert "Free some space" in str(caught.value)
    assert leftovers(settings.paths.index_dir) == []
    disk_index_is(settings, built.index_version)
    answers_from(live, built.index_version)


def test_a_full_disk_under_the_embedding_cache_is_one_line(
    settings: Settings, built, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self, model, items):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(cache_module.EmbeddingCache, "put_many", full)
    write_new(settings)
    with pytest.raises(StorageError, match="full; free some space"):
        build(settings)
    disk_index_is(settings, built.index_version)


def test_erofs_on_the_build_lock_is_one_line(settings: Settings, built, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = Path.open

    def read_only(self: Path, *args: object, **kwargs: object):
        if self.name == ".build.lock":
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", read_only)
    with pytest.raises(StorageError, match=r"Read-only file system.*must be writable"):
        build(settings, force=True)
    disk_index_is(settings, built.index_version)


def test_a_full_disk_when_writing_an_article_changes_nothing_and_records_the_failure(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.knowledge

    def full(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bot.knowledge, "atomic_write_text", full)
    with Database.open(settings) as db:
        base = KnowledgeBase(settings, db)
        with pytest.raises(StorageError, match=r"No space left on device.*nothing was changed"):
            base.add(base.prepare_text(NEW.body, title=NEW.title, article_id=NEW.id), actor="cli:test")
        (entry,) = db.audit_log()
    assert not article_path(settings.paths.knowledge_dir, NEW.id).exists()
    assert (entry.action, entry.article_id, entry.status) == ("add", NEW.id, "failed")


def write_new(settings: Settings) -> None:
    from bot.knowledge import write_article

    write_article(settings.paths.knowledge_dir, NEW)
