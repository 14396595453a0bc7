"""What moderators see for ``/kb``: previews, rebuild reports, status cards, and the metadata modals.

Embeds are built by pure functions (no I/O) so they can be tested alone. The modals check the
moderator rule again on submit: a role can be taken away while a modal is open.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import discord

from bot.discord.checks import NOT_MODERATOR_MESSAGE, is_moderator
from bot.discord.render import (
    DESCRIPTION_LIMIT,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    TITLE_LIMIT,
    escape_cut,
    format_date,
    linked_title,
    render_article_page,
    render_excerpts,
)
from bot.discord.replies import report_error, send_private
from bot.discord.views import InvokerView, SourcesPaginator
from bot.errors import KnowledgeError
from bot.pins import MAX_QUOTE_CHARS, MAX_QUOTES, SentenceChoice
from bot.records import Answer, Article, Excerpt

if TYPE_CHECKING:
    from bot.db import AuditEntry, FeedbackGroup, Gap, RebuildEntry
    from bot.kb import Preview
    from bot.pins import Pin, PinDraft
    from bot.service import IndexInfo, RebuildOutcome, RunningRebuild
    from bot.store import BuildReport, IndexStatus

log = logging.getLogger(__name__)

COLOUR_KB = discord.Colour.blurple()
COLOUR_WARN = discord.Colour.orange()
COLOUR_OK = discord.Colour.green()
COLOUR_FAIL = discord.Colour.red()

FIRST_PARAGRAPH_CHARS = 700
MAX_IDS_LISTED = 8
MAX_URL_CHARS = 2048
# Discord's limits for modal text inputs.
MODAL_INPUT_LIMIT = 4000


# -- small helpers ----------------------------------------------------------------------------


def clip(text: str | None, limit: int) -> str:
    """``text`` on one line, escaped so it shows literally, within ``limit`` characters."""
    return escape_cut(" ".join((text or "").split()), limit)


def when(moment: dt.datetime, style: str = "f") -> str:
    """A Discord timestamp (shown in the reader's own time zone) plus "(3 minutes ago)"."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return f"{discord.utils.format_dt(moment, style)} ({discord.utils.format_dt(moment, 'R')})"  # type: ignore[arg-type]


def _ids(ids: Sequence[str]) -> str:
    shown = ", ".join(f"`{i}`" for i in ids[:MAX_IDS_LISTED])
    if len(ids) > MAX_IDS_LISTED:
        shown += f" and {len(ids) - MAX_IDS_LISTED} more"
    return shown


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


# -- validating modal input -------------------------------------------------------------------


def parse_date_input(text: str | None) -> dt.date | None:
    """``YYYY-MM-DD`` (or blank for unknown); anything else is refused with what to type."""
    value = (text or "").strip()
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or len(value) != 10:
        raise KnowledgeError(f"The date “{clip(value, 40)}” is not valid; write it as YYYY-MM-DD, e.g. 2026-11-03.")
    return day


def parse_url_input(text: str | None) -> str | None:
    """A full ``http(s)://host/...`` link (or blank for none); anything else is refused."""
    value = (text or "").strip()
    if not value:
        return None
    hint = "the URL must be a full http(s) link such as https://example.com/story, or left empty."
    if len(value) > MAX_URL_CHARS or any(ch.isspace() or not ch.isprintable() for ch in value):
        raise KnowledgeError(f"That URL is not valid: {hint}")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise KnowledgeError(f"That URL is not valid: {hint}") from None
    if parts.scheme.lower() not in ("http", "https") or not host or "." not in host.strip("."):
        raise KnowledgeError(f"That URL is not valid: {hint}")
    return value


def _optional(text: str | None) -> str | None:
    value = " ".join((text or "").split())
    return value or None


# -- previews and reports ---------------------------------------------------------------------


def render_preview(preview: Preview, *, timeout_seconds: float) -> discord.Embed:
    """What would be added: facts, the opening paragraph, the size, and any look-alike articles."""
    article = preview.article
    duplicates = preview.duplicates
    embed = discord.Embed(
        title=clip(f"Add “{article.title}”?", TITLE_LIMIT),
        colour=COLOUR_WARN if duplicates else COLOUR_KB,
    )
    opening = clip(preview.first_paragraph, FIRST_PARAGRAPH_CHARS)
    embed.description = f"**{linked_title(article, limit=300)}**\n\n> {opening}"[:DESCRIPTION_LIMIT]
    embed.add_field(name="Publisher", value=clip(article.publisher, 200) or "unknown", inline=True)
    published = format_date(article.published.isoformat()) if article.published else None
    embed.add_field(name="Published", value=published or "unknown", inline=True)
    embed.add_field(name="Length", value=f"{preview.words:,} words", inline=True)
    embed.add_field(name="Will be saved as", value=f"`knowledge/{article.id}.md`", inline=True)
    embed.add_field(name="From", value=clip(preview.origin, 300) or "pasted text", inline=True)
    if duplicates:
        lines = []
        for dup in duplicates[:5]:
            prefix = "⚠️ Same article as" if dup.exact else "Looks like"
            lines.append(f"{prefix} `{dup.article_id}` “{clip(dup.title, 120)}” ({clip(dup.reason, 80)})")
        embed.add_field(name="Already in the knowledge base?", value="\n".join(lines)[:FIELD_VALUE_LIMIT], inline=False)
    minutes = max(1, round(timeout_seconds / 60))
    embed.set_footer(
        text=f"Confirm writes the file and rebuilds the index; Cancel changes nothing. "
        f"These buttons expire in {_count(minutes, 'minute')}."
    )
    return embed


def render_remove_prompt(article: Article, chunks: int | None) -> discord.Embed:
    embed = discord.Embed(title=clip(f"Remove “{article.title}”?", TITLE_LIMIT), colour=COLOUR_WARN)
    lines = [f"**{linked_title(article, limit=300)}**", f"`knowledge/{article.id}.md`"]
    if chunks is not None:
        lines.append(f"I quote it from {_count(chunks, 'passage')} in the live index.")
    embed.description = "\n".join(lines)
    embed.set_footer(text="Confirm deletes the file and rebuilds the index; Cancel changes nothing.")
    return embed


# -- rebuild progress -------------------------------------------------------------------------

PROGRESS_FIRST_SECONDS = 3.0  # quick rebuilds finish before any progress is shown
PROGRESS_EDIT_SECONDS = 2.0  # at most one edit this often (Discord rate-limits message edits)


def _eta(seconds: float) -> str:
    if seconds < 60:
        return f"about {max(1, round(seconds))} s"
    return f"about {round(seconds / 60)} min"


def render_progress(done: int, total: int, elapsed: float) -> str:
    """'Rebuilding: embedded 120 of 400 chunks (30%), about 45 s left.' for the moderator who started it."""
    if total <= 0:
        return "Rebuilding the index: nothing new to embed; writing it."
    done = max(0, min(done, total))
    percent = round(100 * done / total)
    if done == 0:
        left = "estimating the time left"
    elif done == total:
        left = "writing the index"
    else:
        left = f"{_eta(elapsed / done * (total - done))} left"
    return f"Rebuilding the index: embedded {done} of {total} chunks ({percent}%), {left}."


class ProgressMessage:
    """Edits the moderator's ephemeral "thinking" reply with the rebuild's progress.

    Called from the build thread (``progress(done, total)``); edits are made on the event loop,
    never more often than ``PROGRESS_EDIT_SECONDS``, and not at all for a rebuild that ends within
    ``PROGRESS_FIRST_SECONDS``. A failed edit is logged and skipped: progress is a courtesy.
    """

    def __init__(
        self,
        edit: Callable[[str], Awaitable[Any]],
        loop: asyncio.AbstractEventLoop,
        *,
        first_after: float = PROGRESS_FIRST_SECONDS,
        every: float = PROGRESS_EDIT_SECONDS,
    ) -> None:
        self._edit = edit
        self._loop = loop
        self._first_after = first_after
        self._every = every
        self._started = time.monotonic()
        self._last_edit = float("-inf")
        self._lock = threading.Lock()
        self.edits = 0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        elapsed = now - self._started
        with self._lock:
            if elapsed < self._first_after or now - self._last_edit < self._every:
                return
            self._last_edit = now
        text = render_progress(done, total, elapsed)
        asyncio.run_coroutine_threadsafe(self._send(text), self._loop)

    async def _send(self, text: str) -> None:
        try:
            await self._edit(text)
            self.edits += 1
        except discord.HTTPException as exc:
            log.debug("could not show rebuild progress: %s", exc)


def build_summary(report: BuildReport) -> list[tuple[str, str]]:
    """(name, value) pairs describing what a build changed."""
    if report.unchanged:
        return [
            ("Index", f"`{report.index_version}` was already up to date; nothing to embed."),
            ("Articles", str(report.articles)),
            ("Chunks", str(report.chunks)),
        ]
    before = f"`{report.previous_version}` → " if report.previous_version else ""
    rows = [("Index version", f"{before}`{report.index_version}`")]
    for label, ids in (("Added", report.added), ("Changed", report.changed), ("Removed", report.removed)):
        rows.append((label, f"{len(ids)}" + (f": {_ids(ids)}" if ids else "")))
    rows.append(("Chunks embedded", str(report.embedded)))
    rows.append(("Now serving", f"{_count(report.articles, 'article')}, {_count(report.chunks, 'chunk')}"))
    rows.append(("Took", f"{report.seconds:.1f} s"))
    return rows


def render_rebuild(outcome: RebuildOutcome, *, title: str | None = None, lead: str | None = None) -> discord.Embed:
    """The result of a rebuild (alone or after an add, edit or remove)."""
    if outcome.report is None:
        serving = f"`{outcome.serving_version}`" if outcome.serving_version else "the previous index"
        embed = discord.Embed(title=title or "Rebuild failed", colour=COLOUR_FAIL)
        text = (lead + "\n\n" if lead else "") + (
            f"The rebuild failed: {clip(outcome.error, 1500)}\n\n"
            f"Questions are still answered from {serving}. Fix the problem, then run `/kb rebuild`."
        )
        embed.description = text[:DESCRIPTION_LIMIT]
        return embed
    report = outcome.report
    embed = discord.Embed(
        title=title or ("Index already up to date" if report.unchanged else "Index rebuilt"),
        colour=COLOUR_OK,
    )
    if lead:
        embed.description = lead[:DESCRIPTION_LIMIT]
    for name, value in build_summary(report):
        embed.add_field(name=name, value=value[:FIELD_VALUE_LIMIT], inline=name not in ("Index version", "Index"))
    if not report.unchanged:
        embed.set_footer(text="Questions switched to the new index as soon as it was loaded.")
    return embed


def render_not_rebuilt(lead: str, reason: str) -> discord.Embed:
    """A change was saved but no rebuild could start (one is already running)."""
    embed = discord.Embed(title="Saved; index not rebuilt yet", colour=COLOUR_WARN)
    embed.description = f"{lead}\n\n{reason}\nRun `/kb rebuild` afterwards to include this change."[:DESCRIPTION_LIMIT]
    return embed


# -- status, article detail, gaps, list -------------------------------------------------------


def rebuild_refusal(running: RunningRebuild) -> str:
    """Why a second rebuild cannot start: who started the running one, and when."""
    return (
        f"A rebuild is already running: started by {clip(running.name, 80)} {when(running.started_at, 'T')}. "
        "Wait for it to finish, then try again."
    )


def render_status(
    info: IndexInfo,
    *,
    status: IndexStatus | None,
    status_error: str | None = None,
    last_rebuild: RebuildEntry | None,
    running: RunningRebuild | None,
) -> discord.Embed:
    """Index version, built at, fresh or stale, counts, last rebuild, model."""
    embed = discord.Embed(title="Knowledge base status", colour=COLOUR_KB)
    embed.add_field(name="Index version", value=f"`{clip(info.index_version, 100)}`", inline=True)
    embed.add_field(name="Articles", value=str(info.articles), inline=True)
    embed.add_field(name="Chunks", value=str(info.chunks), inline=True)
    if info.built_at is not None:
        embed.add_field(name="Built", value=when(info.built_at), inline=False)
    if status_error is not None:
        freshness = f"⚠️ Unknown: {clip(status_error, 600)}"
    elif status is not None and not status.fresh:
        pending = [
            f"{len(ids)} {label}"
            for label, ids in (("added", status.added), ("changed", status.changed), ("removed", status.removed))
            if ids
        ]
        pending += [f"{s} changed" for s in status.settings_changed]
        freshness = "Stale: " + (", ".join(pending) or "changes pending") + " since this build. Run `/kb rebuild`."
    elif info.stale:
        freshness = "Stale: articles changed since this build. Run `/kb rebuild`."
    else:
        freshness = "Fresh: matches the articles on disk."
    embed.add_field(name="Freshness", value=freshness[:FIELD_VALUE_LIMIT], inline=False)
    if running is not None:
        embed.add_field(
            name="Rebuilding now",
            value=f"started by {clip(running.name, 80)} {when(running.started_at, 'T')}",
            inline=False,
        )
    if last_rebuild is not None:
        outcome = "succeeded" if last_rebuild.ok else "failed"
        value = (
            f"{outcome} in {last_rebuild.seconds:.1f} s, {when(last_rebuild.started_at)}, "
            f"started by {clip(last_rebuild.started_by, 80)}"
        )
        if not last_rebuild.ok and last_rebuild.detail:
            value += f"\n{clip(last_rebuild.detail, 400)}"
        embed.add_field(name="Last rebuild", value=value[:FIELD_VALUE_LIMIT], inline=False)
    elif info.last_build_seconds is not None:
        embed.add_field(name="Last build took", value=f"{info.last_build_seconds:.1f} s", inline=False)
    embed.add_field(name="Model", value=f"`{clip(info.model, 200)}` ({info.dimension} dimensions)", inline=False)
    return embed


def article_embed(article: Article, *, chunks: int | None, history: Sequence[AuditEntry]) -> discord.Embed:
    """``/kb show``: front matter, passages in the live index, and the audit trail (newest first)."""
    embed = discord.Embed(title=clip(article.title, TITLE_LIMIT), colour=COLOUR_KB)
    embed.description = f"`knowledge/{article.id}.md`"
    embed.add_field(name="Publisher", value=clip(article.publisher, 200) or "unknown", inline=True)
    published = format_date(article.published.isoformat()) if article.published else None
    embed.add_field(name="Published", value=published or "unknown", inline=True)
    embed.add_field(name="Author", value=clip(article.author, 200) or "unknown", inline=True)
    embed.add_field(name="URL", value=clip(article.url, 500) or "none", inline=False)
    indexed = "not in the live index yet; run `/kb rebuild`" if not chunks else _count(chunks, "chunk")
    embed.add_field(name="In the index", value=indexed, inline=True)
    words = len(article.body.split())
    embed.add_field(name="Length", value=f"{words:,} words", inline=True)
    adds = [e for e in history if e.action == "add"]
    if adds:
        first = adds[-1]
        embed.add_field(name="Added", value=f"{when(first.at)} by {clip(first.actor, 100)}", inline=False)
    else:
        day = article.added.isoformat() if article.added else "an unknown date"
        embed.add_field(name="Added", value=f"{day}, before the audit log began (no record of who)", inline=False)
    if history:
        lines = [
            f"{when(e.at, 'd')} **{e.action}** by {clip(e.actor, 80)}: {clip(e.detail, 120)}"
            + (f" (`{(e.hash_before or '∅')[:8]}` → `{(e.hash_after or '∅')[:8]}`)" if e.action != "add" else "")
            for e in history[:6]
        ]
        embed.add_field(name="History", value="\n".join(lines)[:FIELD_VALUE_LIMIT], inline=False)
    if article.notes:
        embed.add_field(name="Notes", value=clip(article.notes, 500), inline=False)
    return embed


def render_gaps(gaps: Sequence[Gap], *, days: int) -> discord.Embed:
    """Declined questions, grouped and counted, newest first."""
    lines = [
        f"**{gap.count}×** {clip(gap.example, 200)} · last asked {discord.utils.format_dt(_aware(gap.last_asked), 'R')}"
        for gap in gaps
    ]
    return _counted_list(
        f"Questions I declined (last {days} days)",
        lines,
        empty="No declined questions; every question found something to quote.",
        footer="Add articles that answer these with /kb add; the next rebuild makes them quotable.",
    )


def _counted_list(title: str, lines: Sequence[str], *, empty: str, footer: str) -> discord.Embed:
    """A card of one line per group, as many as fit; ``empty`` alone when there are none."""
    embed = discord.Embed(title=title, colour=COLOUR_KB)
    if not lines:
        embed.description = empty
        return embed
    shown: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > DESCRIPTION_LIMIT - 100:
            break
        shown.append(line)
        used += len(line) + 1
    embed.description = "\n".join(shown)
    embed.set_footer(text=footer)
    return embed


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _kb_line(_n: int, article: Article) -> str:
    parts = [f"`{article.id}`", clip(article.title, 150)]
    if article.publisher:
        parts.append(clip(article.publisher, 60))
    if article.published:
        parts.append(article.published.isoformat())
    return " · ".join(parts)


def render_kb_page(articles: Sequence[Article], page: int, per_page: int) -> discord.Embed:
    """One page of ``/kb list``: id, title, publisher, date."""
    return render_article_page(
        articles,
        page,
        per_page,
        title="Knowledge base articles",
        colour=COLOUR_KB,
        empty="No articles yet; add one with `/kb add`.",
        line_for=_kb_line,
    )


class KbListPaginator(SourcesPaginator):
    """``/kb list``: the source list paginator, showing ids for moderators."""

    def current_embed(self) -> discord.Embed:
        return render_kb_page(self.articles, self.page, self.per_page)


# -- modals -----------------------------------------------------------------------------------


class ModeratorModal(discord.ui.Modal):
    """A modal whose submit is checked against the moderator rule again; errors become one line."""

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        if is_moderator(interaction):
            return True
        await send_private(interaction, f"{NOT_MODERATOR_MESSAGE} Nothing was changed.")
        return False

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, /) -> None:
        await report_error(interaction, error, where=type(self).__name__)


@dataclass(frozen=True)
class TextArticle:
    """Validated fields of the "add as text" modal."""

    title: str
    body: str
    publisher: str | None
    url: str | None
    published: dt.date | None


TextSubmitted = Callable[[discord.Interaction[Any], TextArticle], Awaitable[None]]
EditSubmitted = Callable[[discord.Interaction[Any], str, dict[str, Any]], Awaitable[None]]


class AddTextModal(ModeratorModal, title="Add an article as text"):
    """``/kb add`` with neither a link nor a file: paste the article."""

    article_title: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Headline", max_length=300, custom_id="kb:title"
    )
    publisher: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Publisher", required=False, max_length=200, placeholder="e.g. Reuters", custom_id="kb:publisher"
    )
    url: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Link to the original",
        required=False,
        max_length=MAX_URL_CHARS,
        placeholder="https://…",
        custom_id="kb:url",
    )
    published: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Published on (YYYY-MM-DD)",
        required=False,
        max_length=10,
        placeholder="2026-11-03",
        custom_id="kb:published",
    )
    body: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Article text",
        style=discord.TextStyle.paragraph,
        custom_id="kb:body",
        max_length=MODAL_INPUT_LIMIT,
        placeholder="Paste the article's paragraphs; for longer articles attach a file with /kb add file:",
    )

    def __init__(self, on_done: TextSubmitted, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.on_done = on_done

    def values(self) -> TextArticle:
        """The inputs, validated; raises ``KnowledgeError`` saying what to fix."""
        title = _optional(self.article_title.value)
        if not title:
            raise KnowledgeError("The headline is empty; give the article's headline.")
        body = (self.body.value or "").strip()
        if not body:
            raise KnowledgeError("The article text is empty; paste the article's paragraphs.")
        return TextArticle(
            title=title,
            body=body,
            publisher=_optional(self.publisher.value),
            url=parse_url_input(self.url.value),
            published=parse_date_input(self.published.value),
        )

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        await self.on_done(interaction, self.values())


class EditArticleModal(ModeratorModal, title="Edit article details"):
    """``/kb edit``: the article's front matter, pre-filled; the body is never edited here."""

    def __init__(self, article: Article, on_done: EditSubmitted, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.article_id = article.id
        self.on_done = on_done
        self.article_title: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Headline",
            default=article.title,
            max_length=max(300, min(len(article.title), MODAL_INPUT_LIMIT)),
            custom_id="kb:title",
        )
        self.publisher: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Publisher", default=article.publisher or "", required=False, max_length=200, custom_id="kb:publisher"
        )
        self.url: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Link to the original",
            default=article.url or "",
            required=False,
            max_length=MAX_URL_CHARS,
            custom_id="kb:url",
        )
        self.published: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Published on (YYYY-MM-DD)",
            default=article.published.isoformat() if article.published else "",
            required=False,
            max_length=10,
            placeholder="2026-11-03",
            custom_id="kb:published",
        )
        self.author: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label="Author", default=article.author or "", required=False, max_length=200, custom_id="kb:author"
        )
        for item in (self.article_title, self.publisher, self.url, self.published, self.author):
            self.add_item(item)

    def values(self) -> dict[str, Any]:
        """Changed front matter fields, validated; raises ``KnowledgeError`` saying what to fix."""
        title = _optional(self.article_title.value)
        if not title:
            raise KnowledgeError("The headline cannot be empty.")
        return {
            "title": title,
            "publisher": _optional(self.publisher.value),
            "url": parse_url_input(self.url.value),
            "published": parse_date_input(self.published.value),
            "author": _optional(self.author.value),
        }

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        await self.on_done(interaction, self.article_id, self.values())


# -- pins: the moderators' chosen quotes ------------------------------------------------------

# Discord's limits for select menus.
SELECT_OPTIONS_LIMIT = 25
SELECT_TEXT_LIMIT = 100
PIN_FIELDS_SHOWN = 20


def _option_text(text: str, limit: int = SELECT_TEXT_LIMIT) -> str:
    """Plain text for a select option (not markdown: options show literally), within Discord's limit."""
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1].rstrip() + "…"


def _pin_embed(question: str) -> discord.Embed:
    """The embed of step 1 of a pin (the picker, or the sentences a search found), titled with the question."""
    return discord.Embed(title=clip(f"Pin an answer for “{question}”", TITLE_LIMIT), colour=COLOUR_KB)


def render_pin_picker(question: str, answer: Answer) -> discord.Embed:
    """Step 1 of a pin: the bot's own excerpts for the question, to choose from, or a note that it has none."""
    embed = _pin_embed(question)
    if answer.declined or not answer.excerpts:
        lead = "I quote nothing for this question today. Paste the passage to pin, copied from an article."
    else:
        lead = "Choose up to three of my excerpts for this question, or paste a passage copied from an article."
    lines = [lead, ""]
    for n, excerpt in enumerate(answer.excerpts[:SELECT_OPTIONS_LIMIT], start=1):
        lines.append(f"**{n}.** {clip(excerpt.quote, 300)}\n— {clip(excerpt.source.title, 120)}")
    embed.description = "\n".join(lines)[:DESCRIPTION_LIMIT]
    embed.set_footer(text="Or search every sentence of the articles: 🔎 Search the articles.")
    return embed


def render_pin_preview(draft: PinDraft, excerpts: Sequence[Excerpt], *, timeout_seconds: float) -> discord.Embed:
    """Step 2: what members will see first for this question, and which questions it will answer."""
    embed = discord.Embed(title=clip(f"Pin these passages for “{draft.question}”?", TITLE_LIMIT), colour=COLOUR_WARN)
    embed.description = render_excerpts(
        excerpts, title="", index_version="", max_excerpts=len(excerpts)
    ).embed.description
    phrasings = "\n".join(f"• {clip(p, 200)}" for p in draft.phrasings) or (
        "Only this question and questions that mean the same. Add the other ways members ask it."
    )
    embed.add_field(name="Also answers", value=phrasings[:FIELD_VALUE_LIMIT], inline=False)
    minutes = max(1, round(timeout_seconds / 60))
    embed.set_footer(
        text="Members get these quotes first, marked as chosen by the moderators, then my usual excerpts. "
        f"Pin saves it now; Cancel changes nothing. These buttons expire in {_count(minutes, 'minute')}."
    )
    return embed


def render_pinned(pin: Pin) -> discord.Embed:
    embed = discord.Embed(title=clip(f"Pinned #{pin.id}: “{pin.question}”", TITLE_LIMIT), colour=COLOUR_OK)
    embed.description = (
        f"Served from now on to this question and {_count(len(pin.phrasings), 'other phrasing')}, "
        "and to questions that mean the same. `/kb pins` shows its hits and votes; `/kb unpin` removes it."
    )
    return embed


def render_pins(pins: Sequence[Pin]) -> discord.Embed:
    """``/kb pins``: each pin's state, hits and the votes of the answers it led, stale ones with the reason."""
    stale = sum(1 for p in pins if not p.active)
    embed = discord.Embed(title="Pinned answers", colour=COLOUR_WARN if stale else COLOUR_KB)
    if not pins:
        embed.description = "No pins yet. Pin an answer with `/kb pin`, or from `/kb gaps` and `/kb feedback`."
        return embed
    summary = f"{_count(len(pins), 'pin')}"
    if stale:
        summary += f"; ⚠️ {stale} stale (not served until fixed: unpin and pin the passage again)"
    embed.description = summary
    for pin in pins[:PIN_FIELDS_SHOWN]:
        state = "served" if pin.active else "⚠️ stale, not served"
        lines = [
            f"{pin.hits} {'hit' if pin.hits == 1 else 'hits'} · 👍 {pin.votes_up} 👎 {pin.votes_down} since pinned",
            f"{_count(len(pin.quotes), 'passage')}, {_count(len(pin.phrasings), 'more phrasing')} · "
            f"pinned by {clip(pin.created_by, 80)} {when(pin.created_at, 'd')}",
        ]
        if pin.stale_reason:
            lines.append(f"⚠️ {clip(pin.stale_reason, 400)}")
        embed.add_field(
            name=f"#{pin.id} · {state} · {clip(pin.question, FIELD_NAME_LIMIT - 40)}",
            value="\n".join(lines)[:FIELD_VALUE_LIMIT],
            inline=False,
        )
    if len(pins) > PIN_FIELDS_SHOWN:
        embed.set_footer(text=f"and {len(pins) - PIN_FIELDS_SHOWN} more (`directive-bot kb pins` lists all)")
    return embed


def render_unpin_prompt(pin: Pin) -> discord.Embed:
    embed = discord.Embed(title=clip(f"Unpin #{pin.id}: “{pin.question}”?", TITLE_LIMIT), colour=COLOUR_WARN)
    embed.description = (
        f"{_count(len(pin.quotes), 'passage')}, {pin.hits} {'hit' if pin.hits == 1 else 'hits'}, "
        f"👍 {pin.votes_up} 👎 {pin.votes_down}. Its questions get my automatic answer again."
    )
    embed.set_footer(text="Confirm removes the pin (the audit log keeps it); Cancel changes nothing.")
    return embed


def render_feedback(groups: Sequence[FeedbackGroup], *, days: int) -> discord.Embed:
    """``/kb feedback``: answers voted 👎, grouped by question, newest first."""
    lines = [
        f"**{g.downvotes}× 👎** {clip(g.example, 200)} · last {discord.utils.format_dt(_aware(g.last_voted), 'R')}"
        + (f" · led by pin #{g.pinned}" if g.pinned is not None else "")
        for g in groups
    ]
    return _counted_list(
        f"Answers voted 👎 (last {days} days)",
        lines,
        empty="No 👎 votes; nothing to fix here.",
        footer="Choose a question below to pin the right passages for it.",
    )


class ModeratorView(InvokerView):
    """A view for the moderator who opened it, checked against the moderator rule again at every press."""

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        if not await super().interaction_check(interaction):
            return False
        if not is_moderator(interaction):
            await send_private(interaction, "You are no longer a moderator here.")
            return False
        return True


PinQuestion = Callable[[discord.Interaction[Any], str], Awaitable[None]]


class PinFromGroupView(ModeratorView):
    """ "Pin an answer" under ``/kb gaps`` and ``/kb feedback``: choose a question, the pin flow opens with it."""

    def __init__(self, questions: Sequence[str], owner_id: int, on_pick: PinQuestion, *, timeout: float) -> None:
        super().__init__(owner_id, timeout=timeout)
        self.questions = list(questions)[:SELECT_OPTIONS_LIMIT]
        self.on_pick = on_pick
        self.pick.options = [
            discord.SelectOption(label=_option_text(q), value=str(n)) for n, q in enumerate(self.questions)
        ]

    @discord.ui.select(placeholder="📌 Pin an answer for…", min_values=1, max_values=1)
    async def pick(self, interaction: discord.Interaction[Any], select: discord.ui.Select[Any]) -> None:
        await self.on_pick(interaction, self.questions[int(select.values[0])])


PickExcerpts = Callable[[discord.Interaction[Any], list[Excerpt]], Awaitable[None]]
OpenModal = Callable[[discord.Interaction[Any]], Awaitable[None]]


class PassagePicker(ModeratorView):
    """Step 1: choose from the bot's own excerpts (up to three), or paste passages, or cancel."""

    def __init__(
        self,
        excerpts: Sequence[Excerpt],
        owner_id: int,
        *,
        on_pick: PickExcerpts,
        on_paste: OpenModal,
        on_search: OpenModal,
        timeout: float,
    ) -> None:
        super().__init__(owner_id, timeout=timeout)
        self.excerpts = list(excerpts)[:SELECT_OPTIONS_LIMIT]
        self.on_pick = on_pick
        self.on_paste = on_paste
        self.on_search = on_search
        if self.excerpts:
            self.choose.options = [
                discord.SelectOption(
                    label=_option_text(f"{n}. {e.quote}"),
                    description=_option_text(e.source.title),
                    value=str(n - 1),
                )
                for n, e in enumerate(self.excerpts, start=1)
            ]
            self.choose.max_values = min(MAX_QUOTES, len(self.excerpts))
        else:
            self.remove_item(self.choose)

    @discord.ui.select(placeholder="Choose my excerpts to pin (up to three)", min_values=1, max_values=1, row=0)
    async def choose(self, interaction: discord.Interaction[Any], select: discord.ui.Select[Any]) -> None:
        await self.on_pick(interaction, [self.excerpts[int(v)] for v in sorted(select.values, key=int)])

    @discord.ui.button(label="Search the articles", emoji="🔎", style=discord.ButtonStyle.primary, row=1)
    async def search(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await self.on_search(interaction)

    @discord.ui.button(label="Paste passages", emoji="📋", style=discord.ButtonStyle.primary, row=1)
    async def paste(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await self.on_paste(interaction)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, row=1)
    async def cancel(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        self.disable_all()
        self.stop()
        await interaction.response.edit_message(content="Cancelled; nothing was pinned.", view=self)


PastedSubmitted = Callable[[discord.Interaction[Any], list[str]], Awaitable[None]]
SearchSubmitted = Callable[[discord.Interaction[Any], str], Awaitable[None]]
PickRefs = Callable[[discord.Interaction[Any], list[str]], Awaitable[None]]


class SearchPassagesModal(ModeratorModal, title="Search the articles"):
    """A few words of the sentence to pin: every sentence containing them all is offered."""

    words: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Words of the sentence", max_length=200, placeholder="older models not affected", custom_id="pin:search"
    )

    def __init__(self, on_done: SearchSubmitted, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.on_done = on_done

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        await self.on_done(interaction, self.words.value or "")


class SentencePicker(ModeratorView):
    """The sentences a search found (up to 25): choose up to three to pin, or go back to the picker."""

    def __init__(self, found: Sequence[SentenceChoice], owner_id: int, *, on_pick: PickRefs, timeout: float) -> None:
        super().__init__(owner_id, timeout=timeout)
        self.found = list(found)[:SELECT_OPTIONS_LIMIT]
        self.on_pick = on_pick
        self.choose.options = [
            discord.SelectOption(label=_option_text(c.text), value=str(n)) for n, c in enumerate(self.found)
        ]
        self.choose.max_values = min(MAX_QUOTES, len(self.found))

    @discord.ui.select(placeholder="Choose the sentences to pin (up to three)", min_values=1, max_values=1)
    async def choose(self, interaction: discord.Interaction[Any], select: discord.ui.Select[Any]) -> None:
        await self.on_pick(interaction, [self.found[int(v)].ref for v in sorted(select.values, key=int)])


def render_sentence_choices(question: str, words: str, found: Sequence[SentenceChoice]) -> discord.Embed:
    """Step 1b of a pin: the sentences containing every word searched for."""
    embed = _pin_embed(question)
    lines = [f"Sentences containing “{clip(words, 100)}”: choose up to three.", ""]
    lines += [f"**{n}.** {clip(c.text, 300)}" for n, c in enumerate(found[:SELECT_OPTIONS_LIMIT], start=1)]
    embed.description = "\n".join(lines)[:DESCRIPTION_LIMIT]
    return embed


class PastePassagesModal(ModeratorModal, title="Paste the passages to pin"):
    """Up to three passages, each copied from an article (found word for word, or refused)."""

    first: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Passage", style=discord.TextStyle.paragraph, max_length=MAX_QUOTE_CHARS, custom_id="pin:passage1"
    )
    second: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Another passage (optional)",
        style=discord.TextStyle.paragraph,
        required=False,
        max_length=MAX_QUOTE_CHARS,
        custom_id="pin:passage2",
    )
    third: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="A third passage (optional)",
        style=discord.TextStyle.paragraph,
        required=False,
        max_length=MAX_QUOTE_CHARS,
        custom_id="pin:passage3",
    )

    def __init__(self, on_done: PastedSubmitted, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.on_done = on_done

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        texts = [t.value or "" for t in (self.first, self.second, self.third)]
        await self.on_done(interaction, [t for t in texts if t.strip()])


class PhrasingsModal(ModeratorModal, title="Other ways members ask it"):
    """Example phrasings, one per line: questions with these words (or meaning) get the pin too."""

    phrasings: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="One question per line",
        style=discord.TextStyle.paragraph,
        max_length=MODAL_INPUT_LIMIT,
        placeholder="does this affect people outside the US\nam I cut off if I live in Canada?",
        custom_id="pin:phrasings",
    )

    def __init__(self, on_done: PastedSubmitted, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.on_done = on_done

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        await self.on_done(interaction, (self.phrasings.value or "").splitlines())


Pressed = Callable[[discord.Interaction[Any]], Awaitable[None]]


class PinPreviewView(ModeratorView):
    """Step 2: Pin (save and serve now), Add phrasings, or Cancel."""

    def __init__(self, owner_id: int, *, on_pin: Pressed, on_phrasings: Pressed, timeout: float) -> None:
        super().__init__(owner_id, timeout=timeout)
        self.on_pin = on_pin
        self.on_phrasings = on_phrasings

    @discord.ui.button(label="Pin", emoji="📌", style=discord.ButtonStyle.success)
    async def pin(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        self.disable_all()
        self.stop()
        await self.on_pin(interaction)

    @discord.ui.button(label="Add phrasings", style=discord.ButtonStyle.secondary)
    async def add_phrasings(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await self.on_phrasings(interaction)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        self.disable_all()
        self.stop()
        await interaction.response.edit_message(content="Cancelled; nothing was pinned.", view=self)
