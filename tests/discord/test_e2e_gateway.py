"""End to end under stress: many questions at once, a gateway RECONNECT, rate limits, a busy worker pool.

Figures (latencies, heartbeat gaps) are printed to the terminal and attached to the JUnit report
with ``record_property``, so a run can be quoted.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
import pytest_asyncio

from .e2e_support import (
    ANSWER_TIMEOUT,
    Env,
    ScriptedService,
    assert_no_pings,
    assert_quotes_verbatim,
    final_message,
    start_env,
)
from .fake_discord import CallbackType

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What did the US order restrict?",
    "Who is affected by the ban?",
    "Did Anthropic disagree with the decision?",
    "Why were Mythos 5 and Fable 5 pulled?",
    "Is this a permanent ban?",
    "When did Anthropic receive the government letter?",
    "Does the restriction apply to Anthropic employees?",
    "What is Fable compared to Mythos?",
    "What did critics say about the order?",
    "What time did the government letter arrive?",
    "Can foreign nationals inside the United States still use the model?",
    "What did Anthropic say in its blog post?",
    "What safeguards did the government say could be bypassed?",
    "Did the White House comment on the restriction?",
    "What precedent does the order set for AI labs?",
    "Could Anthropic contest the order in court?",
    "What executive order did President Trump sign about AI?",
    "Which AI models are affected by the US order?",
    "Why did Anthropic initially decline to release Mythos publicly?",
    "What happens to users outside the United States?",
]


@pytest_asyncio.fixture
async def env(discord_harness, knowledge_service, tmp_path) -> Env:
    return await start_env(discord_harness, knowledge_service, tmp_path)


def report(capsys, record_property, **figures: object) -> None:
    for key, value in figures.items():
        record_property(key, value)
    with capsys.disabled():
        print("\n  " + "  ".join(f"{k}={v}" for k, v in figures.items()))


async def test_twenty_concurrent_questions_are_all_answered_with_heartbeat_gaps_under_a_second(
    env: Env, capsys, record_property
) -> None:
    fake = env.fake
    await fake.wait_for_heartbeats(1, timeout=5)
    fake.reset_heartbeat_stats()
    askers = [env.member, env.sg.moderator]
    started = time.monotonic()

    async def answered(rec) -> tuple[object, float]:
        message = await final_message(rec, timeout=90)
        return message, time.monotonic() - started

    records = await asyncio.gather(*(env.ask(q, user=askers[i % 2]) for i, q in enumerate(QUESTIONS)))
    results = await asyncio.gather(*(answered(r) for r in records))
    messages = [m for m, _ in results]
    done = sorted(t for _, t in results)
    await fake.wait_for_heartbeats(fake.heartbeat_count + 1, timeout=5)  # close the gap after the last answer
    first_response = max(r.response.elapsed for r in records)
    gap = fake.max_heartbeat_gap
    report(
        capsys,
        record_property,
        questions=len(QUESTIONS),
        workers=env.bot.settings.discord.workers,
        all_answered_s=round(done[-1], 2),
        median_answer_s=round(statistics.median(done), 2),
        slowest_first_response_s=round(first_response, 2),
        deferred=sum(r.response.type == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE for r in records),
        heartbeats=fake.heartbeat_count,
        heartbeat_interval_s=fake.heartbeat_interval,
        max_heartbeat_gap_s=round(gap, 3),
    )
    assert gap < 1.0, f"the event loop stalled: heartbeat gap {gap:.2f}s"
    assert first_response < 3.0  # every interaction acknowledged inside Discord's deadline
    articles = env.service.articles()
    for question, message in zip(QUESTIONS, messages, strict=True):
        [embed] = message.embeds
        assert embed["title"] in (question, f"Not covered: {question}"), "an answer went to the wrong question"
        if embed["title"] == question:
            assert_quotes_verbatim(embed["description"], articles)
    answered = sum(m.embeds[0]["title"] in QUESTIONS for m in messages)
    assert answered >= 16, f"only {answered} of 20 on-topic questions were answered"
    assert_no_pings(messages)
    assert fake.errors == []


async def test_a_gateway_reconnect_mid_conversation_loses_no_question(env: Env) -> None:
    fake = env.fake
    first = await env.mention("Who is affected by the ban?")
    assert await fake.send_reconnect() == 1
    # Asked while the bot is reconnecting: Discord holds these events and replays them on RESUME.
    second = await env.mention("Is this a permanent ban?")
    third = await env.ask("Did Anthropic disagree with the decision?")
    await fake.wait_for_resume(1, timeout=10)
    replies = [await env.reply_to(first), await env.reply_to(second)]
    answer = await final_message(third)
    assert [r.embeds[0]["title"] for r in replies] == ["Who is affected by the ban?", "Is this a permanent ban?"]
    assert answer.embeds[0]["title"] == "Did Anthropic disagree with the decision?"
    assert fake.identify_count == 1 and fake.resume_count == 1  # resumed, not a new session
    assert fake.errors == []


async def test_a_rate_limited_reply_is_retried_and_arrives(env: Env) -> None:
    rule = env.fake.rate_limit("POST", r"^/channels/\d+/messages$", times=1, retry_after=0.3)
    asked = await env.mention("Who is affected by the ban?")
    reply = await env.reply_to(asked)
    assert rule.hits == 1
    statuses = [r.status for r in env.fake.requests_to("POST", r"^/channels/\d+/messages$")]
    assert statuses == [429, 200]
    assert reply.embeds[0]["title"] == "Who is affected by the ban?"
    assert_quotes_verbatim(reply.embeds[0]["description"], env.service.articles())


async def test_a_rate_limited_interaction_response_is_retried_and_arrives(env: Env) -> None:
    rule = env.fake.rate_limit("POST", r"^/interactions/\d+/[^/]+/callback$", times=1, retry_after=0.3)
    rec = await env.ask("Who is affected by the ban?")
    message = await final_message(rec)
    assert rule.hits == 1 and rec.rejected == []
    assert message.embeds[0]["title"] == "Who is affected by the ban?"


async def test_a_rate_limited_typing_indicator_does_not_delay_the_answer(env: Env) -> None:
    # Discord rate-limits typing hard in a busy channel; the indicator is cosmetic.
    env.fake.rate_limit("POST", r"/typing$", times=1, retry_after=ANSWER_TIMEOUT)
    asked = await env.mention("Who is affected by the ban?")
    reply = await env.reply_to(asked, timeout=ANSWER_TIMEOUT / 2)
    assert reply.embeds[0]["title"] == "Who is affected by the ban?"


async def test_the_loop_stays_responsive_while_every_worker_is_answering(
    discord_harness, knowledge_service, tmp_path, capsys, record_property
) -> None:
    held = QUESTIONS[:6]  # three per worker, all queued at once
    # Real answers, each held a little longer in its worker so the pool is surely busy throughout.
    service = ScriptedService(knowledge_service, {}, delays=dict.fromkeys(held, 0.4))
    env = await start_env(discord_harness, service, tmp_path)
    fake = env.fake
    await fake.wait_for_heartbeats(1, timeout=5)
    fake.reset_heartbeat_stats()
    asked = [await env.mention(q) for q in held]
    await fake.wait_until(lambda: len(fake.typing) >= 1, timeout=5, what="the first question to be taken up")
    t0 = time.monotonic()
    bad = await env.ask("?!")  # answered on the loop itself, with no worker free
    resp = await bad.wait_response(timeout=2)
    quick = time.monotonic() - t0
    sources = await fake.invoke_slash("sources", user=env.member)
    deferred = await sources.wait_response(timeout=2)
    replies = [await env.reply_to(m, timeout=ANSWER_TIMEOUT * 2) for m in asked]
    still_answering = sum(r.created_monotonic > resp.at for r in replies)
    report(
        capsys,
        record_property,
        error_reply_s=round(quick, 3),
        sources_ack_s=round(deferred.elapsed, 3),
        answers_after_error_reply=still_answering,
        max_heartbeat_gap_s=round(fake.max_heartbeat_gap, 3),
    )
    assert resp.ephemeral and "empty" in resp.content
    assert deferred.type == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE and deferred.elapsed < 1.0
    assert still_answering >= 1, "the error should have overtaken questions still being answered"
    assert quick < 1.0 and fake.max_heartbeat_gap < 1.0
    await final_message(sources)  # the page arrives once a worker is free
