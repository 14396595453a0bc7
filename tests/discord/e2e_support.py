"""Shared pieces of the end-to-end tests: the real knowledge service and a bot started against the fake.

The real service (MiniLM embedder, FAISS, BM25, late interaction, ONNX reranker) costs seconds
to load and to index ``knowledge/``, so it is built once per test session (it is the
``real_service`` of ``tests/conftest.py`` when that exists) in a temp dir, never the repo's
``index/``. A second knowledge base (``extra_service``: over two pages of articles, one of them
full of mention and markdown bait) reuses the loaded models and builds in a couple of seconds.

The fixtures ``knowledge_service`` and ``extra_service`` are in ``tests/discord/conftest.py``::

    async def test_something(discord_harness, knowledge_service, tmp_path):
        env = await start_env(discord_harness, knowledge_service, tmp_path)   # guild, member, bot
        message = await final_message(await env.ask("Who is affected?"))     # /ask as the member
        reply = await env.reply_to(await env.mention("Who is affected?"))    # @bot as the member
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from bot.config import REPO_ROOT, Settings, load_settings
from bot.db import DB_FILENAME, Database
from bot.discord.client import DirectiveBot
from bot.discord.replies import is_queue_notice
from bot.records import Answer, Article
from bot.service import KnowledgeService

from .fake_discord import FakeChannel, FakeDiscord, FakeMessage, FakeUser, InteractionRecord, StandardGuild
from .harness import DiscordHarness

KNOWLEDGE_DIR = REPO_ROOT / "knowledge"

# Generous for one real answer on a busy 2-core machine; waits return as soon as the reply lands.
ANSWER_TIMEOUT = 20.0

_lock = threading.Lock()
_shared: KnowledgeService | None = None
_extra: KnowledgeService | None = None


def base_settings() -> Settings:
    """The project's defaults, ignoring any config file or ``DIRECTIVE_BOT__`` variable of the machine."""
    return load_settings(environ={})


def build_service(knowledge_dir: Path, index_dir: Path, *, models_from: KnowledgeService) -> KnowledgeService:
    """A real ``KnowledgeService`` over ``knowledge_dir``, indexed into ``index_dir``, reusing loaded models."""
    settings = models_from.settings.with_paths(knowledge=Path(knowledge_dir), index=Path(index_dir))
    service = KnowledgeService(
        settings, models_from.embedder, models_from.reranker, models_from.count_tokens, models_from.late
    )
    service.rebuild(started_by="e2e-tests")
    return service


def shared_service(request: pytest.FixtureRequest) -> KnowledgeService:
    """The repo's ``knowledge/`` served by the real models, built once per test session.

    ``tests/conftest.py`` already builds exactly this (``real_service``) for the core's tests, so
    the whole suite loads the models and indexes once; without it, build our own in a temp dir.
    """
    global _shared
    with _lock:
        if _shared is None:
            try:
                _shared = request.getfixturevalue("real_service")
            except pytest.FixtureLookupError:
                index_dir = request.getfixturevalue("tmp_path_factory").mktemp("e2e-index")
                _shared = KnowledgeService.open(
                    base_settings().with_paths(knowledge=KNOWLEDGE_DIR, index=index_dir), build_if_needed=True
                )
        return _shared


# -- a second knowledge base: many articles, and one full of mention and markdown bait -------------

# Over two pages of /sources (10 a page): one short dated article per outlet.
CATALOGUE = [
    ("Reuters", "Commerce Department letter ordered Anthropic to cut foreign access to Mythos 5"),
    ("AP", "Anthropic takes Fable 5 offline for users outside the United States"),
    ("Bloomberg", "Cloud providers pause Mythos 5 endpoints after the US order"),
    ("Financial Times", "European customers lose Fable 5 access overnight"),
    ("The Verge", "What the Mythos 5 export order means for developers"),
    ("Wired", "Inside the weekend Anthropic pulled its most capable model"),
    ("Politico", "Lawmakers split over the export order on Anthropic models"),
    ("Axios", "Anthropic employees who are foreign nationals lose model access"),
    ("TechCrunch", "Startups built on Fable 5 scramble for alternatives"),
    ("Nikkei", "Japanese firms review contracts after the Anthropic restriction"),
    ("Le Monde", "France asks Washington to explain the Mythos 5 order"),
    ("Der Spiegel", "German researchers cut off from Anthropic's newest model"),
    ("The Guardian", "Critics call the Anthropic order a precedent for AI export controls"),
    ("CNBC", "Investors weigh the cost of the Fable 5 suspension"),
    ("Ars Technica", "How the claimed Fable 5 jailbreak worked, according to the letter"),
    ("NPR", "Anthropic says the finding does not justify recalling a deployed model"),
    ("Semafor", "White House declines to comment on the Anthropic restriction"),
    ("Lawfare", "The legal basis of the export order on frontier AI models"),
    ("Rest of World", "Users in India and Brazil lose access to Mythos 5"),
    ("MIT Technology Review", "Why capability, not deployment, triggered the Anthropic order"),
]

MENTION_BAIT_ID = "moderators-ping-everyone-about-mythos-5"
# The article quoted by the mention-injection test: every kind of Discord mention and markdown.
MENTION_BAIT_BODY = (
    "When Anthropic suspended Mythos 5, one server moderator posted @everyone and @here with the words "
    "<@&123456789012345678> <@234567890123456789> read the **export order** now, linking "
    "[the order](https://example.com/evil) in the same message.\n\n"
    "The moderator said the Fable 5 shutdown affected every member outside the United States."
)


def write_extra_knowledge(knowledge_dir: Path) -> list[Article]:
    """The second knowledge base: the catalogue plus the mention-bait article."""
    articles = []
    for n, (publisher, title) in enumerate(CATALOGUE):
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:70].strip("-")
        articles.append(
            Article(
                id=slug,
                title=title,
                body=(
                    f"{title}, {publisher} reported. The US order on Anthropic's Fable 5 and Mythos 5 models "
                    f"took effect at once and gave no transition period."
                ),
                publisher=publisher,
                url=f"https://news.example/{n}/{slug}",
                published=dt.date(2026, 11, 1) + dt.timedelta(days=n),
                added=dt.date(2026, 11, 22),
            )
        )
    articles.append(
        Article(
            id=MENTION_BAIT_ID,
            title="Moderators ping @everyone about the Mythos 5 shutdown",
            body=MENTION_BAIT_BODY,
            publisher="Community *Digest*",
            url="https://news.example/community/moderators",
            published=dt.date(2026, 11, 23),
            added=dt.date(2026, 11, 23),
        )
    )
    for article in articles:
        write_article(knowledge_dir, article)
    return articles


def extra_service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeService:
    """A real service over the second knowledge base (21 articles), sharing the loaded models, built once."""
    global _extra
    models = shared_service(request)
    with _lock:
        if _extra is None:
            root = tmp_path_factory.mktemp("e2e-extra")
            write_extra_knowledge(root / "knowledge")
            _extra = build_service(root / "knowledge", root / "index", models_from=models)
        return _extra


def write_article(knowledge_dir: Path, article: Article) -> Path:
    """Write one article file the way ``/kb`` and the CLI do."""
    from bot.knowledge import write_article as write

    Path(knowledge_dir).mkdir(parents=True, exist_ok=True)
    return write(Path(knowledge_dir), article)


# -- the bot --------------------------------------------------------------------------------------


def bot_settings(service: Any, data_dir: Path, **discord: Any) -> Settings:
    """The service's settings with the bot's SQLite in ``data_dir`` and test-friendly Discord settings.

    Cooldowns are off unless a test sets them (most tests ask several questions as one member),
    and the index poller is off (nothing rebuilds the shared index).
    """
    settings: Settings = service.settings
    defaults: dict[str, Any] = {
        "cooldown_questions": 1000,
        "cooldown_seconds": 1.0,
        "index_poll_seconds": 0.0,
        "view_timeout_seconds": 30.0,
    }
    defaults.update(discord)
    return dataclasses.replace(
        settings,
        paths=dataclasses.replace(settings.paths, data_dir=Path(data_dir)),
        discord=dataclasses.replace(settings.discord, **defaults),
    )


async def start_bot(
    harness: DiscordHarness,
    service: Any,
    data_dir: Path,
    *,
    timeout: float = 15.0,
    **discord: Any,
) -> DirectiveBot:
    """A ``DirectiveBot`` logged in to the fake, its commands synced, ready for questions."""
    bot = DirectiveBot(bot_settings(service, data_dir, **discord), service)
    await harness.start_client(bot, timeout=timeout)
    await harness.fake.wait_for_commands(["ask", "sources", "about"], timeout=timeout)
    return bot


@dataclasses.dataclass
class Env:
    """One running bot in a standard guild (#general, a moderator, a member)."""

    harness: DiscordHarness
    fake: FakeDiscord
    sg: StandardGuild
    bot: DirectiveBot
    service: Any
    data_dir: Path

    @property
    def channel(self) -> FakeChannel:
        return self.sg.channel

    @property
    def member(self) -> FakeUser:
        return self.sg.member

    @property
    def bot_mention(self) -> str:
        return f"<@{self.fake.bot_user.id}>"

    def database(self) -> Database:
        """A second connection to the bot's SQLite file (WAL: reads see every committed write)."""
        return Database(self.data_dir / DB_FILENAME)

    async def ask(self, question: str, *, user: Any = None, **options: Any) -> InteractionRecord:
        return await self.fake.invoke_slash("ask", {"question": question, **options}, user=user or self.member)

    async def mention(self, text: str, *, user: Any = None, channel: FakeChannel | None = None) -> FakeMessage:
        """A member posts ``@bot text``."""
        return await self.fake.send_message(channel or self.channel, user or self.member, f"{self.bot_mention} {text}")

    async def reply_to(self, message: FakeMessage, *, timeout: float = ANSWER_TIMEOUT) -> FakeMessage:
        """The bot's message replying to ``message`` (in the same channel)."""
        return await self.fake.wait_for_message(
            message.channel_id, lambda m: m.reference_id == message.id, timeout=timeout
        )

    async def restart(self, data_dir: Path | None = None, **discord: Any) -> DirectiveBot:
        """Stop this bot and start a new process-equivalent one (same SQLite unless ``data_dir``)."""
        await self.harness.stop_client(self.bot)
        if data_dir is not None:
            self.data_dir = data_dir
        self.bot = await start_bot(self.harness, self.service, self.data_dir, **discord)
        return self.bot


async def start_env(harness: DiscordHarness, service: Any, data_dir: Path, **discord: Any) -> Env:
    fake = harness.fake
    sg = await fake.create_standard_guild()
    bot = await start_bot(harness, service, data_dir, **discord)
    return Env(harness, fake, sg, bot, service, data_dir)


async def final_message(rec: InteractionRecord, *, timeout: float = ANSWER_TIMEOUT) -> FakeMessage:
    """The interaction's reply once it is neither a "thinking…" placeholder nor a place in the queue."""
    return await rec.wait_original(lambda m: not m.loading and not is_queue_notice(m.content), timeout=timeout)


class ScriptedService:
    """The real service, except for listed questions (to reach edge cases the articles cannot).

    A listed question gets its hand-made ``Answer``, or raises the listed exception; ``delays``
    holds questions back that many seconds first (in the worker thread, like a slow model).
    """

    def __init__(
        self,
        real: Any,
        answers: dict[str, Answer | BaseException],
        *,
        delays: dict[str, float] | None = None,
    ) -> None:
        self.real = real
        self.answers = answers
        self.delays = delays or {}
        self.settings = real.settings

    def ask_cached(self, question: str, *, max_excerpts: int | None = None, compute: bool = True) -> Answer | None:
        """Scripted questions are never cached (each asker sees the script); others use the real cache."""
        if question in self.answers or question in self.delays:
            return self.ask(question, max_excerpts=max_excerpts) if compute else None
        return self.real.ask_cached(question, max_excerpts=max_excerpts, compute=compute)

    def ask(self, question: str, *, max_excerpts: int | None = None) -> Answer:
        if question in self.delays:
            time.sleep(self.delays[question])  # a worker thread, never the event loop
        scripted = self.answers.get(question)
        if isinstance(scripted, BaseException):
            raise scripted
        return scripted if scripted is not None else self.real.ask(question, max_excerpts=max_excerpts)

    def info(self) -> Any:
        return self.real.info()

    def articles(self) -> list[Article]:
        return self.real.articles()

    def covered_topics(self) -> tuple[str, ...]:
        return self.real.covered_topics()

    def reload_if_changed(self) -> tuple[str, str] | None:
        return None


# -- reading what the bot sent --------------------------------------------------------------------

_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")  # a backslash before ASCII punctuation
_LINK = re.compile(r"\[([^\]\n]*)\]\((https?://[^)\s]+)\)")


def unescape(text: str) -> str:
    """What Discord displays for escaped text: backslash escapes and mention-breaking spaces removed."""
    return _ESCAPE.sub(r"\1", text).replace("\u200b", "")


def quotes_in(description: str) -> list[str]:
    """The block-quoted passages of an answer embed, one string per quote, as Discord displays them."""
    quotes: list[str] = []
    current: list[str] = []
    for line in description.split("\n"):
        if line.startswith("> "):
            current.append(line[2:])
        elif current:
            quotes.append(unescape("\n".join(current)))
            current = []
    if current:
        quotes.append(unescape("\n".join(current)))
    return quotes


def excerpt_blocks(description: str) -> list[tuple[str, str]]:
    """(quote, attribution line) pairs of an answer embed, both as Discord displays them."""
    blocks: list[tuple[str, str]] = []
    quote: list[str] = []
    for line in description.split("\n"):
        if line.startswith("> "):
            quote.append(line[2:])
        elif line.startswith("— ") and quote:
            blocks.append((unescape("\n".join(quote)), unescape(line[2:])))
            quote = []
        elif line.startswith("*") and line.endswith("*") and not blocks and not quote:
            continue  # a lead line in italics before any quote: a tentative answer's, the articles' language
        elif line.strip():
            raise AssertionError(f"unexpected line in an answer embed: {line!r}")
    assert not quote, "a quote without attribution"
    return blocks


def without_ellipsis(quote: str) -> str:
    """A quote cut at a sentence boundary ends in " …"; the part before it is verbatim."""
    return quote[: -len(" …")] if quote.endswith(" …") else quote


def plain_text(message: FakeMessage | dict[str, Any]) -> str:
    """A message as a member reads it: content, then each embed (links shown as text), then the buttons."""
    data = (
        message
        if isinstance(message, dict)
        else {
            "content": message.content,
            "embeds": message.embeds,
            "components": message.components,
        }
    )
    lines: list[str] = []
    if data.get("content"):
        lines.append(unescape(data["content"]))
    for embed in data.get("embeds") or []:
        if embed.get("title"):
            lines.append(f"**{unescape(embed['title'])}**")
        if embed.get("description"):
            lines.append(unescape(_LINK.sub(r"\1 <\2>", embed["description"])))
        for field in embed.get("fields") or []:
            lines.append(f"{field['name']}: {unescape(field['value'])}")
        footer = (embed.get("footer") or {}).get("text")
        if footer:
            lines.append(f"({footer})")
    buttons = [
        " ".join(p for p in ((c.get("emoji") or {}).get("name"), c.get("label")) if p)
        for row in data.get("components") or []
        for c in row.get("components") or []
    ]
    if buttons:
        lines.append("[" + "] [".join(buttons) + "]")
    return "\n".join(lines)


def article_bodies(service: Any) -> dict[str, str]:
    """Article id -> body, as indexed (quotes must be slices of these)."""
    return {a.id: a.body for a in service.articles()}


def assert_no_pings(messages: Iterable[FakeMessage]) -> None:
    """Every bot message was sent with ``parse: []`` and the fake resolved no mention at all."""
    for m in messages:
        assert m.allowed_mentions is not None, f"{m!r} sent without allowed_mentions"
        assert m.allowed_mentions.get("parse") == [], f"{m!r} allowed_mentions={m.allowed_mentions}"
        assert not m.allowed_mentions.get("users") and not m.allowed_mentions.get("roles")
        assert m.mentions == [] and m.mention_roles == [] and m.mention_everyone is False, m


_LINKED_TITLE = re.compile(r"^\[(.*)\]\(https?://[^\s)]+\)(?: · |$)")


def source_article(attribution: str, articles: Iterable[Article]) -> Article:
    """The article an attribution line names: its title comes first, maybe linked, maybe cut with "…"."""
    linked = _LINKED_TITLE.match(attribution)
    shown = linked.group(1) if linked else attribution.split(" · ")[0]
    if shown.endswith("…"):
        named = [a for a in articles if a.title.startswith(shown[:-1].rstrip())]
    else:
        named = [a for a in articles if a.title == shown]
    assert len(named) == 1, f"{len(named)} articles are named by the attribution {attribution!r}"
    return named[0]


def assert_quotes_verbatim(description: str, articles: Iterable[Article]) -> list[tuple[str, Article]]:
    """Every block quote in an answer embed is a slice of the article its attribution names."""
    articles = list(articles)
    blocks = excerpt_blocks(description)
    assert blocks, f"no quotes in {description!r}"
    found = []
    for quote, attribution in blocks:
        article = source_article(attribution, articles)
        text = without_ellipsis(quote)
        assert len(text) >= 20, f"quote too short to mean anything: {quote!r}"
        assert text in article.body, f"not verbatim from {article.id}: {text!r}"
        found.append((text, article))
    return found
