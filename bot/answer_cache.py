"""Answers to repeated questions: a bounded LRU keyed by (normalised question, index version), single flight.

When news breaks, many people ask the same few questions within minutes. Computing each answer
once (models, FAISS) and handing the same ``Answer`` to every asker is what keeps a small CPU
machine answering. Three rules keep a cached answer as good as a fresh one:

* the key is the *normalised* question, and normalising is conservative (case, whitespace and
  trailing punctuation only), so two questions share an answer only when they read the same;
* the key includes the index version, and the whole cache is dropped when the live version
  changes: an answer is never served from an index other than the one it was computed from;
* while one thread computes a key, other threads asking for it wait for that result instead of
  computing it again (single flight); a failure is handed to the waiters and not cached.

Pure Python and thread-safe: the Discord edge and the CLI call it from worker threads.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

V = TypeVar("V")

_SPACE = re.compile(r"\s+")
# Punctuation a question ends with that never changes what is asked ("banned?!" == "banned").
_TRAILING = re.compile(r"[\s?!.…,;:。？！]+$")


def normalise_question(question: str) -> str:
    """The form two questions must share to share an answer: NFC, casefolded, one space, no trailing ``?!.``.

    Deliberately no stemming, stop-word removal or synonym folding: those would let two
    questions the retriever answers differently share one cached answer.
    """
    text = unicodedata.normalize("NFC", question).casefold()
    text = _SPACE.sub(" ", text).strip()
    stripped = _TRAILING.sub("", text)
    return stripped or text


@dataclass(eq=False)
class _Flight(Generic[V]):
    """One computation in progress; waiters block on ``done`` and read the outcome."""

    done: threading.Event = field(default_factory=threading.Event)
    value: V | None = None
    error: BaseException | None = None


@dataclass(frozen=True)
class CacheStats:
    """Counts since the cache was made (for logs and the load benchmark)."""

    hits: int
    misses: int
    coalesced: int
    entries: int
    version: str | None


class AnswerCache(Generic[V]):
    """An LRU of at most ``capacity`` values for one index version at a time, with single flight.

    ``capacity`` 0 turns caching off (single flight still applies to identical questions in flight).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self._flights: dict[tuple[str, Hashable], _Flight[V]] = {}
        self._version: str | None = None
        self._hits = 0
        self._misses = 0
        self._coalesced = 0

    def _switch_to(self, version: str) -> None:
        """Drop every entry when the index version changes (caller holds the lock)."""
        if version != self._version:
            self._entries.clear()
            self._version = version

    def _lookup(self, version: str, key: Hashable) -> V | None:
        """The cached value, counted as a hit and made most recent; a newer version empties the cache.

        The caller holds the lock.
        """
        self._switch_to(version)
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
            self._hits += 1
        return value

    def get(self, version: str, key: Hashable) -> V | None:
        """The cached value for ``key`` under ``version``, or None; a newer version empties the cache."""
        with self._lock:
            return self._lookup(version, key)

    def get_or_compute(
        self,
        version: str,
        key: Hashable,
        compute: Callable[[], V],
        *,
        cacheable: Callable[[V], bool] = lambda _v: True,
    ) -> V:
        """The cached value, or the result of ``compute()`` run once however many threads ask at once.

        ``cacheable(value)`` decides whether the fresh value may be stored under ``version``:
        the service refuses values computed from another index than the key names (an index
        swapped in while the answer was being computed).
        """
        with self._lock:
            value = self._lookup(version, key)
            if value is not None:
                return value
            flight = self._flights.get((version, key))
            leader = flight is None
            if flight is None:
                flight = _Flight()
                self._flights[(version, key)] = flight
                self._misses += 1
            else:
                self._coalesced += 1
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value  # type: ignore[return-value]
        try:
            value = compute()
        except BaseException as exc:
            flight.error = exc
            raise
        else:
            flight.value = value
            return value
        finally:
            with self._lock:
                self._flights.pop((version, key), None)
                if flight.error is None and self.capacity and version == self._version and cacheable(flight.value):  # type: ignore[arg-type]
                    self._entries[key] = flight.value  # type: ignore[assignment]
                    self._entries.move_to_end(key)
                    while len(self._entries) > self.capacity:
                        self._entries.popitem(last=False)
            flight.done.set()

    def clear(self) -> None:
        """Forget every cached value (flights in progress still finish for their waiters)."""
        with self._lock:
            self._entries.clear()

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, self._coalesced, len(self._entries), self._version)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
