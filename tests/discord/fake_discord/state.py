"""The fake's model of Discord: users, guilds, roles, members, channels, messages, and records of what happened."""

from __future__ import annotations

import datetime as _dt
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.discord.fake_discord.constants import (
    CallbackType,
    ChannelType,
    MessageFlag,
)
from tests.discord.fake_discord.errors import FakeDiscordUsageError

if TYPE_CHECKING:
    from tests.discord.fake_discord.fake import FakeDiscord


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
