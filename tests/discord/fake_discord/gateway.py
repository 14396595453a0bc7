"""The gateway websocket: sessions, connections, dispatch and heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import zlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from tests.discord.fake_discord.constants import (
    _EVENT_INTENTS_DM,
    _EVENT_INTENTS_GUILD,
    APP_FLAG_FOR_INTENT,
    Intent,
)
from tests.discord.fake_discord.state import (
    FakeGuild,
    FakeMessage,
)

if TYPE_CHECKING:
    from tests.discord.fake_discord.fake import FakeDiscord

try:  # zstd-stream is only requested by discord.py when a zstd library is importable
    import zstandard as _zstd  # type: ignore
except ImportError:  # pragma: no cover - depends on the environment
    _zstd = None

log = logging.getLogger("tests.fake_discord")

# --------------------------------------------------------------------------------------
# Gateway
# --------------------------------------------------------------------------------------


class GatewaySession:
    def __init__(self, id: str, shard: tuple[int, int] | None, intents: int) -> None:
        self.id = id
        self.shard = shard
        self.intents = intents
        self.seq = 0
        self.buffer: deque[tuple[int, str, Any]] = deque(maxlen=5000)
        self.conn: GatewayConnection | None = None
        self.invalidated = False
        self.resumes = 0

    def handles_guild(self, guild_id: int | None) -> bool:
        if self.shard is None:
            return True
        shard_id, count = self.shard
        if guild_id is None:
            return shard_id == 0
        return (guild_id >> 22) % count == shard_id

    def has_intent(self, intent: int) -> bool:
        return intent == 0 or bool(self.intents & intent)


class GatewayConnection:
    _ids = 0

    def __init__(self, fake: FakeDiscord, ws: web.WebSocketResponse, path: str, query: dict[str, str]) -> None:
        GatewayConnection._ids += 1
        self.id = GatewayConnection._ids
        self.fake = fake
        self.ws = ws
        self.path = path
        self.query = query
        self.session: GatewaySession | None = None
        self.heartbeats: list[float] = []
        self.lock = asyncio.Lock()
        self.closed = False
        self.server_closed = False
        self.close_code: int | None = None
        self.compression = query.get("compress")
        self._compress: Callable[[bytes], bytes] | None = None
        self.sent: list[dict] = []
        if self.compression == "zlib-stream":
            c = zlib.compressobj()
            self._compress = lambda b: c.compress(b) + c.flush(zlib.Z_SYNC_FLUSH)
        elif self.compression == "zstd-stream":
            if _zstd is None:
                raise ValueError("zstd-stream requested but zstandard is not importable")
            zc = _zstd.ZstdCompressor().compressobj()
            self._compress = lambda b: zc.compress(b) + zc.flush(_zstd.COMPRESSOBJ_FLUSH_BLOCK)
        elif self.compression:
            raise ValueError(f"unsupported compression {self.compression!r}")

    @property
    def shard(self) -> tuple[int, int] | None:
        return self.session.shard if self.session else None

    async def send(self, payload: dict) -> bool:
        if self.closed or self.ws.closed:
            return False
        text = json.dumps(payload, separators=(",", ":"))
        async with self.lock:
            try:
                if self._compress is not None:
                    await self.ws.send_bytes(self._compress(text.encode()))
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError) as exc:
                log.debug("gateway send failed on conn %s: %s", self.id, exc)
                return False
        self.sent.append(payload)
        return True

    async def close(self, code: int, reason: str = "") -> None:
        self.server_closed = True
        if not self.ws.closed:
            with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
                await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()), timeout=2.0)
        self.closed = True


class GatewayMixin:
    """The gateway side of the fake: sessions, dispatch, heartbeats, and controls for tests.

    A part of :class:`FakeDiscord`; it uses the state that class holds.
    """

    # ------------------------------------------------------------------ heartbeat stats
    def heartbeat_gaps(self) -> list[float]:
        """Gaps between consecutive heartbeats of each connection that ended after the last reset."""
        gaps: list[float] = []
        for c in self.connections:
            gaps += [b - a for a, b in zip(c.heartbeats, c.heartbeats[1:], strict=False) if b >= self._hb_window_start]
        return gaps

    @property
    def max_heartbeat_gap(self) -> float:
        """Largest gap between consecutive heartbeats on one connection (since the last reset)."""
        gaps = self.heartbeat_gaps()
        return max(gaps) if gaps else 0.0

    def reset_heartbeat_stats(self) -> None:
        self._hb_window_start = time.monotonic()

    @property
    def heartbeat_count(self) -> int:
        return sum(len([t for t in c.heartbeats if t >= self._hb_window_start]) for c in self.connections)

    async def wait_for_heartbeats(self, n: int, *, timeout: float | None = None) -> None:
        await self.wait_until(
            lambda: self.heartbeat_count >= n, timeout=timeout, what=f"{n} heartbeats (got {self.heartbeat_count})"
        )

    # ------------------------------------------------------------------ gateway controls
    def live_connections(self, shard_id: int | None = None) -> list[GatewayConnection]:
        return [
            c
            for c in self.connections
            if not c.closed and c.session is not None and (shard_id is None or (c.shard or (0, 1))[0] == shard_id)
        ]

    async def wait_for_ready(self, n: int = 1, *, timeout: float | None = None) -> None:
        await self.wait_until(lambda: self.ready_count >= n, timeout=timeout, what=f"{n} READY")

    async def wait_for_resume(self, n: int = 1, *, timeout: float | None = None) -> None:
        await self.wait_until(lambda: self.resume_count >= n, timeout=timeout, what=f"{n} RESUME(s)")

    async def send_reconnect(self, shard_id: int | None = None) -> int:
        """Send op 7 RECONNECT; events dispatched afterwards are buffered for the RESUME."""
        conns = self.live_connections(shard_id)
        for c in conns:
            await c.send({"op": 7, "d": None})
            if c.session is not None and c.session.conn is c:
                c.session.conn = None  # detach: later events are replayed on resume
        return len(conns)

    async def invalidate_session(self, shard_id: int | None = None, resumable: bool = False) -> None:
        for c in self.live_connections(shard_id):
            if not resumable and c.session is not None:
                c.session.invalidated = True
            await c.send({"op": 9, "d": resumable})

    async def drop_connections(self, code: int = 4000, shard_id: int | None = None) -> None:
        for c in self.live_connections(shard_id):
            await c.close(code, "dropped by test")

    async def dispatch_raw(self, event: str, data: Any, *, guild_id: int | None = None) -> None:
        await self._dispatch(event, data, guild_id=guild_id)

    # ------------------------------------------------------------------ dispatch internals
    async def _send_to_session(self, session: GatewaySession, event: str, data: Any) -> None:
        session.seq += 1
        session.buffer.append((session.seq, event, data))
        self.dispatch_log.append((session.id, event, session.seq, data))
        conn = session.conn
        if conn is not None and not conn.closed:
            await conn.send({"op": 0, "t": event, "s": session.seq, "d": data})

    async def _dispatch(
        self,
        event: str,
        data: Any,
        *,
        guild_id: int | None = None,
        transform: Callable[[GatewaySession, Any], Any] | None = None,
    ) -> None:
        intents_map = _EVENT_INTENTS_GUILD if guild_id is not None else _EVENT_INTENTS_DM
        intent = intents_map.get(event, 0)
        for s in list(self.sessions.values()):
            if s.invalidated or not s.handles_guild(guild_id) or not s.has_intent(intent):
                continue
            d = transform(s, data) if transform else data
            await self._send_to_session(s, event, d)
        self._notify()

    def _guild_create_payload(self, guild: FakeGuild, session: GatewaySession) -> dict:
        p = guild.base_payload()
        all_members = session.intents & Intent.GUILD_PRESENCES
        members = [m for m in guild.members.values() if all_members or m.id == self.bot_user.id]
        chans = [c for c in guild.channels.values() if not c.deleted]
        p.update(
            joined_at=guild.joined_at,
            large=len(guild.members) >= 250,
            unavailable=False,
            member_count=len(guild.members),
            voice_states=[],
            members=[m.to_payload() for m in members],
            channels=[c.to_payload() for c in chans if not c.is_thread],
            threads=[c.to_payload() for c in chans if c.is_thread and not c.archived],
            presences=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
        )
        return p

    async def _dispatch_guild_create(self, guild: FakeGuild) -> None:
        for s in list(self.sessions.values()):
            if not s.invalidated and s.handles_guild(guild.id):
                await self._send_to_session(s, "GUILD_CREATE", self._guild_create_payload(guild, s))
        self._notify()

    def _strip_content(self, session: GatewaySession, msg: FakeMessage, payload: dict) -> dict:
        """Apply the MESSAGE_CONTENT intent the way Discord does."""
        if session.intents & Intent.MESSAGE_CONTENT:
            return payload
        if msg.author.id == self.bot_user.id or msg.guild_id is None or self.bot_user.id in msg.mentions:
            return payload
        p = dict(payload)
        p.update(content="", embeds=[], attachments=[], components=[])
        p.pop("poll", None)
        return p

    async def _dispatch_message(self, event: str, msg: FakeMessage) -> None:
        if msg.ephemeral:
            return
        payload = self._message_payload(msg, gateway=True)
        await self._dispatch(
            event, payload, guild_id=msg.guild_id, transform=lambda s, p: self._strip_content(s, msg, p)
        )

    # ------------------------------------------------------------------ gateway server
    async def _gateway_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(timeout=2.0, compress=False, max_msg_size=0, autoping=True)
        await ws.prepare(request)
        try:
            conn = GatewayConnection(self, ws, request.path, dict(request.query))
        except ValueError as exc:
            await ws.close(code=4000, message=str(exc).encode())
            return ws
        self.connections.append(conn)
        if request.query.get("encoding", "json") != "json":
            await conn.close(4002, "only encoding=json is supported by the fake")
            return ws
        if request.query.get("v") not in (None, "10"):
            await conn.close(4012, "Invalid API version")
            return ws
        await conn.send(
            {
                "op": 10,
                "d": {"heartbeat_interval": int(self.heartbeat_interval * 1000), "_trace": ["fake-discord-gateway"]},
            }
        )
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        payload = json.loads(msg.data)
                        op = payload["op"]
                    except (ValueError, KeyError, TypeError):
                        await conn.close(4002, "Error while decoding payload.")
                        break
                    await self._gateway_op(conn, op, payload.get("d"))
                    if conn.server_closed:
                        break
                elif msg.type == WSMsgType.BINARY:
                    await conn.close(4002, "Error while decoding payload.")
                    break
                else:
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            conn.closed = True
            conn.close_code = ws.close_code
            s = conn.session
            if s is not None and s.conn is conn:
                s.conn = None
            if s is not None and not conn.server_closed and ws.close_code in (1000, 1001):
                s.invalidated = True  # a clean client close ends the session
            self._notify()
        return ws

    async def _gateway_op(self, conn: GatewayConnection, op: int, d: Any) -> None:
        if op == 1:
            conn.heartbeats.append(time.monotonic())
            await conn.send({"op": 11})
            self._notify()
        elif op == 2:
            await self._identify(conn, d or {})
        elif op == 6:
            await self._resume(conn, d or {})
        elif op == 3:
            if conn.session is None:
                await conn.close(4003, "Not authenticated.")
        elif op == 8:
            if conn.session is None:
                await conn.close(4003, "Not authenticated.")
                return
            await self._request_members(conn, d or {})
        elif op == 4:
            pass  # voice state update: ignored
        else:
            await conn.close(4001, "Unknown opcode.")

    async def _identify(self, conn: GatewayConnection, d: dict) -> None:
        if conn.session is not None:
            await conn.close(4005, "Already authenticated.")
            return
        if d.get("token") != self.token:
            await conn.close(4004, "Authentication failed.")
            return
        intents = d.get("intents")
        if not isinstance(intents, int):
            await conn.close(4013, "Invalid intent(s).")
            return
        if intents & Intent.PRIVILEGED & ~self.allowed_privileged_intents:
            await conn.close(4014, "Disallowed intent(s).")
            return
        shard = d.get("shard")
        if shard is not None:
            if not isinstance(shard, list) or len(shard) != 2 or not 0 <= shard[0] < shard[1]:
                await conn.close(4010, "Invalid shard.")
                return
            shard = (int(shard[0]), int(shard[1]))
        session = GatewaySession(secrets.token_hex(16), shard, intents)
        self.sessions[session.id] = session
        session.conn = conn
        conn.session = session
        self.identify_count += 1
        guilds = [g for g in self.guilds.values() if session.handles_guild(g.id)]
        ready = {
            "v": 10,
            "user": dict(self.bot_user.to_payload(), verified=True, mfa_enabled=False, flags=0, email=None),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(self.app_id), "flags": self._application_flags()},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": ["fake-discord-gateway"],
        }
        if shard is not None:
            ready["shard"] = list(shard)
        await self._send_to_session(session, "READY", ready)
        self.ready_count += 1
        for g in guilds:
            await self._send_to_session(session, "GUILD_CREATE", self._guild_create_payload(g, session))
        self._notify()

    async def _resume(self, conn: GatewayConnection, d: dict) -> None:
        if d.get("token") != self.token:
            await conn.close(4004, "Authentication failed.")
            return
        session = self.sessions.get(str(d.get("session_id")))
        if session is None or session.invalidated:
            await conn.send({"op": 9, "d": False})
            return
        old = session.conn
        if old is not None and old is not conn and not old.closed:
            session.conn = None
            await old.close(4000, "session resumed elsewhere")
        seq = d.get("seq") or 0
        if session.buffer and seq < session.buffer[0][0] - 1:
            await conn.send({"op": 9, "d": False})  # too far behind: cannot replay
            return
        session.conn = conn
        conn.session = session
        for s, event, data in list(session.buffer):
            if s > seq:
                await conn.send({"op": 0, "t": event, "s": s, "d": data})
        session.resumes += 1
        self.resume_count += 1
        await self._send_to_session(session, "RESUMED", {"_trace": ["fake-discord-gateway"]})
        self._notify()

    async def _request_members(self, conn: GatewayConnection, d: dict) -> None:
        guild = self.guilds.get(int(d.get("guild_id", 0)))
        if guild is None or conn.session is None:
            return
        members = list(guild.members.values())
        query = d.get("query")
        not_found: list[str] = []
        if d.get("user_ids"):
            ids = [int(x) for x in d["user_ids"]]
            not_found = [str(i) for i in ids if i not in guild.members]
            members = [m for m in members if m.id in ids]
        elif query:
            members = [m for m in members if m.user.username.lower().startswith(query.lower())]
        limit = d.get("limit") or 0
        if limit:
            members = members[:limit]
        payload = {
            "guild_id": str(guild.id),
            "members": [m.to_payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": not_found,
        }
        if d.get("presences"):
            payload["presences"] = []
        if d.get("nonce") is not None:
            payload["nonce"] = d["nonce"]
        await self._send_to_session(conn.session, "GUILD_MEMBERS_CHUNK", payload)

    def _application_flags(self) -> int:
        flags = 0
        for intent, flag in APP_FLAG_FOR_INTENT.items():
            if self.allowed_privileged_intents & intent:
                flags |= flag
        return flags
