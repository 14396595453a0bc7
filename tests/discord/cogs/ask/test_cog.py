"""The ask cog's pure helpers and its shared answer path (fake service, real SQLite, no Discord)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.config import DiscordSettings, PathSettings, QuestionSettings, Settings
from bot.db import Database
from bot.discord.client import DirectiveBot
from bot.discord.cogs.ask._cog import (
    QUEUE_REFRESH_SECONDS,
    Ask,
    channel_allowed,
    precheck_question,
    question_from_message,
    refresh_interval,
)
from bot.discord.queue import Place
from bot.errors import InvalidQuestion
from bot.records import Answer, Excerpt, Source

BOT_ID = 4242


class FakeService:
    """Just enough of KnowledgeService: declines anything about rain, quotes five excerpts otherwise."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.asked: list[str] = []

    def ask(self, question: str, *, max_excerpts: int | None = None) -> Answer:
        self.asked.append(question)
        if not question.strip():
            raise InvalidQuestion("The question is empty.")
        if "rain" in question:
            return Answer(question, True, (), "v1", covered_topics=("export rules",))
        excerpts = tuple(
            Excerpt(
                quote=f"Quote {n}.",
                start=0,
                end=8,
                score=1.0,
                source=Source(
                    f"a{n}",
                    f"Title {n}",
                    "Paper",
                    f"https://example.com/{n}",
                    "2025-03-01",
                ),
                chunk_id=f"a{n}:0",
            )
            for n in range(5)
        )
        return Answer(question, False, excerpts, "v1")

    def ask_cached(self, question: str, *, max_excerpts: int | None = None, compute: bool = True) -> Answer | None:
        return self.ask(question, max_excerpts=max_excerpts) if compute else None

    def covered_topics(self) -> tuple[str, ...]:
        return ("export rules",)

    def reload_if_changed(self) -> None:
        return None


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        paths=PathSettings(data_dir=tmp_path),
        discord=DiscordSettings(excerpts_per_answer=3),
    )


@pytest.fixture
def bot(settings: Settings, tmp_path: Path) -> Iterator[DirectiveBot]:
    db = Database(tmp_path / "test.sqlite3")
    instance = DirectiveBot(settings, FakeService(settings), db=db)
    yield instance
    instance._shutdown_pools()
    db.close()


# -- helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "limit", "expected"),
    [
        ("short claim", 50, "short claim"),
        ("  spaced \n\n out   claim ", 50, "spaced out claim"),
        ("the order bans exports of both models", 20, "the order bans"),
        ("x" * 40, 10, "x" * 10),
    ],
)
def test_message_text_becomes_a_question_cut_at_a_word(content: str, limit: int, expected: str) -> None:
    assert question_from_message(content, limit) == expected


def test_message_question_never_exceeds_the_limit() -> None:
    text = " ".join(["directive"] * 200)
    assert len(question_from_message(text, 500)) <= 500


@pytest.mark.parametrize(
    ("channel", "allowed", "expected"),
    [
        (SimpleNamespace(id=1), (), True),
        (SimpleNamespace(id=1), (1, 2), True),
        (SimpleNamespace(id=3), (1, 2), False),
        (SimpleNamespace(id=9, parent_id=2), (1, 2), True),
    ],
)
def test_allowed_channels_empty_means_all_and_threads_follow_parent(
    channel: SimpleNamespace, allowed: tuple[int, ...], expected: bool
) -> None:
    assert channel_allowed(channel, allowed) is expected


@pytest.mark.parametrize("question", ["", "   ", "x" * 501])
def test_precheck_returns_the_cores_one_line_message(question: str) -> None:
    message = precheck_question(question, QuestionSettings(max_chars=500))
    assert message and "\n" not in message


def test_precheck_accepts_a_normal_question() -> None:
    assert precheck_question("Who is affected?", QuestionSettings()) is None


def test_short_waits_refresh_their_queue_notice_every_ten_seconds() -> None:
    assert refresh_interval(Place(position=3, eta=12.0)) == QUEUE_REFRESH_SECONDS
    assert refresh_interval(None) == QUEUE_REFRESH_SECONDS


def test_long_waits_refresh_their_queue_notice_three_times_per_wait() -> None:
    """With hundreds waiting a minute, one edit each every ten seconds competes with the answering."""
    assert refresh_interval(Place(position=240, eta=60.0)) == pytest.approx(20.0)


# -- the shared answer path -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_answered_question_is_stored_for_its_buttons(bot: DirectiveBot) -> None:
    reply = await Ask(bot).answer("What is restricted?", via="slash", guild_id=1, channel_id=2, user_id=3)
    assert reply.answer_id is not None
    stored = bot.db.load_answer(reply.answer_id)
    assert stored is not None and stored.shown == reply.rendered.shown == 3
    assert len(stored.excerpts) == 5


@pytest.mark.asyncio
async def test_declined_question_is_recorded_as_a_gap(bot: DirectiveBot) -> None:
    reply = await Ask(bot).answer("Will it rain?", via="mention", guild_id=1, channel_id=2, user_id=3)
    assert reply.answer_id is None and reply.rendered.shown == 0
    assert [gap.example for gap in bot.db.recent_gaps()] == ["Will it rain?"]


@pytest.mark.asyncio
async def test_find_sources_decline_is_not_recorded_as_a_gap(bot: DirectiveBot) -> None:
    await Ask(bot).answer(
        "rain again",
        via="find_sources",
        guild_id=1,
        channel_id=2,
        user_id=3,
        record_gap=False,
    )
    assert bot.db.recent_gaps() == []


@pytest.mark.asyncio
async def test_invalid_question_raises_the_cores_error(bot: DirectiveBot) -> None:
    with pytest.raises(InvalidQuestion):
        await Ask(bot).answer("   ", via="slash", guild_id=1, channel_id=2, user_id=3)


@pytest.mark.asyncio
async def test_one_structured_log_line_without_question_text_by_default(
    bot: DirectiveBot, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="bot.discord.cogs.ask._cog"):
        await Ask(bot).answer("What is secret?", via="slash", guild_id=7, channel_id=2, user_id=3)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "bot.discord.cogs.ask._cog"]
    for key in (
        "guild=7",
        "latency_ms=",
        "abstained=False",
        "excerpts=5",
        "index_version=v1",
    ):
        assert key in line
    assert "secret" not in line


@pytest.mark.asyncio
async def test_question_text_is_logged_only_when_enabled(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(
        paths=PathSettings(data_dir=tmp_path),
        discord=DiscordSettings(log_question_text=True),
    )
    with Database(tmp_path / "t.sqlite3") as db:
        bot = DirectiveBot(settings, FakeService(settings), db=db)
        try:
            with caplog.at_level(logging.INFO, logger="bot.discord.cogs.ask._cog"):
                await Ask(bot).answer("What is secret?", via="slash", guild_id=7, channel_id=2, user_id=3)
        finally:
            bot._shutdown_pools()
    assert any("question='What is secret?'" in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_storage_failure_costs_the_buttons_not_the_answer(
    bot: DirectiveBot,
) -> None:
    bot.db.close()  # every later call raises sqlite3.ProgrammingError
    reply = await Ask(bot).answer("What is restricted?", via="slash", guild_id=1, channel_id=2, user_id=3)
    assert reply.answer_id is None and reply.rendered.shown == 3
