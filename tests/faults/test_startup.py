"""Start-up without network, with Discord failing, with a bad token: one line, retries logged one line each."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Callable

import discord
import pytest
from aiohttp import web

import bot.discord.startup as startup
from bot.config import Settings
from bot.discord.client import run_bot
from bot.errors import ConfigError, ConnectionFailed


class NoService:
    """run_bot never reaches the service when log-in fails."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "ATTEMPTS", 3)
    monkeypatch.setattr(startup, "FIRST_DELAY_SECONDS", 0.01)
    monkeypatch.setenv("DISCORD_TOKEN", "MTIz.not-a-real-token")


@pytest.fixture
def api_base(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    def point(base: str) -> None:
        monkeypatch.setattr(discord.http.Route, "BASE", base)

    return point


@pytest.fixture
async def fake_api(api_base: Callable[[str], None]) -> AsyncIterator[Callable[[int], web.Application]]:
    """A local HTTP server answering every request with the status given."""
    runners: list[web.AppRunner] = []

    async def serve(status: int) -> None:
        async def answer(_request: web.Request) -> web.Response:
            return web.json_response({"message": "fault", "code": 0}, status=status)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        api_base(f"http://127.0.0.1:{port}/api/v10")

    yield serve  # type: ignore[misc]
    for runner in runners:
        await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def retry_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bot.discord.startup"]


async def test_no_network_is_retried_then_one_line(
    tmp_settings: Settings, quick_retries: None, api_base, caplog: pytest.LogCaptureFixture
) -> None:
    api_base(f"http://127.0.0.1:{closed_port()}/api/v10")
    caplog.set_level(logging.WARNING, logger="bot.discord.startup")
    with pytest.raises(ConnectionFailed, match="after 3 attempt") as caught:
        await run_bot(tmp_settings, service=NoService(tmp_settings))  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)
    lines = retry_lines(caplog)
    assert len(lines) == 2
    assert all("could not log in" in line and "\n" not in line for line in lines)
    assert "not-a-real-token" not in " ".join(lines) + str(caught.value)


async def test_a_discord_server_error_is_retried_then_one_line(
    tmp_settings: Settings, quick_retries: None, fake_api, caplog: pytest.LogCaptureFixture
) -> None:
    await fake_api(503)
    caplog.set_level(logging.WARNING, logger="bot.discord.startup")
    with pytest.raises(ConnectionFailed, match="Discord answered 503"):
        await run_bot(tmp_settings, service=NoService(tmp_settings))  # type: ignore[arg-type]
    assert len(retry_lines(caplog)) == 2


async def test_an_invalid_token_is_one_line_and_not_retried(
    tmp_settings: Settings, quick_retries: None, fake_api, caplog: pytest.LogCaptureFixture
) -> None:
    await fake_api(401)
    caplog.set_level(logging.WARNING, logger="bot.discord.startup")
    with pytest.raises(ConfigError, match="Discord rejected DISCORD_TOKEN"):
        await run_bot(tmp_settings, service=NoService(tmp_settings))  # type: ignore[arg-type]
    assert retry_lines(caplog) == []
