"""The HTTP server: routes, authentication, rate-limit headers and request bodies."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.discord.fake_discord.constants import API_PREFIX
from tests.discord.fake_discord.errors import ApiError
from tests.discord.fake_discord.state import (
    ErrorRecord,
    InteractionRecord,
    RequestRecord,
)

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


class RestServerMixin:
    """The HTTP side of the fake: routing, authentication, rate-limit headers, request bodies.

    A part of :class:`FakeDiscord`; it uses the state that class holds.
    """

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
