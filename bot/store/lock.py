"""One build at a time per index directory, across processes, with who holds it."""

from __future__ import annotations

import datetime as dt
import fcntl
from pathlib import Path
from typing import IO

from bot.errors import RebuildInProgress, StorageError


class BuildLock:
    """An ``flock`` on ``index/.build.lock``: released by the kernel even when its holder is killed."""

    def __init__(self, index_dir: Path, holder: str) -> None:
        self.path = Path(index_dir) / ".build.lock"
        self.holder = holder
        self.fh: IO[str] | None = None

    def __enter__(self) -> BuildLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise StorageError(
                f"Cannot create the build lock {self.path} ({exc.strerror or exc}); "
                "the index directory must be writable. Nothing was changed."
            ) from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            info = fh.read(200).strip() or "another process"
            fh.close()
            raise RebuildInProgress(f"A rebuild is already running ({info}); wait for it to finish.") from None
        try:  # who holds it is information for others, not a requirement
            fh.seek(0)
            fh.truncate()
            fh.write(f"started by {self.holder} at {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}")
            fh.flush()
        except OSError:
            pass
        self.fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            try:
                self.fh.seek(0)
                self.fh.truncate()
            except OSError:
                pass
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None
