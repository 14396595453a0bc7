"""Messages: payloads, mentions, edits, and what users send."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from tests.discord.fake_discord.constants import (
    InteractionType,
    MessageFlag,
    Perm,
)
from tests.discord.fake_discord.errors import FakeDiscordUsageError
from tests.discord.fake_discord.state import (
    FakeChannel,
    FakeMember,
    FakeMessage,
    FakeUser,
    _id_of,
    _iso,
)


class MessagesMixin:
    """Stored messages: payloads, mentions, edits, and what users send.

    A part of :class:`FakeDiscord`; it uses the state that class holds.
    """

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
