"""Building the client: intents, mentions, sharding, extensions, errors; no connection to Discord."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord
import pytest
from discord import app_commands

from bot.config import DiscordSettings, PathSettings, Settings
from bot.db import Database
from bot.discord.client import DirectiveBot, build_intents, find_extensions, run_bot
from bot.discord.replies import GENERIC_ERROR, report_error, user_message
from bot.errors import ConfigError, InvalidQuestion, RebuildInProgress


def make_settings(tmp_path: Path, **discord_settings: Any) -> Settings:
    return Settings(
        paths=PathSettings(data_dir=tmp_path),
        discord=DiscordSettings(**discord_settings),
    )


@pytest.fixture
def make_bot(tmp_path: Path) -> Iterator[Any]:
    made: list[DirectiveBot] = []

    def factory(**discord_settings: Any) -> DirectiveBot:
        settings = make_settings(tmp_path, **discord_settings)
        bot = DirectiveBot(settings, MagicMock(), db=Database(tmp_path / f"{len(made)}.sqlite3"))
        made.append(bot)
        return bot

    yield factory
    for bot in made:
        bot._shutdown_pools()
        bot.db.close()


def test_intents_without_mention_replies_are_guilds_only(tmp_path: Path) -> None:
    intents = build_intents(make_settings(tmp_path, mention_replies=False))
    assert intents.guilds and not intents.message_content and not intents.guild_messages
    assert not intents.members and not intents.presences


def test_intents_with_mention_replies_add_message_content(tmp_path: Path) -> None:
    intents = build_intents(make_settings(tmp_path, mention_replies=True))
    assert intents.guilds and intents.guild_messages and intents.message_content


def test_bot_pings_nobody_by_default(make_bot: Any) -> None:
    mentions = make_bot().allowed_mentions
    assert mentions is not None
    assert mentions.to_dict() == discord.AllowedMentions.none().to_dict()


def test_shards_come_from_settings(make_bot: Any) -> None:
    bot = make_bot(shard_count=4, shard_ids=(0, 2))
    assert bot.shard_count == 4 and bot.shard_ids == [0, 2]


def test_shard_ids_without_a_count_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        DirectiveBot(make_settings(tmp_path, shard_ids=(0,)), MagicMock(), db=MagicMock())


def test_worker_pool_size_comes_from_settings(make_bot: Any) -> None:
    assert make_bot(workers=3).executor._max_workers == 3


def test_two_bots_share_no_state(make_bot: Any) -> None:
    first, second = make_bot(), make_bot()
    assert first.limiter is not second.limiter and first.bot_threads is not second.bot_threads
    assert first.tree is not second.tree


def test_every_cog_module_is_found() -> None:
    assert {
        "bot.discord.cogs.ask",
        "bot.discord.cogs.sources",
        "bot.discord.cogs.about",
    } <= set(find_extensions())


@pytest.mark.asyncio
async def test_run_blocking_runs_off_the_event_loop_thread(make_bot: Any) -> None:
    bot = make_bot()
    loop_thread = threading.get_ident()
    assert await bot.run_blocking(threading.get_ident) != loop_thread
    assert await bot.run_db(threading.get_ident) != loop_thread


@pytest.mark.asyncio
async def test_cogs_register_the_commands(make_bot: Any) -> None:
    bot = make_bot()
    for name in find_extensions():
        await bot.load_extension(name)
    names = {command.name for command in bot.tree.get_commands()}
    assert {"ask", "sources", "about"} <= names
    assert bot.tree.get_command("Find sources", type=discord.AppCommandType.message) is not None


@pytest.mark.asyncio
async def test_missing_token_is_a_one_line_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    with pytest.raises(ConfigError) as caught:
        await run_bot(make_settings(tmp_path), service=MagicMock())
    assert "DISCORD_TOKEN" in str(caught.value) and "\n" not in str(caught.value)


# -- errors shown to users ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (InvalidQuestion("The question is empty."), "The question is empty."),
        (
            RebuildInProgress("A rebuild is already running."),
            "A rebuild is already running.",
        ),
        (
            app_commands.CheckFailure("Only moderators can do that."),
            "Only moderators can do that.",
        ),
        (
            app_commands.NoPrivateMessage(),
            "This command cannot be used in direct messages.",
        ),
    ],
)
def test_expected_errors_become_their_own_one_line_message(error: Exception, expected: str) -> None:
    assert user_message(error) == expected


def test_directive_error_wrapped_by_the_command_is_unwrapped() -> None:
    @app_commands.command(name="ask", description="ask")
    async def command(interaction: discord.Interaction) -> None: ...

    wrapped = app_commands.CommandInvokeError(command, InvalidQuestion("Too long."))
    assert user_message(wrapped) == "Too long."


@pytest.mark.asyncio
async def test_bug_is_logged_and_shown_as_a_generic_private_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    interaction = MagicMock(spec_set=discord.Interaction)
    interaction.response = MagicMock(spec_set=discord.InteractionResponse)
    interaction.response.is_done.return_value = False
    interaction.response.send_message = AsyncMock()
    try:
        raise KeyError("secret internals")
    except KeyError as exc:
        await report_error(interaction, exc, where="/ask")
    kwargs = interaction.response.send_message.await_args.kwargs
    assert kwargs["content"] == GENERIC_ERROR and kwargs["ephemeral"] is True
    assert "secret internals" not in kwargs["content"]
    assert any(record.exc_info for record in caplog.records)


@pytest.mark.asyncio
async def test_reply_after_a_deferral_goes_through_the_followup() -> None:
    interaction = MagicMock(spec_set=discord.Interaction)
    interaction.response = MagicMock(spec_set=discord.InteractionResponse)
    interaction.response.is_done.return_value = True
    interaction.followup = MagicMock(spec_set=discord.Webhook)
    interaction.followup.send = AsyncMock()
    await report_error(interaction, InvalidQuestion("Nope."), where="/ask")
    interaction.followup.send.assert_awaited_once()
    assert interaction.followup.send.await_args.kwargs["ephemeral"] is True


def test_shutting_the_pools_twice_is_harmless(make_bot: Any) -> None:
    bot = make_bot()
    bot._shutdown_pools()
    bot._shutdown_pools()
    assert bot.executor._shutdown


async def test_answers_older_than_the_setting_are_deleted(make_bot: Any) -> None:
    from tests.test_db import make_answer

    bot = make_bot(answers_kept_days=30)
    now = dt.datetime.now(dt.UTC)
    old = bot.db.save_answer(make_answer(), guild_id=1, channel_id=2, user_id=3, when=now - dt.timedelta(days=31))
    new = bot.db.save_answer(make_answer(), guild_id=1, channel_id=2, user_id=3, when=now - dt.timedelta(days=29))
    assert await bot.prune_answers_once() == 1
    assert bot.db.load_answer(old) is None and bot.db.load_answer(new) is not None
