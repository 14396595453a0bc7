"""The fake Discord: the front tests drive (state setup, queries, lifecycle)."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from tests.discord.fake_discord.constants import (
    API_PREFIX,
    DISCORD_EPOCH_MS,
    TEST_TOKEN_PREFIX,
    ChannelType,
    Intent,
    Perm,
)
from tests.discord.fake_discord.errors import FakeDiscordTimeout
from tests.discord.fake_discord.gateway import (
    GatewayConnection,
    GatewayMixin,
    GatewaySession,
)
from tests.discord.fake_discord.handlers import RestHandlersMixin
from tests.discord.fake_discord.interactions import InteractionsMixin
from tests.discord.fake_discord.messages import MessagesMixin
from tests.discord.fake_discord.rest import (
    RestServerMixin,
    _Route,
)
from tests.discord.fake_discord.state import (
    ErrorRecord,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    InteractionRecord,
    RateLimitRule,
    RequestRecord,
    StandardGuild,
    _id_of,
)
from tests.discord.fake_discord.validation import ValidationMixin

log = logging.getLogger("tests.fake_discord")


class FakeDiscord(GatewayMixin, RestServerMixin, ValidationMixin, MessagesMixin, InteractionsMixin, RestHandlersMixin):
    """The fake Discord server plus a test-side API to drive it.

    Use as ``async with FakeDiscord() as fake: ...`` (starts on a free port of
    127.0.0.1 and stops on exit).
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        bot_name: str = "TestBot",
        shard_count: int = 1,
        heartbeat_interval: float = 0.3,
        interaction_deadline: float = 3.0,
        followup_ttl: float = 15 * 60.0,
        allowed_privileged_intents: int = Intent.PRIVILEGED,
        default_timeout: float = 5.0,
        host: str = "127.0.0.1",
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the fake Discord only listens on loopback")
        if token is None:
            token = TEST_TOKEN_PREFIX + secrets.token_urlsafe(24)
        if not token.startswith(TEST_TOKEN_PREFIX):
            raise ValueError(f"the fake only accepts test tokens starting with {TEST_TOKEN_PREFIX!r}")
        self.token = token
        self.host = host
        self.port: int | None = None
        self.shard_count = shard_count
        self.heartbeat_interval = heartbeat_interval
        self.interaction_deadline = interaction_deadline
        self.followup_ttl = followup_ttl
        self.allowed_privileged_intents = allowed_privileged_intents
        self.default_timeout = default_timeout

        self._last_ms = 0
        self._inc = 0
        self._clock_offset = 0.0
        self._waiters: set = set()

        self.app_id = self._snowflake()
        self.bot_user = FakeUser(self.app_id, bot_name, bot=True)
        self.app_owner = FakeUser(self._snowflake(), "app-owner")

        self.users: dict[int, FakeUser] = {self.bot_user.id: self.bot_user, self.app_owner.id: self.app_owner}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, FakeMessage] = {}
        self.attachment_blobs: dict[int, bytes] = {}
        self.global_commands: dict[int, dict] = {}
        self.guild_commands: dict[int, dict[int, dict]] = {}
        self.command_puts: list[tuple[int | None, list[str]]] = []
        self.interactions: list[InteractionRecord] = []
        self._interactions_by_id: dict[int, InteractionRecord] = {}
        self._interactions_by_token: dict[str, InteractionRecord] = {}

        self.requests: list[RequestRecord] = []
        self.errors: list[ErrorRecord] = []
        self.unknown_routes: list[tuple[str, str]] = []
        self.rate_limits: list[RateLimitRule] = []
        self.typing: list[tuple[int, float]] = []
        self.dispatch_log: list[tuple[str, str, int, Any]] = []  # (session id, event, seq, data)

        self.sessions: dict[str, GatewaySession] = {}
        self.connections: list[GatewayConnection] = []
        self.identify_count = 0
        self.resume_count = 0
        self.ready_count = 0
        self._hb_window_start = 0.0

        self.default_channel: FakeChannel | None = None
        self.default_user: FakeUser | None = None

        self._routes: list[_Route] = []
        self._runner: web.AppRunner | None = None
        self._register_routes()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> FakeDiscord:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("GET", "/", self._gateway_handler)
        app.router.add_route("GET", "/resume/", self._gateway_handler)
        app.router.add_route("GET", "/attachments/{channel_id}/{attachment_id}/{filename}", self._attachment_handler)
        app.router.add_route("*", "/{tail:.*}", self._http_handler)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("fake discord listening on %s", self.base_url)
        return self

    async def stop(self, timeout: float = 5.0) -> None:
        """Close every gateway connection (1001) and stop the HTTP server."""
        if self._runner is None:
            return
        conns = [c for c in self.connections if not c.closed]
        if conns:
            await asyncio.wait(
                [asyncio.create_task(c.close(1001, "fake discord shutting down")) for c in conns], timeout=timeout
            )
        try:
            await asyncio.wait_for(self._runner.cleanup(), timeout=timeout)
        except TimeoutError:
            log.warning("fake discord cleanup timed out")
        self._runner = None
        for f in list(self._waiters):
            if not f.done():
                f.cancel()

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    @property
    def resume_gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/resume/"

    # ------------------------------------------------------------------ utilities
    def _now(self) -> float:
        return time.monotonic() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Pretend ``seconds`` passed (interaction deadlines, webhook token expiry)."""
        self._clock_offset += seconds

    def _snowflake(self, *, shard: tuple[int, int] | None = None) -> int:
        while True:
            ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
            if ms <= self._last_ms:
                ms = self._last_ms
                self._inc += 1
                if self._inc > 0xFFF:
                    ms += 1
                    self._inc = 0
            else:
                self._inc = 0
            self._last_ms = ms
            sf = (ms << 22) | (1 << 17) | self._inc
            if shard is None or (sf >> 22) % shard[1] == shard[0]:
                return sf
            self._last_ms += 1
            self._inc = -1

    def _notify(self) -> None:
        for f in list(self._waiters):
            if not f.done():
                f.set_result(None)

    async def wait_until(
        self, check: Callable[[], Any], *, timeout: float | None = None, what: str | Callable[[], str] = "condition"
    ) -> Any:
        """Wait until ``check()`` returns something truthy (re-evaluated on every state change)."""
        timeout = self.default_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                desc = what() if callable(what) else what
                raise FakeDiscordTimeout(f"timed out after {timeout:.2f}s waiting for {desc}")
            # re-check periodically as well: some conditions depend on the clock
            await self.next_change(min(remaining, 0.05))

    async def next_change(self, timeout: float) -> None:
        """Return at the next state change, or after ``timeout`` seconds: one wake-up for a caller that
        watches many things at once (a burst of hundreds of interactions) instead of one waiter each."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait([fut], timeout=timeout)
        finally:
            self._waiters.discard(fut)

    def mention(self, target: Any) -> str:
        if isinstance(target, FakeRole):
            return target.mention
        if isinstance(target, FakeChannel):
            return target.mention
        return f"<@{_id_of(target)}>"

    # ------------------------------------------------------------------ permissions
    def compute_permissions(
        self, guild: FakeGuild, member: FakeMember | FakeUser | int, channel: FakeChannel | None = None
    ) -> int:
        uid = _id_of(member)
        m = guild.members.get(uid)
        if m is None:
            return 0
        if uid == guild.owner_id:
            return Perm.ALL
        perms = guild.everyone.permissions
        for rid in m.roles:
            role = guild.roles.get(rid)
            if role:
                perms |= role.permissions
        if perms & Perm.ADMINISTRATOR:
            return Perm.ALL
        if channel is None:
            return perms
        ch = channel
        if ch.is_thread and ch.parent_id:
            ch = self.channels.get(ch.parent_id, ch)
        ows = {(int(o["id"]), int(o["type"])): o for o in ch.overwrites}
        o = ows.get((guild.id, 0))
        if o:
            perms = (perms & ~int(o.get("deny", 0))) | int(o.get("allow", 0))
        allow = deny = 0
        for rid in m.roles:
            o = ows.get((rid, 0))
            if o:
                allow |= int(o.get("allow", 0))
                deny |= int(o.get("deny", 0))
        perms = (perms & ~deny) | allow
        o = ows.get((uid, 1))
        if o:
            perms = (perms & ~int(o.get("deny", 0))) | int(o.get("allow", 0))
        if not perms & Perm.VIEW_CHANNEL:
            return 0
        return perms

    # ------------------------------------------------------------------ state setup
    async def create_user(
        self, username: str, *, bot: bool = False, global_name: str | None = None, locale: str = "en-US"
    ) -> FakeUser:
        user = FakeUser(self._snowflake(), username, bot=bot, global_name=global_name, locale=locale)
        self.users[user.id] = user
        return user

    async def create_guild(
        self,
        name: str = "Test Guild",
        *,
        owner: FakeUser | None = None,
        shard_id: int | None = None,
        bot_permissions: int = Perm.BOT_DEFAULT,
        everyone_permissions: int = Perm.EVERYONE_DEFAULT,
        locale: str = "en-US",
    ) -> FakeGuild:
        """Create a guild the bot is in.  ``shard_id`` picks an id that lands on that shard."""
        if owner is None:
            owner = await self.create_user(f"{name.lower().replace(' ', '-')}-owner")
        gid = self._snowflake(shard=(shard_id, self.shard_count) if shard_id is not None else None)
        guild = FakeGuild(gid, name, owner.id, locale=locale)
        guild.roles[gid] = FakeRole(gid, gid, "@everyone", everyone_permissions, position=0)
        bot_role = FakeRole(
            self._snowflake(),
            gid,
            self.bot_user.username,
            bot_permissions,
            position=1,
            managed=True,
            bot_id=self.bot_user.id,
        )
        guild.roles[bot_role.id] = bot_role
        guild.members[owner.id] = FakeMember(gid, owner)
        guild.members[self.bot_user.id] = FakeMember(gid, self.bot_user, [bot_role.id])
        self.guilds[gid] = guild
        await self._dispatch_guild_create(guild)
        self._notify()
        return guild

    async def create_role(
        self,
        guild: FakeGuild,
        name: str,
        permissions: int = 0,
        *,
        mentionable: bool = False,
        hoist: bool = False,
        color: int = 0,
    ) -> FakeRole:
        position = max(r.position for r in guild.roles.values()) + 1
        role = FakeRole(
            self._snowflake(),
            guild.id,
            name,
            permissions,
            position=position,
            mentionable=mentionable,
            hoist=hoist,
            color=color,
        )
        guild.roles[role.id] = role
        await self._dispatch(
            "GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.to_payload()}, guild_id=guild.id
        )
        return role

    async def add_member(
        self, guild: FakeGuild, user: FakeUser, roles: Iterable[FakeRole] = (), nick: str | None = None
    ) -> FakeMember:
        member = FakeMember(guild.id, user, [_id_of(r) for r in roles], nick=nick)
        guild.members[user.id] = member
        payload = member.to_payload()
        payload["guild_id"] = str(guild.id)
        await self._dispatch("GUILD_MEMBER_ADD", payload, guild_id=guild.id)
        return member

    async def set_member_roles(self, guild: FakeGuild, user: Any, roles: Iterable[FakeRole]) -> FakeMember:
        member = guild.members[_id_of(user)]
        member.roles = [_id_of(r) for r in roles]
        payload = member.to_payload()
        payload["guild_id"] = str(guild.id)
        await self._dispatch("GUILD_MEMBER_UPDATE", payload, guild_id=guild.id)
        return member

    async def create_channel(
        self,
        guild: FakeGuild,
        name: str,
        *,
        type: int = ChannelType.GUILD_TEXT,
        parent: FakeChannel | None = None,
        topic: str | None = None,
        overwrites: list[dict] | None = None,
    ) -> FakeChannel:
        position = len([c for c in guild.channels.values() if not c.is_thread])
        ch = FakeChannel(
            self._snowflake(),
            type,
            name,
            guild.id,
            position=position,
            parent_id=parent.id if parent else None,
            topic=topic,
            overwrites=list(overwrites or []),
        )
        guild.channels[ch.id] = ch
        self.channels[ch.id] = ch
        await self._dispatch("CHANNEL_CREATE", ch.to_payload(), guild_id=guild.id)
        return ch

    async def set_channel_overwrite(
        self, channel: FakeChannel, target: FakeRole | FakeUser | FakeMember, *, allow: int = 0, deny: int = 0
    ) -> None:
        otype = 0 if isinstance(target, FakeRole) else 1
        tid = _id_of(target)
        channel.overwrites = [o for o in channel.overwrites if int(o["id"]) != tid]
        channel.overwrites.append({"id": str(tid), "type": otype, "allow": str(allow), "deny": str(deny)})
        await self._dispatch("CHANNEL_UPDATE", channel.to_payload(), guild_id=channel.guild_id)

    async def create_thread(
        self,
        channel: FakeChannel,
        name: str,
        *,
        owner: FakeUser | None = None,
        starter_message: FakeMessage | None = None,
        private: bool = False,
    ) -> FakeChannel:
        """A user (default: ``default_user``, else the bot) creates a thread (dispatches THREAD_CREATE)."""
        owner = owner or self.default_user or self.bot_user
        ttype = ChannelType.PRIVATE_THREAD if private else ChannelType.PUBLIC_THREAD
        tid = starter_message.id if starter_message is not None else self._snowflake()
        return await self._make_thread(channel, name, ttype, owner, tid, starter_message)

    async def create_dm(self, user: FakeUser) -> FakeChannel:
        for ch in self.channels.values():
            if ch.type == ChannelType.DM and ch.recipients and ch.recipients[0].id == user.id:
                return ch
        ch = FakeChannel(self._snowflake(), ChannelType.DM, "", None, recipients=[user])
        self.channels[ch.id] = ch
        return ch

    async def create_standard_guild(self, name: str = "Test Guild") -> StandardGuild:
        """Guild + #general + a moderator (Manage Guild/Messages) + a plain member.

        Also sets ``fake.default_channel`` / ``fake.default_user`` (the plain member).
        """
        owner = await self.create_user("owner")
        guild = await self.create_guild(name, owner=owner)
        channel = await self.create_channel(guild, "general")
        mod_role = await self.create_role(guild, "Moderator", Perm.MANAGE_GUILD | Perm.MANAGE_MESSAGES)
        moderator = await self.create_user("moderator")
        member = await self.create_user("member")
        await self.add_member(guild, moderator, [mod_role])
        await self.add_member(guild, member)
        self.default_channel = channel
        self.default_user = member
        return StandardGuild(guild, channel, owner, moderator, member, mod_role, guild.members[self.bot_user.id])

    # ------------------------------------------------------------------ queries
    def channel_messages(
        self, channel: Any, *, include_ephemeral: bool = False, include_deleted: bool = False
    ) -> list[FakeMessage]:
        cid = _id_of(channel)
        return [
            m
            for m in self.messages.values()
            if m.channel_id == cid and (include_ephemeral or not m.ephemeral) and (include_deleted or not m.deleted)
        ]

    def get_message(self, message_id: Any) -> FakeMessage | None:
        return self.messages.get(_id_of(message_id))

    async def wait_for_message(
        self,
        channel: Any,
        predicate: Callable[[FakeMessage], bool] | None = None,
        *,
        author: Any = "bot",
        after: Any = None,
        include_ephemeral: bool = False,
        timeout: float | None = None,
    ) -> FakeMessage:
        """First message in ``channel`` (oldest first) matching everything given.

        ``author``: "bot" (default), None (anyone) or a user.  ``after``: a message or
        id; only newer messages count.
        """
        cid = _id_of(channel)
        after_id = _id_of(after) if after is not None else 0
        author_id = self.bot_user.id if author == "bot" else (None if author is None else _id_of(author))

        def check():
            for m in self.channel_messages(cid, include_ephemeral=include_ephemeral):
                if m.id <= after_id or m.loading:
                    continue
                if author_id is not None and m.author.id != author_id:
                    continue
                if predicate is None or predicate(m):
                    return m
            return None

        return await self.wait_until(check, timeout=timeout, what=f"a message in channel {cid}")

    def registered_commands(self, guild: Any = None) -> list[dict]:
        if guild is None:
            return list(self.global_commands.values())
        return list(self.guild_commands.get(_id_of(guild), {}).values())

    def get_command(self, name: str, guild: Any = None, type: int = 1) -> dict | None:
        for c in self.registered_commands(guild):
            if c["name"] == name and c.get("type", 1) == type:
                return c
        return None

    async def wait_for_commands(
        self, names: Iterable[str], *, guild: Any = None, timeout: float | None = None
    ) -> list[dict]:
        wanted = set(names)
        return await self.wait_until(
            lambda: wanted <= {c["name"] for c in self.registered_commands(guild)} and self.registered_commands(guild),
            timeout=timeout,
            what=f"commands {sorted(wanted)} to be registered",
        )

    def requests_to(self, method: str | None, path_regex: str) -> list[RequestRecord]:
        rx = re.compile(path_regex)
        return [r for r in self.requests if (method is None or r.method == method) and rx.search(r.path)]

    async def wait_for_request(
        self, method: str | None, path_regex: str, *, n: int = 1, timeout: float | None = None
    ) -> list[RequestRecord]:
        return await self.wait_until(
            lambda: (lambda rs: rs if len(rs) >= n else None)(
                [r for r in self.requests_to(method, path_regex) if r.status]
            ),
            timeout=timeout,
            what=f"{n} request(s) {method} {path_regex}",
        )

    # ------------------------------------------------------------------ rate limits
    def rate_limit(
        self,
        method: str | None,
        path_regex: str,
        *,
        times: int = 1,
        retry_after: float = 0.2,
        is_global: bool = False,
        via: bool = True,
    ) -> RateLimitRule:
        """The next ``times`` requests matching get a 429 (with ``Via`` unless via=False)."""
        rule = RateLimitRule(
            method.upper() if method else None, re.compile(path_regex), times, retry_after, is_global, via
        )
        self.rate_limits.append(rule)
        return rule
