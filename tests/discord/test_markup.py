"""Discord's message markup: finding and removing mentions of the bot, and the other ``<…>`` forms."""

from __future__ import annotations

import pytest

from bot.discord.markup import MARKUP_START, mentions_user, strip_mentions_of, without_discord_markup

BOT_ID = 4242


@pytest.mark.parametrize("content", [f"<@{BOT_ID}> who is affected?", f"who is <@!{BOT_ID}> affected?"])
def test_mention_of_the_bot_is_stripped_from_the_question(content: str) -> None:
    assert mentions_user(content, BOT_ID)
    assert "<@" not in strip_mentions_of(content, BOT_ID)


def test_mention_of_someone_else_is_not_a_question_to_the_bot() -> None:
    assert not mentions_user("<@1234> who is affected?", BOT_ID)


def test_ids_and_timestamps_leave_the_question_and_commands_and_emoji_keep_their_names() -> None:
    text = "<@12> <#34> at <t:1700000000:R> does </ask:56> work <:fable:78>"
    assert without_discord_markup(text) == "at does /ask work :fable:"


@pytest.mark.parametrize("form", ["<@1>", "<@!1>", "<@&1>", "<#1>", "</kb add:1>", "<t:1:R>", "<:e:1>", "<a:e:1>"])
def test_every_angle_form_is_found_at_its_opening_bracket(form: str) -> None:
    assert [m.start() for m in MARKUP_START.finditer(f"x {form}")] == [2]


def test_plain_angle_brackets_are_not_markup() -> None:
    assert MARKUP_START.search("a <b> and 3 < 4") is None
