"""The answer buttons (custom ids, votes, More sources, threads), with a mocked interaction."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import discord
import pytest

from bot.config import DiscordSettings, Settings
from bot.db import Database
from bot.discord.cogs.ask._buttons import (
    PERSISTENT_ITEMS,
    MoreSourcesButton,
    OpenThreadButton,
    VoteButton,
    answer_view,
    thread_name,
)
from bot.discord.replies import EXPIRED
from bot.records import Answer, Excerpt, Source
from tests.discord.mock_interactions import make_interaction, sent


class FakeBot:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.settings = Settings(discord=DiscordSettings(excerpts_per_answer=2))

    async def run_db(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with Database(tmp_path / "views.sqlite3") as database:
        yield database


def saved_answer(db: Database, excerpts: int = 5, shown: int = 2) -> str:
    quotes = tuple(
        Excerpt(
            f"Quote {n}.",
            0,
            8,
            1.0,
            Source(f"a{n}", f"T{n}", "P", None, None),
            f"a{n}:0",
        )
        for n in range(excerpts)
    )
    return db.save_answer(
        Answer("Q?", False, quotes, "v1"),
        guild_id=1,
        channel_id=2,
        user_id=3,
        shown=shown,
    )


# -- custom ids -----------------------------------------------------------------------------


def custom_ids(view: discord.ui.View) -> list[str]:
    return [getattr(item, "custom_id", None) or "" for item in view.children]


def test_answer_view_has_more_votes_and_thread() -> None:
    view = answer_view("abc123", more_from=3, allow_thread=True)
    assert custom_ids(view) == [
        "dbot:more:abc123:3",
        "dbot:vote:abc123:up",
        "dbot:vote:abc123:down",
        "dbot:thread:abc123",
    ]
    assert view.timeout is None and view.is_persistent()


def test_answer_view_leaves_out_more_and_thread_when_not_wanted() -> None:
    assert custom_ids(answer_view("abc", more_from=None, allow_thread=False)) == [
        "dbot:vote:abc:up",
        "dbot:vote:abc:down",
    ]


def test_every_custom_id_matches_exactly_one_registered_template() -> None:
    for custom_id in custom_ids(answer_view("a1b2c3d4e5f6", more_from=12, allow_thread=True)):
        matches = [item for item in PERSISTENT_ITEMS if item.__discord_ui_compiled_template__.fullmatch(custom_id)]
        assert len(matches) == 1, custom_id
        assert len(custom_id) <= 100


@pytest.mark.asyncio
@pytest.mark.parametrize(("custom_id", "start"), [("dbot:more:abc:7", 7), ("dbot:more:abc", None)])
async def test_more_sources_reads_its_start_from_the_custom_id(custom_id: str, start: int | None) -> None:
    match = MoreSourcesButton.__discord_ui_compiled_template__.fullmatch(custom_id)
    assert match is not None
    item = await MoreSourcesButton.from_custom_id(make_interaction(), MagicMock(), match)
    assert (item.answer_id, item.start) == ("abc", start)


@pytest.mark.asyncio
@pytest.mark.parametrize(("direction", "vote"), [("up", 1), ("down", -1)])
async def test_vote_button_reads_its_direction(direction: str, vote: int) -> None:
    match = VoteButton.__discord_ui_compiled_template__.fullmatch(f"dbot:vote:abc:{direction}")
    assert match is not None
    item = await VoteButton.from_custom_id(make_interaction(), MagicMock(), match)
    assert item.vote == vote


def test_thread_button_template_round_trips() -> None:
    assert OpenThreadButton("abc").custom_id == "dbot:thread:abc"


def test_thread_name_is_one_line_within_discords_limit() -> None:
    name = thread_name("why\n" * 100)
    assert len(name) <= 100 and "\n" not in name
    assert thread_name("   ") == "Follow-up questions"


# -- callbacks ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_first_vote_is_thanked_privately(db: Database) -> None:
    interaction = make_interaction(FakeBot(db))
    await VoteButton(saved_answer(db), "up").callback(interaction)
    kwargs = sent(interaction)
    assert kwargs["content"] == "Thanks, recorded." and kwargs["ephemeral"] is True


@pytest.mark.asyncio
async def test_switching_vote_says_it_changed(db: Database) -> None:
    answer_id = saved_answer(db)
    await VoteButton(answer_id, "up").callback(make_interaction(FakeBot(db)))
    interaction = make_interaction(FakeBot(db))
    await VoteButton(answer_id, "down").callback(interaction)
    assert sent(interaction)["content"] == "Changed your vote."


@pytest.mark.asyncio
@pytest.mark.parametrize("item", [VoteButton("gone", "up"), MoreSourcesButton("gone", 2)])
async def test_buttons_on_a_forgotten_answer_say_it_expired(db: Database, item: discord.ui.DynamicItem[Any]) -> None:
    interaction = make_interaction(FakeBot(db))
    await item.callback(interaction)
    kwargs = sent(interaction)
    assert kwargs["content"] == EXPIRED and kwargs["ephemeral"] is True


@pytest.mark.asyncio
async def test_more_sources_shows_the_next_page_with_a_further_button(
    db: Database,
) -> None:
    interaction = make_interaction(FakeBot(db))
    await MoreSourcesButton(saved_answer(db, excerpts=5, shown=2), 2).callback(interaction)
    kwargs = sent(interaction)
    assert "Quote 2." in kwargs["embed"].description and "Quote 4." not in kwargs["embed"].description
    (button,) = kwargs["view"].children
    assert re.fullmatch(r"dbot:more:\w+:4", button.custom_id)


@pytest.mark.asyncio
async def test_more_sources_without_a_start_continues_after_the_shown_ones(
    db: Database,
) -> None:
    interaction = make_interaction(FakeBot(db))
    await MoreSourcesButton(saved_answer(db, excerpts=3, shown=2)).callback(interaction)
    kwargs = sent(interaction)
    assert "Quote 2." in kwargs["embed"].description and "Quote 1." not in kwargs["embed"].description
    assert "view" not in kwargs


@pytest.mark.asyncio
async def test_unexpected_error_in_a_button_is_a_private_generic_line(
    db: Database,
) -> None:
    bot = FakeBot(db)
    db.close()
    interaction = make_interaction(bot)
    await VoteButton("abc", "up").callback(interaction)
    assert sent(interaction)["content"] == "Something went wrong; the error was logged."


# -- views bound to their invoker -----------------------------------------------------------
