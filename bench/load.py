"""Load benchmark: bursts of questions through the real bot against the fake Discord.

Run: python bench/load.py [--bursts 20 100 500] [--guilds 1 10] [--out BENCHMARKS.md]

Each burst is asked at once, by distinct members spread over 1 or 10 servers: half of the
questions are repeats of 5 popular ones, half distinct. Every question goes through the real
discord.py client, the fair queue, the answer cache and the worker pool; the fake Discord runs
in a process of its own (as Discord is another machine: its work does not share the bot's
interpreter) and measures the gateway heartbeats. For each burst: answered count, too-busy
replies, time to answer (from the interaction's creation to the final reply) p50/p95/max,
questions per second, questions computed per second against calling the answer function
directly in a loop on the same questions with the same number of workers, a cached repeat's time
to answer, the longest heartbeat gap and the peak memory.
Writes its table into the "Load" section of BENCHMARKS.md, leaving the other sections alone.

Targets on 2 cores: every question answered; heartbeat gap < 1 s; computed questions at >= 90%
of the direct loop's throughput; cached repeats answered in < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

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
# Bursts smaller than this are asked several times and pooled (see _bursts_of).
POOLED_QUESTIONS = 100


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


@dataclasses.dataclass(frozen=True)
class FakeAddress:
    """What discord.py needs of a fake Discord that runs in another process: where it is, its token."""

    token: str
    host: str
    port: int
    api_base: str
    gateway_url: str
    unknown_routes: tuple[str, ...] = ()
    errors: tuple[Any, ...] = ()


@dataclasses.dataclass(frozen=True)
class BurstOutcome:
    """The askers' side of one burst, as the fake Discord saw it (plain data: it crosses processes)."""

    kinds: list[str]  # answered, busy, late, lost or other, one per interaction
    seconds: list[float]  # creation to final reply, answered interactions only
    wall: float
    heartbeat_gap: float
    notice_edits: int  # edits of a deferred reply that showed a queue notice (the final answer not counted)


class Askers:
    """The members' side, run on the fake Discord's own loop: servers, bursts of /ask, cached repeats."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.guilds: list[tuple[Any, Any]] = []

    async def handle(self, command: str, *args: Any) -> Any:
        return await getattr(self, command)(*args)

    async def make_guilds(self, n: int) -> None:
        for g in range(len(self.guilds), n):
            owner = await self.fake.create_user(f"owner-{g}")
            guild = await self.fake.create_guild(f"Server {g}", owner=owner)
            channel = await self.fake.create_channel(guild, "general")
            self.guilds.append((guild, channel))

    async def burst(self, size: int, n_guilds: int) -> BurstOutcome:
        """Create the askers, then ask the whole burst at once and wait for every final reply."""
        fake = self.fake
        questions = workload(size)
        plan = []
        for i, _q in enumerate(questions):
            guild, channel = self.guilds[i % n_guilds]
            user = await fake.create_user(f"asker-{size}-{n_guilds}-{i}")
            await fake.add_member(guild, user)
            plan.append((user, channel))
        fake.reset_heartbeat_stats()
        requests_before = len(fake.requests)
        started = time.monotonic()
        records = await asyncio.gather(
            *(
                fake.invoke_slash("ask", {"question": q}, user=u, channel=c)
                for q, (u, c) in zip(questions, plan, strict=True)
            )
        )
        outcomes = await self._finals(records)
        await fake.wait_for_heartbeats(fake.heartbeat_count + 1, timeout=5)
        return BurstOutcome(
            kinds=[k for k, _ in outcomes],
            seconds=[t - r.created_at for (k, t), r in zip(outcomes, records, strict=True) if k == "answered"],
            wall=max(t for _, t in outcomes) - started,
            heartbeat_gap=fake.max_heartbeat_gap,
            notice_edits=sum(
                1
                for r in fake.requests[requests_before:]
                if r.method == "PATCH"
                and r.path.endswith("/messages/@original")
                and isinstance(r.body, dict)
                and is_queue_notice(r.body.get("content") or "")
            ),
        )

    async def _finals(self, records: list[Any]) -> list[tuple[str, float]]:
        """Each interaction's outcome and when it was seen, watched by one waiter for the whole burst.

        One waiter per interaction, each woken on every state change and 20 times a second, made the
        fake Discord spend a large share of the two cores it shares with the bot on its own polling
        (hundreds of waiters for a minute); Discord itself runs on other machines.
        """
        out: dict[int, tuple[str, float]] = {}
        pending = list(enumerate(records))
        while pending:
            now = self.fake._now()
            still = []
            for i, rec in pending:
                kind = self._state(rec, now)
                if kind is None:
                    still.append((i, rec))
                else:
                    out[i] = (kind, now)
            pending = still
            if pending:
                await self.fake.next_change(0.05)
        return [out[i] for i in range(len(records))]

    def _state(self, rec: Any, now: float) -> str | None:
        """answered, busy, late (not acknowledged in Discord's 3 s), lost, other, or None while still open."""
        age = now - rec.created_at
        if rec.response is None:
            return "late" if age > self.fake.interaction_deadline + 5 else None
        if rec.response.type == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE:
            return "busy"
        m = rec.original
        if m is not None and not m.loading and not is_queue_notice(m.content):
            return "answered" if m.embeds else "other"
        return "lost" if age > 15 * 60 else None

    async def cached(self, size: int, n_guilds: int) -> list[float]:
        """Each popular question asked again once the burst is over: served from the cache."""
        times = []
        guild, channel = self.guilds[0]
        user = await self.fake.create_user(f"repeat-{size}-{n_guilds}")
        await self.fake.add_member(guild, user)
        for q in POPULAR:
            t0 = time.monotonic()
            rec = await self.fake.invoke_slash("ask", {"question": q.lower()}, user=user, channel=channel)
            await rec.wait_original(lambda m: not m.loading and bool(m.embeds), timeout=30)
            times.append((time.monotonic() - t0) * 1000)
        return times


def _serve_fake(conn: Any) -> None:
    """The child process: the fake Discord and the askers, driven by commands from the bot's process."""

    async def serve() -> None:
        fake = FakeDiscord(heartbeat_interval=0.3)
        await fake.start()
        askers = Askers(fake)
        conn.send(FakeAddress(fake.token, fake.host, fake.port, fake.api_base, fake.gateway_url))
        try:
            while True:
                command, args = await asyncio.to_thread(conn.recv)
                if command == "stop":
                    break
                try:
                    conn.send(("ok", await askers.handle(command, *args)))
                except Exception as exc:  # reported in the bot's process, where the run is read
                    conn.send(("error", repr(exc)))
        finally:
            await fake.stop()
            conn.send(("ok", None))

    asyncio.run(serve())


class FakeProcess:
    """The fake Discord in a process of its own, as Discord is another machine: its event loop, its
    interpreter lock and its HTTP and gateway work do not share the bot's interpreter, so the heartbeat
    gaps and throughput measured are the bot's. (Both processes still share the 2 cores.)"""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve_fake, args=(child,), name="fake-discord", daemon=True)
        self.process.start()
        self.address: FakeAddress = self.conn.recv()
        self._lock = threading.Lock()

    def _roundtrip(self, command: str, args: tuple[Any, ...]) -> Any:
        with self._lock:
            self.conn.send((command, args))
            status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"fake Discord: {command} failed: {value}")
        return value

    async def request(self, command: str, *args: Any) -> Any:
        return await asyncio.to_thread(self._roundtrip, command, args)

    def stop(self) -> None:
        try:
            self._roundtrip("stop", ())
        finally:
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()


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
    notice_edits: int
    cached_ms: list[float]
    peak_mb: float
    cpu_s: float  # this process's CPU time (every thread) during the burst
    asked: int  # questions asked (the burst's size, times the runs pooled)


@dataclasses.dataclass(frozen=True)
class Direct:
    """One run of the direct loop: its rate, and the CPU time it spent a question."""

    rate: float
    cpu_ms: float


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_burst(fp: FakeProcess, bot: DirectiveBot, size: int, n_guilds: int) -> Result:
    bot.service.answer_cache.clear()  # every burst starts cold
    computed_before = bot.service.answer_cache.stats().misses
    cpu_before = time.process_time()
    out: BurstOutcome = await fp.request("burst", size, n_guilds)
    cpu_s = time.process_time() - cpu_before
    computed = bot.service.answer_cache.stats().misses - computed_before
    cached_ms = await fp.request("cached", size, n_guilds)
    return Result(
        burst=size,
        guilds=n_guilds,
        answered=out.kinds.count("answered"),
        busy=out.kinds.count("busy"),
        lost=out.kinds.count("lost") + out.kinds.count("other"),
        late=out.kinds.count("late"),
        seconds=out.seconds,
        wall=out.wall,
        distinct=computed,
        heartbeat_gap=out.heartbeat_gap,
        notice_edits=out.notice_edits,
        cached_ms=cached_ms,
        peak_mb=peak_mb(),
        cpu_s=cpu_s,
        asked=size,
    )


def direct_rate(service: KnowledgeService, questions: list[str], workers: int) -> Direct:
    """Distinct questions per second calling ``service.ask`` directly in a loop on ``workers`` threads,
    and the process's CPU time a question."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        t0, cpu0 = time.perf_counter(), time.process_time()
        list(pool.map(service.ask, questions))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return Direct(rate=len(questions) / wall, cpu_ms=1000 * cpu / len(questions))


async def main_async(args: argparse.Namespace) -> list[list[object]]:
    tmp = Path(tempfile.mkdtemp(prefix="directive-load-"))
    try:
        return await _measure(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _measure(args: argparse.Namespace, tmp: Path) -> list[list[object]]:
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

    fp = FakeProcess()
    rows: list[list[object]] = []
    try:
        with redirect_discord_py(fp.address):  # type: ignore[arg-type]
            await fp.request("make_guilds", max(args.guilds))
            harness = DiscordHarness(fp.address)  # type: ignore[arg-type]
            bot = DirectiveBot(settings, service)
            await harness.start_client(bot, timeout=30)
            try:
                for size in args.bursts:
                    rows += await _bursts_of(fp, bot, service, size, args.guilds, workers)
            finally:
                await harness.aclose()
    finally:
        fp.stop()
    return rows


async def _bursts_of(
    fp: FakeProcess, bot: DirectiveBot, service: KnowledgeService, size: int, guilds: list[int], workers: int
) -> list[list[object]]:
    """The table's rows for bursts of ``size``, one per server count.

    The direct loop runs before and after them and their mean is the reference: this machine's speed
    drifts by several per cent over minutes (other tenants, clocks), and a reference taken on one
    side only charged that drift to the bot, by up to 7 points between runs of the same code.
    A burst smaller than ``POOLED_QUESTIONS`` is asked several times, each from a cold cache, and the
    times pooled (the direct loop likewise): one burst of 20 lasts about 4 s, and its rate moved by
    10 points between runs of the same code.
    """
    times = repeats_for(size)
    questions = unique_questions(size) * times
    print(f"direct loop, {size} burst…", file=sys.stderr)
    before = await asyncio.to_thread(direct_rate, service, questions, workers)
    results = []
    for n_guilds in guilds:
        print(f"burst of {size} from {n_guilds} server(s), {times}×…", file=sys.stderr)
        results.append(pooled([await run_burst(fp, bot, size, n_guilds) for _ in range(times)]))
    after = await asyncio.to_thread(direct_rate, service, questions, workers)
    return [_row(r, before, after) for r in results]


def repeats_for(size: int) -> int:
    """How many times a burst of ``size`` is asked: enough for about ``POOLED_QUESTIONS`` questions."""
    return max(1, POOLED_QUESTIONS // size)


def pooled(results: list[Result]) -> Result:
    """Several runs of one burst as one: counts, times and CPU summed, worst gaps and peaks kept."""
    first = results[0]
    return dataclasses.replace(
        first,
        answered=sum(r.answered for r in results),
        busy=sum(r.busy for r in results),
        lost=sum(r.lost for r in results),
        late=sum(r.late for r in results),
        seconds=[t for r in results for t in r.seconds],
        wall=sum(r.wall for r in results),
        distinct=sum(r.distinct for r in results),
        heartbeat_gap=max(r.heartbeat_gap for r in results),
        notice_edits=sum(r.notice_edits for r in results),
        cached_ms=[t for r in results for t in r.cached_ms],
        peak_mb=max(r.peak_mb for r in results),
        cpu_s=sum(r.cpu_s for r in results),
        asked=sum(r.asked for r in results),
    )


def _row(r: Result, before: Direct, after: Direct) -> list[object]:
    direct = (before.rate + after.rate) / 2
    direct_cpu = (before.cpu_ms + after.cpu_ms) / 2
    distinct_rate = r.distinct / r.wall
    bot_cpu = 1000 * r.cpu_s / r.distinct
    return [
        r.burst,
        r.guilds,
        f"{r.answered}/{r.asked}",
        r.busy,
        r.late,
        r.lost,
        f"{percentile(r.seconds, 0.5):.2f}",
        f"{percentile(r.seconds, 0.95):.2f}",
        f"{max(r.seconds):.2f}",
        f"{r.answered / r.wall:.1f}",
        f"{distinct_rate:.2f} / {direct:.2f} ({100 * distinct_rate / direct:.0f}%)",
        f"{before.rate:.2f} / {after.rate:.2f}",
        f"{bot_cpu:.0f} / {direct_cpu:.0f} ({100 * (bot_cpu / direct_cpu - 1):+.0f}%)",
        f"{percentile(r.cached_ms, 0.5):.0f} / {max(r.cached_ms):.0f}",
        f"{r.heartbeat_gap:.2f}",
        r.notice_edits,
        f"{r.peak_mb:.0f}",
    ]


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
    "direct loop before / after",
    "CPU ms per unique q: bot / direct loop",
    "cached repeat ms p50 / max",
    "max heartbeat gap s",
    "queue notice edits",
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
        "the fake Discord in a process of its own. Time to answer runs from the interaction's creation to the final "
        "reply. Unique q/s counts each question computed once (the distinct ones and "
        "each popular one): the bot's rate over the whole burst against the direct loop, which calls the answer "
        "function on exactly those questions with the same number of worker threads, run before and after the "
        "bursts of each size (their mean is the reference, as the machine's speed drifts). CPU ms per unique q is "
        "this process's CPU time (every thread: event loop, workers, database) over the questions computed, for "
        "the burst and for the direct loop: what the bot adds to each answer, which other tenants' load on the "
        f"machine moves far less than it moves wall-clock rates. A burst smaller than {POOLED_QUESTIONS} is asked "
        f"{POOLED_QUESTIONS} // size times, each from a cold cache, and its figures pooled (answered counts all of "
        "them); the direct loop runs its questions as many times. A cached repeat is one "
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
