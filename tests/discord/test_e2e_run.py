"""``directive-bot run``: the start-up mistakes an operator makes get one clear line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.config import load_settings
from bot.discord.client import run_bot
from bot.errors import ConfigError

from .e2e_support import base_settings
from .fake_discord import Intent


def config_with(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "directive-bot.yaml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_run_without_discord_token_is_a_clear_config_error(monkeypatch) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"^DISCORD_TOKEN is not set; export the bot token"):
        await run_bot(base_settings())  # refused before any model is loaded or socket opened


def test_cli_run_without_discord_token_exits_1_with_one_line(monkeypatch) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["run"], env={"DISCORD_TOKEN": None, "DIRECTIVE_BOT_CONFIG": None})
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        "error: DISCORD_TOKEN is not set; export the bot token in the environment and run again."
    ]


@pytest.mark.parametrize(
    "yaml_text, where",
    [
        ("discord:\n  token: abc.def.ghi\n", "discord.token"),
        ("discord:\n  excerpts_per_answer: 3\n  bot_token: abc.def.ghi\n", "discord.bot_token"),
        ("discord_token: abc.def.ghi\n", "discord_token"),
    ],
    ids=["discord.token", "discord.bot_token", "top-level discord_token"],
)
def test_a_token_in_the_config_file_is_refused(tmp_path: Path, yaml_text: str, where: str) -> None:
    path = config_with(tmp_path, yaml_text)
    with pytest.raises(ConfigError, match=rf"holds a secret at {where}; .* DISCORD_TOKEN in the environment"):
        load_settings(path, environ={})


def test_cli_run_with_a_token_in_the_config_file_exits_1_naming_the_key(tmp_path: Path) -> None:
    path = config_with(tmp_path, "discord:\n  token: abc.def.ghi\n")
    result = CliRunner().invoke(cli, ["run", "--config", str(path)], env={"DISCORD_TOKEN": "set-but-irrelevant"})
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: Config file") and "discord.token" in line and "abc.def.ghi" not in line


@pytest.mark.slow
@pytest.mark.fake_discord(allowed_privileged_intents=Intent.PRIVILEGED & ~Intent.MESSAGE_CONTENT)
async def test_run_without_the_message_content_intent_says_how_to_fix_it(
    discord_harness, knowledge_service, tmp_path, monkeypatch
) -> None:
    from .e2e_support import bot_settings

    monkeypatch.setenv("DISCORD_TOKEN", discord_harness.fake.token)  # the fake's test token only
    with pytest.raises(ConfigError, match="Enable the Message Content intent"):
        await run_bot(bot_settings(knowledge_service, tmp_path), service=knowledge_service)
    assert discord_harness.fake.identify_count == 0  # Discord closed the gateway with 4014
