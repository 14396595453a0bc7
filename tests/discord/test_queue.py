"""The fair queue on its own: round robin across servers, FIFO within one, single flight, the bound, shutdown.

Work items are coroutines gated by events the test releases, so the order of dispatch is
observed exactly, without sleeping or timing anything.
"""

from __future__ import annotations

import asyncio
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.discord.queue import FairQueue, QueueClosed, QueueFull, lower_thread_priority


class Gate:
    """Work that records when it starts and finishes only when the test says so."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.released: dict[str, asyncio.Event] = {}

    def work(self, name: str):
        self.released.setdefault(name, asyncio.Event())

        async def run() -> str:
            self.started.append(name)
            await self.released[name].wait()
            return f"answer to {name}"

        return run

    def release(self, name: str) -> None:
        self.released[name].set()

    async def settle(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)


async def test_within_one_server_questions_are_taken_in_arrival_order() -> None:
    queue: FairQueue[str] = FairQueue(workers=1, limit=10)
    gate = Gate()
    waiting = [queue.submit("A", f"q{n}", gate.work(f"q{n}")) for n in range(4)]
    for n in range(4):
        await gate.settle()
        gate.release(f"q{n}")
    assert [await w.result() for w in waiting] == [f"answer to q{n}" for n in range(4)]
    assert gate.started == ["q0", "q1", "q2", "q3"]


async def test_servers_take_turns_so_a_busy_one_cannot_starve_another() -> None:
    queue: FairQueue[str] = FairQueue(workers=1, limit=20)
    gate = Gate()
    for n in range(5):
        queue.submit("A", f"a{n}", gate.work(f"a{n}"))
    await gate.settle()  # a0 is taken up before B and C ask
    queue.submit("B", "b0", gate.work("b0"))
    queue.submit("C", "c0", gate.work("c0"))
    order = ["a0", "b0", "c0", "a1", "a2", "a3", "a4"]
    for name in order:
        await gate.settle()
        gate.release(name)
    await gate.settle()
    # A has just had its turn (a0), so B and C go next, then A's backlog.
    assert gate.started == order


async def test_an_identical_question_joins_the_one_being_computed() -> None:
    queue: FairQueue[str] = FairQueue(workers=2, limit=10)
    gate = Gate()
    first = queue.submit("A", "same", gate.work("same"))
    await gate.settle()
    again = queue.submit("B", "same", gate.work("same-again"))
    assert again.coalesced and queue.waiting == 0
    gate.release("same")
    assert await first.result() == await again.result() == "answer to same"
    assert gate.started == ["same"]


async def test_a_repeat_waiting_in_the_same_server_takes_no_second_place() -> None:
    queue: FairQueue[str] = FairQueue(workers=1, limit=10)
    gate = Gate()
    queue.submit("A", "busy", gate.work("busy"))
    await gate.settle()
    queue.submit("A", "q", gate.work("q"))
    queue.submit("A", "q", gate.work("q-again"))
    assert queue.waiting == 1


async def test_a_flight_taken_up_through_one_server_leaves_every_servers_queue() -> None:
    queue: FairQueue[str] = FairQueue(workers=1, limit=10)
    gate = Gate()
    queue.submit("A", "busy", gate.work("busy"))
    await gate.settle()
    a = queue.submit("A", "q", gate.work("q"))
    b = queue.submit("B", "q", gate.work("q-from-b"))
    assert queue.waiting == 2 and a.place() is not None
    gate.release("busy")
    await gate.settle()
    assert queue.waiting == 0 and a.place() is None and b.place() is None
    gate.release("q")
    assert await b.result() == "answer to q"


async def test_past_the_bound_a_new_question_is_refused_with_a_wait() -> None:
    queue: FairQueue[str] = FairQueue(workers=1, limit=2)
    gate = Gate()
    queue.submit("A", "running", gate.work("running"))
    await gate.settle()
    queue.submit("A", "w1", gate.work("w1"))
    queue.submit("B", "w2", gate.work("w2"))
    with pytest.raises(QueueFull) as refused:
        queue.submit("C", "w3", gate.work("w3"))
    assert refused.value.waiting == 2 and refused.value.wait_seconds >= 1


async def test_a_repeat_of_a_running_question_is_accepted_even_when_the_queue_is_full() -> None:
    queue: FairQueue[str] = FairQueue(workers=1, limit=1)
    gate = Gate()
    queue.submit("A", "running", gate.work("running"))
    await gate.settle()
    queue.submit("A", "w1", gate.work("w1"))
    joined = queue.submit("B", "running", gate.work("running-again"))
    gate.release("running")
    assert await joined.result() == "answer to running"


async def test_place_counts_the_questions_ahead_in_round_robin_order() -> None:
    queue: FairQueue[str] = FairQueue(workers=1, limit=20)
    gate = Gate()
    queue.submit("A", "running", gate.work("running"))
    await gate.settle()
    a = [queue.submit("A", f"a{n}", gate.work(f"a{n}")) for n in range(3)]
    b = queue.submit("B", "b0", gate.work("b0"))
    # A's question is running, so B's goes first, then A's in order.
    assert b.place().position == 1
    assert [w.place().position for w in a] == [2, 3, 4]


async def test_the_eta_grows_with_the_position() -> None:
    queue: FairQueue[str] = FairQueue(workers=2, limit=20)
    gate = Gate()
    waiting = [queue.submit("A", f"q{n}", gate.work(f"q{n}")) for n in range(8)]
    await gate.settle()
    etas = [w.place().eta for w in waiting[2:]]
    assert etas == sorted(etas) and etas[0] < etas[-1]


async def test_an_error_reaches_every_asker_of_that_question() -> None:
    queue: FairQueue[str] = FairQueue(workers=1, limit=5)

    async def boom() -> str:
        raise ValueError("index exploded")

    first = queue.submit("A", "q", boom)
    again = queue.submit("B", "q", boom)
    for waiting in (first, again):
        with pytest.raises(ValueError, match="exploded"):
            await waiting.result()


async def test_closing_tells_every_waiting_and_running_asker_and_refuses_new_ones() -> None:
    queue: FairQueue[str] = FairQueue(workers=1, limit=5)
    gate = Gate()
    running = queue.submit("A", "running", gate.work("running"))
    await gate.settle()
    queued = queue.submit("B", "queued", gate.work("queued"))
    assert await queue.close() == 2
    for waiting in (running, queued):
        with pytest.raises(QueueClosed):
            await waiting.result()
    with pytest.raises(QueueClosed):
        queue.submit("C", "late", gate.work("late"))


async def test_an_asker_giving_up_does_not_cancel_the_work_for_the_others() -> None:
    queue: FairQueue[str] = FairQueue(workers=1, limit=5)
    gate = Gate()
    first = queue.submit("A", "q", gate.work("q"))
    second = queue.submit("B", "q", gate.work("q"))
    impatient = asyncio.create_task(first.result())
    await gate.settle()
    impatient.cancel()
    gate.release("q")
    assert await second.result() == "answer to q"


async def test_no_new_computation_starts_while_an_interaction_is_being_acknowledged() -> None:
    queue: FairQueue[str] = FairQueue(workers=2, limit=10)
    gate = Gate()
    with queue.acknowledging():
        waiting = queue.submit("A", "q0", gate.work("q0"))
        await gate.settle()
        assert gate.started == []
    await gate.settle()
    assert gate.started == ["q0"]
    gate.release("q0")
    assert await waiting.result() == "answer to q0"


async def test_a_computation_already_running_goes_on_while_interactions_are_acknowledged() -> None:
    queue: FairQueue[str] = FairQueue(workers=1, limit=10)
    gate = Gate()
    first = queue.submit("A", "q0", gate.work("q0"))
    await gate.settle()
    with queue.acknowledging():
        queue.submit("A", "q1", gate.work("q1"))
        gate.release("q0")
        assert await first.result() == "answer to q0"
        await gate.settle()
        assert gate.started == ["q0"]  # q1 waits for the acknowledgement
    await gate.settle()
    assert gate.started == ["q0", "q1"]


async def test_computations_wait_for_every_acknowledgement_in_progress_not_just_one() -> None:
    queue: FairQueue[str] = FairQueue(workers=1, limit=10)
    gate = Gate()
    with queue.acknowledging():
        with queue.acknowledging():
            queue.submit("A", "q0", gate.work("q0"))
        await gate.settle()
        assert gate.started == []
        assert queue.acknowledging_now == 1
    await gate.settle()
    assert gate.started == ["q0"]


async def test_acknowledgements_that_never_end_hold_computations_back_only_for_a_bounded_time() -> None:
    queue: FairQueue[str] = FairQueue(workers=1, limit=10, ack_hold_seconds=0.05)
    gate = Gate()
    with queue.acknowledging():
        queue.submit("A", "q0", gate.work("q0"))
        await asyncio.sleep(0.2)
        assert gate.started == ["q0"]
        gate.release("q0")


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only Linux sets niceness per thread")


def _niceness_after_lowering(niceness: int) -> int:
    lower_thread_priority(niceness)
    return os.getpriority(os.PRIO_PROCESS, 0)  # 0: the calling thread, on Linux


@linux_only
def test_a_worker_thread_lowers_its_own_priority_and_not_the_callers() -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    with ThreadPoolExecutor(1) as pool:
        worker = pool.submit(_niceness_after_lowering, 10).result()
    assert worker == min(19, own + 10)
    assert os.getpriority(os.PRIO_PROCESS, 0) == own


@linux_only
def test_a_niceness_of_zero_leaves_the_worker_as_it_is() -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(_niceness_after_lowering, 0).result() == own
