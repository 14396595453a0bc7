"""Vectors keyed by (model, chunk text hash), so unchanged chunks are never embedded twice.

Vectors are stored as float16 (half the space; a unit vector's cosines move by about 1e-4) and every
build reads them back the same way, so a build from the cache equals a build from scratch. Each build
records which entries it used (``uses``); ``prune`` drops entries no build on disk uses, so the cache
stays the size of the knowledge base rather than of its history.

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
    statements(
        "CREATE TABLE IF NOT EXISTS uses (model TEXT, hash TEXT, build TEXT, PRIMARY KEY (model, hash, build))"
        " WITHOUT ROWID"
    ),
)
WHAT = "the embedding cache"


class EmbeddingCache:
    """Dense vectors and late-interaction token matrices by (model, text hash)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.touched: set[tuple[str, str]] = set()  # (model, hash) of every entry read or written here
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
        """Cached vectors by text hash, as :func:`compact` gives them back."""
        found: dict[str, np.ndarray] = {}
        wanted = list(dict.fromkeys(hashes))
        self.touched.update((model, h) for h in wanted)
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            rows = self._rows(
                f"SELECT hash, dim, vector FROM vectors WHERE model = ? AND hash IN ({marks})", [model, *part]
            )
            for h, dim, blob in rows:
                vec = _decode(blob, dim)
                if vec is not None:
                    found[h] = vec
        return found

    def put_many(self, model: str, items: dict[str, np.ndarray]) -> None:
        self.touched.update((model, h) for h in items)
        self._write(
            "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
            [(model, h, int(v.shape[0]), np.asarray(v, dtype=np.float16).tobytes()) for h, v in items.items()],
        )

    def get_late(self, model: str, dim: int, hashes: Iterable[str]) -> dict[str, TokenMatrix]:
        found: dict[str, TokenMatrix] = {}
        wanted = list(dict.fromkeys(hashes))
        self.touched.update((model, h) for h in wanted)
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
        self.touched.update((model, h) for h in items)
        self._write(
            "INSERT OR REPLACE INTO late VALUES (?, ?, ?, ?)",
            [
                (model, h, len(m.vectors), m.vectors.astype(np.float16).tobytes() + m.spans.astype(np.int32).tobytes())
                for h, m in items.items()
            ],
        )

    def record_use(self, build: str, keys: Iterable[tuple[str, str]]) -> None:
        """Remember that ``build`` uses these (model, hash) entries, so pruning keeps them."""
        self._write("INSERT OR IGNORE INTO uses VALUES (?, ?, ?)", [(m, h, build) for m, h in keys])

    def prune(self, builds: Iterable[str], *, vacuum: bool = False) -> tuple[int, int]:
        """Forget builds not in ``builds`` and drop the entries none of the rest uses: (removed, kept)."""
        names = list(builds)
        marks = ",".join("?" * len(names))
        unused = "NOT EXISTS (SELECT 1 FROM uses u WHERE u.model = {t}.model AND u.hash = {t}.hash)"
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute(f"DELETE FROM uses WHERE build NOT IN ({marks})", names)
                removed = sum(
                    self.db.execute(f"DELETE FROM {t} WHERE {unused.format(t=t)}").rowcount for t in ("vectors", "late")
                )
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            kept = sum(self.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("vectors", "late"))
            if vacuum:
                self.db.execute("VACUUM")
        except sqlite3.Error as exc:
            raise storage_error(exc, WHAT, self.path) from exc
        return removed, kept

    def close(self) -> None:
        self.db.close()


def compact(vector: np.ndarray) -> np.ndarray:
    """A vector as the cache keeps it (float16), back in float32: what every build, cached or not, uses.

    Only rounded, never rescaled: a consumer that needs unit length makes its matrix so (the dense
    index, whose inner product must stay cosine). The multilingual model's window vectors are not
    unit length (norms near 0.99 from its 4-bit weights) and its thresholds were calibrated on them as
    they are: made unit length here, the translated development questions lost 5 of 36 first places.
    """
    return np.asarray(vector, dtype=np.float16).astype(np.float32)


def _decode(blob: bytes, dim: int) -> np.ndarray | None:
    """A stored vector as float32: float16 rows, or float32 rows written by earlier versions (rounded
    the same way); None for a damaged row, which is then simply embedded again."""
    if len(blob) == dim * 2:
        vec = compact(np.frombuffer(blob, dtype=np.float16))
    elif len(blob) == dim * 4:
        vec = compact(np.frombuffer(blob, dtype=np.float32))
    else:
        return None
    return vec if np.all(np.isfinite(vec)) else None


def _is_damage(exc: BaseException) -> bool:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    text = str(cause).lower()
    return isinstance(cause, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text)
