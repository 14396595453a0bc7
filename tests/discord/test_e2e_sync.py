"""End to end: commands are synced once, not on every start of every process.

Real discord.py against the fake Discord, which records every bulk overwrite (``command_puts``).
"""

from __future__ import annotations

import asyncio
import fcntl

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.discord.client import SYNC_LOCK_FILE, SYNC_STATE_FILE, DirectiveBot

from .e2e_support import bot_settings, start_bot, start_env

pytestmark = pytest.mark.slow


async def test_a_restart_with_unchanged_commands_does_not_sync_again(
    discord_harness, knowledge_service, tmp_path
) -> None:
    env = await start_env(discord_harness, knowledge_service, tmp_path)
    assert len(env.fake.command_puts) == 1
    assert (tmp_path / SYNC_STATE_FILE).is_file()
    await env.restart()
    assert len(env.fake.command_puts) == 1
    assert env.fake.get_command("ask") is not None


async def test_a_changed_command_tree_is_synced_at_start(discord_harness, knowledge_service, tmp_path) -> None:
    env = await start_env(discord_harness, knowledge_service, tmp_path)
    await discord_harness.stop_client(env.bot)
    fewer = DirectiveBot(
        bot_settings(knowledge_service, tmp_path),
        knowledge_service,
        extensions=["bot.discord.cogs.ask", "bot.discord.cogs.about"],
    )
    await discord_harness.start_client(fewer)
    assert len(env.fake.command_puts) == 2
    names = {c["name"] for c in env.fake.registered_commands()}
    assert names == {"ask", "about", "Find sources"}


async def test_a_process_holding_the_sync_lock_keeps_another_from_syncing(
    discord_harness, knowledge_service, tmp_path
) -> None:
    with open(tmp_path / SYNC_LOCK_FILE, "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        bot = DirectiveBot(bot_settings(knowledge_service, tmp_path), knowledge_service)
        await discord_harness.start_client(bot)
    assert discord_harness.fake.command_puts == []


@pytest.mark.fake_discord(shard_count=2)
async def test_a_process_without_shard_0_does_not_sync(discord_harness, knowledge_service, tmp_path) -> None:
    settings = bot_settings(knowledge_service, tmp_path, shard_count=2, shard_ids=(1,))
    bot = DirectiveBot(settings, knowledge_service)
    await discord_harness.start_client(bot)
    assert bot.shard_ids == [1] and bot.is_ready()
    assert discord_harness.fake.command_puts == []


@pytest.mark.fake_discord(shard_count=2)
async def test_the_process_running_shard_0_syncs(discord_harness, knowledge_service, tmp_path) -> None:
    settings = bot_settings(knowledge_service, tmp_path, shard_count=2, shard_ids=(0,))
    await discord_harness.start_client(DirectiveBot(settings, knowledge_service))
    assert len(discord_harness.fake.command_puts) == 1


async def test_the_sync_command_publishes_the_commands_without_the_gateway(
    discord_harness, knowledge_service, tmp_path
) -> None:
    fake = discord_harness.fake
    env = {
        "DISCORD_TOKEN": fake.token,  # the fake's test token; discord.py is redirected to the fake
        "DIRECTIVE_BOT__PATHS__DATA_DIR": str(tmp_path),
        "DIRECTIVE_BOT_CONFIG": None,
    }
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["sync"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("Synced ")
    assert result.output.strip().endswith(" commands to all guilds.")
    assert len(fake.command_puts) == 1 and fake.identify_count == 0
    assert {"ask", "sources", "about"} <= {c["name"] for c in fake.registered_commands()}
    # A bot started afterwards finds the commands already synced.
    await start_bot(discord_harness, knowledge_service, tmp_path)
    assert len(fake.command_puts) == 1


async def test_the_sync_command_forces_a_sync_even_when_nothing_changed(
    discord_harness, knowledge_service, tmp_path
) -> None:
    fake = discord_harness.fake
    await start_env(discord_harness, knowledge_service, tmp_path)
    env = {"DISCORD_TOKEN": fake.token, "DIRECTIVE_BOT__PATHS__DATA_DIR": str(tmp_path), "DIRECTIVE_BOT_CONFIG": None}
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["sync"], env=env)
    assert result.exit_code == 0, result.output
    assert len(fake.command_puts) == 2
