"""Interactions started by the test: slash commands, autocomplete, context menus, components, modals."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from tests.discord.fake_discord.constants import (
    CallbackType,
    InteractionType,
    Perm,
)
from tests.discord.fake_discord.errors import (
    CommandNotAvailable,
    FakeDiscordUsageError,
)
from tests.discord.fake_discord.state import (
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    InteractionRecord,
    _id_of,
    _walk_components,
)


class InteractionsMixin:
    """The test side of interactions: slash commands, context menus, buttons, selects, modals.

    A part of :class:`FakeDiscord`; it uses the state that class holds.
    """

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
