"""End to end, as a member: the commands, asking by /ask, mention and Find sources, /sources, /about.

Real discord.py against the fake Discord over loopback sockets, the real knowledge service
(MiniLM, FAISS, BM25, reranker) over the repo's ``knowledge/``; shared fixtures in ``e2e_support``.
"""

from __future__ import annotations

import re
import sys

import pytest
import pytest_asyncio

from bot.discord.replies import GENERIC_ERROR

from .e2e_support import (
    Env,
    ScriptedService,
    assert_no_pings,
    assert_quotes_verbatim,
    final_message,
    start_env,
    unescape,
)
from .fake_discord import CallbackType, FakeDiscordUsageError, MessageFlag

pytestmark = pytest.mark.slow

ON_TOPIC = "What did the US order restrict?"
OFF_TOPIC = "What is the weather in Paris tomorrow?"


@pytest_asyncio.fixture
async def env(discord_harness, knowledge_service, tmp_path) -> Env:
    return await start_env(discord_harness, knowledge_service, tmp_path)


def one_line_private(rec) -> str:
    """The interaction's reply, checked to be a private one-line message without embeds."""
    resp = rec.response
    assert resp is not None and resp.type == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE, resp
    assert resp.ephemeral
    assert resp.embeds == []
    text = resp.content or ""
    assert text and "\n" not in text and "Traceback" not in text and len(text) < 300, text
    return text


def short_notices(env: Env, monkeypatch) -> None:
    """Notices to messages delete themselves after 15 s; make it half a second here.

    Patched on the running bot: ``load_extension`` executes the cog module afresh.
    """
    monkeypatch.setattr(sys.modules[env.bot.get_cog("Ask").__module__], "NOTICE_SECONDS", 0.5)


# -- login and commands -------------------------------------------------------------------------


async def test_login_syncs_member_commands_with_their_options_and_no_permission_gate(env: Env) -> None:
    fake = env.fake
    assert env.bot.is_ready() and fake.identify_count == 1
    slash = {c["name"]: c for c in fake.registered_commands() if c["type"] == 1}
    assert {"ask", "sources", "about"} <= set(slash)
    options = {o["name"]: o for o in slash["ask"]["options"]}
    assert list(options) == ["question", "private"]
    assert options["question"]["type"] == 3 and options["question"]["required"] is True
    assert options["private"]["type"] == 5 and not options["private"].get("required", False)
    for name in ("ask", "sources", "about"):
        assert slash[name]["default_member_permissions"] is None, f"/{name} must be open to every member"
        assert 1 <= len(slash[name]["description"]) <= 100
    find = fake.get_command("Find sources", type=3)
    assert find is not None and find["default_member_permissions"] is None
    assert fake.errors == [] and fake.unknown_routes == []


# -- /ask -----------------------------------------------------------------------------------------


async def test_ask_public_answer_quotes_articles_verbatim_with_footer_and_buttons(env: Env) -> None:
    rec = await env.ask(ON_TOPIC)
    message = await final_message(rec)
    assert not message.ephemeral
    [embed] = message.embeds
    assert embed["title"] == ON_TOPIC
    quoted = assert_quotes_verbatim(embed["description"], env.service.articles())
    assert 1 <= len(quoted) <= 3
    info = env.service.info()
    assert f"index {info.index_version}" in embed["footer"]["text"]
    assert "not legal advice" in embed["footer"]["text"]
    ids = message.all_custom_ids()
    answer_id = ids[-1].split(":")[2]
    assert f"dbot:vote:{answer_id}:up" in ids and f"dbot:vote:{answer_id}:down" in ids
    assert f"dbot:thread:{answer_id}" in ids
    with env.database() as db:
        stored = db.load_answer(answer_id)
    assert stored is not None and stored.question == ON_TOPIC and stored.shown == len(quoted)
    if len(stored.excerpts) > stored.shown:
        assert f"dbot:more:{answer_id}:{stored.shown}" in ids
        assert f"{len(stored.excerpts) - stored.shown} more" in embed["footer"]["text"]
    assert_no_pings([message])
    assert env.fake.errors == []


async def test_ask_private_answer_is_ephemeral_and_offers_no_thread(env: Env) -> None:
    rec = await env.ask("Who is affected by the ban?", private=True)
    message = await final_message(rec)
    assert message.ephemeral and message.flags & MessageFlag.EPHEMERAL
    [embed] = message.embeds
    assert_quotes_verbatim(embed["description"], env.service.articles())
    ids = message.all_custom_ids()
    assert any(i.startswith("dbot:vote:") for i in ids)
    assert not any(i.startswith("dbot:thread:") for i in ids)
    assert env.fake.channel_messages(env.channel) == []  # nothing visible to the channel
    assert env.fake.errors == []


# -- mentions and Find sources --------------------------------------------------------------------


async def test_mention_is_answered_in_a_reply_to_the_asking_message_without_pinging(env: Env) -> None:
    asked = await env.mention("Did Anthropic disagree with the decision?")
    reply = await env.reply_to(asked)
    assert reply.channel_id == env.channel.id and reply.message_reference["message_id"] == str(asked.id)
    [embed] = reply.embeds
    assert embed["title"] == "Did Anthropic disagree with the decision?"
    assert_quotes_verbatim(embed["description"], env.service.articles())
    assert any(i.startswith("dbot:vote:") for i in reply.all_custom_ids())
    assert_no_pings([reply])  # a reply, yet the asker is not pinged
    assert env.fake.typing, "the bot shows it is typing while it answers"


async def test_a_mention_deleted_before_its_answer_still_gets_the_answer_posted(env: Env) -> None:
    asked = await env.mention("Who is affected by the ban?")
    await env.fake.delete_message(asked)  # gone long before the answer is ready
    answer = await env.fake.wait_for_message(env.channel, timeout=20)
    assert answer.reference_id is None and answer.embeds[0]["title"] == "Who is affected by the ban?"
    assert env.fake.errors == []


async def test_find_sources_quotes_the_articles_about_a_message_privately(env: Env) -> None:
    claim = await env.fake.send_message(
        env.channel, env.sg.moderator, "Apparently foreign nationals can no longer use Anthropic's Mythos model?"
    )
    rec = await env.fake.invoke_message_command("Find sources", claim, user=env.member)
    message = await final_message(rec)
    assert message.ephemeral
    [embed] = message.embeds
    assert embed["title"].startswith("About that message: ")
    assert "foreign nationals" in unescape(embed["title"])
    quoted = assert_quotes_verbatim(embed["description"], env.service.articles())
    assert any("foreign" in text.lower() for text, _ in quoted)
    assert env.fake.errors == []


async def test_find_sources_on_a_message_without_text_says_so(env: Env) -> None:
    answer = await final_message(await env.ask(ON_TOPIC))  # the bot's own answer: an embed, no text
    rec = await env.fake.invoke_message_command("Find sources", answer, user=env.member)
    await rec.wait_response()
    assert one_line_private(rec) == "That message has no text I can look up."


# -- /sources and /about --------------------------------------------------------------------------


async def test_sources_pages_through_the_articles_with_next_and_previous(
    discord_harness, extra_service, tmp_path
) -> None:
    env = await start_env(discord_harness, extra_service, tmp_path)
    articles = extra_service.articles()  # newest first
    assert len(articles) == 21
    rec = await env.fake.invoke_slash("sources", user=env.member)
    page = await final_message(rec)
    assert page.ephemeral

    def shown(message) -> list[str]:
        [embed] = message.embeds
        return [line for line in embed["description"].split("\n") if line.startswith("**")]

    first = shown(page)
    assert len(first) == 10 and articles[0].title in unescape(first[0])
    assert "Page 1 of 3" in page.embeds[0]["footer"]["text"]
    [previous, following] = [c for row in page.components for c in row["components"]]
    assert previous["disabled"] and not following["disabled"]

    click = await env.fake.click_button(page, following["custom_id"], user=env.member)
    assert (await click.wait_response()).type == CallbackType.UPDATE_MESSAGE
    second = shown(page)
    assert second[0].startswith("**11.**") and articles[10].title in unescape(second[0])
    assert "Page 2 of 3" in page.embeds[0]["footer"]["text"]

    await (await env.fake.click_button(page, following["custom_id"], user=env.member)).wait_response()
    assert len(shown(page)) == 1 and articles[20].title in unescape(shown(page)[0])
    [previous, following] = [c for row in page.components for c in row["components"]]
    assert following["disabled"] and not previous["disabled"]

    back = await env.fake.click_button(page, previous["custom_id"], user=env.member)
    await back.wait_response()
    assert shown(page) == second
    assert env.fake.errors == []


async def test_sources_page_is_visible_only_to_the_member_who_asked(discord_harness, extra_service, tmp_path) -> None:
    env = await start_env(discord_harness, extra_service, tmp_path)
    page = await final_message(await env.fake.invoke_slash("sources", user=env.member))
    assert page.ephemeral and env.fake.channel_messages(env.channel) == []
    next_id = [c for row in page.components for c in row["components"]][1]["custom_id"]
    with pytest.raises(FakeDiscordUsageError, match="cannot see ephemeral"):
        await env.fake.click_button(page, next_id, user=env.sg.moderator)


async def test_sources_buttons_are_disabled_when_the_page_times_out(discord_harness, extra_service, tmp_path) -> None:
    env = await start_env(discord_harness, extra_service, tmp_path, view_timeout_seconds=0.5)
    page = await final_message(await env.fake.invoke_slash("sources", user=env.member))
    assert not all(c["disabled"] for row in page.components for c in row["components"])
    await env.fake.wait_until(
        lambda: all(c["disabled"] for row in page.components for c in row["components"]),
        timeout=5,
        what="the page's buttons to be disabled",
    )
    assert "Page 1 of 3" in page.embeds[0]["footer"]["text"]  # the page itself stays readable
    assert env.fake.errors == []


async def test_about_shows_index_version_counts_and_model(env: Env) -> None:
    rec = await env.fake.invoke_slash("about", user=env.member)
    message = await final_message(rec)
    assert message.ephemeral
    [embed] = message.embeds
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    info = env.service.info()
    assert fields["Index version"] == f"`{info.index_version}`"
    assert fields["Articles"] == str(info.articles) == "5"
    assert fields["Passages"] == str(info.chunks)
    assert fields["Model"].startswith(f"`{info.model}`") and f"{info.dimension} dimensions" in fields["Model"]
    assert "quoting news articles" in embed["description"]


# -- declines and bad questions -------------------------------------------------------------------


async def test_off_topic_question_gets_a_kind_decline_naming_covered_topics_and_is_recorded_as_a_gap(
    env: Env,
) -> None:
    rec = await env.ask(OFF_TOPIC)
    message = await final_message(rec)
    [embed] = message.embeds
    assert embed["title"] == f"Not covered: {OFF_TOPIC}"
    text = unescape(embed["description"])
    assert "won't guess" in text
    for topic in env.service.covered_topics():
        assert f"• {topic}" in text
    assert "/sources" in text
    assert message.components == []  # nothing to vote on or page through
    with env.database() as db:
        gaps = db.recent_gaps()
    assert [(g.example, g.count) for g in gaps] == [(OFF_TOPIC, 1)]


async def test_empty_question_gets_a_private_one_line_error(env: Env) -> None:
    rec = await env.ask(" ?! ")
    await rec.wait_response()
    assert "empty" in one_line_private(rec)
    assert env.fake.errors == []


async def test_too_long_question_gets_a_private_one_line_error(env: Env) -> None:
    rec = await env.ask("why " * 200)
    await rec.wait_response()
    text = one_line_private(rec)
    assert "limit is 500" in text
    with env.database() as db:
        assert db.recent_gaps() == []  # a bad question is not a knowledge gap


async def test_too_long_mention_gets_a_one_line_notice_that_removes_itself(env: Env, monkeypatch) -> None:
    short_notices(env, monkeypatch)
    asked = await env.mention("why " * 200)
    notice = await env.reply_to(asked)
    assert notice.embeds == [] and "limit is 500" in notice.content and "\n" not in notice.content
    assert "Traceback" not in notice.content
    assert_no_pings([notice])
    await env.fake.wait_until(lambda: notice.deleted, timeout=5, what="the notice to delete itself")


async def test_bare_mention_gets_a_hint_to_ask_a_question(env: Env) -> None:
    asked = await env.fake.send_message(env.channel, env.member, env.bot_mention)
    notice = await env.reply_to(asked)
    assert notice.content.startswith("Ask me a question after the mention")
    assert_no_pings([notice])


# -- rate limits ----------------------------------------------------------------------------------


async def test_cooldown_reply_is_private_and_says_how_long_to_wait(
    discord_harness, knowledge_service, tmp_path
) -> None:
    env = await start_env(discord_harness, knowledge_service, tmp_path, cooldown_questions=1, cooldown_seconds=60.0)
    first = await env.ask(ON_TOPIC)
    await final_message(first)
    second = await env.ask("Who is affected by the ban?")
    await second.wait_response()
    text = one_line_private(second)
    match = re.search(r"please wait (\d+) seconds? before asking again", text)
    assert match, text
    assert 50 <= int(match.group(1)) <= 60
    # Another member is not held back by the first one's cooldown.
    other = await env.ask("Who is affected by the ban?", user=env.sg.moderator)
    assert (await final_message(other)).embeds[0]["title"] == "Who is affected by the ban?"
    with env.database() as db:
        assert db.recent_gaps() == []


async def test_mention_cooldown_notice_says_how_long_and_removes_itself(
    discord_harness, knowledge_service, tmp_path, monkeypatch
) -> None:
    env = await start_env(discord_harness, knowledge_service, tmp_path, cooldown_questions=1, cooldown_seconds=60.0)
    short_notices(env, monkeypatch)
    await env.reply_to(await env.mention(ON_TOPIC))
    asked = await env.mention("Who is affected by the ban?")
    notice = await env.reply_to(asked)
    assert re.fullmatch(r"You're asking quickly; please wait (\d+) seconds? before asking again\.", notice.content)
    assert notice.embeds == []
    assert_no_pings([notice])
    await env.fake.wait_until(lambda: notice.deleted, timeout=5, what="the notice to delete itself")


# -- failures -------------------------------------------------------------------------------------


async def test_an_unexpected_failure_is_one_private_generic_line_never_a_traceback(
    discord_harness, knowledge_service, tmp_path, caplog
) -> None:
    boom = "What does the secret appendix say?"
    service = ScriptedService(knowledge_service, {boom: RuntimeError("index exploded")})
    env = await start_env(discord_harness, service, tmp_path)
    rec = await env.ask(boom, private=True)
    assert (await rec.wait_response()).ephemeral  # deferred at once, privately as asked
    message = await final_message(rec)
    assert message.ephemeral and message.content == GENERIC_ERROR and message.embeds == []
    assert "index exploded" in caplog.text  # the traceback goes to the log instead
    asked = await env.mention(boom)
    notice = await env.reply_to(asked)
    assert notice.content == GENERIC_ERROR


async def test_a_failure_after_the_thinking_placeholder_replaces_it_with_one_line(
    discord_harness, knowledge_service, tmp_path
) -> None:
    slow = "What does the secret appendix say?"
    service = ScriptedService(knowledge_service, {slow: RuntimeError("index exploded")}, delays={slow: 2.5})
    env = await start_env(discord_harness, service, tmp_path)
    rec = await env.ask(slow)
    assert (await rec.wait_response(timeout=4)).type == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    message = await final_message(rec)
    assert not message.loading and message.content == GENERIC_ERROR and message.embeds == []
    assert rec.rejected == [] and env.fake.errors == []


async def test_ask_in_a_direct_message_is_answered(env: Env) -> None:
    dm = await env.fake.create_dm(env.member)
    rec = await env.fake.invoke_slash("ask", {"question": "Who is affected by the ban?"}, user=env.member, channel=dm)
    message = await final_message(rec)
    assert message.guild_id is None
    assert_quotes_verbatim(message.embeds[0]["description"], env.service.articles())
    assert not any(i.startswith("dbot:thread:") for i in message.all_custom_ids())
