"""Load benchmark: bursts of questions through the real bot against the fake Discord.

Run: python bench/load.py [--bursts 20 100 500] [--guilds 1 10] [--out BENCHMARKS.md]

Each burst is asked at once, by distinct members spread over 1 or 10 servers: half of the
questions are repeats of 5 popular ones, half distinct. Every question goes through the real
discord.py client, the fair queue, the answer cache and the worker pool; the fake Discord runs
on its own event loop in another thread (as Discord is another machine) and measures the
gateway heartbeats. For each burst: answered count, too-busy replies, time to answer (from the
interaction's creation to the final reply) p50/p95/max, questions per second, questions computed
per second against calling the answer function directly in a loop on the same questions with the
same number of workers, a cached repeat's time to answer, the longest heartbeat gap and the peak memory.
Writes its table into the "Load" section of BENCHMARKS.md, leaving the other sections alone.

Targets on 2 cores: every question answered; heartbeat gap < 1 s; computed questions at >= 90%
of the direct loop's throughput; cached repeats answered in < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from report import write_section  # noqa: E402

from bot.config import load_settings  # noqa: E402
from bot.discord.client import DirectiveBot  # noqa: E402
from bot.discord.replies import is_queue_notice  # noqa: E402
from bot.service import KnowledgeService  # noqa: E402
from tests.discord.fake_discord import CallbackType, FakeDiscord  # noqa: E402
from tests.discord.harness import DiscordHarness, redirect_discord_py  # noqa: E402

T = TypeVar("T")


def _load_bench_helpers() -> Any:
    """``percentile`` and ``table`` from bench/bench.py, whichever way this script is started."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_directive_bench", REPO / "bench" / "bench.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_helpers = _load_bench_helpers()
percentile, table = _helpers.percentile, _helpers.table
SECTION = "## Load: bursts of questions through the bot"

POPULAR = [
    "Which models are banned?",
    "Who is affected by the ban?",
    "Is opus 4.8 affected?",
    "Can foreign nationals in the US still use Fable 5?",
    "Why did the government restrict the models?",
]
BASE = [
    "What did the US order restrict?",
    "Did Anthropic disagree with the decision?",
    "Why were Mythos 5 and Fable 5 pulled?",
    "Is this a permanent ban?",
    "When did Anthropic receive the government letter?",
    "Does the restriction apply to Anthropic employees?",
    "What is Fable compared to Mythos?",
    "What did critics say about the order?",
    "What time did the government letter arrive?",
    "What did Anthropic say in its blog post?",
    "What safeguards did the government say could be bypassed?",
    "Did the White House comment on the restriction?",
    "What precedent does the order set for AI labs?",
    "Could Anthropic contest the order in court?",
    "What executive order did President Trump sign about AI?",
    "Why did Anthropic initially decline to release Mythos publicly?",
    "What happens to users outside the United States?",
    "What did David Sacks say?",
    "What is Glasswing?",
    "What did Kun Chen say about the foreign national rule?",
    "Are Canadians who work at Anthropic affected?",
    "What was JD Vance's role?",
    "How did the jailbreak claim come up?",
    "Which cloud providers are affected?",
    "What happens to risky prompts?",
]
TAILS = [
    "",
    " according to the articles",
    " in short",
    " exactly",
    " and why",
    " so far",
    " today",
    " at all",
    " for users",
    " for companies",
    " in the US",
    " right now",
]
POPULAR_SHARE = 0.5


def distinct_questions(n: int) -> list[str]:
    """``n`` questions with pairwise different normalised forms (so none is served from another's answer)."""
    out: list[str] = []
    for tail in TAILS:
        for base in BASE:
            out.append(base[:-1] + tail + "?")
            if len(out) == n:
                return out
    raise ValueError(f"only {len(out)} distinct questions available")


def unique_questions(size: int) -> list[str]:
    """The questions of a burst that need computing: each distinct one and each popular one once."""
    return list(dict.fromkeys(workload(size)))


def workload(size: int) -> list[str]:
    """Half repeats of the popular questions, half distinct, interleaved as people would ask."""
    repeats = round(size * POPULAR_SHARE)
    distinct = distinct_questions(size - repeats)
    mixed: list[str] = []
    for i in range(size):
        if i % 2 == 0 and repeats:
            mixed.append(POPULAR[(i // 2) % len(POPULAR)])
            repeats -= 1
        elif distinct:
            mixed.append(distinct.pop(0))
        else:
            mixed.append(POPULAR[i % len(POPULAR)])
    return mixed


class FakeThread:
    """The fake Discord on its own loop in a thread; ``call`` runs one of its coroutines there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-discord", daemon=True)
        self.thread.start()
        self.fake = FakeDiscord(heartbeat_interval=0.3)
        self.run(self.fake.start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def stop(self) -> None:
        self.run(self.fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclasses.dataclass
class Result:
    burst: int
    guilds: int
    answered: int
    busy: int
    lost: int
    late: int  # interactions the bot did not acknowledge within Discord's deadline
    seconds: list[float]
    wall: float
    distinct: int  # questions the bot computed (cache misses), each distinct one once
    heartbeat_gap: float
    cached_ms: list[float]
    peak_mb: float


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def ask_burst(ft: FakeThread, guilds: list[Any], size: int, n_guilds: int) -> tuple[list[Any], float]:
    """Create the askers, then ask the whole burst at once; returns the interaction records and the start."""
    fake = ft.fake
    questions = workload(size)

    async def setup() -> list[tuple[Any, Any, Any]]:
        plan = []
        for i, _q in enumerate(questions):
            guild, channel = guilds[i % n_guilds]
            user = await fake.create_user(f"asker-{size}-{n_guilds}-{i}")
            await fake.add_member(guild, user)
            plan.append((user, channel))
        return plan

    plan = await ft.call(setup())

    async def fire() -> tuple[list[Any], float]:
        fake.reset_heartbeat_stats()
        started = time.monotonic()
        records = await asyncio.gather(
            *(
                fake.invoke_slash("ask", {"question": q}, user=u, channel=c)
                for q, (u, c) in zip(questions, plan, strict=True)
            )
        )
        return list(records), started

    return await ft.call(fire())


async def run_burst(ft: FakeThread, bot: DirectiveBot, guilds: list[Any], size: int, n_guilds: int) -> Result:
    fake = ft.fake
    bot.service.answer_cache.clear()  # every burst starts cold
    computed_before = bot.service.answer_cache.stats().misses
    records, started = await ask_burst(ft, guilds, size, n_guilds)

    async def finals() -> list[tuple[str, float]]:
        async def one(rec: Any) -> tuple[str, float]:
            try:
                resp = await rec.wait_response(timeout=fake.interaction_deadline + 5)
            except TimeoutError:
                return "late", time.monotonic()  # not acknowledged within Discord's 3 s
            if resp.type == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE:
                return "busy", time.monotonic()
            try:
                msg = await rec.wait_original(
                    lambda m: not m.loading and not is_queue_notice(m.content), timeout=15 * 60
                )
            except TimeoutError:
                return "lost", time.monotonic()
            return ("answered" if msg.embeds else "other"), time.monotonic()

        return await asyncio.gather(*(one(r) for r in records))

    outcomes = await ft.call(finals())
    await ft.call(fake.wait_for_heartbeats(fake.heartbeat_count + 1, timeout=5))
    answered = [t - r.created_at for (kind, t), r in zip(outcomes, records, strict=True) if kind == "answered"]
    wall = max(t for _, t in outcomes) - started
    gap = fake.max_heartbeat_gap

    # A repeat asked once the burst is over: served from the cache.
    async def cached() -> list[float]:
        times = []
        guild, channel = guilds[0]
        user = await fake.create_user(f"repeat-{size}-{n_guilds}")
        await fake.add_member(guild, user)
        for q in POPULAR:
            t0 = time.monotonic()
            rec = await fake.invoke_slash("ask", {"question": q.lower()}, user=user, channel=channel)
            await rec.wait_original(lambda m: not m.loading and bool(m.embeds), timeout=30)
            times.append((time.monotonic() - t0) * 1000)
        return times

    cached_ms = await ft.call(cached())
    kinds = [k for k, _ in outcomes]
    return Result(
        burst=size,
        guilds=n_guilds,
        answered=kinds.count("answered"),
        busy=kinds.count("busy"),
        lost=kinds.count("lost") + kinds.count("other"),
        late=kinds.count("late"),
        seconds=answered,
        wall=wall,
        distinct=bot.service.answer_cache.stats().misses - computed_before,
        heartbeat_gap=gap,
        cached_ms=cached_ms,
        peak_mb=peak_mb(),
    )


def direct_rate(service: KnowledgeService, questions: list[str], workers: int) -> float:
    """Distinct questions per second calling ``service.ask`` directly in a loop on ``workers`` threads."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        t0 = time.perf_counter()
        list(pool.map(service.ask, questions))
        return len(questions) / (time.perf_counter() - t0)


async def main_async(args: argparse.Namespace) -> list[list[object]]:
    tmp = Path(tempfile.mkdtemp(prefix="directive-load-"))
    settings = load_settings(environ={}).with_paths(REPO / "knowledge", tmp / "index")
    settings = dataclasses.replace(
        settings,
        paths=dataclasses.replace(settings.paths, data_dir=tmp / "data"),
        discord=dataclasses.replace(
            settings.discord, cooldown_questions=1000, cooldown_seconds=1.0, index_poll_seconds=0.0
        ),
    )
    print("loading models and building the index…", file=sys.stderr)
    service = await asyncio.to_thread(KnowledgeService.open, settings, build_if_needed=True)
    for q in BASE[:3]:
        service.ask(q)  # warm-up
    workers = settings.discord.workers

    ft = FakeThread()
    rows: list[list[object]] = []
    try:
        with redirect_discord_py(ft.fake):
            guilds = []
            for g in range(max(args.guilds)):

                async def make(g: int = g) -> tuple[Any, Any]:
                    owner = await ft.fake.create_user(f"owner-{g}")
                    guild = await ft.fake.create_guild(f"Server {g}", owner=owner)
                    channel = await ft.fake.create_channel(guild, "general")
                    return guild, channel

                guilds.append(await ft.call(make()))
            harness = DiscordHarness(ft.fake)
            bot = DirectiveBot(settings, service)
            await harness.start_client(bot, timeout=30)
            try:
                for size in args.bursts:
                    print(f"direct loop, {size} burst…", file=sys.stderr)
                    direct = await asyncio.to_thread(direct_rate, service, unique_questions(size), workers)
                    for n_guilds in args.guilds:
                        print(f"burst of {size} from {n_guilds} server(s)…", file=sys.stderr)
                        r = await run_burst(ft, bot, guilds, size, n_guilds)
                        q_rate = r.answered / r.wall
                        distinct_rate = r.distinct / r.wall
                        rows.append(
                            [
                                r.burst,
                                r.guilds,
                                f"{r.answered}/{r.burst}",
                                r.busy,
                                r.late,
                                r.lost,
                                f"{percentile(r.seconds, 0.5):.2f}",
                                f"{percentile(r.seconds, 0.95):.2f}",
                                f"{max(r.seconds):.2f}",
                                f"{q_rate:.1f}",
                                f"{distinct_rate:.2f} / {direct:.2f} ({100 * distinct_rate / direct:.0f}%)",
                                f"{percentile(r.cached_ms, 0.5):.0f} / {max(r.cached_ms):.0f}",
                                f"{r.heartbeat_gap:.2f}",
                                f"{r.peak_mb:.0f}",
                            ]
                        )
                        print(rows[-1], file=sys.stderr)
            finally:
                await harness.aclose()
    finally:
        ft.stop()
    return rows


HEADERS = [
    "burst",
    "servers",
    "answered",
    "too busy",
    "not acked in 3 s",
    "lost",
    "p50 s",
    "p95 s",
    "max s",
    "q/s",
    "unique q/s: bot / direct loop",
    "cached repeat ms p50 / max",
    "max heartbeat gap s",
    "peak RSS MB",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, nargs="+", default=[20, 100, 500])
    parser.add_argument("--guilds", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()
    rows = asyncio.run(main_async(args))
    settings = load_settings(environ={})
    text = (
        f"{SECTION}\n\n"
        f"`python bench/load.py --bursts {' '.join(map(str, args.bursts))} --guilds "
        f"{' '.join(map(str, args.guilds))}`: each burst asked at once by distinct members, half of it repeats "
        f"of {len(POPULAR)} popular questions, half distinct; through the real bot (discord.py, fair queue, "
        f"answer cache, {settings.discord.workers} workers, queue limit {settings.discord.queue_limit}) against "
        "the fake Discord on its own thread. Time to answer runs from the interaction's creation to the final "
        "reply. Unique q/s counts each question computed once (the distinct ones and "
        "each popular one): the bot's rate over the whole burst against the direct loop, which calls the answer "
        "function on exactly those questions with the same number of worker threads. A cached repeat is one "
        "popular question asked again after the burst. Peak RSS is "
        f"the process's, cumulative over the runs; {os.cpu_count()} CPUs.\n\n"
        f"{table(HEADERS, rows)}\n\n"
        "Targets on 2 cores: every question answered; heartbeat gap < 1 s; distinct questions at >= 90% of the "
        "direct loop; cached repeats < 50 ms.\n"
    )
    print(text)
    write_section(args.out, SECTION, text)


if __name__ == "__main__":
    main()
