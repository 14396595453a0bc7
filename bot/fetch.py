"""Fetch a moderator-supplied URL without letting it reach private networks.

The URL is hostile input: it may point at loopback, the cloud metadata service,
an intranet host, or a name that resolves (or re-resolves) to one of those.
Three layers keep the fetch on the public web:

1. ``check_url`` refuses bad schemes, credentials and literal non-public IPs in
   every spelling (decimal, octal, hex, IPv4-mapped IPv6 ...).
2. ``_VettingResolver`` resolves names for the connector and refuses when ANY
   answer is non-public, so the connector can only dial vetted addresses.
3. ``_VettingConnector`` checks the peer address of every connection actually
   made, which also covers literal IPs (aiohttp never resolves those).

Redirects are followed by hand so every hop goes through all three layers.
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from bot.errors import FetchRefused

__all__ = [
    "USER_AGENT",
    "FetchPolicy",
    "FetchedPage",
    "check_url",
    "fetch_url",
    "fetch_url_sync",
]

USER_AGENT = "directive-bot/0.1 (+knowledge-base fetcher)"
MAX_URL_LENGTH = 2048
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK_SIZE = 64 * 1024
_PUBLIC_ONLY = "only public web pages can be added."

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class FetchPolicy:
    """Limits for one fetch; the defaults are what the bot uses in production."""

    max_bytes: int = 5_000_000
    timeout_seconds: float = 15.0
    max_redirects: int = 5
    allowed_content_types: tuple[str, ...] = (
        "text/html",
        "application/xhtml+xml",
        "text/plain",
    )
    # Plain IPv4 networks trusted although not public (none in production: the bot never sets
    # any; a test serving pages on 127.0.0.1 passes that network). Tunnelled IPv6 forms never are.
    trusted_networks: tuple[ipaddress.IPv4Network, ...] = ()


@dataclass(frozen=True)
class FetchedPage:
    """A successfully fetched page.

    ``redirects`` lists, in order, every URL that answered with a redirect;
    ``url`` is the final URL whose body is in ``text``.
    """

    url: str
    status: int
    content_type: str
    text: str
    redirects: tuple[str, ...]


_DEFAULT_POLICY = FetchPolicy()

# --------------------------------------------------------------------------- #
# Address policy
# --------------------------------------------------------------------------- #

_V4_RULES: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), label)
    for net, label in (
        ("0.0.0.0/32", "an unspecified address"),
        ("0.0.0.0/8", "a 'this network' address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared carrier-grade NAT address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "an IETF protocol address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a 6to4 relay address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "a broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
)

_V6_RULES: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), label)
    for net, label in (
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("::/96", "a deprecated IPv4-compatible address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("2001:db8::/32", "a documentation address"),
        ("2001::/23", "an IETF protocol address"),
        ("3fff::/20", "a documentation address"),
        ("5f00::/16", "a segment-routing address"),
        ("fc00::/7", "a unique-local (private) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    )
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address tunnels to, if it is one of those forms."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _address_label(ip: IPAddress, policy: FetchPolicy) -> str | None:
    """Why ``ip`` may not be contacted (e.g. "a private address"), or None if public."""
    if isinstance(ip, ipaddress.IPv4Address):
        if any(ip in net for net in policy.trusted_networks):
            return None
        for net, label in _V4_RULES:
            if ip in net:
                return label
    else:
        for net, label in _V6_RULES:
            if ip in net:
                return label
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # Tunnelled forms are never trusted.
            inner = _address_label(embedded, _DEFAULT_POLICY)
            if inner is not None:
                return f"an IPv6 form of {embedded}, {inner}"
        if ip.scope_id:
            return "a scoped (interface-bound) address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a public address"
    return None


def _refuse_address(ip: IPAddress, policy: FetchPolicy, host: str | None = None) -> None:
    """Raise FetchRefused unless ``ip`` is public; ``host`` is the name resolved."""
    label = _address_label(ip, policy)
    if label is None:
        return
    if host is None or host == str(ip):
        raise FetchRefused(f"Refused: {ip} is {label}; {_PUBLIC_ONLY}")
    raise FetchRefused(f"Refused: {_clip(host)} resolves to {ip}, {label}; {_PUBLIC_ONLY}")


def _parse_ip(text: str) -> IPAddress:
    """Parse an address as reported by getaddrinfo/getpeername (may carry a %zone)."""
    return ipaddress.ip_address(text)


# --------------------------------------------------------------------------- #
# URL syntax
# --------------------------------------------------------------------------- #

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
_IPV4_NUMBER_RE = re.compile(r"^(?:[0-9]+|0[xX][0-9a-fA-F]*)$")


def _clip(text: str, limit: int = 100) -> str:
    """Make untrusted text safe to put in a one-line message."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _parse_ipv4_part(part: str) -> int | None:
    if part[:2] in ("0x", "0X"):
        digits = part[2:]
        return int(digits, 16) if digits else 0
    if len(part) > 1 and part[0] == "0":
        return int(part[1:], 8) if re.fullmatch(r"[0-7]+", part[1:]) else None
    return int(part) if part.isdigit() else None


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Parse IPv4 as browsers and inet_aton do: ``2130706433``, ``0x7f.1``, ``0177.1``.

    Returns None when the host is not number-shaped (a DNS name). Raises FetchRefused
    when it is number-shaped but not a valid address, since resolvers disagree on those.
    """
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not _IPV4_NUMBER_RE.match(parts[-1]):
        return None
    invalid = FetchRefused(f"Refused: {_clip(host)} is not a valid IP address; check the link.")
    if len(parts) > 4 or any(not _IPV4_NUMBER_RE.match(p) for p in parts):
        raise invalid
    numbers = [_parse_ipv4_part(p) for p in parts]
    if any(n is None for n in numbers):
        raise invalid
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise invalid
    total = values[-1]
    for index, value in enumerate(values[:-1]):
        total += value * 256 ** (3 - index)
    return ipaddress.IPv4Address(total)


def check_url(url: str, policy: FetchPolicy = _DEFAULT_POLICY) -> str:
    """Validate a URL without touching the network and return it normalised.

    Refuses (FetchRefused) non-http(s) schemes, credentials, missing or malformed
    hosts, over-long URLs and literal IPs that are not public in any spelling.
    Literal IPs are rewritten to canonical form, so the host that is checked is
    exactly the host that is dialled. Names are only checked at resolve time.
    """
    if not isinstance(url, str):
        raise FetchRefused("Refused: the link must be text.")
    url = url.strip()
    if not url:
        raise FetchRefused("Refused: the link is empty; paste a full http(s) address.")
    if len(url) > MAX_URL_LENGTH:
        raise FetchRefused(f"Refused: the link is {len(url)} characters long; the limit is {MAX_URL_LENGTH}.")
    if any(not ch.isprintable() or ch.isspace() for ch in url):
        raise FetchRefused("Refused: the link contains spaces or control characters; paste it exactly.")
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise FetchRefused(f"Refused: {_clip(url)} is not a valid link ({_clip(str(exc), 60)}).") from exc
    scheme = parsed.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"{_clip(scheme, 20)}: links" if scheme else "links without http(s)://"
        raise FetchRefused(f"Refused: only http and https links can be added, not {shown}.")
    if "@" in (parsed.raw_authority or ""):
        raise FetchRefused("Refused: links with a user name or password (user:pass@host) are not allowed.")
    raw_host = parsed.raw_host
    if not raw_host:
        raise FetchRefused(f"Refused: {_clip(url)} has no host name; paste a full address.")
    try:
        port = parsed.port
    except ValueError as exc:
        raise FetchRefused(f"Refused: {_clip(url)} has an invalid port.") from exc
    if port == 0:
        raise FetchRefused(f"Refused: {_clip(url)} has an invalid port.")

    host = raw_host.lower()
    ip: IPAddress | None
    if ":" in host:
        try:
            ip = ipaddress.IPv6Address(host.replace("%25", "%"))
        except ValueError as exc:
            raise FetchRefused(f"Refused: {_clip(host)} is not a valid IPv6 address.") from exc
    else:
        ip = _legacy_ipv4(host)
        if ip is None and not _HOSTNAME_RE.match(host):
            raise FetchRefused(f"Refused: {_clip(host)} is not a valid host name; check the link.")
        if ip is None and len(host.rstrip(".")) > 253:
            raise FetchRefused("Refused: the host name is longer than 253 characters.")

    if ip is not None:
        _refuse_address(ip, policy)
        parsed = parsed.with_host(str(ip))
    return str(parsed.with_fragment(None))


# --------------------------------------------------------------------------- #
# Network layers
# --------------------------------------------------------------------------- #


class _VettingResolver(AbstractResolver):
    """Resolve with an inner resolver and refuse if any answer is non-public.

    The connector dials only what this returns, so a name cannot be checked
    against one address and connected to another (DNS rebinding).
    """

    def __init__(self, policy: FetchPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner
        self._owns_inner = inner is None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = aiohttp.ThreadedResolver()
        answers = await self._inner.resolve(host, port, family)
        if not answers:
            raise FetchRefused(f"Refused: {_clip(host)} did not resolve to any address.")
        vetted: list[ResolveResult] = []
        for answer in answers:
            try:
                ip = _parse_ip(answer["host"])
            except ValueError as exc:
                raise FetchRefused(f"Refused: {_clip(host)} resolved to something that is not an IP address.") from exc
            _refuse_address(ip, self._policy, host)
            vetted.append(ResolveResult(**answer))
        return vetted

    async def close(self) -> None:
        if self._owns_inner and self._inner is not None:
            await self._inner.close()


def _refuse_peer(peername: Any, policy: FetchPolicy, host: str) -> None:
    """Refuse unless the socket is connected to a public address."""
    if not peername or not isinstance(peername, tuple):
        raise FetchRefused(f"Refused: could not confirm which address {_clip(host)} connected to; try again.")
    try:
        ip = _parse_ip(str(peername[0]))
    except ValueError as exc:
        raise FetchRefused(f"Refused: {_clip(host)} connected to an unrecognised address.") from exc
    if isinstance(ip, ipaddress.IPv6Address) and len(peername) >= 4 and peername[3]:
        raise FetchRefused(f"Refused: {_clip(host)} connected to a scoped (interface-bound) address; {_PUBLIC_ONLY}")
    _refuse_address(ip, policy, host)


class _VettingConnector(aiohttp.TCPConnector):
    """TCP connector that checks the address actually connected to."""

    def __init__(self, policy: FetchPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._policy = policy

    async def connect(self, req: Any, *args: Any, **kwargs: Any) -> Any:
        conn = await super().connect(req, *args, **kwargs)
        transport = conn.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        try:
            _refuse_peer(peer, self._policy, req.url.raw_host or "")
        except FetchRefused:
            conn.close()
            raise
        return conn


# --------------------------------------------------------------------------- #
# Fetching
# --------------------------------------------------------------------------- #


def _size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:g} MB"
    if n >= 1_000:
        return f"{n / 1_000:g} kB"
    return f"{n} bytes"


def _decode(body: bytes, charset: str | None) -> str:
    """Decode with the declared charset, else UTF-8; never fail on bad bytes."""
    encoding = "utf-8"
    if charset:
        try:
            encoding = codecs.lookup(charset).name
        except LookupError:
            encoding = "utf-8"
    return body.decode(encoding, errors="replace")


async def _read_capped(resp: aiohttp.ClientResponse, policy: FetchPolicy, url: str) -> bytes:
    too_big = FetchRefused(
        f"Refused: the page at {_clip(url)} is larger than {_size(policy.max_bytes)}; "
        "save the article text to a file and add that instead."
    )
    length = resp.content_length
    if length is not None and length > policy.max_bytes:
        raise too_big
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(_CHUNK_SIZE):
        total += len(chunk)
        if total > policy.max_bytes:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def _fetch(url: str, policy: FetchPolicy, session: aiohttp.ClientSession) -> FetchedPage:
    """Follow redirects by hand from an already checked ``url``; vet every hop."""
    current = url
    redirects: list[str] = []
    while True:
        async with session.get(URL(current, encoded=True), allow_redirects=False) as resp:
            if resp.status in _REDIRECT_STATUSES:
                location = resp.headers.get("Location")
                if not location:
                    raise FetchRefused(f"Refused: {_clip(current)} redirected without saying where to.")
                if len(redirects) >= policy.max_redirects:
                    raise FetchRefused(
                        f"Refused: {_clip(url)} redirected more than "
                        f"{policy.max_redirects} "
                        "times; link to the final page instead."
                    )
                try:
                    target = str(URL(current, encoded=True).join(URL(location)))
                except (ValueError, TypeError) as exc:
                    raise FetchRefused(f"Refused: {_clip(current)} redirected to an invalid link.") from exc
                redirects.append(current)
                current = check_url(target, policy)
                continue
            if not 200 <= resp.status < 300:
                reason = f" {resp.reason}" if resp.reason else ""
                raise FetchRefused(
                    f"Refused: the server answered {resp.status}{_clip(reason, 40)} for {_clip(current)}."
                )
            content_type = resp.content_type.lower()
            if content_type not in policy.allowed_content_types:
                raise FetchRefused(
                    f"Refused: content type {_clip(content_type, 60)} is not a web page; "
                    "link to the article's HTML page, or add its text as a file."
                )
            body = await _read_capped(resp, policy, current)
            return FetchedPage(
                url=current,
                status=resp.status,
                content_type=content_type,
                text=_decode(body, resp.charset),
                redirects=tuple(redirects),
            )


async def fetch_url(
    url: str,
    policy: FetchPolicy = _DEFAULT_POLICY,
    *,
    resolver: AbstractResolver | None = None,
) -> FetchedPage:
    """Fetch one public web page, refusing anything that could reach a private network.

    ``resolver`` replaces the system DNS resolver (its answers are still vetted);
    tests use it to simulate names that resolve to private addresses.
    Every failure is a FetchRefused with a one-line reason.
    """
    start = check_url(url, policy)  # literal-IP and syntax refusals cost no socket
    vetting_resolver = _VettingResolver(policy, resolver)
    connector = _VettingConnector(
        policy,
        resolver=vetting_resolver,
        use_dns_cache=False,
        force_close=True,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={
            "User-Agent": USER_AGENT,
            "Accept": ", ".join(policy.allowed_content_types),
        },
        timeout=aiohttp.ClientTimeout(total=policy.timeout_seconds),
        trust_env=False,
    )
    try:
        async with session, asyncio.timeout(policy.timeout_seconds):
            return await _fetch(start, policy, session)
    except FetchRefused:
        raise
    except TimeoutError as exc:
        raise FetchRefused(
            f"Refused: {_clip(url)} did not load within "
            f"{policy.timeout_seconds:g} seconds; "
            "try again later or use another link."
        ) from exc
    except aiohttp.ClientConnectorDNSError as exc:
        raise FetchRefused(f"Refused: could not find the host of {_clip(url)}; check the link.") from exc
    except aiohttp.ClientError as exc:
        detail = _clip(str(exc) or type(exc).__name__, 120)
        raise FetchRefused(f"Refused: could not load {_clip(url)} ({detail}).") from exc
    finally:
        await connector.close()
        await vetting_resolver.close()


def fetch_url_sync(url: str, policy: FetchPolicy = _DEFAULT_POLICY) -> FetchedPage:
    """Blocking wrapper for the command-line tools; not for use inside an event loop."""
    return asyncio.run(fetch_url(url, policy))
