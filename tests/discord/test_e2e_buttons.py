"""End to end, the buttons under an answer: votes, More sources, Open thread, and after a restart."""

from __future__ import annotations

import csv
import io

import pytest
import pytest_asyncio

from .e2e_support import (
    Env,
    assert_no_pings,
    assert_quotes_verbatim,
    excerpt_blocks,
    final_message,
    start_env,
    without_ellipsis,
)
from .fake_discord import CallbackType, ChannelType

pytestmark = pytest.mark.slow

# Retrieval finds five excerpts for this one; the message shows three, so "More sources" is there.
QUESTION = "What did the US order restrict?"


@pytest_asyncio.fixture
async def env(discord_harness, knowledge_service, tmp_path) -> Env:
    return await start_env(discord_harness, knowledge_service, tmp_path)


async def public_answer(env: Env, question: str = QUESTION):
    message = await final_message(await env.ask(question))
    assert not message.ephemeral and message.embeds[0]["title"] == question
    return message


def button(message, prefix: str) -> str:
    [custom_id] = [i for i in message.all_custom_ids() if i.startswith(prefix)]
    return custom_id


async def private_reply(rec) -> str:
    """The one-line private reply to a button press."""
    resp = await rec.wait_response()
    assert resp.type == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE and resp.ephemeral, resp
    assert resp.content and "\n" not in resp.content
    return resp.content


def answer_id_of(message) -> str:
    return button(message, "dbot:thread:").split(":")[2]


def votes(env: Env) -> list[dict[str, str]]:
    with env.database() as db:
        return list(csv.DictReader(io.StringIO(db.feedback_csv())))


# -- votes ----------------------------------------------------------------------------------------


async def test_thumbs_up_is_stored_and_thumbs_down_changes_it(env: Env) -> None:
    answer = await public_answer(env)
    up = next(i for i in answer.all_custom_ids() if i.endswith(":up"))
    down = next(i for i in answer.all_custom_ids() if i.endswith(":down"))
    answer_id = answer_id_of(answer)

    assert await private_reply(await env.fake.click_button(answer, up, user=env.member)) == "Thanks, recorded."
    [row] = votes(env)
    assert (row["answer_id"], row["vote"], row["question"]) == (answer_id, "1", QUESTION)
    assert row["index_version"] == env.service.info().index_version
    with env.database() as db:
        stored = db.load_answer(answer_id)
    assert stored is not None and row["excerpt_ids"].split() == [e.id for e in stored.excerpts]

    assert await private_reply(await env.fake.click_button(answer, down, user=env.member)) == "Changed your vote."
    [row] = votes(env)
    assert row["vote"] == "-1"

    assert await private_reply(await env.fake.click_button(answer, down, user=env.member)) == (
        "You already voted that way; thanks."
    )
    assert [r["vote"] for r in votes(env)] == ["-1"]
    assert env.fake.errors == []


async def test_each_member_has_their_own_vote_on_an_answer(env: Env) -> None:
    answer = await public_answer(env)
    up = next(i for i in answer.all_custom_ids() if i.endswith(":up"))
    down = next(i for i in answer.all_custom_ids() if i.endswith(":down"))
    await private_reply(await env.fake.click_button(answer, up, user=env.member))
    assert await private_reply(await env.fake.click_button(answer, down, user=env.sg.moderator)) == (
        "Thanks, recorded."
    )
    assert sorted(r["vote"] for r in votes(env)) == ["-1", "1"]


# -- More sources ---------------------------------------------------------------------------------


async def test_more_sources_shows_the_next_excerpts_privately(env: Env) -> None:
    answer = await public_answer(env)
    first = [quote for quote, _ in excerpt_blocks(answer.embeds[0]["description"])]
    more = await env.fake.click_button(answer, button(answer, "dbot:more:"), user=env.member)
    resp = await more.wait_response()
    assert resp.type == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE and resp.ephemeral
    [embed] = resp.embeds
    assert embed["title"] == f"More sources: {QUESTION}"
    shown = assert_quotes_verbatim(embed["description"], env.service.articles())
    with env.database() as db:
        stored = db.load_answer(answer_id_of(answer))
    assert stored is not None and stored.shown == len(first) < len(stored.excerpts)
    # The next excerpts in order, each whole or cut at a sentence boundary.
    for (text, _), excerpt in zip(shown, stored.excerpts[stored.shown :], strict=False):
        assert excerpt.quote.startswith(text)
    assert not set(text for text, _ in shown) & {without_ellipsis(q) for q in first}
    assert env.fake.channel_messages(env.channel) == [answer]  # nothing new in the channel
    assert_no_pings([more.original])


# -- threads --------------------------------------------------------------------------------------


async def test_open_thread_then_a_follow_up_there_is_answered_without_a_mention(env: Env) -> None:
    answer = await public_answer(env)
    opened = await env.fake.click_button(answer, button(answer, "dbot:thread:"), user=env.member)
    [notice] = await opened.wait_followups(1, timeout=10)
    assert notice.ephemeral
    thread = env.fake.channels[answer.thread_id]
    assert thread.type == ChannelType.PUBLIC_THREAD and thread.parent_id == env.channel.id
    assert notice.content == f"Opened <#{thread.id}>. Ask follow-ups there; no need to mention me."
    assert thread.name == QUESTION
    intro = await env.fake.wait_for_message(thread, timeout=5)
    assert "no need to mention me" in intro.content
    assert_no_pings([intro, notice])

    follow_up = await env.fake.send_message(thread, env.member, "Who exactly is affected by the ban on these models?")
    reply = await env.reply_to(follow_up)
    assert reply.channel_id == thread.id
    [embed] = reply.embeds
    assert embed["title"] == "Who exactly is affected by the ban on these models?"  # a full question stands alone
    assert_quotes_verbatim(embed["description"], env.service.articles())
    assert not any(i.startswith("dbot:thread:") for i in reply.all_custom_ids())  # no thread in a thread

    # The same message in the parent channel, without a mention, is not for the bot.
    aside = await env.fake.send_message(env.channel, env.member, "Who is affected by the ban?")
    await env.fake.send_message(thread, env.member, "thanks!")  # a later event: the aside was processed first
    await env.reply_to(await env.fake.send_message(thread, env.member, "Is this a permanent ban?"))
    assert not [m for m in env.fake.channel_messages(env.channel) if m.reference_id == aside.id]


async def test_a_short_message_in_a_thread_is_read_after_the_threads_question(env: Env) -> None:
    answer = await public_answer(env)
    opened = await env.fake.click_button(answer, button(answer, "dbot:thread:"), user=env.member)
    await opened.wait_followups(1, timeout=10)
    thread = env.fake.channels[answer.thread_id]
    await env.fake.wait_for_message(thread, timeout=5)  # the bot's intro

    # Alone, "for how long?" is read as it stands; in the thread, after the thread's question.
    alone = await env.reply_to(await env.mention("for how long?"))
    assert alone.embeds[0]["title"].endswith("for how long?")
    assert QUESTION not in alone.embeds[0]["title"]
    reply = await env.reply_to(await env.fake.send_message(thread, env.member, "for how long?"))
    [embed] = reply.embeds
    assert embed["title"] == f"{QUESTION} for how long?"  # the title shows how the message was read
    assert_quotes_verbatim(embed["description"], env.service.articles())


async def test_thanks_in_a_thread_gets_no_reply(env: Env) -> None:
    answer = await public_answer(env)
    opened = await env.fake.click_button(answer, button(answer, "dbot:thread:"), user=env.member)
    await opened.wait_followups(1, timeout=10)
    thread = env.fake.channels[answer.thread_id]
    await env.fake.wait_for_message(thread, timeout=5)  # the bot's intro
    thanks = await env.fake.send_message(thread, env.member, "ok thanks!")
    question = await env.fake.send_message(thread, env.member, "Who is affected by the ban?")
    await env.reply_to(question)  # a later message is answered, so "ok thanks!" was seen first
    assert not [m for m in env.fake.channel_messages(thread) if m.reference_id == thanks.id]


async def test_open_thread_twice_points_to_the_existing_thread(env: Env) -> None:
    answer = await public_answer(env)
    thread_button = button(answer, "dbot:thread:")
    first = await env.fake.click_button(answer, thread_button, user=env.member)
    await first.wait_followups(1, timeout=10)
    again = await env.fake.click_button(answer, thread_button, user=env.sg.moderator)
    text = await private_reply(again)
    assert text == f"This answer already has a thread: <#{answer.thread_id}>"
    assert env.fake.errors == []


# -- after a restart ------------------------------------------------------------------------------


async def test_buttons_keep_working_after_the_bot_restarts(env: Env) -> None:
    answer = await public_answer(env)
    up = next(i for i in answer.all_custom_ids() if i.endswith(":up"))
    await env.restart()
    assert env.fake.identify_count == 2  # a new process, a new gateway session

    assert await private_reply(await env.fake.click_button(answer, up, user=env.member)) == "Thanks, recorded."
    assert [r["vote"] for r in votes(env)] == ["1"]
    more = await env.fake.click_button(answer, button(answer, "dbot:more:"), user=env.member)
    resp = await more.wait_response()
    assert resp.embeds and resp.embeds[0]["title"] == f"More sources: {QUESTION}"
    assert_quotes_verbatim(resp.embeds[0]["description"], env.service.articles())

    # A thread opened before the restart still takes questions without a mention.
    opened = await env.fake.click_button(answer, button(answer, "dbot:thread:"), user=env.member)
    await opened.wait_followups(1, timeout=10)
    await env.restart()
    thread = env.fake.channels[answer.thread_id]
    reply = await env.reply_to(await env.fake.send_message(thread, env.member, "Who is affected by the ban?"))
    # ... and still reads a short message after the thread's question (it is kept in the database).
    assert reply.embeds[0]["title"] == f"{QUESTION} Who is affected by the ban?"


async def test_buttons_of_an_answer_the_bot_no_longer_has_say_it_expired(env: Env, tmp_path) -> None:
    answer = await public_answer(env)
    await env.restart(data_dir=tmp_path / "fresh")  # its database never saw this answer
    for prefix in ("dbot:vote:", "dbot:more:"):
        custom_id = next(i for i in answer.all_custom_ids() if i.startswith(prefix))
        text = await private_reply(await env.fake.click_button(answer, custom_id, user=env.member))
        assert text == "This answer has expired; ask again."
    assert votes(env) == []
    assert env.fake.errors == []
