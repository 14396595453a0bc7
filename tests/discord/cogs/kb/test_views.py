"""What ``/kb`` shows, without Discord: input validation, previews, reports, status cards."""

from __future__ import annotations

import datetime as dt
from typing import Any

import discord
import pytest

from bot.db import AuditEntry, Gap, RebuildEntry
from bot.discord.cogs.kb._views import (
    EditArticleModal,
    article_embed,
    clip,
    parse_date_input,
    parse_url_input,
    rebuild_refusal,
    render_gaps,
    render_kb_page,
    render_preview,
    render_rebuild,
    render_status,
)
from bot.errors import KnowledgeError
from bot.kb import Duplicate, Preview
from bot.records import Article
from bot.service import IndexInfo, RebuildOutcome, RunningRebuild
from bot.store import BuildReport, IndexStatus

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def embed_limits_ok(embed: discord.Embed) -> bool:
    fields_ok = all(len(f.name or "") <= 256 and len(f.value or "") <= 1024 for f in embed.fields)
    return len(embed) <= 6000 and len(embed.description or "") <= 4096 and len(embed.title or "") <= 256 and fields_ok


def fields(embed: discord.Embed) -> dict[str, str]:
    return {f.name or "": f.value or "" for f in embed.fields}


def article(**overrides: Any) -> Article:
    values: dict[str, Any] = {
        "id": "commerce-deadline",
        "title": "Commerce gives Anthropic 72 hours",
        "body": "The Commerce Department gave Anthropic 72 hours.\n\nA second paragraph.",
        "publisher": "Capitol Ledger",
        "url": "https://ledger.example/a",
        "published": dt.date(2026, 11, 20),
        "added": dt.date(2026, 11, 22),
        "author": "Priya Natarajan",
    }
    values.update(overrides)
    return Article(**values)


def report(**overrides: Any) -> BuildReport:
    values: dict[str, Any] = {
        "index_version": "newversion01",
        "previous_version": "oldversion01",
        "articles": 6,
        "chunks": 140,
        "embedded": 3,
        "seconds": 1.25,
        "added": ("commerce-deadline",),
    }
    values.update(overrides)
    return BuildReport(**values)


def info(**overrides: Any) -> IndexInfo:
    values: dict[str, Any] = {
        "index_version": "abc123def456",
        "built_at": NOW,
        "articles": 5,
        "chunks": 137,
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "dimension": 384,
        "last_build_seconds": 14.2,
        "stale": False,
    }
    values.update(overrides)
    return IndexInfo(**values)


# -- modal input ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [("2026-11-20", dt.date(2026, 11, 20)), ("", None), ("  ", None)])
def test_date_input_takes_iso_dates_or_blank(text: str, expected: dt.date | None) -> None:
    assert parse_date_input(text) == expected


@pytest.mark.parametrize("text", ["2026-13-01", "20/11/2026", "Nov 20", "2026-11", "20261120", "2026-11-20T10:00"])
def test_date_input_refuses_anything_else_saying_how_to_write_it(text: str) -> None:
    with pytest.raises(KnowledgeError, match="write it as YYYY-MM-DD"):
        parse_date_input(text)


@pytest.mark.parametrize("text", ["https://ledger.example/a?b=c#d", "http://news.example.co.uk/x(1)"])
def test_url_input_takes_full_web_links(text: str) -> None:
    assert parse_url_input(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "ledger.example/a",
        "ftp://ledger.example/a",
        "javascript:alert(1)",
        "https://",
        "https://a b.example/",
        "http://localhost/x",
    ],
)
def test_url_input_refuses_what_is_not_a_full_web_link(text: str) -> None:
    with pytest.raises(KnowledgeError, match="full http"):
        parse_url_input(text)


def test_url_input_blank_means_no_link() -> None:
    assert parse_url_input("   ") is None


# -- embeds -----------------------------------------------------------------------------------


def test_clip_escapes_markdown_and_mentions_and_stays_within_the_limit() -> None:
    text = "**Bold** @everyone [link](https://evil.example) " * 20
    clipped = clip(text, 100)
    assert len(clipped) <= 100 and clipped.endswith("…")
    assert "@everyone" not in clipped and "\\*\\*Bold" in clipped and "\\[link\\]" in clipped


def test_preview_shows_facts_opening_length_destination_and_expiry() -> None:
    embed = render_preview(Preview(article(), "https://ledger.example/a"), timeout_seconds=180)
    shown = fields(embed)
    assert embed.title == "Add “Commerce gives Anthropic 72 hours”?"
    assert "> The Commerce Department gave Anthropic 72 hours." in (embed.description or "")
    assert "A second paragraph" not in (embed.description or "")
    assert shown["Publisher"] == "Capitol Ledger" and shown["Published"] == "20 November 2026"
    assert shown["Length"] == "10 words" and shown["Will be saved as"] == "`knowledge/commerce-deadline.md`"
    assert "expire in 3 minutes" in (embed.footer.text or "")
    assert embed.colour == discord.Colour.blurple()


def test_preview_warns_about_duplicates_exact_first() -> None:
    duplicates = (
        Duplicate("same-story", "Same story", 1.0, "same URL"),
        Duplicate("similar-story", "Similar story", 0.45, "45% of the wording matches"),
    )
    embed = render_preview(Preview(article(), "x", duplicates), timeout_seconds=60)
    lines = fields(embed)["Already in the knowledge base?"].split("\n")
    assert lines[0] == "⚠️ Same article as `same-story` “Same story” (same URL)"
    assert lines[1] == "Looks like `similar-story` “Similar story” (45% of the wording matches)"
    assert embed.colour == discord.Colour.orange()


def test_preview_of_a_huge_unknown_article_stays_within_discords_limits() -> None:
    huge = article(title="T" * 1000, body="word " * 50_000, publisher=None, url=None, published=None)
    embed = render_preview(Preview(huge, "pasted text"), timeout_seconds=60)
    assert embed_limits_ok(embed)
    assert fields(embed)["Publisher"] == "unknown" and fields(embed)["Published"] == "unknown"


def test_rebuild_report_lists_the_difference_and_the_new_version() -> None:
    embed = render_rebuild(RebuildOutcome(report(changed=("a", "b"), removed=("c",))))
    shown = fields(embed)
    assert embed.title == "Index rebuilt"
    assert shown["Index version"] == "`oldversion01` → `newversion01`"
    assert shown["Added"] == "1: `commerce-deadline`"
    assert shown["Changed"] == "2: `a`, `b`" and shown["Removed"] == "1: `c`"
    assert shown["Chunks embedded"] == "3" and shown["Now serving"] == "6 articles, 140 chunks"


def test_rebuild_report_shortens_long_id_lists() -> None:
    ids = tuple(f"story-{i}" for i in range(30))
    shown = fields(render_rebuild(RebuildOutcome(report(added=ids))))
    assert shown["Added"].startswith("30: `story-0`") and shown["Added"].endswith("and 22 more")


def test_rebuild_report_for_an_unchanged_index_says_nothing_was_embedded() -> None:
    embed = render_rebuild(RebuildOutcome(report(unchanged=True, embedded=0, added=())))
    assert embed.title == "Index already up to date"
    assert fields(embed)["Index"] == "`newversion01` was already up to date; nothing to embed."


def test_failed_rebuild_says_why_and_which_index_still_serves() -> None:
    outcome = RebuildOutcome(None, error="knowledge/x.md:1: missing front matter.", serving_version="old1")
    embed = render_rebuild(outcome)
    assert embed.title == "Rebuild failed" and embed.colour == discord.Colour.red()
    assert "knowledge/x.md:1: missing front matter." in (embed.description or "")
    assert "still answered from `old1`" in (embed.description or "")


def test_status_of_a_fresh_index() -> None:
    last = RebuildEntry(1, "discord:mod (1)", NOW, 2.5, True, "")
    embed = render_status(info(), status=IndexStatus(True, True, "abc123def456", None), last_rebuild=last, running=None)
    shown = fields(embed)
    assert shown["Index version"] == "`abc123def456`" and shown["Articles"] == "5" and shown["Chunks"] == "137"
    assert shown["Freshness"] == "Fresh: matches the articles on disk."
    assert shown["Last rebuild"].startswith("succeeded in 2.5 s")
    assert shown["Model"] == "`sentence-transformers/all-MiniLM-L6-v2` (384 dimensions)"
    assert "Rebuilding now" not in shown


def test_status_of_a_stale_index_counts_what_is_pending() -> None:
    status = IndexStatus(True, False, "v", None, added=("a", "b"), removed=("c",), settings_changed=("model",))
    shown = fields(render_status(info(stale=True), status=status, last_rebuild=None, running=None))
    assert shown["Freshness"] == "Stale: 2 added, 1 removed, model changed since this build. Run `/kb rebuild`."
    assert shown["Last build took"] == "14.2 s"


def test_status_shows_a_running_rebuild_and_a_failed_last_one() -> None:
    running = RunningRebuild("discord:moderator (1)", "moderator", NOW)
    last = RebuildEntry(1, "cli", NOW, 0.3, False, "broken.md:1: missing front matter")
    shown = fields(render_status(info(), status=None, last_rebuild=last, running=running))
    assert shown["Rebuilding now"].startswith("started by moderator <t:")
    assert shown["Last rebuild"].startswith("failed in 0.3 s") and "missing front matter" in shown["Last rebuild"]


def test_status_when_the_articles_cannot_be_read() -> None:
    shown = fields(render_status(info(), status=None, status_error="x.md: bad", last_rebuild=None, running=None))
    assert shown["Freshness"] == "⚠️ Unknown: x.md: bad"


def test_article_detail_names_who_added_it_and_its_history() -> None:
    history = [
        AuditEntry(2, NOW, "discord:mod (1)", "edit", "commerce-deadline", "aaaaaaaa11", "bbbbbbbb22", "edited title"),
        AuditEntry(1, NOW - dt.timedelta(days=1), "cli:ops", "add", "commerce-deadline", None, "aaaaaaaa11", "added"),
    ]
    shown = fields(article_embed(article(), chunks=4, history=history))
    assert shown["Added"].endswith("by cli:ops") and shown["In the index"] == "4 chunks"
    assert "**edit** by discord:mod (1): edited title (`aaaaaaaa` → `bbbbbbbb`)" in shown["History"]


def test_article_detail_without_audit_entries_says_so() -> None:
    shown = fields(article_embed(article(), chunks=0, history=[]))
    assert shown["Added"] == "2026-11-22, before the audit log began (no record of who)"
    assert shown["In the index"] == "not in the live index yet; run `/kb rebuild`"


def test_gaps_are_shown_in_the_order_given_with_counts() -> None:
    gaps = [Gap("weather", 1, NOW, "Weather?"), Gap("football", 3, NOW - dt.timedelta(hours=1), "Football?")]
    lines = (render_gaps(gaps, days=30).description or "").split("\n")
    assert lines[0].startswith("**1×** Weather? · last asked <t:") and lines[1].startswith("**3×** Football?")


def test_many_long_gaps_stay_within_the_embed_limit() -> None:
    gaps = [Gap(f"q{i}", i, NOW, "why " * 200) for i in range(100)]
    assert embed_limits_ok(render_gaps(gaps, days=30))


def test_no_gaps_says_so() -> None:
    assert render_gaps([], days=30).description == "No declined questions; every question found something to quote."


def test_kb_page_shows_ids_and_clamps_the_page() -> None:
    arts = [article(id=f"story-{i:02d}", title=f"Story {i}") for i in range(12)]
    embed = render_kb_page(arts, page=7, per_page=10)
    assert embed.footer.text == "Page 2 of 2 · 12 articles"
    assert (embed.description or "").split("\n")[0].startswith("`story-10` · Story 10 · Capitol Ledger · 2026-11-20")


def test_edit_modal_is_prefilled_with_the_front_matter() -> None:
    async def done(*_: Any) -> None: ...

    modal = EditArticleModal(article(published=None, author=None), done, timeout=60)
    defaults = {item.custom_id: item.default for item in modal.children}  # type: ignore[attr-defined]
    assert defaults == {
        "kb:title": "Commerce gives Anthropic 72 hours",
        "kb:publisher": "Capitol Ledger",
        "kb:url": "https://ledger.example/a",
        "kb:published": "",
        "kb:author": "",
    }


def test_refusal_for_a_running_rebuild_names_who_and_when() -> None:
    message = rebuild_refusal(RunningRebuild("discord:moderator (1)", "moderator", NOW))
    stamp = int(NOW.timestamp())
    assert message == (
        f"A rebuild is already running: started by moderator <t:{stamp}:T> (<t:{stamp}:R>). "
        "Wait for it to finish, then try again."
    )
