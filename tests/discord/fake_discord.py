"""A local fake Discord (REST API v10 + gateway websocket) for tests.

The real, unmodified discord.py client connects to it (see ``harness.py`` for
the redirect).  It listens on 127.0.0.1 only and accepts nothing but its own
test token (``fake-test-token.<random>``).

It keeps a small but faithful model of Discord: users, guilds, roles,
members, channels, threads, messages, application commands and interactions,
and it enforces what real Discord enforces and bots commonly get wrong:

* the 3 second deadline for the first interaction response (10062),
* a single initial response per interaction (40060),
* 15 minute validity of interaction webhook tokens (followups),
* message / embed / component limits (50035 with a Discord-shaped ``errors``
  body) and empty messages (50006),
* channel permissions computed from roles and overwrites (50001 / 50013),
* the MESSAGE_CONTENT intent (content is blanked unless the bot is mentioned),
* rate limits on demand (429 with ``Via`` so discord.py retries).

Everything that waits takes an explicit timeout and raises
:class:`FakeDiscordTimeout` (an ``AssertionError`` *and* a ``TimeoutError``)
with a description of what was awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import hashlib
import json
import logging
import re
import secrets
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

try:  # zstd-stream is only requested by discord.py when a zstd library is importable
    import zstandard as _zstd  # type: ignore
except ImportError:  # pragma: no cover - depends on the environment
    _zstd = None

log = logging.getLogger("tests.fake_discord")

TEST_TOKEN_PREFIX = "fake-test-token."
DISCORD_EPOCH_MS = 1420070400000
API_PREFIX = "/api/v10"


# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------


class Perm:
    """Permission bits (subset used by the fake)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    SEND_MESSAGES_IN_THREADS = 1 << 38
    MODERATE_MEMBERS = 1 << 40
    ALL = (1 << 53) - 1

    EVERYONE_DEFAULT = (
        CREATE_INSTANT_INVITE
        | ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_EXTERNAL_EMOJIS
        | CONNECT
        | SPEAK
        | CHANGE_NICKNAME
        | USE_APPLICATION_COMMANDS
        | CREATE_PUBLIC_THREADS
        | CREATE_PRIVATE_THREADS
        | SEND_MESSAGES_IN_THREADS
    )
    BOT_DEFAULT = (
        VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | ADD_REACTIONS
        | USE_EXTERNAL_EMOJIS
        | CREATE_PUBLIC_THREADS
        | SEND_MESSAGES_IN_THREADS
        | MANAGE_THREADS
    )


class Intent:
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_REACTIONS = 1 << 10
    GUILD_MESSAGE_TYPING = 1 << 11
    DIRECT_MESSAGES = 1 << 12
    DIRECT_MESSAGE_REACTIONS = 1 << 13
    MESSAGE_CONTENT = 1 << 15
    PRIVILEGED = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT


class ChannelType:
    GUILD_TEXT = 0
    DM = 1
    GUILD_VOICE = 2
    GUILD_CATEGORY = 4
    GUILD_ANNOUNCEMENT = 5
    ANNOUNCEMENT_THREAD = 10
    PUBLIC_THREAD = 11
    PRIVATE_THREAD = 12
    GUILD_FORUM = 15
    THREAD_TYPES = (10, 11, 12)


class InteractionType:
    PING = 1
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3
    AUTOCOMPLETE = 4
    MODAL_SUBMIT = 5


class CallbackType:
    PONG = 1
    CHANNEL_MESSAGE_WITH_SOURCE = 4
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
    DEFERRED_UPDATE_MESSAGE = 6
    UPDATE_MESSAGE = 7
    APPLICATION_COMMAND_AUTOCOMPLETE_RESULT = 8
    MODAL = 9


class MessageFlag:
    CROSSPOSTED = 1 << 0
    SUPPRESS_EMBEDS = 1 << 2
    EPHEMERAL = 1 << 6
    LOADING = 1 << 7
    SUPPRESS_NOTIFICATIONS = 1 << 12
    IS_COMPONENTS_V2 = 1 << 15
    SENDABLE = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2


# Application flags: GATEWAY_PRESENCE, GATEWAY_GUILD_MEMBERS, GATEWAY_MESSAGE_CONTENT
APP_FLAG_FOR_INTENT = {
    Intent.GUILD_PRESENCES: 1 << 12,
    Intent.GUILD_MEMBERS: 1 << 14,
    Intent.MESSAGE_CONTENT: 1 << 18,
}

OPTION_TYPES = {
    1: "SUB_COMMAND",
    2: "SUB_COMMAND_GROUP",
    3: "STRING",
    4: "INTEGER",
    5: "BOOLEAN",
    6: "USER",
    7: "CHANNEL",
    8: "ROLE",
    9: "MENTIONABLE",
    10: "NUMBER",
    11: "ATTACHMENT",
}

# The locales Discord accepts as keys of name_localizations / description_localizations.
# fmt: off
DISCORD_LOCALES = frozenset({
    "id", "da", "de", "en-GB", "en-US", "es-ES", "es-419", "fr", "hr", "it", "lt", "hu", "nl", "no", "pl", "pt-BR",
    "ro", "fi", "sv-SE", "vi", "tr", "cs", "el", "bg", "ru", "uk", "hi", "th", "zh-CN", "ja", "zh-TW", "ko",
})
# fmt: on


def _valid_command_name(name: str) -> bool:
    """Discord's rule for chat-input names: ``^[-_\\p{L}\\p{N}\\p{sc=Deva}\\p{sc=Thai}]{1,32}$``, lowercase.

    Python's ``\\w`` misses the combining vowel signs of Devanagari and Thai, which Discord allows.
    """
    if not 1 <= len(name) <= 32 or name != name.lower():
        return False
    return all(ch.isalnum() or ch in "-_" or "\u0900" <= ch <= "\u097f" or "\u0e00" <= ch <= "\u0e7f" for ch in name)


_EVENT_INTENTS_GUILD = {
    "GUILD_UPDATE": Intent.GUILDS,
    "GUILD_DELETE": Intent.GUILDS,
    "GUILD_ROLE_CREATE": Intent.GUILDS,
    "GUILD_ROLE_UPDATE": Intent.GUILDS,
    "GUILD_ROLE_DELETE": Intent.GUILDS,
    "CHANNEL_CREATE": Intent.GUILDS,
    "CHANNEL_UPDATE": Intent.GUILDS,
    "CHANNEL_DELETE": Intent.GUILDS,
    "THREAD_CREATE": Intent.GUILDS,
    "THREAD_UPDATE": Intent.GUILDS,
    "THREAD_DELETE": Intent.GUILDS,
    "GUILD_MEMBER_ADD": Intent.GUILD_MEMBERS,
    "GUILD_MEMBER_UPDATE": Intent.GUILD_MEMBERS,
    "GUILD_MEMBER_REMOVE": Intent.GUILD_MEMBERS,
    "MESSAGE_CREATE": Intent.GUILD_MESSAGES,
    "MESSAGE_UPDATE": Intent.GUILD_MESSAGES,
    "MESSAGE_DELETE": Intent.GUILD_MESSAGES,
    "MESSAGE_REACTION_ADD": Intent.GUILD_MESSAGE_REACTIONS,
    "MESSAGE_REACTION_REMOVE": Intent.GUILD_MESSAGE_REACTIONS,
    "TYPING_START": Intent.GUILD_MESSAGE_TYPING,
}
_EVENT_INTENTS_DM = {
    "MESSAGE_CREATE": Intent.DIRECT_MESSAGES,
    "MESSAGE_UPDATE": Intent.DIRECT_MESSAGES,
    "MESSAGE_DELETE": Intent.DIRECT_MESSAGES,
    "MESSAGE_REACTION_ADD": Intent.DIRECT_MESSAGE_REACTIONS,
    "MESSAGE_REACTION_REMOVE": Intent.DIRECT_MESSAGE_REACTIONS,
    "CHANNEL_CREATE": 0,
}


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class FakeDiscordTimeout(AssertionError, TimeoutError):
    """Raised by every ``wait_*`` helper when its timeout expires."""


class FakeDiscordUsageError(ValueError):
    """The test asked for something a real Discord client could not do."""


class CommandNotAvailable(PermissionError):
    """The invoking user could not see/use the command in a real client."""


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, errors: dict | None = None):
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def _form_error(errors: dict) -> ApiError:
    return ApiError(400, 50035, "Invalid Form Body", errors)


class _Errors:
    """Collects validation errors in Discord's nested ``errors`` format."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: Sequence[str | int], code: str, message: str) -> None:
        node = self.tree
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def max_len(self, path, value, limit: int) -> None:
        if value is not None and len(value) > limit:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def __bool__(self) -> bool:
        return bool(self.tree)

    def raise_if_any(self) -> None:
        if self.tree:
            raise _form_error(self.tree)


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


def _iso(ts: float | None = None) -> str:
    ts = time.time() if ts is None else ts
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat()


def _id_of(obj: Any) -> int:
    if obj is None:
        raise FakeDiscordUsageError("an object or id is required")
    if isinstance(obj, int):
        return obj
    if isinstance(obj, str) and obj.isdigit():
        return int(obj)
    if isinstance(obj, FakeMember):
        return obj.user.id
    return int(obj.id)


@dataclass(eq=False)
class FakeUser:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None
    # The Discord client's language: sent as ``locale`` with each of this user's interactions.
    locale: str = "en-US"

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def to_payload(self) -> dict:
        p = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "public_flags": 0,
        }
        if self.bot:
            p["bot"] = True
        return p


@dataclass(eq=False)
class FakeRole:
    id: int
    guild_id: int
    name: str
    permissions: int = 0
    position: int = 0
    color: int = 0
    hoist: bool = False
    mentionable: bool = False
    managed: bool = False
    bot_id: int | None = None

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"

    def to_payload(self) -> dict:
        p = {
            "id": str(self.id),
            "name": self.name,
            "color": self.color,
            "colors": {"primary_color": self.color, "secondary_color": None, "tertiary_color": None},
            "hoist": self.hoist,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }
        if self.bot_id is not None:
            p["tags"] = {"bot_id": str(self.bot_id)}
        return p


@dataclass(eq=False)
class FakeMember:
    guild_id: int
    user: FakeUser
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=_iso)

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def mention(self) -> str:
        return f"<@{self.user.id}>"

    def to_payload(self, *, include_user: bool = True, permissions: int | None = None) -> dict:
        p: dict[str, Any] = {
            "roles": [str(r) for r in self.roles],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if include_user:
            p["user"] = self.user.to_payload()
        if permissions is not None:
            p["permissions"] = str(permissions)
        return p


@dataclass(eq=False)
class FakeChannel:
    id: int
    type: int
    name: str
    guild_id: int | None = None
    position: int = 0
    parent_id: int | None = None
    topic: str | None = None
    nsfw: bool = False
    overwrites: list[dict] = field(default_factory=list)
    owner_id: int | None = None
    archived: bool = False
    locked: bool = False
    auto_archive_duration: int = 1440
    recipients: list[FakeUser] = field(default_factory=list)
    rate_limit_per_user: int = 0
    last_message_id: int | None = None
    message_count: int = 0
    created_at: str = field(default_factory=_iso)
    deleted: bool = False

    @property
    def is_thread(self) -> bool:
        return self.type in ChannelType.THREAD_TYPES

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def to_payload(self) -> dict:
        p: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "last_message_id": str(self.last_message_id) if self.last_message_id else None,
            "flags": 0,
        }
        if self.type == ChannelType.DM:
            p["recipients"] = [u.to_payload() for u in self.recipients]
            p.pop("name")
            return p
        p["guild_id"] = str(self.guild_id)
        p["rate_limit_per_user"] = self.rate_limit_per_user
        p["parent_id"] = str(self.parent_id) if self.parent_id else None
        if self.is_thread:
            p.update(
                owner_id=str(self.owner_id),
                message_count=self.message_count,
                member_count=1,
                total_message_sent=self.message_count,
                thread_metadata={
                    "archived": self.archived,
                    "auto_archive_duration": self.auto_archive_duration,
                    "archive_timestamp": self.created_at,
                    "locked": self.locked,
                    "invitable": True,
                    "create_timestamp": self.created_at,
                },
            )
        else:
            p.update(
                position=self.position,
                permission_overwrites=[dict(o) for o in self.overwrites],
                topic=self.topic,
                nsfw=self.nsfw,
            )
        return p


@dataclass(eq=False)
class FakeGuild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    locale: str = "en-US"
    features: list[str] = field(default_factory=list)
    joined_at: str = field(default_factory=_iso)

    @property
    def everyone(self) -> FakeRole:
        return self.roles[self.id]

    def member(self, user: Any) -> FakeMember | None:
        return self.members.get(_id_of(user))

    def base_payload(self) -> dict:
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "roles": [r.to_payload() for r in sorted(self.roles.values(), key=lambda r: r.position)],
            "emojis": [],
            "stickers": [],
            "features": list(self.features),
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": self.locale,
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "safety_alerts_channel_id": None,
        }


@dataclass
class StandardGuild:
    """What :meth:`FakeDiscord.create_standard_guild` builds."""

    guild: FakeGuild
    channel: FakeChannel
    owner: FakeUser
    moderator: FakeUser
    member: FakeUser
    moderator_role: FakeRole
    bot_member: FakeMember


class FakeMessage:
    """A message as stored by the fake.  ``embeds``/``components`` are the raw dicts."""

    def __init__(
        self,
        *,
        id: int,
        channel_id: int,
        guild_id: int | None,
        author: FakeUser,
        content: str = "",
        embeds: list[dict] | None = None,
        components: list[dict] | None = None,
        flags: int = 0,
        allowed_mentions: dict | None = None,
        message_reference: dict | None = None,
        attachments: list[dict] | None = None,
        type: int = 0,
        webhook_id: int | None = None,
        application_id: int | None = None,
        interaction: InteractionRecord | None = None,
        source: str = "rest",
        tts: bool = False,
        nonce: str | None = None,
    ) -> None:
        self.id = id
        self.channel_id = channel_id
        self.guild_id = guild_id
        self.author = author
        self.content = content or ""
        self.embeds: list[dict] = embeds or []
        self.components: list[dict] = components or []
        self.flags = flags
        self.allowed_mentions = allowed_mentions
        self.message_reference = message_reference
        self.attachments: list[dict] = attachments or []
        self.type = type
        self.webhook_id = webhook_id
        self.application_id = application_id
        self.interaction = interaction
        self.source = source
        self.tts = tts
        self.nonce = nonce
        self.timestamp = _iso()
        self.created_monotonic = time.monotonic()
        self.edited_timestamp: str | None = None
        self.deleted = False
        self.mentions: list[int] = []
        self.mention_roles: list[int] = []
        self.mention_everyone = False
        self.thread_id: int | None = None
        self.reactions: dict[str, set] = {}
        self.history: list[dict] = []  # snapshots of previous versions (oldest first)

    # -- convenience -------------------------------------------------------------
    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & MessageFlag.EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & MessageFlag.LOADING)

    @property
    def reference_id(self) -> int | None:
        if not self.message_reference or self.message_reference.get("message_id") is None:
            return None
        return int(self.message_reference["message_id"])

    @property
    def author_id(self) -> int:
        return self.author.id

    def snapshot(self) -> dict:
        return {
            "content": self.content,
            "embeds": json.loads(json.dumps(self.embeds)),
            "components": json.loads(json.dumps(self.components)),
            "flags": self.flags,
            "allowed_mentions": self.allowed_mentions,
            "attachments": list(self.attachments),
        }

    def find_component(self, custom_id: str) -> dict | None:
        return _find_component(self.components, custom_id)

    def all_custom_ids(self) -> list[str]:
        return [c["custom_id"] for c in _walk_components(self.components) if "custom_id" in c]

    def __repr__(self) -> str:
        return (
            f"<FakeMessage id={self.id} channel={self.channel_id} author={self.author.username!r} "
            f"flags={self.flags} content={self.content[:60]!r}>"
        )


def _walk_components(components: Iterable[dict]) -> Iterable[dict]:
    for c in components or []:
        yield c
        for key in ("components",):
            if isinstance(c.get(key), list):
                yield from _walk_components(c[key])
        for key in ("component", "accessory"):
            if isinstance(c.get(key), dict):
                yield from _walk_components([c[key]])


def _walk_with_path(components: Iterable[dict], path: list) -> Iterable[tuple[dict, list]]:
    for i, c in enumerate(components or []):
        if not isinstance(c, dict):
            continue
        here = [*path, i]
        yield c, here
        if isinstance(c.get("components"), list):
            yield from _walk_with_path(c["components"], [*here, "components"])
        for key in ("component", "accessory"):
            if isinstance(c.get(key), dict):
                sub = c[key]
                yield sub, [*here, key]
                if isinstance(sub.get("components"), list):
                    yield from _walk_with_path(sub["components"], [*here, key, "components"])


def _find_component(components: Iterable[dict], custom_id: str) -> dict | None:
    for c in _walk_components(components):
        if c.get("custom_id") == custom_id:
            return c
    return None


@dataclass
class ErrorRecord:
    """A 4xx the fake returned (also attached to the interaction it concerns)."""

    method: str
    path: str
    status: int
    code: int
    message: str
    errors: dict | None
    at: float

    def error_paths(self) -> list[str]:
        out: list[str] = []

        def walk(node: Any, prefix: str) -> None:
            if not isinstance(node, dict):
                return
            for k, v in node.items():
                if k == "_errors":
                    out.append(prefix)
                else:
                    walk(v, f"{prefix}.{k}" if prefix else k)

        walk(self.errors or {}, "")
        return out


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0
    at: float = 0.0
    code: int | None = None


@dataclass
class RateLimitRule:
    method: str | None
    pattern: re.Pattern[str]
    times: int
    retry_after: float
    is_global: bool
    via: bool
    hits: int = 0

    @property
    def exhausted(self) -> bool:
        return self.hits >= self.times


@dataclass
class ResponseRecord:
    """The initial response (callback) to an interaction."""

    type: int
    data: dict
    at: float
    elapsed: float
    message: FakeMessage | None = None

    @property
    def content(self) -> str | None:
        return self.data.get("content")

    @property
    def embeds(self) -> list[dict]:
        return self.data.get("embeds") or []

    @property
    def components(self) -> list[dict]:
        return self.data.get("components") or []

    @property
    def flags(self) -> int:
        return int(self.data.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & MessageFlag.EPHEMERAL)

    @property
    def allowed_mentions(self) -> dict | None:
        return self.data.get("allowed_mentions")

    @property
    def choices(self) -> list[dict]:
        return self.data.get("choices") or []

    @property
    def modal(self) -> dict | None:
        return self.data if self.type == CallbackType.MODAL else None

    @property
    def deferred(self) -> bool:
        return self.type in (CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE, CallbackType.DEFERRED_UPDATE_MESSAGE)


class InteractionRecord:
    """One interaction the fake dispatched, and everything the bot did with it."""

    def __init__(
        self,
        fake: FakeDiscord,
        *,
        id: int,
        token: str,
        type: int,
        data: dict,
        user: FakeUser,
        channel: FakeChannel,
        guild_id: int | None,
        message: FakeMessage | None,
        name: str,
        command_type: int | None = None,
        modal_source: InteractionRecord | None = None,
    ) -> None:
        self._fake = fake
        self.id = id
        self.token = token
        self.type = type
        self.data = data
        self.user = user
        self.channel = channel
        self.channel_id = channel.id
        self.guild_id = guild_id
        self.message = message  # the message a component was on
        self.name = name
        self.command_type = command_type
        self.modal_source = modal_source
        self.created_at = fake._now()
        self.payload: dict = {}
        self.response: ResponseRecord | None = None
        self.original: FakeMessage | None = None
        self.followups: list[FakeMessage] = []
        self.rejected: list[ErrorRecord] = []
        self._deferred_filled = False

    def __repr__(self) -> str:
        rtype = self.response.type if self.response else None
        return f"<InteractionRecord id={self.id} type={self.type} name={self.name!r} response_type={rtype}>"

    @property
    def acknowledged(self) -> bool:
        return self.response is not None

    async def wait_response(self, timeout: float = 5.0) -> ResponseRecord:
        def check():
            return self.response

        def describe():
            rej = "; ".join(f"{r.status}/{r.code} {r.message}" for r in self.rejected) or "none"
            return f"the initial response to interaction {self.name!r} (rejected attempts: {rej})"

        return await self._fake.wait_until(check, timeout=timeout, what=describe)

    async def wait_followups(self, n: int = 1, timeout: float = 5.0) -> list[FakeMessage]:
        await self._fake.wait_until(
            lambda: len(self.followups) >= n,
            timeout=timeout,
            what=lambda: f"{n} followup(s) to {self.name!r} (got {len(self.followups)})",
        )
        return self.followups[:n]

    async def wait_rejected(self, n: int = 1, timeout: float = 5.0) -> list[ErrorRecord]:
        await self._fake.wait_until(
            lambda: len(self.rejected) >= n, timeout=timeout, what=lambda: f"{n} rejected call(s) for {self.name!r}"
        )
        return self.rejected[:n]

    async def wait_original(
        self, predicate: Callable[[FakeMessage], bool] = lambda m: not m.loading, timeout: float = 5.0
    ) -> FakeMessage:
        def check():
            m = self.original
            return m if m is not None and predicate(m) else None

        return await self._fake.wait_until(
            check, timeout=timeout, what=f"the original response of {self.name!r} to match the predicate"
        )

    @property
    def messages(self) -> list[FakeMessage]:
        out = [self.original] if self.original is not None else []
        out += [m for m in self.followups if m is not self.original]
        return out


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


# --------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------


@dataclass
class _Req:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    json: Any
    files: list[dict]
    headers: Any
    interaction: InteractionRecord | None = None


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    template: str
    handler: Callable[[_Req], Any]
    auth: str  # "bot" | "webhook" | "none"


class FakeDiscord:
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
                [asyncio.ensure_future(c.close(1001, "fake discord shutting down")) for c in conns], timeout=timeout
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
            fut = loop.create_future()
            self._waiters.add(fut)
            try:
                # re-check periodically as well: some conditions depend on the clock
                await asyncio.wait([fut], timeout=min(remaining, 0.05))
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

    # ------------------------------------------------------------------ HTTP server
    def _route(self, method: str, template: str, handler: Callable[[_Req], Any], auth: str = "bot") -> None:
        rx = re.compile("^" + template + "$")
        self._routes.append(_Route(method, rx, template, handler, auth))

    def _register_routes(self) -> None:
        R = self._route
        APP = r"/applications/(?P<app_id>\d+)"
        GCMD = APP + r"/guilds/(?P<guild_id>\d+)/commands"
        MSG = r"/channels/(?P<channel_id>\d+)/messages/(?P<message_id>\d+)"
        WH = r"/webhooks/(?P<app_id>\d+)/(?P<token>[^/]+)"
        R("GET", r"/users/@me", self._h_get_me)
        R("GET", r"/users/(?P<user_id>\d+)", self._h_get_user)
        R("POST", r"/users/@me/channels", self._h_create_dm)
        R("GET", r"/oauth2/applications/@me", self._h_get_app)
        R("GET", r"/applications/@me", self._h_get_app)
        R("GET", r"/gateway", self._h_gateway, auth="none")
        R("GET", r"/gateway/bot", self._h_gateway_bot)
        for base in (APP + r"/commands", GCMD):
            R("GET", base, self._h_get_commands)
            R("PUT", base, self._h_put_commands)
            R("POST", base, self._h_post_command)
            R("GET", base + r"/(?P<command_id>\d+)", self._h_get_command)
            R("PATCH", base + r"/(?P<command_id>\d+)", self._h_patch_command)
            R("DELETE", base + r"/(?P<command_id>\d+)", self._h_delete_command)
        R("GET", GCMD + r"/permissions", lambda req: (200, []))
        R("POST", r"/interactions/(?P<interaction_id>\d+)/(?P<token>[^/]+)/callback", self._h_callback, auth="webhook")
        R("POST", WH, self._h_webhook_execute, auth="webhook")
        R("GET", WH + r"/messages/(?P<message_id>@original|\d+)", self._h_webhook_get, auth="webhook")
        R("PATCH", WH + r"/messages/(?P<message_id>@original|\d+)", self._h_webhook_edit, auth="webhook")
        R("DELETE", WH + r"/messages/(?P<message_id>@original|\d+)", self._h_webhook_delete, auth="webhook")
        R("GET", r"/channels/(?P<channel_id>\d+)", self._h_get_channel)
        R("GET", r"/channels/(?P<channel_id>\d+)/messages", self._h_get_messages)
        R("POST", r"/channels/(?P<channel_id>\d+)/messages", self._h_create_message)
        R("GET", MSG, self._h_get_message)
        R("PATCH", MSG, self._h_edit_message)
        R("DELETE", MSG, self._h_delete_message)
        R("POST", MSG + r"/threads", self._h_thread_from_message)
        R("PUT", MSG + r"/reactions/(?P<emoji>[^/]+)/@me", self._h_add_reaction)
        R("DELETE", MSG + r"/reactions/(?P<emoji>[^/]+)/@me", self._h_remove_reaction)
        R("POST", r"/channels/(?P<channel_id>\d+)/threads", self._h_thread_without_message)
        R("PUT", r"/channels/(?P<channel_id>\d+)/thread-members/@me", self._h_join_thread)
        R("POST", r"/channels/(?P<channel_id>\d+)/typing", self._h_typing)
        R("GET", r"/guilds/(?P<guild_id>\d+)", self._h_get_guild)
        R("GET", r"/guilds/(?P<guild_id>\d+)/channels", self._h_get_guild_channels)
        R("GET", r"/guilds/(?P<guild_id>\d+)/roles", self._h_get_guild_roles)
        R("GET", r"/guilds/(?P<guild_id>\d+)/members/(?P<user_id>\d+)", self._h_get_member)

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
        if status == 204:
            return web.Response(status=204, headers=headers)
        h = {"Content-Type": "application/json"}
        if headers:
            h.update(headers)
        return web.Response(status=status, body=json.dumps(body).encode(), headers=h)

    def _ratelimit_headers(
        self, route: _Route | None, method: str, remaining: int, reset_after: float, scope: str = "user"
    ) -> dict[str, str]:
        key = f"{method} {route.template if route else ''}"
        bucket = hashlib.sha1(key.encode()).hexdigest()[:16]
        return {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket,
            "X-RateLimit-Scope": scope,
        }

    async def _attachment_handler(self, request: web.Request) -> web.Response:
        blob = self.attachment_blobs.get(int(request.match_info["attachment_id"]))
        if blob is None:
            return web.Response(status=404)
        return web.Response(body=blob, headers={"Content-Type": "application/octet-stream"})

    async def _http_handler(self, request: web.Request) -> web.Response:
        method = request.method
        full_path = request.path
        query = dict(request.query)
        if not full_path.startswith(API_PREFIX + "/"):
            self.unknown_routes.append((method, full_path))
            return self._json(404, {"message": "Unknown route", "code": 0})
        path = full_path[len(API_PREFIX) :]
        record = RequestRecord(method, path, query, None, at=time.monotonic())
        self.requests.append(record)
        try:
            body, files = await self._read_body(request)
        except ApiError as exc:
            return self._finish(record, None, exc)
        record.body = body

        route = None
        params: dict[str, str] = {}
        for r in self._routes:
            if r.method == method:
                m = r.pattern.match(path)
                if m:
                    route, params = r, m.groupdict()
                    break
        if route is None:
            self.unknown_routes.append((method, path))
            record.status = 404
            self._notify()
            return self._json(404, {"message": "Unknown route", "code": 0})

        auth = request.headers.get("Authorization")
        if auth is not None and auth != f"Bot {self.token}":
            return self._finish(record, route, ApiError(401, 0, "401: Unauthorized"))
        if route.auth == "bot" and auth is None:
            return self._finish(record, route, ApiError(401, 0, "401: Unauthorized"))

        for rule in self.rate_limits:
            if rule.exhausted or (rule.method and rule.method != method) or not rule.pattern.search(path):
                continue
            rule.hits += 1
            record.status = 429
            self._notify()
            headers = self._ratelimit_headers(
                route, method, 0, rule.retry_after, "global" if rule.is_global else "user"
            )
            headers["Retry-After"] = str(max(1, int(rule.retry_after + 0.999)))
            if rule.via:
                headers["Via"] = "1.1 google"
            if rule.is_global:
                headers["X-RateLimit-Global"] = "true"
            return self._json(
                429,
                {
                    "message": "You are being rate limited.",
                    "retry_after": rule.retry_after,
                    "global": rule.is_global,
                    "code": 0,
                },
                headers,
            )

        req = _Req(method, path, params, query, body, files, request.headers)
        try:
            result = route.handler(req)
            if asyncio.iscoroutine(result):
                result = await result
            status, payload = result
        except ApiError as exc:
            return self._finish(record, route, exc, req)
        record.status = status
        self._notify()
        return self._json(status, payload, self._ratelimit_headers(route, method, 49, 1.0))

    def _finish(
        self, record: RequestRecord, route: _Route | None, exc: ApiError, req: _Req | None = None
    ) -> web.Response:
        record.status = exc.status
        record.code = exc.code
        err = ErrorRecord(record.method, record.path, exc.status, exc.code, exc.message, exc.errors, time.monotonic())
        self.errors.append(err)
        if req is not None and req.interaction is not None:
            req.interaction.rejected.append(err)
        self._notify()
        return self._json(exc.status, exc.body())

    async def _read_body(self, request: web.Request) -> tuple[Any, list[dict]]:
        files: list[dict] = []
        if not request.can_read_body:
            return None, files
        ctype = request.content_type
        if ctype == "multipart/form-data":
            payload: Any = None
            reader = await request.multipart()
            async for part in reader:
                name = part.name or ""
                if name == "payload_json":
                    try:
                        payload = json.loads(await part.text())
                    except ValueError:
                        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
                else:
                    data = await part.read()
                    files.append(
                        {
                            "field": name,
                            "filename": part.filename or name,
                            "data": bytes(data),
                            "content_type": part.headers.get("Content-Type", "application/octet-stream"),
                        }
                    )
            return payload, files
        raw = await request.read()
        if not raw:
            return None, files
        try:
            return json.loads(raw), files
        except ValueError:
            raise ApiError(400, 50109, "The request body contains invalid JSON.") from None

    # ------------------------------------------------------------------ validation
    def _validate_embed(self, errs: _Errors, path: list, e: Any) -> int:
        if not isinstance(e, dict):
            errs.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
            return 0
        total = 0
        for key, limit in (("title", 256), ("description", 4096)):
            v = e.get(key)
            if v is not None:
                errs.max_len([*path, key], str(v), limit)
                total += len(str(v))
        fields = e.get("fields") or []
        if len(fields) > 25:
            errs.add([*path, "fields"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        for i, f in enumerate(fields):
            for key, limit in (("name", 256), ("value", 1024)):
                v = f.get(key)
                if v is None or str(v) == "":
                    errs.add([*path, "fields", i, key], "BASE_TYPE_REQUIRED", "This field is required")
                else:
                    errs.max_len([*path, "fields", i, key], str(v), limit)
                    total += len(str(v))
        footer = e.get("footer")
        if footer and footer.get("text") is not None:
            errs.max_len([*path, "footer", "text"], str(footer["text"]), 2048)
            total += len(str(footer["text"]))
        author = e.get("author")
        if author and author.get("name") is not None:
            errs.max_len([*path, "author", "name"], str(author["name"]), 256)
            total += len(str(author["name"]))
        color = e.get("color")
        if color is not None and not (isinstance(color, int) and 0 <= color <= 0xFFFFFF):
            errs.add([*path, "color"], "NUMBER_TYPE_MAX", "int value should be <= 16777215 and >= 0.")
        return total

    def _validate_components(self, errs: _Errors, path: list, components: Any, v2: bool) -> None:
        if not isinstance(components, list):
            errs.add(path, "LIST_TYPE_CONVERT", "Must be an array")
            return
        seen: dict[str, int] = {}
        if v2:
            count = sum(1 for _ in _walk_components(components))
            if count > 40:
                errs.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 40 or fewer in length.")
        else:
            if len(components) > 5:
                errs.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
            for i, row in enumerate(components):
                if not isinstance(row, dict) or row.get("type") != 1:
                    errs.add([*path, i], "UNION_TYPE_CHOICES", 'Value of field "type" must be one of (1,).')
                    continue
                children = row.get("components") or []
                if not children:
                    errs.add([*path, i, "components"], "BASE_TYPE_MIN_LENGTH", "Must be 1 or more in length.")
                if len(children) > 5:
                    errs.add([*path, i, "components"], "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
                width = sum(5 if c.get("type") in (3, 5, 6, 7, 8) else 1 for c in children)
                if width > 5 and len(children) <= 5:
                    errs.add(
                        [*path, i, "components"],
                        "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                        "The specified component exceeds the maximum width",
                    )
        for c, cpath in _walk_with_path(components, path):
            ctype = c.get("type")
            cid = c.get("custom_id")
            if cid is not None:
                errs.max_len([*cpath, "custom_id"], str(cid), 100)
                if cid in seen:
                    errs.add(
                        [*cpath, "custom_id"],
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    )
                seen[cid] = 1
            if ctype == 2:
                if c.get("label") is not None:
                    errs.max_len([*cpath, "label"], str(c["label"]), 80)
                style = c.get("style")
                if style == 5:
                    if not c.get("url"):
                        errs.add([*cpath, "url"], "BASE_TYPE_REQUIRED", "This field is required")
                elif style != 6 and not cid:
                    errs.add([*cpath, "custom_id"], "BASE_TYPE_REQUIRED", "This field is required")
            elif ctype in (3, 5, 6, 7, 8):
                if not cid:
                    errs.add([*cpath, "custom_id"], "BASE_TYPE_REQUIRED", "This field is required")
                if c.get("placeholder") is not None:
                    errs.max_len([*cpath, "placeholder"], str(c["placeholder"]), 150)
                if ctype == 3:
                    opts = c.get("options") or []
                    if not 1 <= len(opts) <= 25:
                        errs.add([*cpath, "options"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 25 in length.")
                    for j, o in enumerate(opts):
                        for key in ("label", "value", "description"):
                            if o.get(key) is not None:
                                errs.max_len([*cpath, "options", j, key], str(o[key]), 100)

    def _validate_message(
        self, body: Any, *, prefix: Sequence[str] = (), create: bool, files: Sequence[dict] = ()
    ) -> None:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise _form_error({"_errors": [{"code": "DICT_TYPE_CONVERT", "message": "Only dictionaries may be used"}]})
        errs = _Errors()
        p = list(prefix)
        flags = int(body.get("flags") or 0)
        v2 = bool(flags & MessageFlag.IS_COMPONENTS_V2)
        content = body.get("content")
        if content is not None:
            if not isinstance(content, str):
                errs.add([*p, "content"], "STRING_TYPE_CONVERT", "Could not interpret value as string.")
            else:
                errs.max_len([*p, "content"], content, 2000)
                if v2 and content:
                    errs.add(
                        [*p, "content"],
                        "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                        "The 'content' field cannot be used when using MessageFlags.IS_COMPONENTS_V2",
                    )
        embeds = body.get("embeds")
        if embeds is not None:
            if not isinstance(embeds, list):
                errs.add([*p, "embeds"], "LIST_TYPE_CONVERT", "Must be an array")
            else:
                if len(embeds) > 10:
                    errs.add([*p, "embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
                if v2 and embeds:
                    errs.add(
                        [*p, "embeds"],
                        "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                        "The 'embeds' field cannot be used when using MessageFlags.IS_COMPONENTS_V2",
                    )
                total = sum(self._validate_embed(errs, [*p, "embeds", i], e) for i, e in enumerate(embeds))
                if total > 6000:
                    errs.add([*p, "embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
        if body.get("components") is not None:
            self._validate_components(errs, [*p, "components"], body["components"], v2)
        am = body.get("allowed_mentions")
        if am is not None:
            parse = am.get("parse") or []
            for kind in ("users", "roles"):
                if kind in parse and am.get(kind):
                    errs.add(
                        [*p, "allowed_mentions"],
                        "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                        f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
                    )
                if len(am.get(kind) or []) > 100:
                    errs.add([*p, "allowed_mentions", kind], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
            for entry in parse:
                if entry not in ("users", "roles", "everyone"):
                    errs.add(
                        [*p, "allowed_mentions", "parse"],
                        "ENUM_TYPE_COERCE",
                        f'Value "{entry}" is not a valid enum value.',
                    )
        errs.raise_if_any()
        if create:
            has_any = (
                bool(content)
                or bool(embeds)
                or bool(body.get("components"))
                or bool(files)
                or bool(body.get("sticker_ids"))
                or bool(body.get("poll"))
            )
            if not has_any:
                raise ApiError(400, 50006, "Cannot send an empty message")

    # ------------------------------------------------------------------ message helpers
    def _attachments_from_files(self, channel_id: int, body: dict, files: Sequence[dict]) -> list[dict]:
        out: list[dict] = []
        meta = {str(a.get("id")): a for a in (body.get("attachments") or []) if isinstance(a, dict)}
        for f in files:
            m = re.match(r"files\[(\d+)\]", f["field"])
            info = meta.get(m.group(1) if m else "", {})
            aid = self._snowflake()
            filename = info.get("filename") or f["filename"]
            self.attachment_blobs[aid] = f["data"]
            url = f"{self.base_url}/attachments/{channel_id}/{aid}/{filename}"
            out.append(
                {
                    "id": str(aid),
                    "filename": filename,
                    "size": len(f["data"]),
                    "url": url,
                    "proxy_url": url,
                    "content_type": f["content_type"],
                    "description": info.get("description"),
                }
            )
        return out

    def _resolve_mentions(
        self,
        msg: FakeMessage,
        *,
        author_perms: int,
        reply_to: FakeMessage | None,
        allowed_mentions: dict | None,
        explicit_users: Iterable[int] = (),
    ) -> None:
        content = msg.content or ""
        guild = self.guilds.get(msg.guild_id) if msg.guild_id else None
        users = [int(x) for x in re.findall(r"<@!?(\d+)>", content)] + list(explicit_users)
        roles = [int(x) for x in re.findall(r"<@&(\d+)>", content)]
        everyone = "@everyone" in content or "@here" in content
        if allowed_mentions is None:
            parse = {"users", "roles", "everyone"}
            ulist = rlist = None
            replied_user = True
        else:
            parse = set(allowed_mentions.get("parse") or [])
            ulist = {int(x) for x in allowed_mentions.get("users") or []}
            rlist = {int(x) for x in allowed_mentions.get("roles") or []}
            replied_user = bool(allowed_mentions.get("replied_user", False))
        out_users: list[int] = []
        for u in users:
            if u in self.users and ("users" in parse or (ulist and u in ulist)) and u not in out_users:
                out_users.append(u)
        if reply_to is not None and replied_user and reply_to.author.id not in out_users:
            out_users.append(reply_to.author.id)
        out_roles: list[int] = []
        if guild is not None:
            for r in roles:
                role = guild.roles.get(r)
                if role is None or r in out_roles:
                    continue
                if not (role.mentionable or author_perms & Perm.MENTION_EVERYONE):
                    continue
                if "roles" in parse or (rlist and r in rlist):
                    out_roles.append(r)
        msg.mentions = out_users
        msg.mention_roles = out_roles
        msg.mention_everyone = bool(everyone and "everyone" in parse and author_perms & Perm.MENTION_EVERYONE)

    def _message_payload(self, m: FakeMessage, *, gateway: bool = False, depth: int = 0) -> dict:
        guild = self.guilds.get(m.guild_id) if m.guild_id else None
        mentions = []
        for uid in m.mentions:
            u = self.users.get(uid)
            if u is None:
                continue
            up = u.to_payload()
            if gateway and guild is not None and uid in guild.members:
                up["member"] = guild.members[uid].to_payload(include_user=False)
            mentions.append(up)
        p: dict[str, Any] = {
            "id": str(m.id),
            "channel_id": str(m.channel_id),
            "author": m.author.to_payload(),
            "content": m.content,
            "timestamp": m.timestamp,
            "edited_timestamp": m.edited_timestamp,
            "tts": m.tts,
            "mention_everyone": m.mention_everyone,
            "mentions": mentions,
            "mention_roles": [str(r) for r in m.mention_roles],
            "attachments": list(m.attachments),
            "embeds": [dict({"type": "rich"}, **e) for e in m.embeds],
            "pinned": False,
            "type": m.type,
            "flags": m.flags,
            "components": list(m.components),
            "reactions": [
                {
                    "emoji": {"id": None, "name": e},
                    "count": len(us),
                    "me": self.bot_user.id in us,
                    "count_details": {"burst": 0, "normal": len(us)},
                    "burst_colors": [],
                    "me_burst": False,
                    "burst_me": False,
                    "burst_count": 0,
                }
                for e, us in m.reactions.items()
                if us
            ],
        }
        if m.webhook_id:
            p["webhook_id"] = str(m.webhook_id)
        if m.application_id:
            p["application_id"] = str(m.application_id)
        if m.nonce is not None:
            p["nonce"] = m.nonce
        if m.message_reference:
            p["message_reference"] = dict(m.message_reference)
            if depth == 0 and m.reference_id is not None:
                ref = self.messages.get(m.reference_id)
                p["referenced_message"] = (
                    self._message_payload(ref, depth=1) if ref is not None and not ref.deleted else None
                )
        rec = m.interaction
        if rec is not None:
            meta: dict[str, Any] = {
                "id": str(rec.id),
                "type": rec.type,
                "user": rec.user.to_payload(),
                "authorizing_integration_owners": self._integration_owners(rec.guild_id),
            }
            if rec.type == InteractionType.APPLICATION_COMMAND:
                meta["name"] = rec.name
                meta["command_type"] = rec.command_type or 1
            if m is not rec.original and rec.original is not None:
                meta["original_response_message_id"] = str(rec.original.id)
            if rec.message is not None:
                meta["interacted_message_id"] = str(rec.message.id)
            p["interaction_metadata"] = meta
        if m.thread_id and m.thread_id in self.channels:
            p["thread"] = self.channels[m.thread_id].to_payload()
        if gateway and guild is not None:
            p["guild_id"] = str(guild.id)
            member = guild.members.get(m.author.id)
            if member is not None and not m.webhook_id:
                p["member"] = member.to_payload(include_user=False)
        return p

    def _store_message(self, msg: FakeMessage) -> FakeMessage:
        self.messages[msg.id] = msg
        ch = self.channels.get(msg.channel_id)
        if ch is not None and not msg.ephemeral:
            ch.last_message_id = msg.id
            ch.message_count += 1
        self._notify()
        return msg

    def _apply_edit(self, msg: FakeMessage, body: dict, files: Sequence[dict] = ()) -> None:
        msg.history.append(msg.snapshot())
        if "content" in body:
            msg.content = body["content"] or ""
        if "embeds" in body:
            msg.embeds = body["embeds"] or []
        if "components" in body:
            msg.components = body["components"] or []
        if "allowed_mentions" in body:
            msg.allowed_mentions = body["allowed_mentions"]
        if "flags" in body and body["flags"] is not None:
            keep = msg.flags & ~MessageFlag.SUPPRESS_EMBEDS
            msg.flags = keep | (int(body["flags"]) & MessageFlag.SUPPRESS_EMBEDS)
        if "attachments" in body or files:
            keep_ids = {str(a.get("id")) for a in (body.get("attachments") or []) if isinstance(a, dict)}
            kept = [a for a in msg.attachments if a["id"] in keep_ids] if "attachments" in body else msg.attachments
            msg.attachments = kept + self._attachments_from_files(msg.channel_id, body, files)
        msg.edited_timestamp = _iso()

    # ------------------------------------------------------------------ user actions
    async def send_message(
        self,
        channel: FakeChannel,
        author: Any,
        content: str = "",
        *,
        mentions: Iterable[Any] = (),
        reply_to: FakeMessage | None = None,
        embeds: list[dict] | None = None,
        attachments: Iterable[tuple[str, bytes]] = (),
        check_permissions: bool = True,
    ) -> FakeMessage:
        """A user posts a message (dispatches MESSAGE_CREATE).  Mentions in content are parsed."""
        user = author.user if isinstance(author, FakeMember) else author
        if not isinstance(user, FakeUser):
            user = self.users[_id_of(author)]
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        perms = Perm.ALL
        if guild is not None:
            if user.id not in guild.members:
                raise FakeDiscordUsageError(f"{user.username} is not a member of guild {guild.name}")
            perms = self.compute_permissions(guild, user, channel)
            needed = Perm.SEND_MESSAGES_IN_THREADS if channel.is_thread else Perm.SEND_MESSAGES
            if check_permissions and not (perms & Perm.VIEW_CHANNEL and perms & needed):
                raise FakeDiscordUsageError(f"{user.username} cannot send messages in #{channel.name}")
        msg = FakeMessage(
            id=self._snowflake(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=user,
            content=content,
            embeds=embeds,
            source="user",
            nonce=str(self._snowflake()),
        )
        if reply_to is not None:
            msg.type = 19
            msg.message_reference = {"type": 0, "message_id": str(reply_to.id), "channel_id": str(channel.id)}
            if guild is not None:
                msg.message_reference["guild_id"] = str(guild.id)
        files = [
            {"field": f"files[{i}]", "filename": n, "data": d, "content_type": "application/octet-stream"}
            for i, (n, d) in enumerate(attachments)
        ]
        msg.attachments = self._attachments_from_files(channel.id, {}, files)
        self._resolve_mentions(
            msg,
            author_perms=perms,
            reply_to=reply_to,
            allowed_mentions=None,
            explicit_users=[_id_of(u) for u in mentions],
        )
        self._store_message(msg)
        await self._dispatch_message("MESSAGE_CREATE", msg)
        return msg

    async def edit_user_message(self, message: FakeMessage, content: str) -> FakeMessage:
        self._apply_edit(message, {"content": content})
        await self._dispatch_message("MESSAGE_UPDATE", message)
        return message

    async def delete_message(self, message: FakeMessage) -> None:
        message.deleted = True
        self._notify()
        if not message.ephemeral:
            payload = {"id": str(message.id), "channel_id": str(message.channel_id)}
            if message.guild_id:
                payload["guild_id"] = str(message.guild_id)
            await self._dispatch("MESSAGE_DELETE", payload, guild_id=message.guild_id)

    # ------------------------------------------------------------------ interactions (test side)
    def _integration_owners(self, guild_id: int | None) -> dict:
        if guild_id:
            return {"0": str(guild_id)}
        return {"1": str(self.app_owner.id)}

    def _resolve_actor(self, user: Any, channel: FakeChannel | None) -> tuple[FakeUser, FakeChannel]:
        user = user if user is not None else self.default_user
        channel = channel if channel is not None else self.default_channel
        if user is None or channel is None:
            raise FakeDiscordUsageError("pass user= and channel= (or call create_standard_guild() for defaults)")
        if isinstance(user, FakeMember):
            user = user.user
        if not isinstance(user, FakeUser):
            user = self.users[_id_of(user)]
        return user, channel

    async def _new_interaction(
        self,
        itype: int,
        data: dict,
        user: FakeUser,
        channel: FakeChannel,
        *,
        name: str,
        message: FakeMessage | None = None,
        command_type: int | None = None,
        modal_source: InteractionRecord | None = None,
    ) -> InteractionRecord:
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        if guild is not None and user.id not in guild.members:
            raise FakeDiscordUsageError(f"{user.username} is not a member of guild {guild.name}")
        rec = InteractionRecord(
            self,
            id=self._snowflake(),
            token="aW50ZXJhY3Rpb24." + secrets.token_urlsafe(48),
            type=itype,
            data=data,
            user=user,
            channel=channel,
            guild_id=guild.id if guild else None,
            message=message,
            name=name,
            command_type=command_type,
            modal_source=modal_source,
        )
        ch_payload = channel.to_payload()
        payload: dict[str, Any] = {
            "id": str(rec.id),
            "application_id": str(self.app_id),
            "type": itype,
            "data": data,
            "channel_id": str(channel.id),
            "token": rec.token,
            "version": 1,
            "locale": user.locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": self._integration_owners(rec.guild_id),
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild is not None:
            perms = self.compute_permissions(guild, user, channel)
            ch_payload["permissions"] = str(perms)
            payload.update(
                guild_id=str(guild.id),
                guild={"id": str(guild.id), "locale": guild.locale, "features": list(guild.features)},
                guild_locale=guild.locale,
                member=guild.members[user.id].to_payload(permissions=perms),
                app_permissions=str(self.compute_permissions(guild, self.bot_user, channel)),
                context=0,
            )
        else:
            payload.update(user=user.to_payload(), context=1, app_permissions=str(Perm.BOT_DEFAULT))
        payload["channel"] = ch_payload
        if message is not None:
            payload["message"] = self._message_payload(message)
        rec.payload = payload
        self.interactions.append(rec)
        self._interactions_by_id[rec.id] = rec
        self._interactions_by_token[rec.token] = rec
        await self._dispatch("INTERACTION_CREATE", payload, guild_id=rec.guild_id)
        return rec

    def _find_command(self, name: str, guild_id: int | None, ctype: int) -> tuple[dict, bool]:
        if guild_id is not None:
            for c in self.guild_commands.get(guild_id, {}).values():
                if c["name"] == name and c.get("type", 1) == ctype:
                    return c, True
        for c in self.global_commands.values():
            if c["name"] == name and c.get("type", 1) == ctype:
                return c, False
        known = sorted(c["name"] for c in self.global_commands.values())
        raise FakeDiscordUsageError(
            f"command {name!r} (type {ctype}) is not registered; global commands: {known}. "
            "Did the bot sync its command tree?"
        )

    def _check_command_access(self, cmd: dict, user: FakeUser, channel: FakeChannel) -> None:
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        contexts = cmd.get("contexts")
        if guild is None:
            if contexts is not None and 1 not in contexts and 2 not in contexts:
                raise CommandNotAvailable(f"/{cmd['name']} is not available in DMs")
            if cmd.get("dm_permission") is False:
                raise CommandNotAvailable(f"/{cmd['name']} is not available in DMs")
            return
        if contexts is not None and 0 not in contexts:
            raise CommandNotAvailable(f"/{cmd['name']} is not available in guilds")
        perms = self.compute_permissions(guild, user, channel)
        if not perms & Perm.USE_APPLICATION_COMMANDS:
            raise CommandNotAvailable(f"{user.username} lacks Use Application Commands in #{channel.name}")
        dmp = cmd.get("default_member_permissions")
        if dmp is not None:
            needed = int(dmp)
            if needed == 0 and not perms & Perm.ADMINISTRATOR:
                raise CommandNotAvailable(f"/{cmd['name']} is disabled for everyone but admins")
            if perms & needed != needed:
                raise CommandNotAvailable(
                    f"{user.username} lacks default_member_permissions={needed} for /{cmd['name']}"
                )

    def _build_options(
        self,
        schema: list[dict],
        values: dict[str, Any],
        resolved: dict,
        guild: FakeGuild | None,
        *,
        focused: str | None = None,
        cmd_label: str,
    ) -> list[dict]:
        by_name = {o["name"]: o for o in schema}
        out: list[dict] = []
        for key in values:
            if key not in by_name:
                raise FakeDiscordUsageError(f"{cmd_label}: unknown option {key!r}; has {sorted(by_name)}")
        for o in schema:
            name = o["name"]
            if name not in values:
                if o.get("required") and focused is None:
                    raise FakeDiscordUsageError(f"{cmd_label}: required option {name!r} missing")
                continue
            v = values[name]
            otype = o["type"]
            if focused is not None and name == focused:
                out.append({"name": name, "type": otype, "value": str(v), "focused": True})
                continue
            out.append({"name": name, "type": otype, "value": self._coerce_option(o, v, resolved, guild, cmd_label)})
        return out

    def _coerce_option(self, o: dict, v: Any, resolved: dict, guild: FakeGuild | None, label: str) -> Any:
        otype = o["type"]
        name = o["name"]
        if otype == 3:
            v = str(v)
            if "min_length" in o and len(v) < o["min_length"]:
                raise FakeDiscordUsageError(f"{label}: {name} shorter than min_length {o['min_length']}")
            if "max_length" in o and len(v) > o["max_length"]:
                raise FakeDiscordUsageError(f"{label}: {name} longer than max_length {o['max_length']}")
            if len(v) > 6000:
                raise FakeDiscordUsageError(f"{label}: {name} longer than 6000 characters")
        elif otype == 4:
            if isinstance(v, bool) or not isinstance(v, int):
                raise FakeDiscordUsageError(f"{label}: {name} must be an integer")
        elif otype == 10:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise FakeDiscordUsageError(f"{label}: {name} must be a number")
        elif otype == 5 and not isinstance(v, bool):
            raise FakeDiscordUsageError(f"{label}: {name} must be a bool")
        if otype in (4, 10):
            if "min_value" in o and v < o["min_value"]:
                raise FakeDiscordUsageError(f"{label}: {name} below min_value {o['min_value']}")
            if "max_value" in o and v > o["max_value"]:
                raise FakeDiscordUsageError(f"{label}: {name} above max_value {o['max_value']}")
        if o.get("choices") and otype in (3, 4, 10):
            allowed = [c["value"] for c in o["choices"]]
            if v not in allowed:
                raise FakeDiscordUsageError(f"{label}: {name}={v!r} is not one of the choices {allowed}")
        if otype in (6, 7, 8, 9):
            target = v
            tid = _id_of(target)
            if isinstance(target, FakeRole) or (guild is not None and tid in guild.roles):
                if otype not in (8, 9):
                    raise FakeDiscordUsageError(f"{label}: {name} does not accept a role")
                resolved.setdefault("roles", {})[str(tid)] = guild.roles[tid].to_payload() if guild else {}
            elif isinstance(target, FakeChannel) or tid in self.channels:
                if otype != 7:
                    raise FakeDiscordUsageError(f"{label}: {name} does not accept a channel")
                ch = self.channels[tid]
                cp = ch.to_payload()
                if guild is not None:
                    cp["permissions"] = str(self.compute_permissions(guild, self.bot_user, ch))
                resolved.setdefault("channels", {})[str(tid)] = cp
            else:
                if otype not in (6, 9):
                    raise FakeDiscordUsageError(f"{label}: {name} does not accept a user")
                user = self.users.get(tid)
                if user is None:
                    raise FakeDiscordUsageError(f"{label}: unknown user {tid}")
                resolved.setdefault("users", {})[str(tid)] = user.to_payload()
                if guild is not None and tid in guild.members:
                    mp = guild.members[tid].to_payload(
                        include_user=False, permissions=self.compute_permissions(guild, tid)
                    )
                    resolved.setdefault("members", {})[str(tid)] = mp
            return str(tid)
        if otype == 11:
            filename, blob = v if isinstance(v, tuple) else ("file.txt", bytes(v))
            aid = self._snowflake()
            self.attachment_blobs[aid] = blob
            url = f"{self.base_url}/attachments/0/{aid}/{filename}"
            resolved.setdefault("attachments", {})[str(aid)] = {
                "id": str(aid),
                "filename": filename,
                "size": len(blob),
                "url": url,
                "proxy_url": url,
                "content_type": "application/octet-stream",
            }
            return str(aid)
        return v

    async def _command_interaction(
        self,
        name: str,
        options: dict[str, Any] | None,
        *,
        user: Any,
        channel: FakeChannel | None,
        itype: int,
        focused: str | None = None,
        enforce_permissions: bool = True,
    ) -> InteractionRecord:
        user_obj, channel = self._resolve_actor(user, channel)
        parts = name.split()
        if not parts:
            raise FakeDiscordUsageError("empty command name")
        cmd, is_guild = self._find_command(parts[0], channel.guild_id, 1)
        if enforce_permissions:
            self._check_command_access(cmd, user_obj, channel)
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        resolved: dict = {}
        schema = cmd.get("options") or []
        chain: list[dict] = []
        for sub in parts[1:]:
            node = next((o for o in schema if o["name"] == sub and o["type"] in (1, 2)), None)
            if node is None:
                raise FakeDiscordUsageError(f"/{name}: no subcommand/group {sub!r}")
            chain.append(node)
            schema = node.get("options") or []
        if any(o["type"] in (1, 2) for o in schema):
            raise FakeDiscordUsageError(f"/{name} needs a subcommand: {[o['name'] for o in schema]}")
        leaf = self._build_options(schema, dict(options or {}), resolved, guild, focused=focused, cmd_label=f"/{name}")
        for node in reversed(chain):
            leaf = [{"name": node["name"], "type": node["type"], "options": leaf}]
        data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": 1, "options": leaf}
        if resolved:
            data["resolved"] = resolved
        if is_guild:
            data["guild_id"] = cmd["guild_id"]
        return await self._new_interaction(itype, data, user_obj, channel, name=name, command_type=1)

    async def invoke_slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user: Any = None,
        channel: FakeChannel | None = None,
        guild: FakeGuild | None = None,
        enforce_permissions: bool = True,
    ) -> InteractionRecord:
        """Run ``/name`` (``"kb add"`` for subcommands) with ``options`` typed by the registered schema."""
        if guild is not None and channel is not None and channel.guild_id != guild.id:
            raise FakeDiscordUsageError("channel is not in guild")
        return await self._command_interaction(
            name,
            options,
            user=user,
            channel=channel,
            itype=InteractionType.APPLICATION_COMMAND,
            enforce_permissions=enforce_permissions,
        )

    async def autocomplete(
        self,
        name: str,
        options: dict[str, Any],
        focused: str,
        *,
        user: Any = None,
        channel: FakeChannel | None = None,
        enforce_permissions: bool = True,
    ) -> InteractionRecord:
        """The user is typing into option ``focused`` (its current text is ``options[focused]``).

        ``enforce_permissions=False`` is a member a server admin let see the command anyway."""
        if focused not in options:
            raise FakeDiscordUsageError("options must contain the focused option's partial value")
        return await self._command_interaction(
            name,
            options,
            user=user,
            channel=channel,
            itype=InteractionType.AUTOCOMPLETE,
            focused=focused,
            enforce_permissions=enforce_permissions,
        )

    async def invoke_message_command(
        self,
        name: str,
        target_message: FakeMessage,
        *,
        user: Any = None,
        channel: FakeChannel | None = None,
        enforce_permissions: bool = True,
    ) -> InteractionRecord:
        """Message context menu (Apps > name) on ``target_message``."""
        if channel is None:
            channel = self.channels[target_message.channel_id]
        user_obj, channel = self._resolve_actor(user, channel)
        cmd, is_guild = self._find_command(name, channel.guild_id, 3)
        if enforce_permissions:
            self._check_command_access(cmd, user_obj, channel)
        data: dict[str, Any] = {
            "id": cmd["id"],
            "name": name,
            "type": 3,
            "target_id": str(target_message.id),
            "resolved": {"messages": {str(target_message.id): self._message_payload(target_message)}},
        }
        if is_guild:
            data["guild_id"] = cmd["guild_id"]
        return await self._new_interaction(
            InteractionType.APPLICATION_COMMAND, data, user_obj, channel, name=name, command_type=3
        )

    invoke_user_message_command = invoke_message_command

    async def invoke_user_command(
        self,
        name: str,
        target_user: Any,
        *,
        user: Any = None,
        channel: FakeChannel | None = None,
        enforce_permissions: bool = True,
    ) -> InteractionRecord:
        """User context menu (Apps > name) on ``target_user``."""
        user_obj, channel = self._resolve_actor(user, channel)
        cmd, is_guild = self._find_command(name, channel.guild_id, 2)
        if enforce_permissions:
            self._check_command_access(cmd, user_obj, channel)
        target = self.users[_id_of(target_user)]
        resolved: dict = {"users": {str(target.id): target.to_payload()}}
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        if guild is not None and target.id in guild.members:
            resolved["members"] = {
                str(target.id): guild.members[target.id].to_payload(
                    include_user=False, permissions=self.compute_permissions(guild, target)
                )
            }
        data: dict[str, Any] = {
            "id": cmd["id"],
            "name": name,
            "type": 2,
            "target_id": str(target.id),
            "resolved": resolved,
        }
        if is_guild:
            data["guild_id"] = cmd["guild_id"]
        return await self._new_interaction(
            InteractionType.APPLICATION_COMMAND, data, user_obj, channel, name=name, command_type=2
        )

    def _component_target(self, message: Any, custom_id: str, types: tuple[int, ...]) -> tuple[FakeMessage, dict]:
        msg = message if isinstance(message, FakeMessage) else self.messages.get(_id_of(message))
        if msg is None or msg.deleted:
            raise FakeDiscordUsageError("message does not exist (or was deleted)")
        comp = msg.find_component(custom_id)
        if comp is None:
            raise FakeDiscordUsageError(f"message {msg.id} has no component {custom_id!r}; has {msg.all_custom_ids()}")
        if comp.get("type") not in types:
            raise FakeDiscordUsageError(f"component {custom_id!r} has type {comp.get('type')}, expected {types}")
        if comp.get("disabled"):
            raise FakeDiscordUsageError(f"component {custom_id!r} is disabled")
        return msg, comp

    def _check_can_see(self, msg: FakeMessage, user: FakeUser) -> None:
        """An ephemeral message exists only for the user whose interaction produced it."""
        if msg.ephemeral and msg.interaction is not None and msg.interaction.user.id != user.id:
            raise FakeDiscordUsageError(
                f"{user.username} cannot see ephemeral message {msg.id} (only {msg.interaction.user.username} can)"
            )

    async def click_button(self, message: Any, custom_id: str, *, user: Any = None) -> InteractionRecord:
        msg, _ = self._component_target(message, custom_id, (2,))
        user_obj, channel = self._resolve_actor(user, self.channels[msg.channel_id])
        self._check_can_see(msg, user_obj)
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._new_interaction(
            InteractionType.MESSAGE_COMPONENT, data, user_obj, channel, name=custom_id, message=msg
        )

    async def select_menu(
        self, message: Any, custom_id: str, values: Sequence[Any], *, user: Any = None
    ) -> InteractionRecord:
        msg, comp = self._component_target(message, custom_id, (3, 5, 6, 7, 8))
        user_obj, channel = self._resolve_actor(user, self.channels[msg.channel_id])
        self._check_can_see(msg, user_obj)
        ctype = comp["type"]
        lo, hi = comp.get("min_values", 1), comp.get("max_values", 1)
        if not lo <= len(values) <= hi:
            raise FakeDiscordUsageError(f"select {custom_id!r} takes {lo}..{hi} values")
        vals = [str(v) if ctype == 3 else str(_id_of(v)) for v in values]
        if ctype == 3:
            allowed = [o["value"] for o in comp.get("options", [])]
            bad = [v for v in vals if v not in allowed]
            if bad:
                raise FakeDiscordUsageError(f"values {bad} are not options of {custom_id!r}")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": ctype, "values": vals}
        if ctype != 3:
            resolved: dict = {}
            guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
            opt_type = {5: 6, 6: 8, 7: 9, 8: 7}[ctype]
            for v in values:
                self._coerce_option({"type": opt_type, "name": custom_id}, v, resolved, guild, custom_id)
            data["resolved"] = resolved
        return await self._new_interaction(
            InteractionType.MESSAGE_COMPONENT, data, user_obj, channel, name=custom_id, message=msg
        )

    async def submit_modal(
        self,
        source: InteractionRecord | FakeMessage,
        custom_id: str | None = None,
        values: dict[str, Any] | None = None,
        *,
        user: Any = None,
    ) -> InteractionRecord:
        """Submit the modal shown in response to ``source`` (an interaction record, or the message whose
        component opened it).  ``values`` maps text-input custom_id -> text (or list for selects)."""
        values = dict(values or {})
        rec = source
        if isinstance(source, FakeMessage):
            rec = next(
                (
                    r
                    for r in reversed(self.interactions)
                    if r.message is source and r.response and r.response.type == CallbackType.MODAL
                ),
                None,
            )
            if rec is None:
                raise FakeDiscordUsageError("no modal was opened from a component on this message")
        assert isinstance(rec, InteractionRecord)
        if rec.response is None or rec.response.type != CallbackType.MODAL:
            raise FakeDiscordUsageError(f"interaction {rec.name!r} was not answered with a modal")
        modal = rec.response.data
        if custom_id is not None and custom_id != modal.get("custom_id"):
            raise FakeDiscordUsageError(f"the modal shown has custom_id {modal.get('custom_id')!r}, not {custom_id!r}")
        known = {c.get("custom_id") for c in _walk_components(modal.get("components", []))}
        unknown = set(values) - known
        if unknown:
            raise FakeDiscordUsageError(f"modal has no inputs {sorted(unknown)}; has {sorted(k for k in known if k)}")

        def convert(c: dict) -> dict | None:
            t = c.get("type")
            if t == 1:
                inner = [x for x in (convert(ch) for ch in c.get("components", [])) if x]
                return {"type": 1, "components": inner}
            if t == 18:
                inner = convert(c["component"])
                return {"type": 18, "component": inner} if inner else None
            cid = c.get("custom_id")
            if t == 4:
                v = str(values.get(cid, c.get("value") or ""))
                if c.get("required", True) and not v:
                    raise FakeDiscordUsageError(f"text input {cid!r} is required")
                if v and "min_length" in c and len(v) < c["min_length"]:
                    raise FakeDiscordUsageError(f"text input {cid!r} shorter than {c['min_length']}")
                if "max_length" in c and len(v) > c["max_length"]:
                    raise FakeDiscordUsageError(f"text input {cid!r} longer than {c['max_length']}")
                return {"type": 4, "custom_id": cid, "value": v}
            if t in (3, 5, 6, 7, 8):
                v = values.get(cid, [])
                return {"type": t, "custom_id": cid, "values": [str(x) for x in v]}
            return None

        components = [x for x in (convert(c) for c in modal.get("components", [])) if x]
        user_obj, channel = self._resolve_actor(user if user is not None else rec.user, rec.channel)
        data = {"custom_id": modal["custom_id"], "components": components}
        return await self._new_interaction(
            InteractionType.MODAL_SUBMIT,
            data,
            user_obj,
            channel,
            name=modal["custom_id"],
            message=rec.message,
            modal_source=rec,
        )

    # ------------------------------------------------------------------ REST handlers: identity
    def _h_get_me(self, req: _Req):
        return 200, dict(
            self.bot_user.to_payload(),
            verified=True,
            mfa_enabled=False,
            flags=0,
            email=None,
            locale="en-US",
            premium_type=0,
        )

    def _h_get_user(self, req: _Req):
        u = self.users.get(int(req.params["user_id"]))
        if u is None:
            raise ApiError(404, 10013, "Unknown User")
        return 200, u.to_payload()

    def _h_get_app(self, req: _Req):
        return 200, {
            "id": str(self.app_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "fake application",
            "summary": "",
            "type": None,
            "bot_public": False,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": self._application_flags(),
            "owner": self.app_owner.to_payload(),
            "team": None,
            "bot": self.bot_user.to_payload(),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": len(self.guilds),
            "integration_types_config": {"0": {}},
        }

    def _h_gateway(self, req: _Req):
        return 200, {"url": self.gateway_url.rstrip("/")}

    def _h_gateway_bot(self, req: _Req):
        return 200, {
            "url": self.gateway_url.rstrip("/"),
            "shards": self.shard_count,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1},
        }

    async def _h_create_dm(self, req: _Req):
        rid = int((req.json or {}).get("recipient_id", 0))
        user = self.users.get(rid)
        if user is None:
            raise ApiError(
                400,
                50035,
                "Invalid Form Body",
                {"recipient_id": {"_errors": [{"code": "NUMBER_TYPE_COERCE", "message": "Unknown user"}]}},
            )
        ch = await self.create_dm(user)
        return 200, ch.to_payload()

    # ------------------------------------------------------------------ REST handlers: commands
    def _check_app(self, req: _Req) -> tuple[dict[int, dict], int | None]:
        if int(req.params["app_id"]) != self.app_id:
            raise ApiError(403, 50001, "Missing Access")
        gid = req.params.get("guild_id")
        if gid is None:
            return self.global_commands, None
        gid_i = int(gid)
        if gid_i not in self.guilds:
            raise ApiError(403, 50001, "Missing Access")
        return self.guild_commands.setdefault(gid_i, {}), gid_i

    def _validate_command(self, errs: _Errors, path: list, c: Any) -> None:
        if not isinstance(c, dict):
            errs.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
            return
        ctype = c.get("type", 1)
        name = c.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 32:
            errs.add([*path, "name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
        elif ctype == 1 and (not re.fullmatch(r"[-_\w]{1,32}", name) or name != name.lower()):
            errs.add([*path, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        desc = c.get("description", "")
        if ctype == 1:
            if not isinstance(desc, str) or not 1 <= len(desc) <= 100:
                errs.add([*path, "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        elif desc:
            errs.add(
                [*path, "description"],
                "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
                "Context menu commands cannot have description",
            )
        self._validate_localizations(errs, path, c, chat_input=ctype == 1, needs_description=ctype == 1)
        self._validate_options(errs, [*path, "options"], c.get("options") or [], depth=0)

    def _validate_localizations(
        self, errs: _Errors, path: list, c: dict, *, chat_input: bool, needs_description: bool
    ) -> None:
        """``name_localizations`` / ``description_localizations``: known locales, valid names, 1-100 characters."""
        for key in ("name_localizations", "description_localizations"):
            table = c.get(key)
            if table is None:
                continue
            if not isinstance(table, dict):
                errs.add([*path, key], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
                continue
            for locale, text in table.items():
                if locale not in DISCORD_LOCALES:
                    errs.add([*path, key, locale], "BASE_TYPE_CHOICES", "Value must be a Discord locale.")
                    continue
                if key == "name_localizations":
                    if not isinstance(text, str) or not 1 <= len(text) <= 32:
                        errs.add([*path, key, locale], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
                    elif chat_input and not _valid_command_name(text):
                        errs.add([*path, key, locale], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
                elif not needs_description:
                    errs.add(
                        [*path, key],
                        "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
                        "Context menu commands cannot have description",
                    )
                elif not isinstance(text, str) or not 1 <= len(text) <= 100:
                    errs.add([*path, key, locale], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")

    def _validate_options(self, errs: _Errors, path: list, options: list, depth: int) -> None:
        if len(options) > 25:
            errs.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        names = set()
        seen_optional = False
        for i, o in enumerate(options):
            name = o.get("name", "")
            if not re.fullmatch(r"[-_\w]{1,32}", name or "") or name != name.lower():
                errs.add([*path, i, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
            if name in names:
                errs.add(
                    [*path, i, "name"], "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Option names must be unique"
                )
            names.add(name)
            if not 1 <= len(o.get("description", "")) <= 100:
                errs.add([*path, i, "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
            self._validate_localizations(errs, [*path, i], o, chat_input=True, needs_description=True)
            otype = o.get("type")
            if otype not in OPTION_TYPES:
                errs.add([*path, i, "type"], "BASE_TYPE_CHOICES", "Value must be one of {1..11}.")
            if otype in (1, 2):
                if depth >= (1 if otype == 2 else 2) or (otype == 2 and depth != 0):
                    errs.add(
                        [*path, i, "type"],
                        "APPLICATION_COMMAND_OPTION_TYPE_INVALID_NESTING",
                        "Sub-command groups / sub-commands nested too deeply",
                    )
                self._validate_options(errs, [*path, i, "options"], o.get("options") or [], depth + 1)
            else:
                if o.get("required"):
                    if seen_optional:
                        errs.add(
                            [*path, i, "required"],
                            "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                            "Required options must be placed before non-required options",
                        )
                else:
                    seen_optional = True
                choices = o.get("choices") or []
                if len(choices) > 25:
                    errs.add([*path, i, "choices"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
                if choices and o.get("autocomplete"):
                    errs.add(
                        [*path, i, "autocomplete"],
                        "APPLICATION_COMMAND_OPTION_AUTOCOMPLETE_CHOICES",
                        "Autocomplete cannot be set with choices",
                    )

    def _store_command(self, store: dict[int, dict], gid: int | None, c: dict, existing: dict | None = None) -> dict:
        cmd = json.loads(json.dumps(c))
        cmd.setdefault("type", 1)
        cmd.setdefault("description", "")
        cmd.setdefault("options", [])
        cmd.setdefault("default_member_permissions", None)
        if cmd["default_member_permissions"] is not None:  # Discord echoes permissions as a string
            cmd["default_member_permissions"] = str(cmd["default_member_permissions"])
        cmd.setdefault("nsfw", False)
        cmd["id"] = existing["id"] if existing else str(self._snowflake())
        cmd["application_id"] = str(self.app_id)
        cmd["version"] = str(self._snowflake())
        if gid is not None:
            cmd["guild_id"] = str(gid)
        else:
            cmd.setdefault("contexts", None)
            cmd.setdefault("integration_types", [0])
        store[int(cmd["id"])] = cmd
        return cmd

    def _h_get_commands(self, req: _Req):
        store, _ = self._check_app(req)
        return 200, list(store.values())

    def _h_put_commands(self, req: _Req):
        store, gid = self._check_app(req)
        body = req.json
        if not isinstance(body, list):
            raise _form_error({"_errors": [{"code": "LIST_TYPE_CONVERT", "message": "Must be an array"}]})
        errs = _Errors()
        per_type: dict[int, int] = {}
        seen = set()
        for i, c in enumerate(body):
            self._validate_command(errs, [i], c)
            if isinstance(c, dict):
                t = c.get("type", 1)
                per_type[t] = per_type.get(t, 0) + 1
                if (c.get("name"), t) in seen:
                    errs.add(
                        [i, "name"], "APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique"
                    )
                seen.add((c.get("name"), t))
        if per_type.get(1, 0) > 100:
            errs.add([], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        if per_type.get(2, 0) > 15 or per_type.get(3, 0) > 15:
            errs.add([], "APPLICATION_COMMAND_TOO_MANY", "Maximum number of context menu commands reached (15)")
        errs.raise_if_any()
        old = {(c["name"], c.get("type", 1)): c for c in store.values()}
        store.clear()
        out = [self._store_command(store, gid, c, old.get((c["name"], c.get("type", 1)))) for c in body]
        self.command_puts.append((gid, [c["name"] for c in out]))
        return 200, out

    def _h_post_command(self, req: _Req):
        store, gid = self._check_app(req)
        errs = _Errors()
        self._validate_command(errs, [], req.json)
        errs.raise_if_any()
        c = req.json
        existing = next(
            (x for x in store.values() if x["name"] == c["name"] and x.get("type", 1) == c.get("type", 1)), None
        )
        cmd = self._store_command(store, gid, c, existing)
        return (200 if existing else 201), cmd

    def _command_or_404(self, req: _Req) -> tuple[dict[int, dict], int | None, dict]:
        store, gid = self._check_app(req)
        cmd = store.get(int(req.params["command_id"]))
        if cmd is None:
            raise ApiError(404, 10063, "Unknown application command")
        return store, gid, cmd

    def _h_get_command(self, req: _Req):
        return 200, self._command_or_404(req)[2]

    def _h_patch_command(self, req: _Req):
        store, gid, cmd = self._command_or_404(req)
        merged = dict(cmd)
        merged.update(req.json or {})
        errs = _Errors()
        self._validate_command(errs, [], merged)
        errs.raise_if_any()
        return 200, self._store_command(store, gid, merged, cmd)

    def _h_delete_command(self, req: _Req):
        store, _, cmd = self._command_or_404(req)
        del store[int(cmd["id"])]
        return 204, None

    # ------------------------------------------------------------------ REST handlers: interactions
    async def _h_callback(self, req: _Req):
        rec = self._interactions_by_id.get(int(req.params["interaction_id"]))
        if rec is None or rec.token != req.params["token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        req.interaction = rec
        if rec.response is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        elapsed = self._now() - rec.created_at
        if elapsed > self.interaction_deadline:
            raise ApiError(404, 10062, "Unknown interaction")
        body = req.json
        if not isinstance(body, dict) or "type" not in body:
            raise _form_error(
                {"type": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}}
            )
        ctype = body["type"]
        data = body.get("data") or {}
        allowed = {
            InteractionType.PING: {1},
            InteractionType.APPLICATION_COMMAND: {4, 5, 9},
            InteractionType.MESSAGE_COMPONENT: {4, 5, 6, 7, 9},
            InteractionType.AUTOCOMPLETE: {8},
            InteractionType.MODAL_SUBMIT: {4, 5, 6, 7} if rec.message is not None else {4, 5},
        }[rec.type]
        if ctype not in allowed:
            raise _form_error(
                {
                    "type": {
                        "_errors": [
                            {
                                "code": "INTERACTION_RESPONSE_TYPE_INVALID",
                                "message": f"Interaction response type {ctype} is not valid "
                                f"for interaction type {rec.type}",
                            }
                        ]
                    }
                }
            )
        message: FakeMessage | None = None
        msg_type = {1: 20, 2: 23, 3: 23}.get(rec.command_type or 0, 0) if rec.type == 2 else 0
        if ctype == 4:
            self._validate_message(data, prefix=["data"], create=True, files=req.files)
            flags = int(data.get("flags") or 0) & (MessageFlag.SENDABLE | MessageFlag.EPHEMERAL)
            message = self._new_bot_message(rec, data, flags, msg_type, req.files)
            rec.original = message
        elif ctype == 5:
            flags = MessageFlag.LOADING | (int(data.get("flags") or 0) & MessageFlag.EPHEMERAL)
            message = FakeMessage(
                id=self._snowflake(),
                channel_id=rec.channel_id,
                guild_id=rec.guild_id,
                author=self.bot_user,
                flags=flags,
                type=msg_type,
                webhook_id=self.app_id,
                application_id=self.app_id,
                interaction=rec,
                source="interaction",
            )
            rec.original = message
        elif ctype in (6, 7):
            message = rec.message
            rec.original = message
            if ctype == 7:
                self._validate_message(data, prefix=["data"], create=False, files=req.files)
        elif ctype == 8:
            errs = _Errors()
            choices = data.get("choices")
            if not isinstance(choices, list):
                errs.add(["data", "choices"], "BASE_TYPE_REQUIRED", "This field is required")
            else:
                if len(choices) > 25:
                    errs.add(["data", "choices"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
                for i, ch in enumerate(choices):
                    if not 1 <= len(str(ch.get("name", ""))) <= 100:
                        errs.add(
                            ["data", "choices", i, "name"],
                            "BASE_TYPE_BAD_LENGTH",
                            "Must be between 1 and 100 in length.",
                        )
                    if isinstance(ch.get("value"), str):
                        errs.max_len(["data", "choices", i, "value"], ch["value"], 100)
            errs.raise_if_any()
        elif ctype == 9:
            errs = _Errors()
            cid = data.get("custom_id") or ""
            if not 1 <= len(cid) <= 100:
                errs.add(["data", "custom_id"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
            if not 1 <= len(data.get("title") or "") <= 45:
                errs.add(["data", "title"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length.")
            comps = data.get("components") or []
            if not 1 <= len(comps) <= 5:
                errs.add(["data", "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
            for i, c in enumerate(_walk_components(comps)):
                if c.get("type") == 4:
                    if c.get("label") is not None:
                        errs.max_len(["data", "components", i, "label"], str(c["label"]), 45)
                    errs.max_len(["data", "components", i, "custom_id"], str(c.get("custom_id", "")), 100)
                    if c.get("placeholder") is not None:
                        errs.max_len(["data", "components", i, "placeholder"], str(c["placeholder"]), 100)
            errs.raise_if_any()

        # accepted
        rec.response = ResponseRecord(ctype, data, time.monotonic(), elapsed, message)
        if ctype in (4, 5) and message is not None:
            self._store_message(message)
            await self._dispatch_message("MESSAGE_CREATE", message)
        elif ctype == 7 and message is not None:
            self._apply_edit(message, data, req.files)
            await self._dispatch_message("MESSAGE_UPDATE", message)
        self._notify()

        if req.query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        inter: dict[str, Any] = {"id": str(rec.id), "type": rec.type}
        resource: dict[str, Any] = {"type": ctype}
        if message is not None and ctype in (4, 5, 7):
            inter["response_message_id"] = str(message.id)
            inter["response_message_loading"] = ctype == 5
            inter["response_message_ephemeral"] = message.ephemeral
            resource["message"] = self._message_payload(message)
        elif message is not None and ctype == 6:
            inter["response_message_id"] = str(message.id)
        return 200, {"interaction": inter, "resource": resource}

    def _new_bot_message(
        self, rec: InteractionRecord, data: dict, flags: int, msg_type: int, files: Sequence[dict]
    ) -> FakeMessage:
        msg = FakeMessage(
            id=self._snowflake(),
            channel_id=rec.channel_id,
            guild_id=rec.guild_id,
            author=self.bot_user,
            content=data.get("content") or "",
            embeds=data.get("embeds"),
            components=data.get("components"),
            flags=flags,
            allowed_mentions=data.get("allowed_mentions"),
            type=msg_type,
            webhook_id=self.app_id,
            application_id=self.app_id,
            interaction=rec,
            source="interaction",
            tts=bool(data.get("tts")),
        )
        msg.attachments = self._attachments_from_files(rec.channel_id, data, files)
        self._resolve_mentions(
            msg, author_perms=Perm.MENTION_EVERYONE, reply_to=None, allowed_mentions=data.get("allowed_mentions")
        )
        return msg

    def _webhook_interaction(self, req: _Req) -> InteractionRecord:
        rec = self._interactions_by_token.get(req.params["token"])
        if rec is None or int(req.params["app_id"]) != self.app_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        req.interaction = rec
        if self._now() - rec.created_at > self.followup_ttl:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if rec.response is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        return rec

    def _webhook_message(self, rec: InteractionRecord, mid: str) -> FakeMessage:
        msg = rec.original if mid == "@original" else next((m for m in rec.messages if m.id == int(mid)), None)
        if msg is None or msg.deleted:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    async def _h_webhook_execute(self, req: _Req):
        rec = self._webhook_interaction(req)
        body = req.json or {}
        self._validate_message(body, create=True, files=req.files)
        orig = rec.original
        if rec.response and rec.response.type == 5 and orig is not None and orig.loading and not rec._deferred_filled:
            # The first followup after a deferral replaces the "thinking..." message.
            rec._deferred_filled = True
            self._apply_edit(orig, body, req.files)
            orig.flags = (orig.flags & MessageFlag.EPHEMERAL) | (int(body.get("flags") or 0) & MessageFlag.SENDABLE)
            orig.edited_timestamp = None
            self._resolve_mentions(
                orig, author_perms=Perm.MENTION_EVERYONE, reply_to=None, allowed_mentions=body.get("allowed_mentions")
            )
            msg = orig
            rec.followups.append(msg)
            await self._dispatch_message("MESSAGE_UPDATE", msg)
        else:
            flags = int(body.get("flags") or 0) & (MessageFlag.SENDABLE | MessageFlag.EPHEMERAL)
            msg = self._new_bot_message(rec, body, flags, 0 if rec.type != 2 else 20, req.files)
            msg.source = "followup"
            rec.followups.append(msg)
            self._store_message(msg)
            await self._dispatch_message("MESSAGE_CREATE", msg)
        self._notify()
        if req.query.get("wait") in ("1", "true", "True"):
            return 200, self._message_payload(msg)
        return 204, None

    def _h_webhook_get(self, req: _Req):
        rec = self._webhook_interaction(req)
        return 200, self._message_payload(self._webhook_message(rec, req.params["message_id"]))

    async def _h_webhook_edit(self, req: _Req):
        rec = self._webhook_interaction(req)
        msg = self._webhook_message(rec, req.params["message_id"])
        body = req.json or {}
        self._validate_message(body, create=False, files=req.files)
        was_loading = msg.loading
        self._apply_edit(msg, body, req.files)
        if was_loading:
            msg.flags &= ~MessageFlag.LOADING
            rec._deferred_filled = True
        if "content" in body or "allowed_mentions" in body:
            self._resolve_mentions(
                msg, author_perms=Perm.MENTION_EVERYONE, reply_to=None, allowed_mentions=msg.allowed_mentions
            )
        await self._dispatch_message("MESSAGE_UPDATE", msg)
        self._notify()
        return 200, self._message_payload(msg)

    async def _h_webhook_delete(self, req: _Req):
        rec = self._webhook_interaction(req)
        msg = self._webhook_message(rec, req.params["message_id"])
        await self.delete_message(msg)
        return 204, None

    # ------------------------------------------------------------------ REST handlers: channels/messages
    def _channel_or_404(self, req: _Req) -> FakeChannel:
        ch = self.channels.get(int(req.params["channel_id"]))
        if ch is None or ch.deleted:
            raise ApiError(404, 10003, "Unknown Channel")
        return ch

    def _bot_perms(self, ch: FakeChannel) -> int:
        if ch.guild_id is None:
            return Perm.ALL & ~Perm.MENTION_EVERYONE
        return self.compute_permissions(self.guilds[ch.guild_id], self.bot_user, ch)

    def _require(self, ch: FakeChannel, *needed: int) -> int:
        perms = self._bot_perms(ch)
        if not perms & Perm.VIEW_CHANNEL:
            raise ApiError(403, 50001, "Missing Access")
        for n in needed:
            if perms & n != n:
                raise ApiError(403, 50013, "Missing Permissions")
        return perms

    def _h_get_channel(self, req: _Req):
        ch = self._channel_or_404(req)
        self._require(ch)
        return 200, ch.to_payload()

    def _h_get_messages(self, req: _Req):
        ch = self._channel_or_404(req)
        perms = self._require(ch)
        if not perms & Perm.READ_MESSAGE_HISTORY:
            return 200, []
        limit = max(1, min(100, int(req.query.get("limit", 50))))
        msgs = sorted(self.channel_messages(ch), key=lambda m: m.id, reverse=True)
        if "before" in req.query:
            msgs = [m for m in msgs if m.id < int(req.query["before"])]
        if "after" in req.query:
            msgs = sorted([m for m in msgs if m.id > int(req.query["after"])], key=lambda m: m.id)[:limit]
            msgs.reverse()
        if "around" in req.query:
            a = int(req.query["around"])
            msgs = sorted(msgs, key=lambda m: abs(m.id - a))[:limit]
            msgs.sort(key=lambda m: m.id, reverse=True)
        return 200, [self._message_payload(m) for m in msgs[:limit]]

    def _message_or_404(self, req: _Req, ch: FakeChannel) -> FakeMessage:
        msg = self.messages.get(int(req.params["message_id"]))
        if msg is None or msg.deleted or msg.channel_id != ch.id or msg.ephemeral:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    async def _h_create_message(self, req: _Req):
        ch = self._channel_or_404(req)
        perms = self._require(ch, Perm.SEND_MESSAGES_IN_THREADS if ch.is_thread else Perm.SEND_MESSAGES)
        if ch.is_thread and ch.locked and not perms & Perm.MANAGE_THREADS:
            raise ApiError(403, 50083, "Thread is locked")
        body = req.json or {}
        self._validate_message(body, create=True, files=req.files)
        if req.files and not perms & Perm.ATTACH_FILES:
            raise ApiError(403, 50013, "Missing Permissions")
        reply_to: FakeMessage | None = None
        ref = body.get("message_reference")
        if ref:
            target = self.messages.get(int(ref.get("message_id") or 0))
            same_channel = target is not None and target.channel_id == int(ref.get("channel_id") or ch.id)
            if target is None or target.deleted or target.ephemeral or not same_channel:
                if ref.get("fail_if_not_exists", True):
                    raise _form_error(
                        {
                            "message_reference": {
                                "_errors": [{"code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "message": "Unknown message"}]
                            }
                        }
                    )
                ref = None
            else:
                reply_to = target
        if ch.is_thread and ch.archived:
            ch.archived = False
        msg = FakeMessage(
            id=self._snowflake(),
            channel_id=ch.id,
            guild_id=ch.guild_id,
            author=self.bot_user,
            content=body.get("content") or "",
            embeds=body.get("embeds"),
            components=body.get("components"),
            flags=int(body.get("flags") or 0) & MessageFlag.SENDABLE,
            allowed_mentions=body.get("allowed_mentions"),
            type=19 if reply_to else 0,
            source="rest",
            tts=bool(body.get("tts")),
            nonce=body.get("nonce"),
        )
        if reply_to is not None:
            msg.message_reference = {
                "type": int(ref.get("type", 0)),
                "message_id": str(reply_to.id),
                "channel_id": str(ch.id),
            }
            if ch.guild_id:
                msg.message_reference["guild_id"] = str(ch.guild_id)
        msg.attachments = self._attachments_from_files(ch.id, body, req.files)
        self._resolve_mentions(msg, author_perms=perms, reply_to=reply_to, allowed_mentions=msg.allowed_mentions)
        self._store_message(msg)
        await self._dispatch_message("MESSAGE_CREATE", msg)
        return 200, self._message_payload(msg)

    def _h_get_message(self, req: _Req):
        ch = self._channel_or_404(req)
        perms = self._require(ch)
        if not perms & Perm.READ_MESSAGE_HISTORY:
            raise ApiError(403, 50001, "Missing Access")
        return 200, self._message_payload(self._message_or_404(req, ch))

    async def _h_edit_message(self, req: _Req):
        ch = self._channel_or_404(req)
        perms = self._require(ch)
        msg = self._message_or_404(req, ch)
        body = req.json or {}
        if msg.author.id != self.bot_user.id:
            if set(body) - {"flags"}:
                raise ApiError(403, 50005, "Cannot edit a message authored by another user")
            if not perms & Perm.MANAGE_MESSAGES:
                raise ApiError(403, 50013, "Missing Permissions")
        self._validate_message(body, create=False, files=req.files)
        self._apply_edit(msg, body, req.files)
        if "content" in body or "allowed_mentions" in body:
            self._resolve_mentions(msg, author_perms=perms, reply_to=None, allowed_mentions=msg.allowed_mentions)
        await self._dispatch_message("MESSAGE_UPDATE", msg)
        return 200, self._message_payload(msg)

    async def _h_delete_message(self, req: _Req):
        ch = self._channel_or_404(req)
        perms = self._require(ch)
        msg = self._message_or_404(req, ch)
        if msg.author.id != self.bot_user.id and not perms & Perm.MANAGE_MESSAGES:
            raise ApiError(403, 50013, "Missing Permissions")
        await self.delete_message(msg)
        return 204, None

    async def _h_add_reaction(self, req: _Req):
        ch = self._channel_or_404(req)
        self._require(ch, Perm.READ_MESSAGE_HISTORY, Perm.ADD_REACTIONS)
        msg = self._message_or_404(req, ch)
        emoji = req.params["emoji"]
        msg.reactions.setdefault(emoji, set()).add(self.bot_user.id)
        self._notify()
        payload = {
            "user_id": str(self.bot_user.id),
            "channel_id": str(ch.id),
            "message_id": str(msg.id),
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
        }
        if ch.guild_id:
            payload["guild_id"] = str(ch.guild_id)
        await self._dispatch("MESSAGE_REACTION_ADD", payload, guild_id=ch.guild_id)
        return 204, None

    async def _h_remove_reaction(self, req: _Req):
        ch = self._channel_or_404(req)
        self._require(ch)
        msg = self._message_or_404(req, ch)
        msg.reactions.get(req.params["emoji"], set()).discard(self.bot_user.id)
        self._notify()
        return 204, None

    async def _make_thread(
        self,
        parent: FakeChannel,
        name: str,
        ttype: int,
        owner: FakeUser,
        tid: int,
        starter: FakeMessage | None,
        auto_archive_duration: int = 1440,
    ) -> FakeChannel:
        th = FakeChannel(
            tid,
            ttype,
            name,
            parent.guild_id,
            parent_id=parent.id,
            owner_id=owner.id,
            auto_archive_duration=auto_archive_duration,
        )
        self.channels[tid] = th
        guild = self.guilds[parent.guild_id]
        guild.channels[tid] = th
        if starter is not None:
            starter.thread_id = tid
        payload = th.to_payload()
        payload["newly_created"] = True
        if owner.id == self.bot_user.id:
            payload["member"] = {"id": str(tid), "user_id": str(self.bot_user.id), "join_timestamp": _iso(), "flags": 0}
        await self._dispatch("THREAD_CREATE", payload, guild_id=parent.guild_id)
        return th

    def _validate_thread_body(self, body: dict) -> None:
        errs = _Errors()
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            errs.add(["name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        aad = body.get("auto_archive_duration")
        if aad is not None and aad not in (60, 1440, 4320, 10080):
            errs.add(["auto_archive_duration"], "BASE_TYPE_CHOICES", "Value must be one of {60, 1440, 4320, 10080}.")
        errs.raise_if_any()

    async def _h_thread_from_message(self, req: _Req):
        ch = self._channel_or_404(req)
        if ch.type not in (ChannelType.GUILD_TEXT, ChannelType.GUILD_ANNOUNCEMENT):
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        self._require(ch, Perm.CREATE_PUBLIC_THREADS, Perm.READ_MESSAGE_HISTORY)
        msg = self._message_or_404(req, ch)
        body = req.json or {}
        self._validate_thread_body(body)
        if msg.thread_id is not None:
            raise ApiError(400, 160004, "A thread has already been created for this message")
        ttype = (
            ChannelType.ANNOUNCEMENT_THREAD if ch.type == ChannelType.GUILD_ANNOUNCEMENT else ChannelType.PUBLIC_THREAD
        )
        th = await self._make_thread(
            ch, body["name"], ttype, self.bot_user, msg.id, msg, body.get("auto_archive_duration") or 1440
        )
        return 201, th.to_payload()

    async def _h_thread_without_message(self, req: _Req):
        ch = self._channel_or_404(req)
        if ch.type not in (ChannelType.GUILD_TEXT, ChannelType.GUILD_ANNOUNCEMENT):
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        body = req.json or {}
        self._validate_thread_body(body)
        ttype = int(body.get("type") or ChannelType.PRIVATE_THREAD)
        need = Perm.CREATE_PRIVATE_THREADS if ttype == ChannelType.PRIVATE_THREAD else Perm.CREATE_PUBLIC_THREADS
        self._require(ch, need)
        th = await self._make_thread(
            ch, body["name"], ttype, self.bot_user, self._snowflake(), None, body.get("auto_archive_duration") or 1440
        )
        return 201, th.to_payload()

    def _h_join_thread(self, req: _Req):
        ch = self._channel_or_404(req)
        if not ch.is_thread:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        self._require(ch)
        return 204, None

    def _h_typing(self, req: _Req):
        ch = self._channel_or_404(req)
        self._require(ch, Perm.SEND_MESSAGES_IN_THREADS if ch.is_thread else Perm.SEND_MESSAGES)
        self.typing.append((ch.id, time.monotonic()))
        self._notify()
        return 204, None

    # ------------------------------------------------------------------ REST handlers: guilds
    def _guild_or_404(self, req: _Req) -> FakeGuild:
        g = self.guilds.get(int(req.params["guild_id"]))
        if g is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return g

    def _h_get_guild(self, req: _Req):
        g = self._guild_or_404(req)
        p = g.base_payload()
        if req.query.get("with_counts") in ("1", "true", "True"):
            p["approximate_member_count"] = len(g.members)
            p["approximate_presence_count"] = 0
        return 200, p

    def _h_get_guild_channels(self, req: _Req):
        g = self._guild_or_404(req)
        return 200, [c.to_payload() for c in g.channels.values() if not c.is_thread and not c.deleted]

    def _h_get_guild_roles(self, req: _Req):
        g = self._guild_or_404(req)
        return 200, [r.to_payload() for r in g.roles.values()]

    def _h_get_member(self, req: _Req):
        g = self._guild_or_404(req)
        m = g.members.get(int(req.params["user_id"]))
        if m is None:
            raise ApiError(404, 10007, "Unknown Member")
        return 200, m.to_payload()
