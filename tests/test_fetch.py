"""Tests for bot.fetch: safe fetching of hostile, moderator-supplied URLs.

Every test runs under a socket spy that blocks and records any attempt to
connect to a non-loopback address, so no test can reach the outside world and
refusal tests can prove the refusal happened before any connection.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.abc import ResolveResult
from aiohttp.test_utils import TestServer

from bot import fetch as fetch_module
from bot.errors import DirectiveError, FetchRefused
from bot.fetch import (
    USER_AGENT,
    FetchedPage,
    FetchPolicy,
    check_url,
    fetch_url,
    fetch_url_sync,
)
from tests.dns import StubResolver

LOCAL_SERVER = (ipaddress.IPv4Network("127.0.0.0/8"),)  # where these tests serve pages
LOOPBACK = FetchPolicy(trusted_networks=LOCAL_SERVER)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PAGE_HTML = "<html><head><title>Hi</title></head><body><p>Hello, world.</p></body></html>"


# --------------------------------------------------------------------------- #
# Harness
# --------------------------------------------------------------------------- #


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Record every outgoing connect(); block (and later fail on) non-loopback ones."""
    attempts: list[object] = []
    blocked: list[object] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def allowed(address: object) -> bool:
        if not isinstance(address, tuple):
            return False
        try:
            return ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback
        except ValueError:
            return False

    def spy_connect(self: socket.socket, address: object) -> None:
        attempts.append(address)
        if not allowed(address):
            blocked.append(address)
            raise ConnectionRefusedError(f"test spy blocked connect to {address!r}")
        real_connect(self, address)

    def spy_connect_ex(self: socket.socket, address: object) -> int:
        attempts.append(address)
        if not allowed(address):
            blocked.append(address)
            raise ConnectionRefusedError(f"test spy blocked connect to {address!r}")
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", spy_connect_ex)
    yield attempts
    assert blocked == [], f"code tried to connect to non-loopback addresses: {blocked}"


@dataclass(frozen=True)
class Site:
    """Where a test server listens; stays usable after the server has stopped."""

    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@asynccontextmanager
async def serve(routes: dict[str, Handler]) -> AsyncIterator[Site]:
    """Run an aiohttp server on 127.0.0.1 for the duration of one test."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Site(port=server.port)
    finally:
        await server.close()


async def html_page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE_HTML, content_type="text/html")


# --------------------------------------------------------------------------- #
# Successful fetches
# --------------------------------------------------------------------------- #


@pytest.mark.asyncio
async def test_html_page_is_fetched_and_decoded() -> None:
    async with serve({"/page": html_page}) as server:
        page = await fetch_url(server.url("/page"), LOOPBACK)

    assert isinstance(page, FetchedPage)
    assert page.url == server.url("/page")
    assert page.status == 200
    assert page.content_type == "text/html"
    assert page.text == PAGE_HTML
    assert page.redirects == ()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/html; charset=iso-8859-1", "café".encode("latin-1"), "café"),
        ("text/html", "café".encode(), "café"),
        ("text/html", b"caf\xe9", "caf\ufffd"),
        ("text/plain; charset=no-such-charset", "café".encode(), "café"),
        ("application/xhtml+xml; charset=utf-8", "café".encode(), "café"),
    ],
    ids=[
        "declared-latin1",
        "default-utf8",
        "bad-bytes-replaced",
        "unknown-charset",
        "xhtml",
    ],
)
async def test_body_is_decoded_with_declared_charset_else_utf8(content_type: str, body: bytes, expected: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": content_type})

    async with serve({"/page": handler}) as server:
        page = await fetch_url(server.url("/page"), LOOPBACK)

    assert page.text == expected


@pytest.mark.asyncio
async def test_plain_text_page_is_accepted() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="Just words.", content_type="text/plain")

    async with serve({"/notes.txt": handler}) as server:
        page = await fetch_url(server.url("/notes.txt"), LOOPBACK)

    assert (page.content_type, page.text) == ("text/plain", "Just words.")


@pytest.mark.asyncio
async def test_redirect_chain_is_followed_and_recorded() -> None:
    async def hop(request: web.Request) -> web.Response:
        remaining = int(request.match_info["n"])
        target = "/page" if remaining == 0 else f"/hop/{remaining - 1}"
        raise web.HTTPFound(target)

    async with serve({"/hop/{n}": hop, "/page": html_page}) as server:
        page = await fetch_url(server.url("/hop/2"), LOOPBACK)

    assert page.url == server.url("/page")
    assert page.redirects == tuple(server.url(f"/hop/{n}") for n in (2, 1, 0))
    assert page.text == PAGE_HTML


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_every_redirect_status_is_followed(status: int) -> None:
    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": "/page"})

    async with serve({"/old": redirect, "/page": html_page}) as server:
        page = await fetch_url(server.url("/old"), LOOPBACK)

    assert page.url == server.url("/page")


@pytest.mark.asyncio
async def test_exactly_max_redirects_hops_are_allowed() -> None:
    async def hop(request: web.Request) -> web.Response:
        remaining = int(request.match_info["n"])
        raise web.HTTPFound("/page" if remaining == 1 else f"/hop/{remaining - 1}")

    policy = FetchPolicy(max_redirects=3, trusted_networks=LOCAL_SERVER)
    async with serve({"/hop/{n}": hop, "/page": html_page}) as server:
        page = await fetch_url(server.url("/hop/3"), policy)

    assert len(page.redirects) == 3


@pytest.mark.asyncio
async def test_user_agent_is_sent_and_no_cookies_or_credentials() -> None:
    seen: list[dict[str, str]] = []

    async def set_cookie_and_redirect(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        response = web.Response(status=302, headers={"Location": "/page"})
        response.set_cookie("session", "secret")
        return response

    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return await html_page(request)

    async with serve({"/start": set_cookie_and_redirect, "/page": record}) as server:
        await fetch_url(server.url("/start"), LOOPBACK)

    assert len(seen) == 2
    for headers in seen:
        assert headers["User-Agent"] == USER_AGENT
        assert "Cookie" not in headers
        assert "Authorization" not in headers


@pytest.mark.asyncio
async def test_name_is_dialled_at_the_vetted_address(connections: list[object]) -> None:
    resolver = StubResolver({"news.test": ["127.0.0.1"]})
    async with serve({"/page": html_page}) as server:
        page = await fetch_url(f"http://news.test:{server.port}/page", LOOPBACK, resolver=resolver)

    assert page.text == PAGE_HTML
    assert resolver.calls == ["news.test"]
    assert connections == [("127.0.0.1", server.port)]


# --------------------------------------------------------------------------- #
# Refusals from a live (loopback) server
# --------------------------------------------------------------------------- #


@pytest.mark.asyncio
async def test_too_many_redirects_are_refused() -> None:
    async def forever(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/loop/{int(request.match_info['n']) + 1}")

    policy = FetchPolicy(max_redirects=3, trusted_networks=LOCAL_SERVER)
    async with serve({"/loop/{n}": forever}) as server:
        with pytest.raises(FetchRefused, match="redirected more than 3 times"):
            await fetch_url(server.url("/loop/0"), policy)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is a link-local address",
        ),
        ("http://[::1]:8080/", "::1 is a loopback address"),
        ("http://167772161/", "10.0.0.1 is a private address"),
        ("file:///etc/passwd", "only http and https"),
        ("http://internal.test/admin", "internal.test resolves to 192.168.0.10"),
    ],
    ids=[
        "private",
        "metadata",
        "ipv6-loopback",
        "decimal-private",
        "file-scheme",
        "name",
    ],
)
async def test_redirect_to_a_non_public_target_is_refused(
    location: str, reason: str, connections: list[object]
) -> None:
    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": location})

    resolver = StubResolver({"internal.test": ["192.168.0.10"]})
    async with serve({"/go": redirect}) as server:
        with pytest.raises(FetchRefused, match=re.escape(reason)):
            await fetch_url(server.url("/go"), LOOPBACK, resolver=resolver)

    assert connections == [("127.0.0.1", server.port)]


@pytest.mark.asyncio
async def test_oversized_streamed_body_is_refused() -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(1000):
                await response.write(b"<p>" + b"x" * 4096 + b"</p>")
        except ConnectionError:
            pass
        return response

    policy = FetchPolicy(max_bytes=20_000, trusted_networks=LOCAL_SERVER)
    async with serve({"/big": endless}) as server:
        with pytest.raises(FetchRefused, match="larger than 20 kB"):
            await fetch_url(server.url("/big"), policy)


@pytest.mark.asyncio
async def test_compressed_body_is_capped_after_decompression() -> None:
    bomb = gzip.compress(b"<p>" + b"0" * 2_000_000 + b"</p>")

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(
            body=bomb,
            headers={"Content-Type": "text/html", "Content-Encoding": "gzip"},
        )

    policy = FetchPolicy(max_bytes=20_000, trusted_networks=LOCAL_SERVER)
    async with serve({"/bomb": gzipped}) as server:
        with pytest.raises(FetchRefused, match="larger than 20 kB"):
            await fetch_url(server.url("/bomb"), policy)


@pytest.mark.asyncio
async def test_oversized_content_length_is_refused_before_reading() -> None:
    release = asyncio.Event()

    async def huge_promise(request: web.Request) -> web.StreamResponse:
        # Promises a gigabyte, sends a few bytes, then stalls: only an early
        # Content-Length check can refuse this before the timeout.
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        response.content_length = 1_000_000_000
        await response.prepare(request)
        await response.write(b"<html>")
        await release.wait()
        return response

    policy = FetchPolicy(timeout_seconds=10, trusted_networks=LOCAL_SERVER)
    async with serve({"/huge": huge_promise}) as server:
        try:
            with pytest.raises(FetchRefused, match="larger than 5 MB"):
                await asyncio.wait_for(fetch_url(server.url("/huge"), policy), 5)
        finally:
            release.set()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "content_type",
    ["application/pdf", "image/png", "application/octet-stream", "text/css"],
)
async def test_non_web_page_content_type_is_refused(content_type: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"%PDF-1.7", content_type=content_type)

    async with serve({"/file": handler}) as server:
        with pytest.raises(
            FetchRefused,
            match=re.escape(f"content type {content_type} is not a web page"),
        ):
            await fetch_url(server.url("/file"), LOOPBACK)


@pytest.mark.asyncio
@pytest.mark.parametrize("stage", ["before-headers", "during-body"])
async def test_slow_server_is_refused_with_a_timeout(stage: str) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        if stage == "before-headers":
            await release.wait()
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            while not release.is_set():
                await response.write(b"<p>drip</p>")
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass
        return response

    policy = FetchPolicy(timeout_seconds=0.3, trusted_networks=LOCAL_SERVER)
    async with serve({"/slow": slow}) as server:
        try:
            with pytest.raises(FetchRefused, match=r"did not load within 0\.3 seconds"):
                await fetch_url(server.url("/slow"), policy)
        finally:
            release.set()


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "reason"), [(404, "Not Found"), (500, "Internal Server Error")])
async def test_error_status_is_refused(status: int, reason: str) -> None:
    async def failing(request: web.Request) -> web.Response:
        return web.Response(status=status, text="nope", content_type="text/html")

    async with serve({"/gone": failing}) as server:
        with pytest.raises(FetchRefused, match=f"answered {status} {reason}"):
            await fetch_url(server.url("/gone"), LOOPBACK)


@pytest.mark.asyncio
async def test_redirect_without_location_is_refused() -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=302)

    async with serve({"/r": broken}) as server:
        with pytest.raises(FetchRefused, match="redirected without saying where"):
            await fetch_url(server.url("/r"), LOOPBACK)


@pytest.mark.asyncio
async def test_peer_address_is_checked_even_if_resolution_is_bypassed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Simulate a resolver-level miss (e.g. a rebinding race): the resolver layer
    # passes every answer through unvetted. The check on the connected socket
    # must still refuse the loopback peer when there is no test allowance.
    async def unvetted(
        self: object,
        host: str,
        port: int = 0,
        family: socket.AddressFamily = socket.AF_INET,
    ) -> list[ResolveResult]:
        inner = self._inner  # type: ignore[attr-defined]
        return await inner.resolve(host, port, family)

    monkeypatch.setattr(fetch_module._VettingResolver, "resolve", unvetted)
    resolver = StubResolver({"rebind.test": ["127.0.0.1"]})
    async with serve({"/page": html_page}) as server:
        with pytest.raises(
            FetchRefused,
            match=re.escape("rebind.test resolves to 127.0.0.1, a loopback"),
        ):
            await fetch_url(f"http://rebind.test:{server.port}/page", resolver=resolver)


# --------------------------------------------------------------------------- #
# Refusals before any connection (no allowance, no server)
# --------------------------------------------------------------------------- #


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://127.9.9.9:8080/x", "127.9.9.9 is a loopback address"),
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("http://172.16.5.4/", "172.16.5.4 is a private address"),
        ("http://192.168.1.1/", "192.168.1.1 is a private address"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is a link-local address",
        ),
        ("http://100.64.0.1/", "shared carrier-grade NAT"),
        ("http://[::1]/", "::1 is a loopback address"),
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
        ("http://[::]/", ":: is an unspecified address"),
        ("http://2130706433/", "127.0.0.1 is a loopback address"),
        ("http://0x7f000001/", "127.0.0.1 is a loopback address"),
        ("http://0x7f.1/", "127.0.0.1 is a loopback address"),
        ("http://0177.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://127.1/", "127.0.0.1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "IPv6 form of 127.0.0.1, a loopback address"),
        ("http://[::ffff:a9fe:a9fe]/", "IPv6 form of 169.254.169.254"),
        ("http://[2002:a00:1::]/", "IPv6 form of 10.0.0.1"),
        ("http://[64:ff9b::7f00:1]/", "IPv6 form of 127.0.0.1"),
        ("http://[fc00::1]/", "unique-local"),
        ("http://[fd12:3456::1]/", "unique-local"),
        ("http://[fe80::1%25eth0]/", "link-local"),
        ("http://[fec0::1]/", "site-local"),
        ("http://[ff02::1]/", "multicast"),
        ("http://224.0.0.251/", "multicast"),
        ("http://255.255.255.255/", "broadcast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://192.0.2.10/", "documentation"),
        ("http://[2001:db8::1]/", "documentation"),
        ("http://198.18.0.1/", "benchmarking"),
        ("ftp://example.com/file", "only http and https links"),
        ("file:///etc/passwd", "only http and https links"),
        ("javascript:alert(1)", "only http and https links"),
        ("gopher://example.com/", "only http and https links"),
        ("example.com/page", "only http and https links"),
        ("http://user:pass@example.com/", "user name or password"),
        ("http://user@example.com/", "user name or password"),
        ("http:///path-only", "has no host name"),
        ("http://exa mple.com/", "spaces or control characters"),
        ("http://example.com/\nHost: evil", "spaces or control characters"),
        ("http://1.2.3.4.5/", "not a valid IP address"),
        ("http://256.0.0.1/", "not a valid IP address"),
        ("http://08.0.0.1/", "not a valid IP address"),
        ("http://a..b/", "not a valid host name"),
        ("http://-bad-.example/", "not a valid host name"),
        ("http://example.com:0/", "invalid port"),
        ("http://example.com/" + "a" * 2100, "the limit is 2048"),
        ("", "the link is empty"),
    ],
)
async def test_unsafe_or_invalid_url_is_refused_before_connecting(
    url: str, reason: str, connections: list[object]
) -> None:
    resolver = StubResolver({})
    with pytest.raises(FetchRefused, match=re.escape(reason)):
        await fetch_url(url, resolver=resolver)

    assert connections == []
    assert resolver.calls == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["10.0.0.5"], "evil.test resolves to 10.0.0.5, a private address"),
        (["169.254.169.254"], "evil.test resolves to 169.254.169.254, a link-local"),
        (["::1"], "evil.test resolves to ::1, a loopback address"),
        (["::ffff:10.0.0.5"], "IPv6 form of 10.0.0.5"),
        # A public answer next to a private one must not let the fetch through.
        (["93.184.216.34", "10.0.0.5"], "evil.test resolves to 10.0.0.5"),
        (["127.0.0.1"], "evil.test resolves to 127.0.0.1, a loopback address"),
    ],
    ids=["private", "metadata", "ipv6-loopback", "mapped", "mixed-answers", "loopback"],
)
async def test_name_resolving_to_a_non_public_address_is_refused_before_connecting(
    answers: list[str], reason: str, connections: list[object]
) -> None:
    resolver = StubResolver({"evil.test": answers})
    with pytest.raises(FetchRefused, match=re.escape(reason)):
        await fetch_url("http://evil.test/article", resolver=resolver)

    assert resolver.calls == ["evil.test"]
    assert connections == []


@pytest.mark.asyncio
async def test_unknown_host_is_refused_with_a_clear_message() -> None:
    with pytest.raises(FetchRefused, match="could not find the host"):
        await fetch_url("http://nowhere.test/", resolver=StubResolver({}))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/",
        "http://192.168.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
    ],
)
async def test_loopback_test_allowance_permits_nothing_but_ipv4_loopback(url: str, connections: list[object]) -> None:
    with pytest.raises(FetchRefused, match="Refused: "):
        await fetch_url(url, LOOPBACK, resolver=StubResolver({}))

    assert connections == []


@pytest.mark.asyncio
async def test_loopback_allowance_does_not_cover_names_resolving_to_private_addresses(
    connections: list[object],
) -> None:
    resolver = StubResolver({"evil.test": ["10.1.2.3"]})
    with pytest.raises(FetchRefused, match=re.escape("10.1.2.3, a private address")):
        await fetch_url("http://evil.test/", LOOPBACK, resolver=resolver)

    assert connections == []


def test_fetch_url_sync_refuses_like_the_async_version(
    connections: list[object],
) -> None:
    with pytest.raises(FetchRefused, match=re.escape("10.0.0.1 is a private address")):
        fetch_url_sync("http://10.0.0.1/")

    assert connections == []


# --------------------------------------------------------------------------- #
# check_url (pure, no network)
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://Example.COM/News?id=1#comments", "https://example.com/News?id=1"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("HTTP://example.com:80/", "http://example.com/"),
        ("http://bücher.de/", "http://xn--bcher-kva.de/"),
        ("http://134744072/", "http://8.8.8.8/"),
        ("http://0x08.0x08.0x08.0x08/", "http://8.8.8.8/"),
        ("http://[2606:4700:4700::1111]/", "http://[2606:4700:4700::1111]/"),
    ],
)
def test_check_url_normalises_public_urls(url: str, normalised: str) -> None:
    assert check_url(url) == normalised


def test_check_url_allows_ipv4_loopback_only_with_the_test_allowance() -> None:
    assert check_url("http://127.0.0.1:8080/x", LOOPBACK) == "http://127.0.0.1:8080/x"
    with pytest.raises(FetchRefused):
        check_url("http://127.0.0.1:8080/x")


def test_refusal_is_a_one_line_directive_error() -> None:
    with pytest.raises(DirectiveError) as caught:
        check_url("http://10.0.0.1/")

    message = str(caught.value)
    assert message == ("Refused: 10.0.0.1 is a private address; only public web pages can be added.")
    assert "\n" not in message


def test_refusal_message_clips_long_hostile_input() -> None:
    with pytest.raises(FetchRefused, match="not a valid host name") as caught:
        check_url("http://" + "-" * 1500 + ".example/")

    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    "peername",
    [
        ("10.0.0.5", 80),
        ("127.0.0.1", 80),
        ("::1", 80, 0, 0),
        ("::ffff:127.0.0.1", 80, 0, 0),
        ("fe80::1", 80, 0, 2),
        None,
        "/tmp/socket",
    ],
)
def test_connected_peer_that_is_not_public_is_refused(peername: object) -> None:
    with pytest.raises(FetchRefused):
        fetch_module._refuse_peer(peername, FetchPolicy(), "host.test")


@pytest.mark.parametrize("peername", [("93.184.216.34", 443), ("2606:4700::1111", 443, 0, 0)])
def test_connected_peer_that_is_public_is_accepted(peername: object) -> None:
    fetch_module._refuse_peer(peername, FetchPolicy(), "host.test")
