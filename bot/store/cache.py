"""Vectors keyed by (model, chunk text hash), so unchanged chunks are never embedded twice.

The cache is a SQLite file under ``index/cache/``, opened the careful way (``bot.sqlite``). It is
only a cache: a damaged file is moved aside and started afresh rather than failing a build, and
every write is one transaction, so a build killed or out of disk leaves whole rows or none.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from bot.late import TokenMatrix
from bot.sqlite import Migration, connect, statements, storage_error

log = logging.getLogger(__name__)

MIGRATIONS: tuple[Migration, ...] = (
    statements(
        "CREATE TABLE IF NOT EXISTS vectors "
        "(model TEXT, hash TEXT, dim INTEGER, vector BLOB, PRIMARY KEY (model, hash));"
        "CREATE TABLE IF NOT EXISTS late (model TEXT, hash TEXT, n INTEGER, data BLOB, PRIMARY KEY (model, hash))"
    ),
)
WHAT = "the embedding cache"


class EmbeddingCache:
    """Dense vectors and late-interaction token matrices by (model, text hash)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, WHAT, self.path) from exc
        try:
            self.db = connect(self.path, MIGRATIONS, what=WHAT)
        except Exception as exc:
            if not _is_damage(exc):
                raise
            aside = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
            log.warning("embedding cache %s is damaged (%s); moved to %s, starting afresh", self.path, exc, aside)
            self.path.replace(aside)
            for suffix in ("-wal", "-shm", "-journal"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            self.db = connect(self.path, MIGRATIONS, what=WHAT)

    def _rows(self, sql: str, params: list[object]) -> list[tuple]:
        try:
            return self.db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise storage_error(exc, WHAT, self.path) from exc

    def _write(self, sql: str, rows: list[tuple]) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(sql, rows)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise storage_error(exc, WHAT, self.path) from exc

    def get_many(self, model: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        wanted = list(dict.fromkeys(hashes))
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            rows = self._rows(
                f"SELECT hash, dim, vector FROM vectors WHERE model = ? AND hash IN ({marks})", [model, *part]
            )
            for h, dim, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape[0] == dim and np.all(np.isfinite(vec)):
                    found[h] = vec
        return found

    def put_many(self, model: str, items: dict[str, np.ndarray]) -> None:
        self._write(
            "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
            [(model, h, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes()) for h, v in items.items()],
        )

    def get_late(self, model: str, dim: int, hashes: Iterable[str]) -> dict[str, TokenMatrix]:
        found: dict[str, TokenMatrix] = {}
        wanted = list(dict.fromkeys(hashes))
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            for h, n, blob in self._rows(
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
        self._write(
            "INSERT OR REPLACE INTO late VALUES (?, ?, ?, ?)",
            [
                (model, h, len(m.vectors), m.vectors.astype(np.float16).tobytes() + m.spans.astype(np.int32).tobytes())
                for h, m in items.items()
            ],
        )

    def close(self) -> None:
        self.db.close()


def _is_damage(exc: BaseException) -> bool:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    text = str(cause).lower()
    return isinstance(cause, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text)
