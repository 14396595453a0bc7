"""Another process holding the SQLite write lock: commands wait (busy timeout), then fail in one
line having changed nothing; an article change is never left without its audit row; a build that
swapped in is reported as swapped even when logging it needs a retry or fails."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import bot.knowledge
import bot.sqlite
from bot.config import Settings
from bot.db import DB_FILENAME, SCHEMA_VERSION, Database
from bot.errors import StorageError
from bot.kb import KnowledgeBase
from bot.knowledge import article_path
from bot.records import Article
from bot.store import index_status
from tests.conftest import REPO, FakeEmbedder, word_count
from tests.faults.conftest import one_line_error, run_cli

NEW = Article(id="new-article", title="New", body="A new article about the directive and its reach.")


@contextmanager
def held_write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection inside an exclusive transaction, as a long write elsewhere would be."""
    other = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield other
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.fixture
def db_path(settings: Settings) -> Path:
    Database.open(settings).close()  # the file exists, at the current schema
    return settings.paths.data_dir / DB_FILENAME


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.sqlite, "BUSY_TIMEOUT_SECONDS", 0.3)


def write_source(tmp_path: Path) -> Path:
    source = tmp_path / "source.md"
    source.write_text(f"---\nid: {NEW.id}\ntitle: {NEW.title}\n---\n{NEW.body}\n", encoding="utf-8")
    return source


def test_kb_add_under_a_held_lock_fails_in_one_line_and_writes_nothing(
    settings: Settings, db_path: Path, short_timeout: None, tmp_path: Path
) -> None:
    with held_write_lock(db_path):
        result = run_cli(settings, "kb", "add", str(write_source(tmp_path)), "--yes", "--no-rebuild")
    one_line_error(result, "stayed locked", "nothing was changed")
    assert not article_path(settings.paths.knowledge_dir, NEW.id).exists()
    with Database.open(settings) as db:
        assert db.audit_log() == []


def test_kb_remove_under_a_held_lock_fails_in_one_line_and_keeps_the_article(
    settings: Settings, db_path: Path, short_timeout: None
) -> None:
    victim = next(settings.paths.knowledge_dir.glob("us-urges*.md"))
    with held_write_lock(db_path):
        result = run_cli(settings, "kb", "remove", victim.stem, "--yes", "--no-rebuild")
    one_line_error(result, "stayed locked")
    assert victim.exists()


def test_kb_log_reads_while_another_process_writes(settings: Settings, db_path: Path, short_timeout: None) -> None:
    with Database.open(settings) as db:
        db.record_change("cli:earlier", "add", "a-1", None, "h1", "added")
    with held_write_lock(db_path):
        result = run_cli(settings, "kb", "log")
    assert result.exit_code == 0, result.output
    assert "cli:earlier" in result.output


def test_a_change_waits_for_a_lock_released_within_the_busy_timeout(settings: Settings, db_path: Path) -> None:
    other = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    holding = threading.Event()
    released = threading.Thread(target=lambda: (holding.wait(), other.execute("ROLLBACK"), other.close()))
    released.start()
    with Database.open(settings) as db:
        base = KnowledgeBase(settings, db)
        preview = base.prepare_text(NEW.body, title=NEW.title, article_id=NEW.id)
        holding.set()  # released while add() is already waiting or about to
        change = base.add(preview, actor="cli:test")
        (entry,) = db.audit_log()
    released.join()
    assert not change.audit_pending
    assert (entry.article_id, entry.status) == (NEW.id, "done")


def test_a_lock_taken_between_the_change_and_its_completion_leaves_a_pending_row(
    settings: Settings, db_path: Path, short_timeout: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    holders: list[sqlite3.Connection] = []
    real_write = bot.knowledge.atomic_write_text

    def write_then_lock(path: Path, text: str) -> None:
        real_write(path, text)
        other = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False)
        other.execute("BEGIN EXCLUSIVE")
        holders.append(other)

    monkeypatch.setattr(bot.knowledge, "atomic_write_text", write_then_lock)
    monkeypatch.setattr("bot.kb.COMPLETE_ATTEMPTS", 1)
    with Database.open(settings) as db:
        base = KnowledgeBase(settings, db)
        change = base.add(base.prepare_text(NEW.body, title=NEW.title, article_id=NEW.id), actor="cli:test")
        holders[0].execute("ROLLBACK")
        holders[0].close()
        (entry,) = db.audit_log()
    assert change.audit_pending
    assert article_path(settings.paths.knowledge_dir, NEW.id).exists()
    assert (entry.article_id, entry.hash_after, entry.status) == (NEW.id, NEW.content_hash, "pending")


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """`index build` in-process with the fake embedder (the lock, not the model, is under test)."""
    import bot.embedding

    monkeypatch.setattr(bot.embedding, "Embedder", lambda _settings, **_: FakeEmbedder())
    monkeypatch.setattr(bot.embedding, "model_token_counter", lambda _settings: word_count)


def test_a_build_whose_log_needs_a_retry_is_reported_as_swapped_and_logged(
    settings: Settings, db_path: Path, fake_models: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_record = Database.record_rebuild
    calls: list[int] = []

    def locked_once(self: Database, *args: object, **kwargs: object) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise StorageError("the bot's database stayed locked by another process")
        return real_record(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Database, "record_rebuild", locked_once)
    monkeypatch.setattr("bot.service.time.sleep", lambda _s: None)
    result = run_cli(settings, "index", "build")
    assert result.exit_code == 0, result.output
    assert "Built index" in result.stdout
    assert "warning" not in result.stderr
    with Database.open(settings) as db:
        assert db.last_rebuild().ok


def test_a_build_under_a_lock_held_throughout_is_live_and_says_the_log_was_not_written(
    settings: Settings, db_path: Path, fake_models: None, short_timeout: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.service.time.sleep", lambda _s: None)
    with held_write_lock(db_path):
        result = run_cli(settings, "index", "build")
    assert result.exit_code == 0, result.output
    assert "Built index" in result.stdout
    assert "new index is live" in result.stderr
    assert index_status(settings, model_name=FakeEmbedder.name).fresh


OPENER = """
import sys, time
from pathlib import Path
from bot.db import Database
path, go, n = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
while not go.exists():
    time.sleep(0.001)
with Database(path) as db:
    db.record_change("proc-" + n, "add", "a-" + n, None, "h", "opened at once")
"""


@pytest.mark.parametrize("round_", range(5))
def test_three_processes_creating_the_database_at_once_all_succeed(tmp_path: Path, round_: int) -> None:
    path = tmp_path / "new.sqlite3"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", OPENER, str(path), str(go), str(n)], cwd=REPO, stderr=subprocess.PIPE)
        for n in range(3)
    ]
    go.touch()
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    with Database(path) as db:
        assert sorted(e.actor for e in db.audit_log()) == ["proc-0", "proc-1", "proc-2"]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
