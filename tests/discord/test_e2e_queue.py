"""End to end, when many ask at once: everyone is answered, fairly, repeats cost nothing, nobody is lost.

Real discord.py against the fake Discord over loopback; the real knowledge service. Where a test
needs the workers to stay busy, listed questions are held in their worker thread a little
(``ScriptedService`` delays), like a slow model; order is asserted, never speed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import discord
import pytest

from bot.discord.replies import RESTARTING, is_queue_notice
from bot.service import KnowledgeService

from .e2e_support import (
    ANSWER_TIMEOUT,
    Env,
    ScriptedService,
    assert_quotes_verbatim,
    final_message,
    start_env,
)
from .fake_discord import CallbackType
from .test_e2e_gateway import QUESTIONS

pytestmark = pytest.mark.slow


async def members(env: Env, n: int, guild=None) -> list:
    """``n`` new members of the env's guild (or ``guild``)."""
    guild = guild or env.sg.guild
    made = []
    for i in range(n):
        user = await env.fake.create_user(f"member-{guild.id % 1000}-{i}")
        await env.fake.add_member(guild, user)
        made.append(user)
    return made


async def second_guild(env: Env):
    """Another server with its own channel and one member."""
    fake = env.fake
    owner = await fake.create_user("owner-2")
    guild = await fake.create_guild("Second Guild", owner=owner)
    channel = await fake.create_channel(guild, "general")
    member = await fake.create_user("member-2")
    await fake.add_member(guild, member)
    return guild, channel, member


class CountingService(KnowledgeService):
    """A real service over the shared index that counts the questions it actually computes."""

    def __init__(self, real: KnowledgeService) -> None:
        super().__init__(real.settings, real.embedder, real.reranker, real.count_tokens, real.late)
        self._live = real._live  # the same loaded index; its own (empty) answer cache
        self.computed: list[str] = []

    def ask(self, question, **kwargs):
        self.computed.append(question)
        return super().ask(question, **kwargs)


async def test_twenty_members_of_one_server_asking_at_once_all_get_quotes(
    discord_harness, knowledge_service, tmp_path
) -> None:
    env = await start_env(discord_harness, knowledge_service, tmp_path)
    askers = await members(env, len(QUESTIONS))
    records = await asyncio.gather(*(env.ask(q, user=u) for q, u in zip(QUESTIONS, askers, strict=True)))
    messages = [await final_message(r, timeout=ANSWER_TIMEOUT * 4) for r in records]
    assert all(r.response.type == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE for r in records)
    articles = env.service.articles()
    for question, message in zip(QUESTIONS, messages, strict=True):
        [embed] = message.embeds
        assert embed["title"] in (question, f"Not covered: {question}"), "an answer went to the wrong question"
        if embed["title"] == question:
            assert_quotes_verbatim(embed["description"], articles)
    assert sum(m.embeds[0]["title"] in QUESTIONS for m in messages) >= 16
    assert env.fake.errors == [] and all(r.rejected == [] for r in records)


async def test_a_second_servers_question_is_answered_before_the_first_servers_queue_drains(
    discord_harness, knowledge_service, tmp_path
) -> None:
    burst = QUESTIONS[:8]
    service = ScriptedService(knowledge_service, {}, delays=dict.fromkeys(burst, 0.5))
    env = await start_env(discord_harness, service, tmp_path)
    _guild, channel, outsider = await second_guild(env)
    askers = await members(env, len(burst))
    records = [await env.ask(q, user=u) for q, u in zip(burst, askers, strict=True)]
    await env.fake.wait_until(lambda: all(r.response for r in records), timeout=5, what="the burst deferred")
    other = await env.fake.invoke_slash("ask", {"question": "Is this a permanent ban?"}, user=outsider, channel=channel)
    answer = await final_message(other)
    still_waiting = [r for r in records if r.original is None or r.original.loading or not r.original.embeds]
    assert answer.embeds[0]["title"] == "Is this a permanent ban?"
    assert len(still_waiting) >= 3, "the second server waited for the first server's whole burst"
    for rec in records:
        await final_message(rec, timeout=ANSWER_TIMEOUT * 2)


async def test_a_repeated_question_is_computed_once_for_everyone_who_asks_it(
    discord_harness, knowledge_service, tmp_path
) -> None:
    service = CountingService(knowledge_service)
    env = await start_env(discord_harness, service, tmp_path)
    askers = await members(env, 5)
    wordings = [
        "Which models are banned?",
        "which models are banned",
        "WHICH MODELS ARE BANNED?!",
        "Which models are  banned?",
        "which models are banned?",
    ]
    records = await asyncio.gather(*(env.ask(w, user=u) for w, u in zip(wordings, askers, strict=True)))
    messages = [await final_message(r) for r in records]
    later = await final_message(await env.ask("Which models are banned?", user=env.sg.moderator))
    assert len(service.computed) == 1
    descriptions = {m.embeds[0]["description"] for m in [*messages, later]}
    assert len(descriptions) == 1  # every asker got the same quotes
    assert [m.embeds[0]["title"] for m in messages] == [" ".join(w.split()) for w in wordings]


async def test_a_cached_answer_does_not_wait_behind_the_queue(discord_harness, knowledge_service, tmp_path) -> None:
    slow = QUESTIONS[:4]
    service = ScriptedService(knowledge_service, {}, delays=dict.fromkeys(slow, 1.0))
    env = await start_env(discord_harness, service, tmp_path, workers=1)
    popular = "What did the US order restrict?"
    await final_message(await env.ask(popular))
    held = [await env.ask(q, user=env.sg.moderator) for q in slow]
    repeat = await final_message(await env.ask(popular.lower()))
    waiting = [r for r in held if r.original is None or r.original.loading or not r.original.embeds]
    assert repeat.embeds[0]["title"] == popular.lower()
    assert len(waiting) >= 3, "the repeat waited for questions queued before it"
    for rec in held:
        await final_message(rec, timeout=ANSWER_TIMEOUT * 2)


async def test_a_long_wait_shows_the_member_their_place_then_the_answer(
    discord_harness, knowledge_service, tmp_path
) -> None:
    held = QUESTIONS[:3]
    service = ScriptedService(knowledge_service, {}, delays=dict.fromkeys(held, 0.5))
    env = await start_env(discord_harness, service, tmp_path, workers=1, queue_notice_seconds=0.0)
    records = [await env.ask(q) for q in held]
    last = await final_message(records[-1], timeout=ANSWER_TIMEOUT * 2)
    notices = [v["content"] for v in last.history if is_queue_notice(v["content"])]
    assert notices, "the member never saw their place in the queue"
    assert notices[0].startswith("⏳ Queued, about ") and "ahead of yours" in notices[0]
    assert last.content == "" and last.embeds[0]["title"] == held[-1]  # the notice is replaced, not left behind


async def test_past_the_queue_bound_members_are_told_too_busy_and_nobody_is_left_without_a_reply(
    discord_harness, knowledge_service, tmp_path
) -> None:
    burst = QUESTIONS[:8]
    service = ScriptedService(knowledge_service, {}, delays=dict.fromkeys(burst, 0.3))
    env = await start_env(discord_harness, service, tmp_path, workers=1, queue_limit=2)
    askers = await members(env, len(burst))
    records = await asyncio.gather(*(env.ask(q, user=u) for q, u in zip(burst, askers, strict=True)))
    await env.fake.wait_until(lambda: all(r.response for r in records), timeout=5, what="every interaction answered")
    busy = [r for r in records if r.response.type == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE]
    queued = [r for r in records if r.response.type == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE]
    assert len(busy) + len(queued) == len(burst)
    assert busy and len(queued) <= 3  # one answering, two waiting
    for rec in busy:
        assert rec.response.ephemeral and rec.response.content.startswith("I'm too busy to take another question")
        assert "please ask again in about" in rec.response.content
    for rec in queued:
        message = await final_message(rec, timeout=ANSWER_TIMEOUT * 2)
        assert message.embeds[0]["title"] == rec.data["options"][0]["value"]
    assert env.fake.errors == []


async def test_a_restart_while_questions_wait_tells_every_deferred_asker_to_ask_again(
    discord_harness, knowledge_service, tmp_path
) -> None:
    held = QUESTIONS[:4]
    # Long enough that no answer can be finished before the restart, even on a loaded machine (an
    # answer that is finished in time is delivered, rightly, and this test is about the others).
    service = ScriptedService(knowledge_service, {}, delays=dict.fromkeys(held, 8.0))
    env = await start_env(discord_harness, service, tmp_path, workers=1)
    askers = await members(env, len(held))
    records = await asyncio.gather(*(env.ask(q, user=u) for q, u in zip(held, askers, strict=True)))
    await env.fake.wait_until(lambda: all(r.response for r in records), timeout=5, what="every question deferred")
    await env.restart()
    for rec in records:
        message = await rec.wait_original(lambda m: not m.loading, timeout=5)
        assert message.content == RESTARTING and message.embeds == []
    assert all(r.rejected == [] for r in records) and env.fake.errors == []
    # The restarted bot answers the question asked again.
    again = await final_message(await env.ask(held[0], user=askers[0]))
    assert again.embeds[0]["title"] == held[0]


async def test_a_restart_tells_a_member_who_mentioned_the_bot_to_ask_again(
    discord_harness, knowledge_service, tmp_path
) -> None:
    held = QUESTIONS[:2]
    service = ScriptedService(knowledge_service, {}, delays=dict.fromkeys(held, 8.0))  # none finishes first
    env = await start_env(discord_harness, service, tmp_path, workers=1)
    asked = [await env.mention(q) for q in held]
    await env.fake.wait_until(lambda: len(env.fake.typing) >= 1, timeout=5, what="the first question taken up")
    await env.restart()
    for message in asked:
        reply = await env.reply_to(message, timeout=5)
        assert reply.content == RESTARTING


async def test_no_answer_is_computed_while_an_interaction_waits_to_be_acknowledged(
    discord_harness, knowledge_service, tmp_path, monkeypatch
) -> None:
    service = CountingService(knowledge_service)
    env = await start_env(discord_harness, service, tmp_path)
    acknowledge = asyncio.Event()
    real_defer = discord.InteractionResponse.defer

    async def slow_defer(self, **kwargs):  # the acknowledgement takes as long as the test says
        await acknowledge.wait()
        return await real_defer(self, **kwargs)

    monkeypatch.setattr(discord.InteractionResponse, "defer", slow_defer)
    record = await env.ask("Who issued the order?")
    await asyncio.sleep(0.5)
    assert service.computed == [], "a worker computed while an acknowledgement was pending"
    acknowledge.set()
    message = await final_message(record)
    assert message.embeds[0]["title"] == "Who issued the order?"
    assert service.computed == ["Who issued the order?"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only Linux sets niceness per thread")
async def test_with_a_worker_niceness_the_answering_threads_yield_the_cores_to_the_event_loop(
    discord_harness, knowledge_service, tmp_path
) -> None:
    env = await start_env(discord_harness, knowledge_service, tmp_path, worker_niceness=10)
    loop_niceness = os.getpriority(os.PRIO_PROCESS, 0)  # the calling thread: the event loop's
    worker_niceness = await env.bot.run_blocking(os.getpriority, os.PRIO_PROCESS, 0)
    assert worker_niceness > loop_niceness


async def test_answers_are_rendered_off_the_event_loop(
    discord_harness, knowledge_service, tmp_path, monkeypatch
) -> None:
    env = await start_env(discord_harness, knowledge_service, tmp_path)
    ask_cog = sys.modules["bot.discord.cogs.ask._cog"]  # as the bot loaded it (extensions are imported afresh)
    rendered_in: list[int] = []
    real_render = ask_cog.render_answer

    def recording_render(*args, **kwargs):
        rendered_in.append(threading.get_ident())
        return real_render(*args, **kwargs)

    monkeypatch.setattr(ask_cog, "render_answer", recording_render)
    message = await final_message(await env.ask("Who issued the order?"))
    assert message.embeds[0]["title"] == "Who issued the order?"
    assert rendered_in and threading.get_ident() not in rendered_in  # the test runs on the event loop's thread
