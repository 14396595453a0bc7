"""Discord's limits, enforced as Discord does (50035 with a Discord-shaped ``errors`` body)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tests.discord.fake_discord.constants import (
    DISCORD_LOCALES,
    OPTION_TYPES,
    MessageFlag,
    _valid_command_name,
)
from tests.discord.fake_discord.errors import (
    ApiError,
    _Errors,
    _form_error,
)
from tests.discord.fake_discord.state import (
    _walk_components,
    _walk_with_path,
)


class ValidationMixin:
    """Discord's limits on messages, embeds, components and commands (50035 errors).

    A part of :class:`FakeDiscord`; it uses the state that class holds.
    """

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

    # ------------------------------------------------------------------ REST handlers: commands
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
