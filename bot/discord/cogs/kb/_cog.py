"""``/kb``: moderators curate the knowledge base from Discord and rebuild the index without downtime.

Every subcommand, button and modal is gated by the one moderator rule in ``bot.discord.checks``.
Changes follow python-discord's ``refreshdoc``: check, lock, confirm, then report the difference.
Reading and extracting articles runs off the event loop in this cog's small pool; a change (the file
with its audit row) on the bot's database thread; rebuilds through the knowledge service (which
keeps the one-at-a-time rule and the rebuild log) on their own thread, while questions are still
answered from the old index until the new one is swapped in.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.checks import ModeratorGroup, is_moderator
from bot.discord.cogs.kb._views import (
    AddTextModal,
    EditArticleModal,
    KbListPaginator,
    PassagePicker,
    PastePassagesModal,
    PhrasingsModal,
    PinFromGroupView,
    PinPreviewView,
    ProgressMessage,
    SearchPassagesModal,
    SentencePicker,
    TextArticle,
    article_embed,
    clip,
    rebuild_refusal,
    render_feedback,
    render_gaps,
    render_not_rebuilt,
    render_pin_picker,
    render_pin_preview,
    render_pinned,
    render_pins,
    render_preview,
    render_rebuild,
    render_remove_prompt,
    render_sentence_choices,
    render_status,
    render_unpin_prompt,
)
from bot.discord.replies import NO_MENTIONS, send_private
from bot.discord.views import ConfirmView
from bot.errors import DirectiveError, IndexMissing, KnowledgeError, NotFound, PinError, RebuildInProgress
from bot.kb import ALLOWED_SUFFIXES, KnowledgeBase
from bot.knowledge import too_big
from bot.records import Article, Excerpt

if TYPE_CHECKING:
    from bot.db import AuditEntry
    from bot.discord.client import AnswerService, DirectiveBot
    from bot.fetch import FetchedPage
    from bot.kb import Change, Preview
    from bot.pins import PinDraft
    from bot.service import RebuildOutcome

log = logging.getLogger(__name__)

R = TypeVar("R")
PageFetcher = Callable[[str], Awaitable["FetchedPage"]]

LIST_PER_PAGE = 10
GAP_DAYS = 30
GAP_LIMIT = 25
HISTORY_LIMIT = 5000


def actor_of(user: discord.abc.User) -> str:
    """How a Discord user is named in the audit and rebuild logs (the CLI uses ``cli:<login>``)."""
    return f"discord:{user.name} ({user.id})"


class KnowledgeAdmin(commands.Cog, name="KnowledgeBase"):
    """Moderators: add, edit and remove articles; rebuild and inspect the index."""

    kb = ModeratorGroup(name="kb", description="Moderators: manage the articles I quote and the search index.")

    def __init__(self, bot: DirectiveBot, *, fetch_page: PageFetcher | None = None) -> None:
        self.bot = bot
        self.base = KnowledgeBase(bot.settings, bot.db)
        # How `/kb add url` fetches: public addresses only, within settings.fetch (replaceable, e.g. by a
        # fetcher that reads a test's local server).
        self.fetch_page: PageFetcher = fetch_page or self._fetch_public
        self._work = ThreadPoolExecutor(2, thread_name_prefix="directive-kb")
        self._builder = ThreadPoolExecutor(1, thread_name_prefix="directive-rebuild")

    async def cog_unload(self) -> None:
        self._work.shutdown(wait=False, cancel_futures=True)
        self._builder.shutdown(wait=False)

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def timeout(self) -> float:
        return self.bot.settings.discord.view_timeout_seconds

    async def _off_loop(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """File reads, extraction and writes (with their audit rows), in this cog's pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._work, functools.partial(fn, *args, **kwargs))

    async def _get(self, article_id: str) -> Article:
        """The article on disk; a bad or unknown id is refused with what to do instead."""
        try:
            return await self._off_loop(self.base.get, article_id.strip())
        except NotFound:
            raise NotFound(
                f"No article with id {clip(article_id, 80)!r}; pick one of the suggestions, or see `/kb list`."
            ) from None

    def _indexed_chunks(self, article_id: str) -> int | None:
        """Chunks of this article in the live index, or None before an index is loaded."""
        try:
            return self.service.indexed_chunks(article_id)
        except IndexMissing:
            return None

    # -- rebuilding: one at a time, off the loop, reported --------------------------------------

    async def rebuild_index(
        self, user: discord.abc.User, *, progress: Callable[[int, int], None] | None = None
    ) -> RebuildOutcome:
        """Incremental rebuild and atomic swap; raises ``RebuildInProgress`` (with who and when).

        A failure is returned, not raised: the old index keeps serving and the moderator is told why.
        ``progress(done, total)`` is called from the build thread as chunks are embedded.
        """
        self._refuse_if_rebuilding()
        loop = asyncio.get_running_loop()
        rebuild = functools.partial(
            self.service.rebuild_logged, started_by=actor_of(user), name=user.name, progress=progress
        )
        try:
            return await loop.run_in_executor(self._builder, rebuild)
        except RebuildInProgress:
            self._refuse_if_rebuilding()  # this process: say who and when
            raise  # another process (an operator's `index build`) holds the build lock

    def _refuse_if_rebuilding(self) -> None:
        running = self.service.running_rebuild
        if running is not None:
            raise RebuildInProgress(rebuild_refusal(running))

    async def _rebuild_and_report(self, interaction: discord.Interaction[Any], *, title: str, lead: str) -> None:
        """After a saved change: rebuild, then tell the moderator what changed (or why not)."""
        try:
            outcome = await self.rebuild_index(interaction.user)
        except RebuildInProgress as exc:
            await self._send(interaction, embed=render_not_rebuilt(lead, str(exc)))
            return
        if not outcome.ok:
            await self._send(interaction, embed=render_rebuild(outcome, title=f"{title}; rebuild failed", lead=lead))
            return
        await self._send(interaction, embed=render_rebuild(outcome, title=title, lead=lead))

    @staticmethod
    async def _send(interaction: discord.Interaction[Any], content: str | None = None, **kwargs: Any) -> None:
        await send_private(interaction, content, **kwargs)

    # -- confirmations -------------------------------------------------------------------------

    async def _confirm(
        self,
        interaction: discord.Interaction[Any],
        embed: discord.Embed,
        *,
        label: str,
        nothing_done: str,
    ) -> discord.Interaction[Any] | None:
        """Show ``embed`` with Confirm / Cancel for this moderator; the press that confirmed, or None."""
        view = ConfirmView(interaction.user.id, timeout=self.timeout, confirm_label=label)
        if interaction.response.is_done():
            await interaction.followup.send(embed=embed, view=view, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(
                embed=embed, view=view, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
        view.origin = interaction
        await view.wait()
        if view.value:
            return view.decision
        note = f"Cancelled; {nothing_done}" if view.value is False else f"Timed out; {nothing_done}"
        target = view.decision or interaction
        view.disable_all()  # on timeout, wait() returns before on_timeout has disabled them
        try:
            await target.edit_original_response(content=note, view=view)
        except discord.HTTPException:
            log.debug("could not mark a prompt as %s", note)
        return None

    # -- /kb add -------------------------------------------------------------------------------

    @kb.command(name="add", description="Add an article from a link or a file; with neither, paste its text.")
    @app_commands.describe(
        url="A public link to the article (http or https)",
        file="An .md file with front matter, or a .txt or .html file",
    )
    async def add(
        self,
        interaction: discord.Interaction[DirectiveBot],
        url: str | None = None,
        file: discord.Attachment | None = None,
    ) -> None:
        if url is not None and file is not None:
            await self._send(interaction, "Give a link or a file, not both; run `/kb add` once for each.")
            return
        if url is None and file is None:
            await interaction.response.send_modal(AddTextModal(self._text_submitted, timeout=self.timeout))
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        preview = await (self._prepare_url(url) if url is not None else self._prepare_attachment(file))  # type: ignore[arg-type]
        await self._confirm_add(interaction, preview)

    async def _fetch_public(self, url: str) -> FetchedPage:
        from bot.fetch import fetch_url

        return await fetch_url(url, self.base.fetch_policy())

    async def _prepare_url(self, url: str) -> Preview:
        page = await self.fetch_page(url)
        return await self._off_loop(self.base.prepare_page, page)

    async def _prepare_attachment(self, file: discord.Attachment) -> Preview:
        name = file.filename
        if Path(name).suffix.lower() not in ALLOWED_SUFFIXES:
            raise KnowledgeError(f"{name}: only {', '.join(ALLOWED_SUFFIXES)} files can be added; convert it first.")
        if file.size > self.base.max_bytes:
            raise KnowledgeError(f"{too_big(name, file.size, self.base.max_bytes)} Trim it and try again.")
        if file.size == 0:
            raise KnowledgeError(f"{name} is empty; attach the file with the article in it.")
        try:
            data = await file.read()
        except discord.HTTPException as exc:
            raise KnowledgeError(f"Could not download {name} from Discord ({exc.status}); attach it again.") from None
        try:
            return await self._off_loop(self.base.prepare_file, name, data)
        except DirectiveError as exc:
            message = str(exc).strip()
            if ";" in message:  # it already says what to do
                raise
            raise type(exc)(f"{message.rstrip('.')}. Fix the file and attach it again.") from None

    async def _text_submitted(self, interaction: discord.Interaction[Any], text: TextArticle) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        preview = await self._off_loop(
            self.base.prepare_text,
            text.body,
            origin="pasted text",
            title=text.title,
            publisher=text.publisher,
            url=text.url,
            published=text.published,
        )
        await self._confirm_add(interaction, preview)

    async def _confirm_add(self, interaction: discord.Interaction[Any], preview: Preview) -> None:
        pressed = await self._confirm(
            interaction,
            render_preview(preview, timeout_seconds=self.timeout),
            label="Add",
            nothing_done="nothing was added.",
        )
        if pressed is None:
            return
        try:
            change: Change = await self.bot.run_db(self.base.add, preview, actor=actor_of(pressed.user))
        except DirectiveError as exc:
            await self._send(pressed, f"{exc} Nothing was added.")
            return
        log.info("kb add id=%s by=%s from=%s", change.article.id, actor_of(pressed.user), preview.origin)
        await self._rebuild_and_report(
            pressed,
            title=clip(f"Added “{change.article.title}”", 250),
            lead=f"Saved `knowledge/{change.article.id}.md` ({preview.words:,} words).",
        )

    # -- /kb remove, show, edit ----------------------------------------------------------------

    async def article_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        """Ids and titles containing what was typed (moderators only; nobody else sees titles here)."""
        if not is_moderator(interaction):
            return []
        try:
            found = await self._off_loop(self.base.matching_articles, current, 25)
        except DirectiveError as exc:
            log.warning("article autocomplete failed: %s", exc)
            return []
        return [app_commands.Choice(name=" ".join(f"{a.title} ({a.id})".split())[:100], value=a.id) for a in found]

    @kb.command(name="remove", description="Remove an article and rebuild the index.")
    @app_commands.describe(article="The article (type part of its title or id)")
    @app_commands.autocomplete(article=article_choices)
    async def remove(self, interaction: discord.Interaction[DirectiveBot], article: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        found = await self._get(article)
        pressed = await self._confirm(
            interaction,
            render_remove_prompt(found, self._indexed_chunks(found.id)),
            label="Remove",
            nothing_done="nothing was removed.",
        )
        if pressed is None:
            return
        try:
            change = await self.bot.run_db(self.base.remove, found.id, actor=actor_of(pressed.user))
        except DirectiveError as exc:
            await self._send(pressed, f"{exc} Nothing was removed.")
            return
        log.info("kb remove id=%s by=%s", change.article.id, actor_of(pressed.user))
        await self._rebuild_and_report(
            pressed,
            title=clip(f"Removed “{change.article.title}”", 250),
            lead=f"Deleted `knowledge/{change.article.id}.md`.",
        )

    @kb.command(name="show", description="An article's details, its passages in the index, and who changed it.")
    @app_commands.describe(article="The article (type part of its title or id)")
    @app_commands.autocomplete(article=article_choices)
    async def show(self, interaction: discord.Interaction[DirectiveBot], article: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        found = await self._get(article)
        history = await self.bot.run_db(self._history, found.id)
        embed = article_embed(found, chunks=self._indexed_chunks(found.id), history=history)
        await self._send(interaction, embed=embed)

    def _history(self, article_id: str) -> list[AuditEntry]:
        return self.bot.db.audit_log(limit=HISTORY_LIMIT, article_id=article_id)

    @kb.command(name="edit", description="Edit an article's headline, publisher, link, date or author.")
    @app_commands.describe(article="The article (type part of its title or id)")
    @app_commands.autocomplete(article=article_choices)
    async def edit(self, interaction: discord.Interaction[DirectiveBot], article: str) -> None:
        # The modal must be the first response (no deferring), so this read is small and quick.
        found = await self._get(article)
        await interaction.response.send_modal(EditArticleModal(found, self._edit_submitted, timeout=self.timeout))

    async def _edit_submitted(
        self, interaction: discord.Interaction[Any], article_id: str, fields: dict[str, Any]
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        change = await self.bot.run_db(self.base.edit, article_id, actor=actor_of(interaction.user), **fields)
        if change.hash_before == change.hash_after:
            await self._send(interaction, f"Nothing changed in `{article_id}`; the index is left as it is.")
            return
        log.info("kb edit id=%s by=%s", article_id, actor_of(interaction.user))
        await self._rebuild_and_report(
            interaction,
            title=clip(f"Edited “{change.article.title}”", 250),
            lead=f"Saved the new details of `knowledge/{article_id}.md`.",
        )

    # -- /kb list ------------------------------------------------------------------------------

    @kb.command(name="list", description="Every article in the knowledge base, with its id.")
    async def list_articles(self, interaction: discord.Interaction[DirectiveBot]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        articles = await self._off_loop(self.base.list)
        view = KbListPaginator(articles, interaction.user.id, per_page=LIST_PER_PAGE, timeout=self.timeout)
        if view.pages <= 1:
            await self._send(interaction, embed=view.current_embed())
            return
        await interaction.followup.send(embed=view.current_embed(), view=view, ephemeral=True)
        view.origin = interaction

    # -- /kb rebuild, status, gaps -------------------------------------------------------------

    @kb.command(name="rebuild", description="Rebuild the index from the articles on disk (only what changed).")
    async def rebuild(self, interaction: discord.Interaction[DirectiveBot]) -> None:
        running = self.service.running_rebuild
        if running is not None:  # check before deferring: the refusal is instant
            await self._send(interaction, rebuild_refusal(running))
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        progress = ProgressMessage(
            lambda text: interaction.edit_original_response(content=text), asyncio.get_running_loop()
        )
        outcome = await self.rebuild_index(interaction.user, progress=progress)
        await self._send(interaction, embed=render_rebuild(outcome))

    @kb.command(name="status", description="Index version, freshness, counts, the last rebuild and the model.")
    async def status(self, interaction: discord.Interaction[DirectiveBot]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        service = self.service
        info = await self._off_loop(service.info)
        status = None
        status_error = None
        try:
            status = await self._off_loop(service.status)
        except DirectiveError as exc:
            status_error = str(exc)
        last = await self.bot.run_db(self.bot.db.last_rebuild)
        embed = render_status(
            info, status=status, status_error=status_error, last_rebuild=last, running=service.running_rebuild
        )
        await self._send(interaction, embed=embed)

    @kb.command(name="gaps", description="Questions I declined recently, grouped and counted, newest first.")
    async def gaps(self, interaction: discord.Interaction[DirectiveBot]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        found = await self.bot.run_db(self.bot.db.recent_gaps, GAP_LIMIT, GAP_DAYS)
        view = self._pin_from([g.example for g in found], interaction.user.id)
        await send_private(interaction, embed=render_gaps(found, days=GAP_DAYS), view=view)
        if view is not None:
            view.origin = interaction

    # -- pins: quotes the moderators choose for recurring questions -----------------------------

    @property
    def service(self) -> AnswerService:
        return self.bot.service

    def _pin_from(self, questions: list[str], owner_id: int) -> PinFromGroupView | None:
        if not questions:
            return None
        return PinFromGroupView(questions, owner_id, self._start_pin, timeout=self.timeout)

    @kb.command(name="feedback", description="Answers members voted 👎, grouped by question, newest first.")
    async def feedback(self, interaction: discord.Interaction[DirectiveBot]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        found = await self.bot.run_db(self.bot.db.recent_feedback, GAP_LIMIT, GAP_DAYS)
        view = self._pin_from([g.example for g in found], interaction.user.id)
        await send_private(interaction, embed=render_feedback(found, days=GAP_DAYS), view=view)
        if view is not None:
            view.origin = interaction

    async def passage_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        """Sentences of the articles containing every word typed (moderators only)."""
        if not is_moderator(interaction):
            return []
        try:
            found = self.service.search_passages(current, 25)
        except DirectiveError as exc:
            log.warning("passage autocomplete failed: %s", exc)
            return []
        return [app_commands.Choice(name=clip_choice(c.text), value=c.ref) for c in found]

    @kb.command(name="pin", description="Choose the passages I quote first for a question members keep asking.")
    @app_commands.describe(
        question="The question, as members ask it",
        passage="Search the articles: type a few words of the sentence to pin",
        passage_2="Another sentence to pin (optional)",
        passage_3="A third sentence to pin (optional)",
    )
    @app_commands.autocomplete(passage=passage_choices, passage_2=passage_choices, passage_3=passage_choices)
    async def pin(
        self,
        interaction: discord.Interaction[DirectiveBot],
        question: str,
        passage: str | None = None,
        passage_2: str | None = None,
        passage_3: str | None = None,
    ) -> None:
        refs = [r for r in (passage, passage_2, passage_3) if r]
        await self._start_pin(interaction, question, refs)

    async def _start_pin(self, interaction: discord.Interaction[Any], question: str, refs: Sequence[str] = ()) -> None:
        """Refuse a bad or already pinned question at once; otherwise the picker (or, with passages, the preview)."""
        service = self.service
        existing = await self._off_loop(service.pinned_for, question)  # also refuses an empty or over-long one
        if existing is not None:
            raise PinError(f"That question is already pinned (pin #{existing}); see `/kb pins`, or unpin it first.")
        if refs:
            quotes = [await self._off_loop(service.passage_at, ref) for ref in refs]
            draft = await self._off_loop(service.draft_pin, question, quotes)
            await self._send_preview(interaction, draft)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        answer = await self.bot.run_blocking(service.ask, question, use_pins=False)

        async def picked(press: discord.Interaction[Any], excerpts: list[Excerpt]) -> None:
            chosen = [await self._off_loop(service.passage_of, e.source.article_id, e.start, e.end) for e in excerpts]
            draft = await self._off_loop(service.draft_pin, question, chosen)
            await self._show_preview(press, draft)

        async def paste(press: discord.Interaction[Any]) -> None:
            async def pasted(submit: discord.Interaction[Any], texts: list[str]) -> None:
                chosen = [await self._off_loop(service.find_passage, text) for text in texts]
                draft = await self._off_loop(service.draft_pin, question, chosen)
                await self._show_preview(submit, draft)

            await press.response.send_modal(PastePassagesModal(pasted, timeout=self.timeout))

        async def search(press: discord.Interaction[Any]) -> None:
            async def searched(submit: discord.Interaction[Any], words: str) -> None:
                found = await self._off_loop(service.search_passages, words, 25)
                if not found:
                    await self._send(
                        submit, f"No sentence contains all of “{clip(words, 100)}”; try fewer or other words."
                    )
                    return
                chosen = SentencePicker(found, submit.user.id, on_pick=picked_refs, timeout=self.timeout)
                await submit.response.edit_message(embed=render_sentence_choices(question, words, found), view=chosen)
                chosen.origin = submit

            await press.response.send_modal(SearchPassagesModal(searched, timeout=self.timeout))

        async def picked_refs(press: discord.Interaction[Any], refs: list[str]) -> None:
            quotes = [await self._off_loop(service.passage_at, ref) for ref in refs]
            await self._show_preview(press, await self._off_loop(service.draft_pin, question, quotes))

        view = PassagePicker(
            answer.excerpts, interaction.user.id, on_pick=picked, on_paste=paste, on_search=search, timeout=self.timeout
        )
        await interaction.followup.send(
            embed=render_pin_picker(question, answer), view=view, ephemeral=True, allowed_mentions=NO_MENTIONS
        )
        view.origin = interaction

    def _preview(self, draft: PinDraft, owner_id: int) -> tuple[discord.Embed, PinPreviewView]:
        holder = {"draft": draft}

        async def confirmed(press: discord.Interaction[Any]) -> None:
            await press.response.edit_message(view=view)  # buttons disabled at once: one pin per preview
            try:
                pin = await self._off_loop(self.service.save_pin, holder["draft"], actor=actor_of(press.user))
            except DirectiveError as exc:
                await self._send(press, f"{exc} Nothing was pinned.")
                return
            log.info("kb pin id=%s by=%s", pin.id, actor_of(press.user))
            await self._send(press, embed=render_pinned(pin))

        async def phrasings(press: discord.Interaction[Any]) -> None:
            async def added(submit: discord.Interaction[Any], lines: list[str]) -> None:
                holder["draft"] = await self._off_loop(self.service.with_phrasings, holder["draft"], lines)
                embed = render_pin_preview(
                    holder["draft"], self.service.preview_excerpts(holder["draft"].quotes), timeout_seconds=self.timeout
                )
                await submit.response.edit_message(embed=embed, view=view)

            await press.response.send_modal(PhrasingsModal(added, timeout=self.timeout))

        view = PinPreviewView(owner_id, on_pin=confirmed, on_phrasings=phrasings, timeout=self.timeout)
        embed = render_pin_preview(draft, self.service.preview_excerpts(draft.quotes), timeout_seconds=self.timeout)
        return embed, view

    async def _send_preview(self, interaction: discord.Interaction[Any], draft: PinDraft) -> None:
        """The preview as a new private message (from the slash command)."""
        embed, view = self._preview(draft, interaction.user.id)
        await send_private(interaction, embed=embed, view=view)
        view.origin = interaction

    async def _show_preview(self, interaction: discord.Interaction[Any], draft: PinDraft) -> None:
        """The preview in place of the picker (from its select or its paste form)."""
        embed, view = self._preview(draft, interaction.user.id)
        await interaction.response.edit_message(embed=embed, view=view)
        view.origin = interaction

    @kb.command(name="pins", description="Pinned answers: served or stale, hits, and 👍/👎 since pinned.")
    async def pins(self, interaction: discord.Interaction[DirectiveBot]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        found = await self.bot.run_db(self.bot.db.pins)
        await self._send(interaction, embed=render_pins(found))

    async def pin_choices(self, interaction: discord.Interaction[Any], current: str) -> list[app_commands.Choice[int]]:
        """Pins whose question contains what was typed (moderators only)."""
        if not is_moderator(interaction):
            return []
        try:
            found = await self.bot.run_db(self.bot.db.pins)
        except DirectiveError as exc:
            log.warning("pin autocomplete failed: %s", exc)
            return []
        needle = current.casefold().strip().lstrip("#")
        hits = [p for p in found if needle in p.question.casefold() or needle == str(p.id)] if needle else found
        return [app_commands.Choice(name=clip_choice(f"#{p.id} {p.question}"), value=p.id) for p in hits[:25]]

    @kb.command(name="unpin", description="Remove a pinned answer; its questions get my automatic answer again.")
    @app_commands.describe(pin="The pin (type part of its question)")
    @app_commands.autocomplete(pin=pin_choices)
    async def unpin(self, interaction: discord.Interaction[DirectiveBot], pin: int) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        found = await self.bot.run_db(self.bot.db.get_pin, pin)
        pressed = await self._confirm(
            interaction, render_unpin_prompt(found), label="Unpin", nothing_done="nothing was unpinned."
        )
        if pressed is None:
            return
        await self._off_loop(self.service.unpin, found.id, actor=actor_of(pressed.user))
        log.info("kb unpin id=%s by=%s", found.id, actor_of(pressed.user))
        await self._send(
            pressed, f"Unpinned #{found.id}; “{clip(found.question, 200)}” gets my automatic answer again."
        )

    @kb.command(name="phrasing", description="Add another way members ask a pinned question.")
    @app_commands.describe(pin="The pin (type part of its question)", phrasing="The question in other words")
    @app_commands.autocomplete(pin=pin_choices)
    async def phrasing(self, interaction: discord.Interaction[DirectiveBot], pin: int, phrasing: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        after = await self._off_loop(self.service.add_pin_phrasings, pin, [phrasing], actor=actor_of(interaction.user))
        await self._send(
            interaction, f"Pin #{after.id} now answers {len(after.questions)} phrasings and questions like them."
        )


def clip_choice(text: str) -> str:
    """An autocomplete choice name: one line, 1 to 100 characters (shown literally, not as markdown)."""
    one = " ".join(text.split()) or "…"
    return one if len(one) <= 100 else one[:99].rstrip() + "…"
