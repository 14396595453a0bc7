"""``/kb`` end to end: real discord.py against the fake Discord, a real knowledge service, real files.

Each test gets its own copy of ``knowledge/`` and of the shared, already-built index (with its
embedding cache), so a rebuild embeds only what the test changed. The models are loaded once per
session (``e2e_support.knowledge_service``). Pages are served from 127.0.0.1: the cog is given a
fetcher that trusts that network; every other fetch refusal happens before any connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ipaddress
import logging
import os
import shutil
import signal
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.discord.client import DirectiveBot
from bot.fetch import FetchedPage, FetchPolicy, fetch_url
from bot.kb import KnowledgeBase
from bot.knowledge import write_article
from bot.records import Article
from bot.service import KnowledgeService
from bot.store import BuildLock, build_index
from tests.dns import StubResolver

from .e2e_support import (
    ANSWER_TIMEOUT,
    Env,
    bot_settings,
    plain_text,
)
from .fake_discord import CommandNotAvailable, FakeMessage, InteractionRecord

pytestmark = pytest.mark.slow

TIMEOUT = 20.0
KB_COG = "KnowledgeBase"
MANAGE_GUILD = 1 << 5


# -- a knowledge service per test, sharing the loaded models -------------------------------------


class GatedEmbedder:
    """The real embedder, except that index builds (which pass ``progress``) wait while the gate is shut.

    Questions embed without ``progress``, so they never wait: that is what lets a test ask while a
    rebuild is in flight.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.gate = threading.Event()
        self.gate.set()
        self.building = threading.Event()

    def encode(self, texts: list[str], *, progress: Any = None) -> Any:
        if progress is not None:
            self.building.set()
            if not self.gate.wait(TIMEOUT):
                raise TimeoutError("the test never opened the build gate")
        return self.inner.encode(texts, progress=progress)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def private_service(shared: KnowledgeService, root: Path) -> KnowledgeService:
    """A service over copies of the shared knowledge and index, loaded, sharing the models."""
    paths = shared.settings.paths
    knowledge = root / "knowledge"
    index = root / "index"
    shutil.copytree(paths.knowledge_dir, knowledge)
    shutil.copytree(paths.index_dir, index, ignore=shutil.ignore_patterns(".build.lock", ".tmp-*"))
    settings = shared.settings.with_paths(knowledge=knowledge, index=index)
    service = KnowledgeService(
        settings, GatedEmbedder(shared.embedder), shared.reranker, shared.count_tokens, shared.late, shared.multilingual
    )
    assert service.reload_if_changed() is not None
    return service


@dataclasses.dataclass
class KbEnv(Env):
    """A running bot with the kb cog, its private knowledge directory, and helpers for /kb."""

    @property
    def moderator(self) -> Any:
        return self.sg.moderator

    @property
    def knowledge_dir(self) -> Path:
        return Path(self.service.settings.paths.knowledge_dir)

    @property
    def embedder(self) -> GatedEmbedder:
        return self.service.embedder

    @property
    def cog(self) -> Any:
        cog = self.bot.get_cog(KB_COG)
        assert cog is not None
        return cog

    def files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.knowledge_dir.glob("*.md"))}

    def audit(self) -> list[Any]:
        with self.database() as db:
            return db.audit_log()

    def last_rebuild(self) -> Any:
        with self.database() as db:
            return db.last_rebuild()

    async def kb(
        self, sub: str, options: dict[str, Any] | None = None, *, user: Any = None, **kw: Any
    ) -> InteractionRecord:
        return await self.fake.invoke_slash(f"kb {sub}", options or {}, user=user or self.moderator, **kw)

    async def reply(self, rec: InteractionRecord, *, timeout: float = TIMEOUT) -> FakeMessage:
        """The interaction's first real message (the "thinking…" placeholder once it is filled)."""
        return await rec.wait_original(lambda m: not m.loading, timeout=timeout)

    async def press(self, message: FakeMessage, label: str, *, user: Any = None) -> InteractionRecord:
        custom_id = button_id(message, label)
        return await self.fake.click_button(message, custom_id, user=user or self.moderator)

    async def report_after(self, press: InteractionRecord, *, timeout: float = TIMEOUT) -> FakeMessage:
        """The private report sent after a confirm button was pressed."""
        [report] = await press.wait_followups(1, timeout=timeout)
        return report


def button_id(message: FakeMessage, label: str) -> str:
    for row in message.components or []:
        for component in row.get("components") or []:
            if component.get("label") == label:
                return component["custom_id"]
    raise AssertionError(f"no {label!r} button on {plain_text(message)!r}")


def embed_fields(message: FakeMessage) -> dict[str, str]:
    [embed] = message.embeds
    return {f["name"]: f["value"] for f in embed.get("fields") or []}


@pytest.fixture
def service(knowledge_service: KnowledgeService, tmp_path: Path) -> KnowledgeService:
    return private_service(knowledge_service, tmp_path)


async def start_kb_env(
    harness: Any, service: KnowledgeService, data_dir: Path, *, handle_sighup: bool = False, **discord: Any
) -> KbEnv:
    fake = harness.fake
    sg = await fake.create_standard_guild()
    bot = DirectiveBot(bot_settings(service, data_dir, **discord), service, handle_sighup=handle_sighup)
    await harness.start_client(bot, timeout=TIMEOUT)
    await fake.wait_for_commands(["kb", "ask"], timeout=TIMEOUT)
    return KbEnv(harness, fake, sg, bot, service, data_dir)


@pytest.fixture
async def env(discord_harness: Any, service: KnowledgeService, tmp_path: Path) -> KbEnv:
    return await start_kb_env(discord_harness, service, tmp_path / "data")


# -- a local web server for /kb add url -----------------------------------------------------------

ARTICLE_HTML = """<!doctype html>
<html lang="en"><head>
<title>Commerce gives Anthropic 72 hours to file a Mythos 5 compliance plan</title>
<meta property="og:title" content="Commerce gives Anthropic 72 hours to file a Mythos 5 compliance plan">
<meta property="og:site_name" content="Capitol Ledger">
<meta property="article:published_time" content="2026-11-20T09:30:00Z">
<meta name="author" content="Priya Natarajan">
</head><body>
<header><nav><a href="/">Home</a> <a href="/tech">Tech</a></nav></header>
<article>
<h1>Commerce gives Anthropic 72 hours to file a Mythos 5 compliance plan</h1>
<p>The Commerce Department gave Anthropic 72 hours to file a written compliance plan describing how it
will keep foreign nationals away from Mythos 5 and Fable 5, department spokesperson Dana Whitlock said
on Tuesday.</p>
<p>Whitlock said the plan must name an officer responsible for access controls and must list every
cloud region where the models were served before the order took effect.</p>
<p>Anthropic said it would file the plan on time but repeated its view that the order sets a precedent
that would halt new frontier model deployments across the industry.</p>
<p>The department did not say what would happen if the plan was found inadequate, and declined to
comment on whether other developers had received similar letters.</p>
</article>
<footer>Subscribe to our newsletter</footer>
</body></html>
"""
ARTICLE_ID = "commerce-gives-anthropic-72-hours-to-file-a-mythos-5"
NEW_FACT_QUESTION = "How many hours did the Commerce Department give Anthropic to file a compliance plan?"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serve(routes: dict[str, Handler]) -> AsyncIterator[str]:
    """Serve ``routes`` on 127.0.0.1; yields the base URL."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def local_fetcher(resolver: StubResolver | None = None) -> Callable[[str], Awaitable[FetchedPage]]:
    """The production fetcher with the test server's network trusted (and the limits of the defaults)."""
    policy = FetchPolicy(trusted_networks=(ipaddress.IPv4Network("127.0.0.0/8"),))
    return functools.partial(fetch_url, policy=policy, resolver=resolver)


def public_fetcher(env: KbEnv, resolver: StubResolver) -> Callable[[str], Awaitable[FetchedPage]]:
    """The production fetcher and policy, with the test's DNS answers."""
    return functools.partial(fetch_url, policy=env.cog.base.fetch_policy(), resolver=resolver)


async def article_page(request: web.Request) -> web.Response:
    return web.Response(text=ARTICLE_HTML, content_type="text/html", charset="utf-8")


async def preview_of_url(env: KbEnv, url: str) -> FakeMessage:
    env.cog.fetch_page = local_fetcher()
    rec = await env.kb("add", {"url": url})
    message = await env.reply(rec)
    assert message.ephemeral
    return message


# -- Discord's UI and the run-time moderator check -------------------------------------------------


async def test_kb_is_declared_for_moderators_only_in_discords_ui(env: KbEnv) -> None:
    command = env.fake.get_command("kb")
    assert command is not None
    assert int(command["default_member_permissions"]) == MANAGE_GUILD
    assert command.get("contexts") == [0] or command.get("dm_permission") is False
    names = {o["name"] for o in command["options"]}
    assert names == {
        *("add", "remove", "list", "show", "edit", "rebuild", "status", "gaps"),
        *("pin", "pins", "unpin", "phrasing", "feedback"),
    }
    with pytest.raises(CommandNotAvailable):
        await env.kb("status", user=env.member)


KB_COMMANDS = [
    ("status", {}),
    ("rebuild", {}),
    ("list", {}),
    ("gaps", {}),
    ("add", {"url": "https://example.com/story"}),
    ("remove", {"article": "anthropic-suspends-mythos-model-access-following-us"}),
    ("show", {"article": "anthropic-suspends-mythos-model-access-following-us"}),
    ("edit", {"article": "anthropic-suspends-mythos-model-access-following-us"}),
]


@pytest.mark.parametrize(("sub", "options"), KB_COMMANDS, ids=[c[0] for c in KB_COMMANDS])
async def test_member_is_refused_privately_when_an_admin_lets_them_see_kb(
    env: KbEnv, sub: str, options: dict[str, Any]
) -> None:
    before = env.files()
    version = env.service.info().index_version
    rec = await env.kb(sub, options, user=env.member, enforce_permissions=False)
    response = await rec.wait_response()
    assert response.type == 4 and response.ephemeral
    assert response.content.startswith("Only moderators")
    assert "\n" not in response.content and not response.embeds and not response.components
    assert env.files() == before and env.service.info().index_version == version
    assert env.audit() == [] and env.last_rebuild() is None


async def test_moderator_role_from_settings_may_use_kb_without_manage_server(
    discord_harness: Any, service: KnowledgeService, tmp_path: Path
) -> None:
    fake = discord_harness.fake
    sg = await fake.create_standard_guild()
    curators = await fake.create_role(sg.guild, "Curators", 0)
    await fake.set_member_roles(sg.guild, sg.member, [curators])
    bot = DirectiveBot(bot_settings(service, tmp_path / "data", moderator_roles=(curators.id,)), service)
    await discord_harness.start_client(bot, timeout=TIMEOUT)
    await fake.wait_for_commands(["kb"], timeout=TIMEOUT)
    rec = await fake.invoke_slash("kb status", {}, user=sg.member, enforce_permissions=False)
    message = await rec.wait_original(lambda m: not m.loading, timeout=TIMEOUT)
    assert message.ephemeral and message.embeds[0]["title"] == "Knowledge base status"


async def test_member_autocomplete_offers_no_articles(env: KbEnv) -> None:
    rec = await env.fake.autocomplete(
        "kb show", {"article": "mythos"}, "article", user=env.member, enforce_permissions=False
    )
    assert (await rec.wait_response()).choices == []


async def test_autocomplete_offers_ids_matching_a_title_fragment(env: KbEnv) -> None:
    rec = await env.fake.autocomplete("kb remove", {"article": "suspends"}, "article", user=env.moderator)
    choices = (await rec.wait_response()).choices
    assert [c["value"] for c in choices] == ["anthropic-suspends-mythos-model-access-following-us"]
    assert choices[0]["name"].startswith("Anthropic Suspends Mythos Model Access")


# -- /kb add url ----------------------------------------------------------------------------------


async def test_add_url_previews_the_article_with_buttons_only_for_the_moderator(env: KbEnv) -> None:
    async with serve({"/story": article_page}) as base:
        preview = await preview_of_url(env, f"{base}/story")
    [embed] = preview.embeds
    assert embed["title"] == "Add “Commerce gives Anthropic 72 hours to file a Mythos 5 compliance plan”?"
    assert "The Commerce Department gave Anthropic 72 hours" in embed["description"]
    fields = embed_fields(preview)
    assert fields["Publisher"] == "Capitol Ledger"
    assert fields["Published"] == "20 November 2026"
    assert fields["Length"].endswith(" words") and int(fields["Length"].split()[0]) > 100
    assert fields["Will be saved as"] == f"`knowledge/{ARTICLE_ID}.md`"
    assert "Already in the knowledge base?" not in fields
    assert [c["label"] for row in preview.components for c in row["components"]] == ["Add", "Cancel"]
    assert env.audit() == []


async def test_confirmed_add_writes_the_file_rebuilds_and_reports_the_difference(env: KbEnv) -> None:
    old_version = env.service.info().index_version
    async with serve({"/story": article_page}) as base:
        preview = await preview_of_url(env, f"{base}/story")
    press = await env.press(preview, "Add")
    report = await env.report_after(press)
    article_id = ARTICLE_ID
    assert (env.knowledge_dir / f"{article_id}.md").is_file()
    new_version = env.service.info().index_version
    assert new_version != old_version
    assert report.ephemeral
    fields = embed_fields(report)
    assert fields["Index version"] == f"`{old_version}` → `{new_version}`"
    assert fields["Added"] == f"1: `{article_id}`"
    assert fields["Changed"] == "0" and fields["Removed"] == "0"
    assert int(fields["Chunks embedded"]) > 0
    [entry] = env.audit()
    assert (entry.action, entry.article_id, entry.hash_before) == ("add", article_id, None)
    assert entry.hash_after == KnowledgeBase(env.service.settings).get(article_id).content_hash
    assert entry.actor == f"discord:moderator ({env.moderator.id})"
    rebuild = env.last_rebuild()
    assert rebuild.ok and rebuild.started_by == entry.actor


# -- confirmation buttons -------------------------------------------------------------------------


async def test_cancelled_add_writes_nothing(env: KbEnv) -> None:
    before = env.files()
    async with serve({"/story": article_page}) as base:
        preview = await preview_of_url(env, f"{base}/story")
    await env.press(preview, "Cancel")
    await env.fake.wait_until(lambda: preview.content.startswith("Cancelled"), timeout=TIMEOUT)
    assert preview.content == "Cancelled; nothing was added."
    assert all(c.get("disabled") for row in preview.components for c in row["components"])
    assert env.files() == before and env.audit() == [] and env.last_rebuild() is None


async def test_unanswered_preview_times_out_and_writes_nothing(
    discord_harness: Any, service: KnowledgeService, tmp_path: Path
) -> None:
    env = await start_kb_env(discord_harness, service, tmp_path / "data", view_timeout_seconds=0.5)
    before = env.files()
    async with serve({"/story": article_page}) as base:
        preview = await preview_of_url(env, f"{base}/story")
    await env.fake.wait_until(lambda: preview.content.startswith("Timed out"), timeout=TIMEOUT)
    assert all(c.get("disabled") for row in preview.components for c in row["components"])
    assert env.files() == before and env.audit() == []


async def test_confirm_is_refused_once_the_moderator_is_no_longer_one(env: KbEnv) -> None:
    # Previews are private, so the only non-moderator who can press Confirm is the one who lost the role.
    before = env.files()
    async with serve({"/story": article_page}) as base:
        preview = await preview_of_url(env, f"{base}/story")
    await env.fake.set_member_roles(env.sg.guild, env.moderator, [])
    press = await env.press(preview, "Add")
    response = await press.wait_response()
    assert response.ephemeral and response.content == "You are no longer a moderator here."
    assert env.files() == before and env.audit() == []


# -- /kb add file ---------------------------------------------------------------------------------

FRONT_MATTER_MD = """---
id: commerce-compliance-letter
title: Commerce letter sets a compliance deadline for Anthropic
publisher: Capitol Ledger
url: https://ledger.example/commerce-letter
published: 2026-11-20
---
The Commerce Department letter gave Anthropic 72 hours to file a written compliance plan for Mythos 5.

The plan must name an officer responsible for access controls.
"""


async def add_file(env: KbEnv, name: str, data: bytes, *, user: Any = None) -> FakeMessage:
    rec = await env.kb("add", {"file": (name, data)}, user=user)
    return await env.reply(rec)


async def test_add_file_previews_a_markdown_article_with_its_front_matter(env: KbEnv) -> None:
    preview = await add_file(env, "letter.md", FRONT_MATTER_MD.encode())
    fields = embed_fields(preview)
    assert preview.embeds[0]["title"] == "Add “Commerce letter sets a compliance deadline for Anthropic”?"
    assert fields["Will be saved as"] == "`knowledge/commerce-compliance-letter.md`"
    assert fields["Publisher"] == "Capitol Ledger" and fields["Published"] == "20 November 2026"
    assert fields["From"] == "letter.md"
    assert [c["label"] for row in preview.components for c in row["components"]] == ["Add", "Cancel"]


async def test_add_file_preview_names_the_article_it_duplicates(env: KbEnv) -> None:
    existing = "anthropic-suspends-mythos-model-access-following-us"
    copy = (env.knowledge_dir / f"{existing}.md").read_text(encoding="utf-8").replace(existing, "a-copy", 1)
    preview = await add_file(env, "copy.md", copy.encode())
    duplicates = embed_fields(preview)["Already in the knowledge base?"]
    assert duplicates.startswith(f"⚠️ Same article as `{existing}`")
    assert "100% of the wording matches" in duplicates


BAD_FILES = [
    ("report.pdf", b"%PDF-1.7 binary", "only .md, .txt, .html, .htm files can be added"),
    ("empty.txt", b"", "empty.txt is empty"),
    ("blank.md", b" \n\n  \n", "blank.md is empty"),
    ("binary.txt", b"Headline\n\x00\x01\x02\x03", "binary.txt is a binary file"),
    ("latin1.txt", "Headline\n\nCaf\xe9 society".encode("latin-1"), "latin1.txt is not UTF-8 text"),
    ("huge.txt", b"Headline\n\n" + b"word " * 420_000, "the limit is 2 MB"),
    ("bad-yaml.md", b"---\ntitle: [unclosed\n---\nBody text.\n", "front matter is not valid YAML"),
    ("no-title.md", b"---\nid: no-title\n---\nBody text.\n", "missing required field 'title'"),
    ("bad-id.md", b"---\nid: ../../etc/passwd\ntitle: T\n---\nBody.\n", "is not valid"),
    ("unknown-field.md", b"---\nid: x\ntitle: T\nsecret: 1\n---\nBody.\n", "unknown field 'secret'"),
    ("no-body.md", b"---\nid: x\ntitle: T\n---\n", "the article body is empty"),
]


@pytest.mark.parametrize(("name", "data", "reason"), BAD_FILES, ids=[f[0] for f in BAD_FILES])
async def test_bad_attachment_is_refused_with_the_reason_and_nothing_written(
    env: KbEnv, name: str, data: bytes, reason: str
) -> None:
    before = env.files()
    message = await add_file(env, name, data)
    assert message.ephemeral and not message.components and not message.embeds
    assert reason in message.content and "\n" not in message.content
    hints = ("attach it again", "attach the file", "convert it first", "Trim it", "allowed:")
    assert any(hint in message.content for hint in hints)
    assert env.files() == before and env.audit() == []


async def test_add_with_both_a_link_and_a_file_is_refused(env: KbEnv) -> None:
    rec = await env.kb("add", {"url": "https://example.com/a", "file": ("a.txt", b"Headline\n\nBody.")})
    response = await rec.wait_response()
    assert response.ephemeral and response.content == "Give a link or a file, not both; run `/kb add` once for each."


# -- /kb add with pasted text (a modal) -----------------------------------------------------------

TEXT_FIELDS = {
    "kb:title": "Commerce sets a 72-hour deadline for Anthropic",
    "kb:publisher": "Capitol Ledger",
    "kb:url": "https://ledger.example/deadline",
    "kb:published": "2026-11-20",
    "kb:body": "The Commerce Department gave Anthropic 72 hours to file a compliance plan.\n\n"
    "The plan must name an officer responsible for access controls.",
}


async def open_text_modal(env: KbEnv) -> InteractionRecord:
    rec = await env.kb("add")
    response = await rec.wait_response()
    assert response.modal is not None and response.modal["title"] == "Add an article as text"
    return rec


async def test_add_without_link_or_file_opens_a_modal_and_previews_the_pasted_article(env: KbEnv) -> None:
    rec = await open_text_modal(env)
    submit = await env.fake.submit_modal(rec, values=TEXT_FIELDS)
    preview = await env.reply(submit)
    fields = embed_fields(preview)
    assert preview.embeds[0]["title"] == "Add “Commerce sets a 72-hour deadline for Anthropic”?"
    assert fields["Publisher"] == "Capitol Ledger" and fields["Published"] == "20 November 2026"
    assert fields["Will be saved as"] == "`knowledge/commerce-sets-a-72-hour-deadline-for-anthropic.md`"
    assert (
        "[Commerce sets a 72-hour deadline for Anthropic](https://ledger.example/deadline)"
        in preview.embeds[0]["description"]
    )


BAD_TEXT = [
    ("kb:published", "2026-13-40", "The date “2026-13-40” is not valid; write it as YYYY-MM-DD"),
    ("kb:published", "20 Nov 26", "The date “20 Nov 26” is not valid"),
    ("kb:url", "not a link", "That URL is not valid"),
    ("kb:url", "ftp://ledger.example/x", "That URL is not valid"),
    ("kb:url", "javascript:alert(1)", "That URL is not valid"),
]


@pytest.mark.parametrize(("field", "value", "reason"), BAD_TEXT, ids=[f"{f}={v}" for f, v, _ in BAD_TEXT])
async def test_pasted_article_with_a_bad_date_or_url_is_refused(
    env: KbEnv, field: str, value: str, reason: str
) -> None:
    before = env.files()
    rec = await open_text_modal(env)
    submit = await env.fake.submit_modal(rec, values={**TEXT_FIELDS, field: value})
    response = await submit.wait_response()
    assert response.ephemeral and reason in response.content and "\n" not in response.content
    assert env.files() == before and env.audit() == []


async def test_modal_submit_is_refused_once_the_moderator_is_no_longer_one(env: KbEnv) -> None:
    # Discord only delivers a modal to the user it was opened for: a demoted moderator is the case.
    before = env.files()
    rec = await open_text_modal(env)
    await env.fake.set_member_roles(env.sg.guild, env.moderator, [])
    submit = await env.fake.submit_modal(rec, values=TEXT_FIELDS)
    response = await submit.wait_response()
    assert response.ephemeral and response.content.startswith("Only moderators")
    assert not response.components and env.files() == before and env.audit() == []


# -- /kb add url: refusals ------------------------------------------------------------------------


@pytest.fixture
def outbound(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every attempt to connect anywhere but loopback (blocked and recorded)."""
    blocked: list[object] = []
    real_connect = socket.socket.connect

    def spy(self: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else None
        try:
            loopback = host is not None and ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            blocked.append(address)
            raise ConnectionRefusedError(f"test blocked a connection to {address!r}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    return blocked


async def redirect_to_private(request: web.Request) -> web.Response:
    raise web.HTTPFound("http://10.0.0.1/admin")


async def oversized(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/html"})
    await response.prepare(request)
    chunk = b"<p>" + b"a" * 65_533
    for _ in range(6_000_000 // len(chunk) + 1):
        await response.write(chunk)
    await response.write_eof()
    return response


async def pdf(request: web.Request) -> web.Response:
    return web.Response(body=b"%PDF-1.7", content_type="application/pdf")


# (url or server path, served locally?, what the refusal says)
FETCH_REFUSALS = [
    ("http://127.0.0.1/story", False, "loopback"),
    ("http://10.0.0.1/story", False, "private"),
    ("http://169.254.169.254/latest/meta-data/", False, "link-local"),
    ("http://[::1]/story", False, "loopback"),
    ("http://0.0.0.0/story", False, "0.0.0.0"),
    ("http://2130706433/story", False, "loopback"),
    ("http://intranet.example/story", False, "private"),
    ("/redirect", True, "private"),
    ("/huge", True, "MB"),
    ("/pdf", True, "application/pdf is not a web page"),
]


@pytest.mark.parametrize(("target", "local", "reason"), FETCH_REFUSALS, ids=[t for t, _, _ in FETCH_REFUSALS])
async def test_unsafe_or_unusable_link_is_refused_and_nothing_written(
    env: KbEnv, outbound: list[object], target: str, local: bool, reason: str
) -> None:
    before = env.files()
    resolver = StubResolver({"intranet.example": ["10.1.2.3"]})
    async with serve({"/redirect": redirect_to_private, "/huge": oversized, "/pdf": pdf}) as base:
        env.cog.fetch_page = local_fetcher(resolver) if local else public_fetcher(env, resolver)
        rec = await env.kb("add", {"url": base + target if local else target})
        message = await env.reply(rec)
    assert message.ephemeral and not message.components and not message.embeds
    assert message.content.startswith("Refused:") and "\n" not in message.content
    assert reason in message.content
    assert outbound == [], "the refusal came after a connection to a non-loopback address"
    assert env.files() == before and env.audit() == []


# -- /kb remove, show, edit, list -----------------------------------------------------------------

SEED_ID = "anthropic-suspends-mythos-model-access-following-us"


async def test_remove_asks_first_then_deletes_rebuilds_and_reports(env: KbEnv) -> None:
    old_version = env.service.info().index_version
    rec = await env.kb("remove", {"article": SEED_ID})
    prompt = await env.reply(rec)
    assert prompt.embeds[0]["title"] == "Remove “Anthropic Suspends Mythos Model Access Following US Government Ban”?"
    assert (env.knowledge_dir / f"{SEED_ID}.md").exists()
    report = await env.report_after(await env.press(prompt, "Remove"))
    assert not (env.knowledge_dir / f"{SEED_ID}.md").exists()
    fields = embed_fields(report)
    assert fields["Removed"] == f"1: `{SEED_ID}`" and fields["Chunks embedded"] == "0"
    assert SEED_ID not in {a.id for a in env.service.articles()}
    assert env.service.info().index_version != old_version
    [entry] = env.audit()
    assert (entry.action, entry.article_id, entry.hash_after) == ("remove", SEED_ID, None) and entry.hash_before


async def test_cancelled_remove_keeps_the_article(env: KbEnv) -> None:
    before = env.files()
    rec = await env.kb("remove", {"article": SEED_ID})
    prompt = await env.reply(rec)
    await env.press(prompt, "Cancel")
    await env.fake.wait_until(lambda: prompt.content == "Cancelled; nothing was removed.", timeout=TIMEOUT)
    assert env.files() == before and env.audit() == []


async def test_show_gives_details_chunk_count_and_that_a_seed_predates_the_audit_log(env: KbEnv) -> None:
    rec = await env.kb("show", {"article": SEED_ID})
    message = await env.reply(rec)
    fields = embed_fields(message)
    chunks = sum(1 for c in env.service.live.index.chunks if c.article_id == SEED_ID)
    assert message.embeds[0]["title"] == "Anthropic Suspends Mythos Model Access Following US Government Ban"
    assert fields["In the index"] == f"{chunks} chunks" and chunks > 1
    assert fields["Author"] == "Chief Editor" and fields["Publisher"] == "unknown"
    assert fields["Added"].startswith("2026-11-22, before the audit log began")


async def test_show_names_who_added_an_article_and_when_from_the_audit_log(env: KbEnv) -> None:
    with env.database() as db:
        base = KnowledgeBase(env.service.settings, db)
        preview = base.prepare_file("letter.md", FRONT_MATTER_MD.encode())
        base.add(preview, actor="cli:operator")
    rec = await env.kb("show", {"article": "commerce-compliance-letter"})
    fields = embed_fields(await env.reply(rec))
    assert fields["Added"].startswith("<t:") and fields["Added"].endswith("by cli:operator")
    assert fields["In the index"] == "not in the live index yet; run `/kb rebuild`"
    assert "**add** by cli:operator" in fields["History"]


BAD_IDS = ["../../etc/passwd", "..", "notes/secret", "Upper-Case", "x" * 81, "-leading-hyphen"]


@pytest.mark.parametrize("article", BAD_IDS)
async def test_show_refuses_an_id_that_is_not_a_plain_slug(env: KbEnv, article: str) -> None:
    rec = await env.kb("show", {"article": article})
    message = await env.reply(rec)
    assert message.ephemeral and not message.embeds
    assert message.content.startswith("Article id") and "is not valid" in message.content
    assert "\n" not in message.content


async def test_show_of_an_unknown_id_points_to_the_list(env: KbEnv) -> None:
    rec = await env.kb("show", {"article": "no-such-article"})
    message = await env.reply(rec)
    assert message.content == "No article with id 'no-such-article'; pick one of the suggestions, or see `/kb list`."


async def test_edit_opens_a_modal_prefilled_with_the_articles_details(env: KbEnv) -> None:
    rec = await env.kb("edit", {"article": SEED_ID})
    modal = (await rec.wait_response()).modal
    assert modal is not None and modal["title"] == "Edit article details"
    values = {
        c["custom_id"]: c.get("value")
        for row in modal["components"]
        for c in (row.get("components") or [row.get("component")])
    }
    assert values["kb:title"] == "Anthropic Suspends Mythos Model Access Following US Government Ban"
    assert values["kb:author"] == "Chief Editor"
    assert not values.get("kb:publisher") and not values.get("kb:url") and not values.get("kb:published")


async def test_edit_saves_new_details_audits_them_and_rebuilds(env: KbEnv) -> None:
    before = KnowledgeBase(env.service.settings).get(SEED_ID)
    rec = await env.kb("edit", {"article": SEED_ID})
    await rec.wait_response()
    submit = await env.fake.submit_modal(
        rec,
        values={"kb:publisher": "Capitol Ledger", "kb:published": "2026-11-21", "kb:url": "https://ledger.example/a"},
    )
    report = await env.reply(submit)
    after = KnowledgeBase(env.service.settings).get(SEED_ID)
    assert (after.publisher, after.url, after.published.isoformat()) == (
        "Capitol Ledger",
        "https://ledger.example/a",
        "2026-11-21",
    )
    assert after.body == before.body and after.title == before.title
    assert embed_fields(report)["Changed"] == f"1: `{SEED_ID}`"
    served = next(a for a in env.service.articles() if a.id == SEED_ID)
    assert served.publisher == "Capitol Ledger"
    [entry] = env.audit()
    assert (entry.action, entry.hash_before, entry.hash_after) == ("edit", before.content_hash, after.content_hash)


async def test_edit_with_nothing_changed_leaves_files_and_index_alone(env: KbEnv) -> None:
    before = env.files()
    version = env.service.info().index_version
    rec = await env.kb("edit", {"article": SEED_ID})
    await rec.wait_response()
    submit = await env.fake.submit_modal(rec, values={})
    message = await env.reply(submit)
    assert message.content == f"Nothing changed in `{SEED_ID}`; the index is left as it is."
    assert env.files() == before and env.service.info().index_version == version and env.audit() == []


def write_catalogue(knowledge_dir: Path, n: int) -> list[str]:
    ids = []
    for i in range(n):
        article = Article(
            id=f"catalogue-story-{i:02d}",
            title=f"Catalogue story {i:02d} about the Mythos 5 order",
            body=f"Story {i} says the order on Mythos 5 took effect at once.",
            publisher="Wire",
        )
        write_article(knowledge_dir, article)
        ids.append(article.id)
    return ids


async def test_list_pages_through_every_article_with_its_id(env: KbEnv) -> None:
    write_catalogue(env.knowledge_dir, 12)
    rec = await env.kb("list")
    message = await env.reply(rec)
    first = message.embeds[0]
    assert first["footer"]["text"] == "Page 1 of 2 · 17 articles"
    assert first["description"].count("\n") == 9 and first["description"].startswith("`")
    await env.press(message, "Next")
    await env.fake.wait_until(lambda: message.embeds[0]["footer"]["text"].startswith("Page 2"), timeout=TIMEOUT)
    shown = first["description"] + "\n" + message.embeds[0]["description"]
    assert all(f"`{p.stem}`" in shown for p in env.knowledge_dir.glob("*.md"))


# -- /kb rebuild, live swap, offline builds ------------------------------------------------------

NEW_ARTICLE = Article(
    id="commerce-deadline",
    title="Commerce gives Anthropic 72 hours to file a Mythos 5 compliance plan",
    body=(
        "The Commerce Department gave Anthropic 72 hours to file a written compliance plan describing how it "
        "will keep foreign nationals away from Mythos 5 and Fable 5, department spokesperson Dana Whitlock said.\n\n"
        "Whitlock said the plan must name an officer responsible for access controls."
    ),
    publisher="Capitol Ledger",
    url="https://ledger.example/commerce-deadline",
)


async def test_rebuild_reports_articles_added_changed_removed_and_chunks_embedded(env: KbEnv) -> None:
    write_article(env.knowledge_dir, NEW_ARTICLE)
    changed_id = "us-urges-anthropic-to-restrict-global-access-to-top-ai"
    base = KnowledgeBase(env.service.settings)
    write_article(env.knowledge_dir, dataclasses.replace(base.get(changed_id), publisher="Wire Service"))
    (env.knowledge_dir / f"{SEED_ID}.md").unlink()
    old_version = env.service.info().index_version
    rec = await env.kb("rebuild")
    report = await env.reply(rec)
    fields = embed_fields(report)
    assert report.embeds[0]["title"] == "Index rebuilt"
    assert fields["Added"] == "1: `commerce-deadline`"
    assert fields["Changed"] == f"1: `{changed_id}`"
    assert fields["Removed"] == f"1: `{SEED_ID}`"
    assert int(fields["Chunks embedded"]) >= 1
    new_version = env.service.info().index_version
    assert fields["Index version"] == f"`{old_version}` → `{new_version}`"
    entry = env.last_rebuild()
    assert entry.ok and entry.started_by == f"discord:moderator ({env.moderator.id})"


async def test_rebuild_with_nothing_changed_says_the_index_is_up_to_date(env: KbEnv) -> None:
    rec = await env.kb("rebuild")
    report = await env.reply(rec)
    assert report.embeds[0]["title"] == "Index already up to date"
    assert "nothing to embed" in embed_fields(report)["Index"]


@contextlib.asynccontextmanager
async def rebuild_held_open(env: KbEnv) -> AsyncIterator[InteractionRecord]:
    """A moderator's /kb rebuild, stopped inside the build until the block ends; yields its interaction."""
    write_article(env.knowledge_dir, NEW_ARTICLE)
    env.embedder.building.clear()
    env.embedder.gate.clear()
    try:
        rec = await env.kb("rebuild")
        assert await asyncio.to_thread(env.embedder.building.wait, TIMEOUT)
        yield rec
    finally:
        env.embedder.gate.set()


async def test_second_rebuild_is_refused_with_who_started_the_running_one_and_when(env: KbEnv) -> None:
    async with rebuild_held_open(env) as first:
        second = await env.kb("rebuild", user=env.sg.owner)
        response = await second.wait_response()
        assert response.type == 4 and response.ephemeral
        assert response.content.startswith("A rebuild is already running: started by moderator <t:")
        assert response.content.endswith("Wait for it to finish, then try again.")
    report = await env.reply(first)
    assert report.embeds[0]["title"] == "Index rebuilt"


async def test_questions_are_answered_from_the_old_index_while_a_rebuild_runs(env: KbEnv) -> None:
    old_version = env.service.info().index_version
    question = "Why did Anthropic suspend access to Mythos 5?"
    async with rebuild_held_open(env) as rebuild:
        asked = await env.ask(question)
        answer = await asked.wait_original(lambda m: not m.loading, timeout=ANSWER_TIMEOUT)
        assert f"index {old_version}" in answer.embeds[0]["footer"]["text"]
        assert answer.embeds[0]["description"].startswith("> ")
        assert not rebuild.followups, "the rebuild finished while it was held"
    await env.reply(rebuild)
    new_version = env.service.info().index_version
    assert new_version != old_version
    again = await env.ask(NEW_FACT_QUESTION)
    answer = await again.wait_original(lambda m: not m.loading, timeout=ANSWER_TIMEOUT)
    assert f"index {new_version}" in answer.embeds[0]["footer"]["text"]
    assert "72 hours" in answer.embeds[0]["description"]


async def test_failed_rebuild_keeps_the_old_index_serving_and_says_why(env: KbEnv) -> None:
    version = env.service.info().index_version
    (env.knowledge_dir / "broken.md").write_text("no front matter here\n", encoding="utf-8")
    rec = await env.kb("rebuild")
    report = await env.reply(rec)
    embed = report.embeds[0]
    assert embed["title"] == "Rebuild failed"
    assert "The rebuild failed: knowledge/broken.md:1: missing front matter" in embed["description"]
    assert f"Questions are still answered from `{version}`" in embed["description"]
    assert env.service.info().index_version == version
    entry = env.last_rebuild()
    assert not entry.ok and "missing front matter" in entry.detail


async def test_rebuild_is_refused_while_another_process_builds_the_same_index(env: KbEnv) -> None:
    write_article(env.knowledge_dir, NEW_ARTICLE)
    with BuildLock(env.service.settings.paths.index_dir, "cli:operator"):
        rec = await env.kb("rebuild")
        message = await env.reply(rec)
    assert message.content.startswith("A rebuild is already running (started by cli:operator at ")
    assert env.last_rebuild() is None


def offline_build(service: KnowledgeService) -> Any:
    """What `directive-bot index build` does in another process: build into the same index directory."""
    return build_index(
        service.settings,
        service.embedder,
        count_tokens=service.count_tokens,
        late=service.late,
        multilingual=service.multilingual,
        started_by="cli",
    )


async def wait_until(condition: Callable[[], bool], *, timeout: float, what: Callable[[], str]) -> None:
    """Poll ``condition`` until it holds; past ``timeout`` fail, saying ``what()`` was seen instead."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        assert loop.time() - start < timeout, what()
        await asyncio.sleep(0.05)


async def wait_for_version(service: KnowledgeService, version: str, *, timeout: float) -> None:
    await wait_until(
        lambda: service.info().index_version == version,
        timeout=timeout,
        what=lambda: f"still serving {service.info().index_version}, not {version}",
    )


async def wait_for_log(caplog: pytest.LogCaptureFixture, line: str, *, timeout: float) -> None:
    await wait_until(
        lambda: line in caplog.text, timeout=timeout, what=lambda: f"no log line {line!r}; logged: {caplog.text!r}"
    )


async def test_offline_index_build_is_taken_up_by_a_running_bot_within_seconds(
    discord_harness: Any, service: KnowledgeService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = await start_kb_env(discord_harness, service, tmp_path / "data", index_poll_seconds=0.2)
    old_version = service.info().index_version
    write_article(env.knowledge_dir, NEW_ARTICLE)
    caplog.set_level(logging.INFO, logger="bot.discord.client")
    report = await asyncio.to_thread(offline_build, service)
    await wait_for_version(service, report.index_version, timeout=5.0)
    # The service swaps its index in a worker thread; the bot logs once the event loop resumes it.
    line = f"index reloaded old_version={old_version} new_version={report.index_version} via=poll"
    await wait_for_log(caplog, line, timeout=5.0)
    asked = await env.ask(NEW_FACT_QUESTION)
    answer = await asked.wait_original(lambda m: not m.loading, timeout=ANSWER_TIMEOUT)
    assert "72 hours" in answer.embeds[0]["description"]


async def test_sighup_makes_a_running_bot_take_up_a_new_index_at_once(
    discord_harness: Any, service: KnowledgeService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = await start_kb_env(discord_harness, service, tmp_path / "data", index_poll_seconds=3600, handle_sighup=True)
    assert env.bot._sighup_installed, "sending SIGHUP without a handler would end the test run"
    old_version = service.info().index_version
    write_article(env.knowledge_dir, NEW_ARTICLE)
    caplog.set_level(logging.INFO, logger="bot.discord.client")
    report = await asyncio.to_thread(offline_build, service)
    os.kill(os.getpid(), signal.SIGHUP)
    await wait_for_version(service, report.index_version, timeout=5.0)
    line = f"index reloaded old_version={old_version} new_version={report.index_version} via=SIGHUP"
    await wait_for_log(caplog, line, timeout=5.0)


# -- /kb status, gaps ----------------------------------------------------------------------------


async def test_status_shows_version_build_time_freshness_counts_last_rebuild_and_model(env: KbEnv) -> None:
    info = env.service.info()
    with env.database() as db:
        db.record_rebuild("discord:moderator (1)", info.built_at, 2.5, True, "x")
    rec = await env.kb("status")
    fields = embed_fields(await env.reply(rec))
    assert fields["Index version"] == f"`{info.index_version}`"
    assert fields["Articles"] == "5" and fields["Chunks"] == str(info.chunks)
    assert fields["Built"].startswith("<t:")
    assert fields["Freshness"] == "Fresh: matches the articles on disk."
    assert fields["Last rebuild"].startswith("succeeded in 2.5 s")
    assert fields["Model"].startswith(f"`{info.model}`")


async def test_status_says_stale_when_articles_changed_since_the_build(env: KbEnv) -> None:
    write_article(env.knowledge_dir, NEW_ARTICLE)
    rec = await env.kb("status")
    fields = embed_fields(await env.reply(rec))
    assert fields["Freshness"] == "Stale: 1 added since this build. Run `/kb rebuild`."


async def test_gaps_lists_declined_questions_grouped_and_counted_newest_first(env: KbEnv) -> None:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    with env.database() as db:
        db.record_declined("Who won the football?", None, when=now - dt.timedelta(hours=3))
        db.record_declined("who won the football", None, when=now - dt.timedelta(hours=2))
        db.record_declined("What is the weather in Paris?", None, when=now - dt.timedelta(hours=1))
    rec = await env.kb("gaps")
    lines = (await env.reply(rec)).embeds[0]["description"].split("\n")
    assert lines[0].startswith("**1×** What is the weather in Paris?")
    assert lines[1].startswith("**2×** who won the football")
    assert len(lines) == 2
