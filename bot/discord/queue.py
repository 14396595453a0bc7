"""A bounded, fair queue of questions in front of the worker pool.

When news breaks, one server can ask a hundred questions in a minute. Refusing them turns load
into members who leave; answering them in arrival order lets one busy server starve every other.
So questions wait in one lane per server (FIFO inside a lane), and the workers take the head of
each lane in turn (round robin), so a second server's question is taken up after at most one
question of every other busy server.

Identical questions share one computation (single flight, keyed by the normalised question):
a repeat waiting in the same lane takes no new place, and when a computation finishes every
asker of it, in any lane, gets the answer at once. Only ``limit`` questions may wait; past it
:meth:`FairQueue.submit` raises :class:`QueueFull` with an estimate of when to try again.

Runs on the event loop and never blocks it: the work itself (``run``) is a coroutine that
hands the model to the worker pool.

Acknowledgements come first. Discord drops an interaction that is not acknowledged within 3 s,
and on 2 cores a burst's acknowledgements (parsing the events, deferring each one) compete with
the model computations for the cores and the interpreter. So while any interaction is being
acknowledged (:meth:`FairQueue.acknowledging`), workers finish the computation they have but start
no new one; they resume when the last acknowledgement is sent, or after ``ack_hold_seconds`` at
most, so a steady stream of arrivals slows the answers but never stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

R = TypeVar("R")

# Until the first answers are timed, assume this many seconds per answer per worker.
INITIAL_SECONDS_PER_ANSWER = 1.0
# Weight of the newest duration in the moving average of answer times.
SMOOTHING = 0.2
# Longest a worker holds back a new computation for acknowledgements in progress.
ACK_HOLD_SECONDS = 2.0


class QueueFull(Exception):
    """No room to wait: ``retry_after`` is about how long the questions already waiting take."""

    def __init__(self, waiting: int, retry_after: float) -> None:
        super().__init__(f"{waiting} questions are waiting")
        self.waiting = waiting
        self.retry_after = retry_after

    @property
    def wait_seconds(self) -> int:
        return max(1, math.ceil(self.retry_after))


class QueueClosed(Exception):
    """The bot is shutting down; the question was not (and will not be) answered."""


@dataclass(eq=False)
class _Flight(Generic[R]):
    """One computation: every asker of the same key waits on ``future``."""

    key: Hashable
    run: Callable[[], Awaitable[R]]
    future: asyncio.Future[R]
    entries: list[_Entry[R]] = field(default_factory=list)
    started: bool = False


@dataclass(eq=False)
class _Entry(Generic[R]):
    """A flight's place in one lane (a server's queue)."""

    lane: Hashable
    flight: _Flight[R]


@dataclass(frozen=True)
class Place:
    """Where a waiting question stands: 1 = next; ``eta`` is the estimated seconds until its answer."""

    position: int
    eta: float


class Waiting(Generic[R]):
    """An asker's handle on a queued (or running, or finished) question."""

    def __init__(self, queue: FairQueue[R], flight: _Flight[R], *, coalesced: bool) -> None:
        self._queue = queue
        self._flight = flight
        self.coalesced = coalesced

    @property
    def done(self) -> bool:
        return self._flight.future.done()

    @property
    def started(self) -> bool:
        return self._flight.started

    def place(self) -> Place | None:
        """The question's place in the queue, or None once a worker has taken it up."""
        return self._queue.place_of(self._flight)

    async def result(self) -> R:
        """The answer (or the computation's error); cancelling the caller never cancels the work for others."""
        return await asyncio.shield(self._flight.future)


class FairQueue(Generic[R]):
    """Round robin across lanes, FIFO within a lane, ``workers`` computations at a time, ``limit`` waiting."""

    def __init__(
        self,
        *,
        workers: int,
        limit: int,
        clock: Callable[[], float] = time.monotonic,
        ack_hold_seconds: float = ACK_HOLD_SECONDS,
    ) -> None:
        self.workers = max(1, workers)
        self.limit = max(1, limit)
        self.ack_hold_seconds = ack_hold_seconds
        self._acknowledging = 0
        self._acks_done = asyncio.Event()
        self._acks_done.set()
        self._clock = clock
        self._lanes: OrderedDict[Hashable, deque[_Entry[R]]] = OrderedDict()
        self._flights: dict[Hashable, _Flight[R]] = {}
        self._last_served: Hashable = None
        self._waiting = 0
        self._running = 0
        self._seconds_per_answer = INITIAL_SECONDS_PER_ANSWER
        # Worker tasks exist only while there is work: each takes flights until none is left.
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- state -------------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Questions waiting for a worker (repeats of a waiting question in the same lane count once)."""
        return self._waiting

    @property
    def running(self) -> int:
        return self._running

    @property
    def seconds_per_answer(self) -> float:
        """Moving average of how long one computation takes with the pool as busy as it is."""
        return self._seconds_per_answer

    @property
    def acknowledging_now(self) -> int:
        """Interactions whose acknowledgement is being sent (workers start nothing new meanwhile)."""
        return self._acknowledging

    def drain_seconds(self) -> float:
        """About how long until everything waiting now has been answered."""
        return (self._waiting / self.workers + 1) * self._seconds_per_answer

    def place_of(self, flight: _Flight[R]) -> Place | None:
        """Position of ``flight`` in dispatch order (its best-placed entry), with an ETA."""
        if flight.started or flight.future.done():
            return None
        best: int | None = None
        order = list(self._lanes.items())
        for entry in flight.entries:
            lane = self._lanes.get(entry.lane)
            if lane is None:
                continue
            index = lane.index(entry)
            lane_rank = next(n for n, (key, _) in enumerate(order) if key == entry.lane)
            # Round robin takes index+1 rounds; in the last one the lanes ahead of ours go first.
            ahead = sum(min(len(q), index) for _, q in order)
            ahead += sum(1 for _, q in order[:lane_rank] if len(q) > index)
            best = ahead if best is None else min(best, ahead)
        if best is None:
            return None
        rounds = best // self.workers + 1
        return Place(position=best + 1, eta=rounds * self._seconds_per_answer)

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> int:
        """Stop taking questions; every unanswered asker gets :class:`QueueClosed`. Returns how many flights."""
        self._closed = True
        unfinished = sum(1 for f in self._flights.values() if not f.future.done())
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for flight in list(self._flights.values()):
            if not flight.future.done():
                flight.future.set_exception(QueueClosed("shutting down"))
        self._flights.clear()
        self._lanes.clear()
        self._waiting = 0
        return unfinished

    # -- acknowledgements first -------------------------------------------------------------

    @contextlib.contextmanager
    def acknowledging(self) -> Iterator[None]:
        """Hold back new computations while the body acknowledges an interaction (refusal or deferral)."""
        self._acknowledging += 1
        self._acks_done.clear()
        try:
            yield
        finally:
            self._acknowledging -= 1
            if not self._acknowledging:
                self._acks_done.set()

    async def after_acknowledgements(self) -> None:
        """Return when no interaction is being acknowledged, or after ``ack_hold_seconds`` at most."""
        if self._acknowledging:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acks_done.wait(), self.ack_hold_seconds)

    # -- asking ------------------------------------------------------------------------------

    def submit(self, lane: Hashable, key: Hashable, run: Callable[[], Awaitable[R]]) -> Waiting[R]:
        """Queue ``run`` for ``key`` in ``lane``, or join the flight already computing or waiting for ``key``.

        Synchronous, so the place is taken (or refused) before the caller awaits anything.
        """
        if self._closed:
            raise QueueClosed("shutting down")
        flight = self._flights.get(key)
        if flight is not None:
            if flight.started or any(e.lane == lane for e in flight.entries):
                return Waiting(self, flight, coalesced=True)
            # Waiting in another server's lane only: take a place in ours too, so this server's
            # turn comes as soon as it would have, whichever lane reaches the flight first.
            self._check_room()
            self._enqueue(_Entry(lane, flight))
            return Waiting(self, flight, coalesced=True)
        self._check_room()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        flight = _Flight(key, run, future)
        self._flights[key] = flight
        self._enqueue(_Entry(lane, flight))
        return Waiting(self, flight, coalesced=False)

    def _check_room(self) -> None:
        if self._waiting >= self.limit:
            raise QueueFull(self._waiting, self.drain_seconds())

    def _enqueue(self, entry: _Entry[R]) -> None:
        entry.flight.entries.append(entry)
        lane = self._lanes.get(entry.lane)
        if lane is None:
            lane = self._lanes[entry.lane] = deque()
            # A server that just had a turn goes after the newcomer, not before it.
            if self._last_served in self._lanes and self._last_served != entry.lane:
                self._lanes.move_to_end(self._last_served)
        lane.append(entry)
        self._waiting += 1
        if len(self._tasks) < self.workers:
            task = asyncio.create_task(self._work(), name=f"directive-queue-worker-{len(self._tasks)}")
            self._tasks.add(task)

    def _next(self) -> _Flight[R] | None:
        """The head of the next lane in turn; that lane goes to the back of the rotation."""
        while self._lanes:
            lane_key, lane = next(iter(self._lanes.items()))
            entry = lane.popleft()
            self._waiting -= 1
            self._last_served = lane_key
            if lane:
                self._lanes.move_to_end(lane_key)
            else:
                del self._lanes[lane_key]
            flight = entry.flight
            flight.entries.remove(entry)
            if flight.started or flight.future.done():
                continue  # already taken up through another lane
            self._withdraw(flight)
            return flight
        return None

    def _withdraw(self, flight: _Flight[R]) -> None:
        """Remove a flight's other places once a worker takes it up."""
        for entry in flight.entries:
            lane = self._lanes.get(entry.lane)
            if lane is not None:
                lane.remove(entry)
                self._waiting -= 1
                if not lane:
                    del self._lanes[entry.lane]
        flight.entries.clear()

    async def _work(self) -> None:
        while True:
            await self.after_acknowledgements()
            flight = self._next()
            if flight is None:
                # Leaves the pool in the same step as finding nothing, so a later submit starts a new one.
                current = asyncio.current_task()
                if current is not None:
                    self._tasks.discard(current)  # type: ignore[arg-type]
                return
            flight.started = True
            self._running += 1
            started = self._clock()
            try:
                result = await flight.run()
            except asyncio.CancelledError:
                if not flight.future.done():
                    flight.future.set_exception(QueueClosed("shutting down"))
                raise
            except Exception as exc:
                if not flight.future.done():
                    flight.future.set_exception(exc)
            else:
                if not flight.future.done():
                    flight.future.set_result(result)
            finally:
                self._running -= 1
                elapsed = self._clock() - started
                self._seconds_per_answer += SMOOTHING * (elapsed - self._seconds_per_answer)
                if self._flights.get(flight.key) is flight:
                    del self._flights[flight.key]


def lower_thread_priority(niceness: int) -> None:
    """Make the calling thread (a worker of the pool) ``niceness`` nicer than it is (Linux, 0 to 19).

    The worker pool's initializer (``discord.worker_niceness``). On 2 cores shared with other work,
    two model computations leave the event loop a fraction of a core, and a burst's acknowledgements
    miss Discord's 3 s; nicer workers let the loop run as soon as it has work. On a machine the bot
    has to itself the acknowledgement hold is enough, and niceness only costs throughput (BENCHMARKS.md,
    *Load*). Threads the models start from a worker inherit its niceness. Linux sets niceness per
    thread; elsewhere, and at 0, this does nothing.
    """
    if niceness <= 0 or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))


def _retrieve(future: asyncio.Future[object]) -> None:
    """Mark a flight's error as seen: its askers report it, and a flight nobody awaits must not warn."""
    if not future.cancelled():
        future.exception()
