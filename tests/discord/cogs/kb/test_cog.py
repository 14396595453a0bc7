"""The ``/kb`` cog without Discord: rebuilds through the service, who is named, how pages are fetched."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import discord
import pytest

from bot.config import DiscordSettings, PathSettings, Settings, load_settings
from bot.db import Database
from bot.discord.cogs.kb._cog import KnowledgeAdmin, actor_of
from bot.errors import ConfigError, RebuildInProgress
from bot.service import RebuildOutcome, RunningRebuild
from bot.store import BuildReport

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


class FakeService:
    """``rebuild_logged`` runs ``behaviour`` (in the cog's rebuild thread); ``running_rebuild`` is settable."""

    def __init__(self, behaviour: Callable[[], RebuildOutcome]) -> None:
        self.behaviour = behaviour
        self.calls: list[tuple[str, str | None]] = []
        self.running_rebuild: RunningRebuild | None = None

    def rebuild_logged(self, *, started_by: str, name: str | None = None, progress: Any = None) -> RebuildOutcome:
        self.calls.append((started_by, name))
        return self.behaviour()


class FakeBot:
    def __init__(self, tmp_path: Path, service: FakeService) -> None:
        self.settings = Settings(
            paths=PathSettings(knowledge_dir=tmp_path / "knowledge", data_dir=tmp_path),
            discord=DiscordSettings(view_timeout_seconds=5),
        )
        self.db = Database(tmp_path / "kb.sqlite3")
        self.service = service


def user(user_id: int = 7, name: str = "moderator") -> Any:
    member = MagicMock(spec_set=discord.Member)
    member.id = user_id
    member.name = name
    return member


def built() -> RebuildOutcome:
    return RebuildOutcome(
        BuildReport(index_version="new1", previous_version="old1", articles=1, chunks=2, embedded=2, seconds=0.1)
    )


@pytest.fixture
def make_cog(tmp_path: Path) -> Iterator[Callable[[Callable[[], RebuildOutcome]], KnowledgeAdmin]]:
    made: list[KnowledgeAdmin] = []

    def factory(behaviour: Callable[[], RebuildOutcome]) -> KnowledgeAdmin:
        cog = KnowledgeAdmin(FakeBot(tmp_path, FakeService(behaviour)))  # type: ignore[arg-type]
        made.append(cog)
        return cog

    yield factory
    for cog in made:
        cog._work.shutdown()
        cog._builder.shutdown()
        cog.bot.db.close()


async def test_rebuild_runs_through_the_service_naming_the_moderator(make_cog: Any) -> None:
    cog = make_cog(built)
    outcome = await cog.rebuild_index(user(7, "moderator"))
    assert outcome.ok and outcome.report.index_version == "new1"
    assert cog.bot.service.calls == [("discord:moderator (7)", "moderator")]


async def test_rebuild_while_one_runs_here_is_refused_with_who_and_when(make_cog: Any) -> None:
    cog = make_cog(built)
    cog.bot.service.running_rebuild = RunningRebuild("discord:owner (8)", "owner", NOW)
    with pytest.raises(RebuildInProgress, match="started by owner <t:"):
        await cog.rebuild_index(user())
    assert cog.bot.service.calls == []


async def test_rebuild_held_by_another_process_is_passed_on(make_cog: Any) -> None:
    def locked() -> RebuildOutcome:
        raise RebuildInProgress("A rebuild is already running (started by cli at 12:00:00 UTC); wait for it to finish.")

    cog = make_cog(locked)
    with pytest.raises(RebuildInProgress, match="started by cli"):
        await cog.rebuild_index(user())


async def test_a_rebuild_started_here_meanwhile_is_refused_with_who_and_when(make_cog: Any) -> None:
    cog = make_cog(lambda: None)

    def raced() -> RebuildOutcome:
        cog.bot.service.running_rebuild = RunningRebuild("discord:owner (8)", "owner", NOW)
        raise RebuildInProgress("A rebuild is already running (started by discord:owner (8) at 12:00:00 UTC).")

    cog.bot.service.behaviour = raced
    with pytest.raises(RebuildInProgress, match="started by owner <t:"):
        await asyncio.wait_for(cog.rebuild_index(user()), 10)


def test_audit_actor_names_the_discord_user_and_id() -> None:
    assert actor_of(user(42, "alice")) == "discord:alice (42)"


def test_the_cog_fetches_public_addresses_only_unless_given_another_fetcher(make_cog: Any) -> None:
    cog = make_cog(built)
    assert cog.fetch_page == cog._fetch_public
    assert cog.base.fetch_policy().trusted_networks == ()


def test_trusted_networks_cannot_come_from_a_config_file_or_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("fetch:\n  trusted_networks: [127.0.0.0/8]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"Unknown setting fetch\.trusted_networks"):
        load_settings(config, environ={})
    with pytest.raises(ConfigError, match="Unknown setting"):
        load_settings(environ={"DIRECTIVE_BOT__FETCH__TRUSTED_NETWORKS": "127.0.0.0/8"})
