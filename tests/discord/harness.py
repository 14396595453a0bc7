"""Glue between the fake Discord and a real discord.py client.

* :func:`redirect_discord_py` - test-only switch that points discord.py's REST
  base (also used by webhooks / interaction followups) and gateway at a
  :class:`FakeDiscord`.  It refuses any token that is not the fake's test token.
* :class:`DiscordHarness` - starts a ``discord.Client``/``commands.Bot`` against the
  fake, waits until it is ready and closes it cleanly.
* :func:`fake_discord_env` - async context manager doing all of the above.

Typical test (fixtures from ``tests/discord/conftest.py``)::

    @pytest.mark.asyncio
    async def test_ask(discord_harness):
        fake = discord_harness.fake
        sg = await fake.create_standard_guild()          # guild, #general, moderator, member
        bot = build_my_bot()                             # any discord.Client / commands.Bot
        await discord_harness.start_client(bot)          # login, gateway, ready (setup_hook syncs)
        rec = await fake.invoke_slash("ask", {"question": "hi"}, user=sg.member)
        resp = await rec.wait_response(timeout=3)        # 5 = deferred
        [answer] = await rec.wait_followups(1, timeout=10)
        assert answer.allowed_mentions == {"parse": []}
        assert fake.unknown_routes == []
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl

from .fake_discord import TEST_TOKEN_PREFIX, FakeDiscord, FakeDiscordTimeout

log = logging.getLogger("tests.fake_discord.harness")

_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_active_redirects: list[FakeDiscord] = []


@contextlib.contextmanager
def redirect_discord_py(fake: FakeDiscord, token: str | None = None) -> Iterator[FakeDiscord]:
    """Point discord.py (REST, webhooks, gateway) at ``fake`` for the duration of the block.

    Raises ``RuntimeError`` unless ``token`` (default: the fake's) is the fake's test
    token, so a real bot token can never be used while redirected, and unless the
    fake is started and bound to loopback.
    """
    token = fake.token if token is None else token
    if not isinstance(token, str) or not token.startswith(TEST_TOKEN_PREFIX) or token != fake.token:
        raise RuntimeError(
            f"redirect_discord_py only works with the fake's own test token (must start with {TEST_TOKEN_PREFIX!r})"
        )
    if fake.port is None:
        raise RuntimeError("start the FakeDiscord before redirecting discord.py to it")
    if fake.host not in _LOOPBACK:
        raise RuntimeError("the fake Discord must listen on loopback")
    route_cls = discord.http.Route
    ws_cls = discord.gateway.DiscordWebSocket
    old_base = route_cls.__dict__.get("BASE", route_cls.BASE)
    old_gateway = ws_cls.__dict__.get("DEFAULT_GATEWAY", ws_cls.DEFAULT_GATEWAY)
    route_cls.BASE = fake.api_base
    ws_cls.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    _active_redirects.append(fake)
    try:
        yield fake
    finally:
        _active_redirects.remove(fake)
        route_cls.BASE = old_base
        ws_cls.DEFAULT_GATEWAY = old_gateway


async def _no_identify_wait(shard_id: int | None, *, initial: bool = False) -> None:
    return None


class DiscordHarness:
    """Runs discord.py clients against a started (and redirected-to) :class:`FakeDiscord`."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self._clients: list[tuple[discord.Client, asyncio.Task[None]]] = []

    def _check_redirect(self) -> None:
        if self.fake not in _active_redirects:
            raise RuntimeError("discord.py is not redirected to this fake: use redirect_discord_py(fake)")

    async def start_client(
        self,
        client: discord.Client,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        wait_ready: bool = True,
        guild_ready_timeout: float | None = 0.05,
        fast_identify: bool = True,
    ) -> discord.Client:
        """``client.start(token)`` as a task; by default waits until ``client.is_ready()``.

        ``guild_ready_timeout`` shortens discord.py's wait after the last GUILD_CREATE
        (default 2 s) and ``fast_identify`` drops its 5 s pause between shard
        IDENTIFYs.  Both only touch this client instance.
        """
        self._check_redirect()
        token = self.fake.token if token is None else token
        if token != self.fake.token:
            raise RuntimeError("refusing to start a client with a token other than the fake's test token")
        if guild_ready_timeout is not None:
            client._connection.guild_ready_timeout = guild_ready_timeout
        if fast_identify:
            client.before_identify_hook = _no_identify_wait  # type: ignore[method-assign]
        task = asyncio.create_task(client.start(token), name=f"discord-client-{id(client)}")
        self._clients.append((client, task))
        if wait_ready:
            await self.wait_ready(client, timeout=timeout)
        return client

    def _task_for(self, client: discord.Client) -> asyncio.Task[None]:
        for c, t in self._clients:
            if c is client:
                return t
        raise KeyError("client was not started by this harness")

    async def wait_ready(self, client: discord.Client, *, timeout: float = 10.0) -> None:
        task = self._task_for(client)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not client.is_ready():
            if task.done():
                exc = task.exception() if not task.cancelled() else None
                raise RuntimeError(f"client stopped before becoming ready: {exc!r}") from exc
            if loop.time() > deadline:
                raise FakeDiscordTimeout(
                    f"client not ready after {timeout}s (unknown routes: {self.fake.unknown_routes}, "
                    f"errors: {[(e.method, e.path, e.status, e.code) for e in self.fake.errors]})"
                )
            await asyncio.sleep(0.01)

    async def stop_client(self, client: discord.Client, *, timeout: float = 5.0) -> None:
        """Close the client and wait for its ``start()`` task to end (cancelled after ``timeout``)."""
        task = self._task_for(client)
        try:
            if not client.is_closed():
                await asyncio.wait_for(client.close(), timeout=timeout)
        except TimeoutError:
            log.warning("client.close() timed out")
        except Exception:  # pragma: no cover - closing must never fail a test teardown
            log.exception("client.close() raised")
        if not task.done():
            done, _ = await asyncio.wait([task], timeout=timeout)
            if not done:
                task.cancel()
                await asyncio.wait([task], timeout=1.0)
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.info("client task ended with %r", task.exception())
        self._clients = [(c, t) for c, t in self._clients if c is not client]

    async def aclose(self, timeout: float = 5.0) -> None:
        for client, _ in list(reversed(self._clients)):
            await self.stop_client(client, timeout=timeout)

    def client_error(self, client: discord.Client) -> BaseException | None:
        """The exception that ended ``client.start()``, if it ended with one."""
        task = self._task_for(client)
        if task.done() and not task.cancelled():
            return task.exception()
        return None


@contextlib.asynccontextmanager
async def fake_discord_env(**fake_kwargs: Any) -> AsyncIterator[DiscordHarness]:
    """Start a FakeDiscord, redirect discord.py to it, yield a :class:`DiscordHarness`;
    on exit close every client started through it, then stop the fake."""
    fake = FakeDiscord(**fake_kwargs)
    await fake.start()
    try:
        with redirect_discord_py(fake):
            harness = DiscordHarness(fake)
            try:
                yield harness
            finally:
                await harness.aclose()
    finally:
        await fake.stop()
