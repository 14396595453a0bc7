"""Opening SQLite files the same careful way everywhere: WAL, a busy timeout, numbered migrations.

Both the bot's database (``bot.db``) and the embedding cache (``bot.store.cache``) are shared by
several processes (a running bot, the CLI, an operator's ``index build``). Three things make that
safe:

- the busy timeout is set before anything else, so every statement, the schema set-up included,
  waits for a lock instead of failing at once;
- write transactions start with ``BEGIN IMMEDIATE``: a deferred transaction that reads and then
  writes can be refused immediately (SQLite cannot wait there without risking a deadlock);
- the schema is a numbered list of migrations applied in order inside one immediate transaction
  and recorded in ``PRAGMA user_version`` (the way simonw/llm does it), so a file made by an older
  version upgrades in place and two processes opening a new file at once cannot both create it.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.errors import StorageError

BUSY_TIMEOUT_SECONDS = 10.0

# One migration is a function of the connection, run inside the migration transaction. It must use
# ``execute`` (``executescript`` commits on its own and would break the transaction).
Migration = Callable[[sqlite3.Connection], None]


def statements(sql: str) -> Migration:
    """A migration made of plain ``;``-separated DDL statements (no ``;`` inside a statement)."""

    def apply(conn: sqlite3.Connection) -> None:
        for statement in sql.split(";"):
            if statement.strip():
                conn.execute(statement)

    return apply


def connect(path: Path | str, migrations: Sequence[Migration], *, what: str) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with the busy timeout, and bring its schema up to date.

    ``what`` names the file in error messages ("the bot's database", "the embedding cache").
    Raises :class:`StorageError` with one line saying what to do when the file cannot be opened.
    """
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        if str(path) != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        migrate(conn, migrations)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise storage_error(exc, what, path) from exc
        raise
    return conn


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Apply the migrations past ``user_version`` in order, in one immediate transaction; returns the new version.

    A file newer than this code (``user_version`` beyond the list) is refused rather than guessed at.
    An up-to-date file takes no write lock, so opening it to read never waits for a writer.
    """
    if conn.execute("PRAGMA user_version").fetchone()[0] == len(migrations):
        return len(migrations)
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(migrations):
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this program knows ({len(migrations)})"
            )
        for number in range(version, len(migrations)):
            migrations[number](conn)
        if version != len(migrations):
            conn.execute(f"PRAGMA user_version={len(migrations)}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return len(migrations)


def storage_error(exc: BaseException, what: str, path: Path | str) -> StorageError:
    """One line for a SQLite or disk failure: what happened to which file, and what to do."""
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return StorageError(
            f"{what} ({path}) stayed locked by another process for {BUSY_TIMEOUT_SECONDS:.0f} s; "
            "nothing was changed. Try again when the other command has finished."
        )
    if "disk is full" in text or getattr(exc, "errno", None) == errno.ENOSPC:
        return StorageError(f"The disk holding {what} ({path}) is full; free some space and try again.")
    if "readonly" in text or "read-only" in text or getattr(exc, "errno", None) in (errno.EROFS, errno.EACCES):
        return StorageError(f"{what} ({path}) cannot be written (read-only); fix the permissions and try again.")
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return StorageError(f"{what} ({path}) is damaged ({exc}); move it aside and try again.")
    return StorageError(f"{what} ({path}) could not be used: {exc}.")
