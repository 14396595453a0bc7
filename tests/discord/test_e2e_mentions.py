"""End to end: text from members or articles can never ping anyone, or render as a live mention or link.

Every bot message must carry ``allowed_mentions: {"parse": []}``, the fake must resolve no
mention on it, and quoted text must display exactly as written (escaped, not interpreted).
"""

from __future__ import annotations

import re

import pytest

from .e2e_support import (
    MENTION_BAIT_BODY,
    MENTION_BAIT_ID,
    Env,
    assert_no_pings,
    assert_quotes_verbatim,
    final_message,
    start_env,
    unescape,
)

pytestmark = pytest.mark.slow

# A mention Discord would render live: not preceded by the backslash that makes it literal text.
LIVE_MENTION = re.compile(r"(?<!\\)<@[!&]?\d+>|@everyone|@here")
LIVE_LINK = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(")


def bot_messages(env: Env) -> list:
    return [m for m in env.fake.messages.values() if m.author.id == env.fake.bot_user.id]


def shown_text(message) -> list[str]:
    [embed] = message.embeds
    return [embed["title"], embed["description"], embed["footer"]["text"]]


# What is left of the bait question for the knowledge base: ids mean nothing to the articles.
BAIT_WORDS = "@everyone @here what did the order restrict for foreign nationals?"


async def bait(env: Env) -> str:
    """A question that tries every mention there is, with real ids of this guild."""
    role = await env.fake.create_role(env.sg.guild, "Press", mentionable=True)
    mentions = f"@everyone @here {role.mention} {env.sg.moderator.mention}"
    return f"{mentions} what did the order restrict for foreign nationals?"


async def test_mentions_in_a_slash_question_ping_nobody_and_show_as_typed(discord_harness, knowledge_service, tmp_path):
    env = await start_env(discord_harness, knowledge_service, tmp_path)
    question = await bait(env)
    message = await final_message(await env.ask(question))
    title = message.embeds[0]["title"]
    assert unescape(title) == BAIT_WORDS  # answered (ids dropped), @everyone shown as typed...
    assert_quotes_verbatim(message.embeds[0]["description"], env.service.articles())
    for text in shown_text(message):
        assert not LIVE_MENTION.search(text), text  # ...but never as a live mention
    assert_no_pings(bot_messages(env))
    assert env.fake.errors == []


async def test_mentions_in_a_mentioned_question_ping_nobody_and_the_reply_pings_no_author(
    discord_harness, knowledge_service, tmp_path
):
    env = await start_env(discord_harness, knowledge_service, tmp_path)
    question = await bait(env)
    asked = await env.mention(question, user=env.sg.owner)  # the owner may ping @everyone
    assert asked.mention_everyone and asked.mention_roles and asked.mentions  # the asker's message did ping
    reply = await env.reply_to(asked)
    assert unescape(reply.embeds[0]["title"]) == BAIT_WORDS
    assert_quotes_verbatim(reply.embeds[0]["description"], env.service.articles())
    for text in shown_text(reply):
        assert not LIVE_MENTION.search(text), text
    assert reply.allowed_mentions.get("replied_user") is False
    assert_no_pings(bot_messages(env))


async def test_mentions_in_a_declined_question_ping_nobody(discord_harness, knowledge_service, tmp_path):
    env = await start_env(discord_harness, knowledge_service, tmp_path)
    role = await env.fake.create_role(env.sg.guild, "Press", mentionable=True)
    question = f"@everyone {role.mention} what is the weather in Paris tomorrow?"
    message = await final_message(await env.ask(question))
    assert message.embeds[0]["title"].startswith("Not covered: ")
    assert unescape(message.embeds[0]["title"]) == "Not covered: @everyone what is the weather in Paris tomorrow?"
    assert not LIVE_MENTION.search(message.embeds[0]["title"])
    assert_no_pings(bot_messages(env))


async def test_a_quote_full_of_mentions_and_markdown_is_shown_escaped_and_pings_nobody(
    discord_harness, extra_service, tmp_path
):
    env = await start_env(discord_harness, extra_service, tmp_path)
    message = await final_message(await env.ask("What did the moderator post when Mythos 5 was suspended?"))
    [embed] = message.embeds
    quoted = assert_quotes_verbatim(embed["description"], extra_service.articles())
    bait_quote = next(text for text, article in quoted if article.id == MENTION_BAIT_ID)
    assert "@everyone and @here" in bait_quote and "<@&123456789012345678>" in bait_quote
    assert bait_quote in MENTION_BAIT_BODY
    description = embed["description"]
    assert not LIVE_MENTION.search(description), description
    assert not LIVE_LINK.search(description.split("\n— ")[0]), description  # no masked link inside the quote
    assert "**export order**" not in description  # bold markers escaped, so shown literally
    assert "\\*\\*export order\\*\\*" in description
    # The attribution names the article with its markdown shown literally too.
    assert "Community \\*Digest\\*" in description
    assert "Moderators ping @\u200beveryone about the Mythos 5 shutdown" in description
    assert_no_pings(bot_messages(env))
    assert env.fake.errors == []
