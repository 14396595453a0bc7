"""Fixtures for tests that run a real discord.py client against the fake Discord.

* ``discord_harness`` - a :class:`~tests.discord.harness.DiscordHarness` (``.fake`` is the server);
  discord.py is redirected to the fake for the whole test, every client started
  through the harness is closed at teardown, then the fake stops.
* ``fake_discord`` - the :class:`~tests.discord.fake_discord.FakeDiscord` of that harness.
* ``knowledge_service`` - the real knowledge service over ``knowledge/``, built once per session.
* ``extra_service`` - a real service over a second knowledge base (21 articles, one full of
  mention and markdown bait), sharing the loaded models.

Constructor arguments for the fake come from ``@pytest.mark.fake_discord(**kwargs)``,
e.g. ``@pytest.mark.fake_discord(shard_count=2, heartbeat_interval=0.3)``.
"""

from __future__ import annotations

import pytest
import pytest_asyncio

from bot.service import KnowledgeService

from . import e2e_support
from .harness import fake_discord_env


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fake_discord(**kwargs): keyword arguments for FakeDiscord(...)")


@pytest_asyncio.fixture
async def discord_harness(request: pytest.FixtureRequest):
    marker = request.node.get_closest_marker("fake_discord")
    kwargs = dict(marker.kwargs) if marker else {}
    async with fake_discord_env(**kwargs) as harness:
        yield harness


@pytest_asyncio.fixture
async def fake_discord(discord_harness):
    return discord_harness.fake


@pytest.fixture(scope="session")
def knowledge_service(request: pytest.FixtureRequest) -> KnowledgeService:
    return e2e_support.shared_service(request)


@pytest.fixture(scope="session")
def extra_service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeService:
    return e2e_support.extra_service(request, tmp_path_factory)
