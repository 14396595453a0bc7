"""The REST v10 endpoints: identity, commands, interaction callbacks and webhooks, channels and messages, guilds."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from tests.discord.fake_discord.constants import (
    ChannelType,
    InteractionType,
    MessageFlag,
    Perm,
)
from tests.discord.fake_discord.errors import (
    ApiError,
    _Errors,
    _form_error,
)
from tests.discord.fake_discord.rest import _Req
from tests.discord.fake_discord.state import (
    FakeChannel,
    FakeGuild,
    FakeMessage,
    FakeUser,
    InteractionRecord,
    ResponseRecord,
    _iso,
    _walk_components,
)


class RestHandlersMixin:
    """The REST v10 endpoints the bot calls: identity, commands, interactions, channels, guilds.

    A part of :class:`FakeDiscord`; it uses the state that class holds.
    """

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
