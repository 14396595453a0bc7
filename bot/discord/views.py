"""Buttons: the persistent ones under every answer, and short-lived views bound to one user.

Answer buttons are ``DynamicItem``s: everything they need is in their ``custom_id`` (the answer id
from ``bot.db``), so they keep working after a restart without re-registering each message.
Paginators and confirmations answer only the user who opened them and time out.

Labels and replies are in the language of the member who is looking (``tr``, from the
interaction's locale); a button rebuilt from its ``custom_id`` answers in the clicker's language.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord

from bot.db import AnswerExpired
from bot.discord.checks import is_moderator
from bot.discord.render import page_count, render_more_sources, render_sources_page
from bot.discord.replies import (
    EXPIRED,
    NO_MENTIONS,
    frame_for,
    guarded,
    report_error,
    send_private,
)
from bot.i18n import ENGLISH, N_, Frame
from bot.models import Article

if TYPE_CHECKING:
    from bot.discord.client import DirectiveBot

log = logging.getLogger(__name__)

THREAD_NAME_LIMIT = 100
# Discord's error code for "A thread has already been created for this message".
THREAD_ALREADY_EXISTS = 160004

VOTE_REPLIES = {
    "recorded": N_("Thanks, recorded."),
    "changed": N_("Changed your vote."),
    "unchanged": N_("You already voted that way; thanks."),
}


def _bot(interaction: discord.Interaction[Any]) -> DirectiveBot:
    return interaction.client  # type: ignore[return-value]


# -- persistent answer buttons ----------------------------------------------------------------


class MoreSourcesButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"dbot:more:(?P<answer_id>\w+)(?::(?P<start>\d+))?",
):
    """Show the answer's next excerpts privately, from where the message (or last page) stopped."""

    def __init__(self, answer_id: str, start: int | None = None, *, tr: Frame = ENGLISH) -> None:
        custom_id = f"dbot:more:{answer_id}" + (f":{start}" if start is not None else "")
        super().__init__(
            discord.ui.Button(
                label=tr.gettext("More sources"),
                emoji="📚",
                style=discord.ButtonStyle.secondary,
                custom_id=custom_id,
            )
        )
        self.answer_id = answer_id
        self.start = start

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> MoreSourcesButton:
        start = match["start"]
        return cls(match["answer_id"], int(start) if start is not None else None)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await guarded(interaction, lambda: self._show(interaction), where="more sources")

    async def _show(self, interaction: discord.Interaction[Any]) -> None:
        bot = _bot(interaction)
        tr = frame_for(interaction)
        stored = await bot.run_db(bot.db.load_answer, self.answer_id)
        if stored is None:
            await send_private(interaction, tr.gettext(EXPIRED))
            return
        start = stored.shown if self.start is None else self.start
        if start >= len(stored.excerpts):
            await send_private(interaction, tr.gettext("There are no more sources for this answer."))
            return
        rendered = render_more_sources(
            stored.question,
            stored.excerpts,
            start=start,
            index_version=stored.index_version,
            max_excerpts=bot.settings.discord.excerpts_per_answer,
            tr=tr,
        )
        next_start = start + max(1, rendered.shown)
        view = None
        if next_start < len(stored.excerpts):
            view = discord.ui.View(timeout=None)
            view.add_item(MoreSourcesButton(self.answer_id, next_start, tr=tr))
        await send_private(interaction, embed=rendered.embed, view=view)


class VoteButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"dbot:vote:(?P<answer_id>\w+):(?P<vote>up|down)",
):
    """👍 / 👎 on an answer: one vote per user per answer; clicking the other one changes it."""

    def __init__(self, answer_id: str, vote: str) -> None:
        up = vote == "up"
        super().__init__(
            discord.ui.Button(
                emoji="👍" if up else "👎",
                style=discord.ButtonStyle.secondary,
                custom_id=f"dbot:vote:{answer_id}:{'up' if up else 'down'}",
            )
        )
        self.answer_id = answer_id
        self.vote = 1 if up else -1

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> VoteButton:
        return cls(match["answer_id"], match["vote"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await guarded(interaction, lambda: self._vote(interaction), where="vote")

    async def _vote(self, interaction: discord.Interaction[Any]) -> None:
        bot = _bot(interaction)
        tr = frame_for(interaction)
        try:
            outcome = await bot.run_db(bot.db.record_vote, self.answer_id, interaction.user.id, self.vote)
        except AnswerExpired:
            await send_private(interaction, tr.gettext(EXPIRED))
            return
        await send_private(interaction, tr.gettext(VOTE_REPLIES[outcome]))


class OpenThreadButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"dbot:thread:(?P<answer_id>\w+)",
):
    """Open a thread on the answer message; the bot then answers there without being mentioned."""

    def __init__(self, answer_id: str, *, tr: Frame = ENGLISH) -> None:
        super().__init__(
            discord.ui.Button(
                label=tr.gettext("Open thread"),
                emoji="🧵",
                style=discord.ButtonStyle.secondary,
                custom_id=f"dbot:thread:{answer_id}",
            )
        )
        self.answer_id = answer_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> OpenThreadButton:
        return cls(match["answer_id"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await guarded(interaction, lambda: self._open(interaction), where="open thread")

    async def _open(self, interaction: discord.Interaction[Any]) -> None:
        bot = _bot(interaction)
        tr = frame_for(interaction)
        message = interaction.message
        if message is None or interaction.guild_id is None or not isinstance(interaction.channel, discord.TextChannel):
            await send_private(
                interaction,
                tr.gettext("Threads can only be opened on answers in a server text channel."),
            )
            return
        existing = message.thread
        if existing is not None:
            await send_private(
                interaction, tr.gettext("This answer already has a thread: {thread}").format(thread=existing.mention)
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        stored = await bot.run_db(bot.db.load_answer, self.answer_id)
        name = thread_name(stored.question if stored is not None else "", tr)
        try:
            thread = await message.create_thread(
                name=name,
                auto_archive_duration=1440,
                reason=f"Follow-up thread for answer {self.answer_id}",
            )
        except discord.Forbidden:
            await send_private(interaction, tr.gettext("I don't have permission to open threads in this channel."))
            return
        except discord.HTTPException as exc:
            if exc.code == THREAD_ALREADY_EXISTS:
                await send_private(interaction, tr.gettext("This answer already has a thread."))
                return
            raise
        bot.bot_threads.add(thread.id)
        await bot.run_db(
            bot.db.add_bot_thread,
            thread.id,
            answer_id=self.answer_id,
            guild_id=interaction.guild_id,
        )
        try:
            await thread.send(
                tr.gettext("Ask follow-up questions here; I'll answer them with quotes, no need to mention me."),
                allowed_mentions=NO_MENTIONS,
            )
        except discord.HTTPException as exc:
            log.warning("could not post in new thread %s: %s", thread.id, exc)
        await send_private(
            interaction,
            tr.gettext("Opened {thread}. Ask follow-ups there; no need to mention me.").format(thread=thread.mention),
        )


PERSISTENT_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    MoreSourcesButton,
    VoteButton,
    OpenThreadButton,
)


def thread_name(question: str, tr: Frame = ENGLISH) -> str:
    """A thread title from the question: one line, within Discord's 100 characters."""
    name = " ".join(question.split()) or tr.gettext("Follow-up questions")
    if len(name) > THREAD_NAME_LIMIT:
        name = name[: THREAD_NAME_LIMIT - 1].rstrip() + "…"
    return name


def answer_view(answer_id: str, *, more_from: int | None, allow_thread: bool, tr: Frame = ENGLISH) -> discord.ui.View:
    """The buttons under an answer: More sources (when some were left out), votes, Open thread."""
    view = discord.ui.View(timeout=None)
    if more_from is not None:
        view.add_item(MoreSourcesButton(answer_id, more_from, tr=tr))
    view.add_item(VoteButton(answer_id, "up"))
    view.add_item(VoteButton(answer_id, "down"))
    if allow_thread:
        view.add_item(OpenThreadButton(answer_id, tr=tr))
    return view


# -- views bound to one user ------------------------------------------------------------------


class InvokerView(discord.ui.View):
    """A view only its invoker may use; on timeout its buttons are disabled in place."""

    def __init__(self, owner_id: int, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        # Set after sending: the interaction whose response carries this view (editable for 15 min).
        self.origin: discord.Interaction[Any] | None = None

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await send_private(
            interaction,
            frame_for(interaction).gettext("These buttons belong to someone else; run the command yourself."),
        )
        return False

    def disable_all(self) -> None:
        for child in self.children:
            if isinstance(child, (discord.ui.Button, discord.ui.Select)):
                child.disabled = True

    async def on_timeout(self) -> None:
        self.disable_all()
        if self.origin is not None:
            with contextlib.suppress(discord.HTTPException):
                await self.origin.edit_original_response(view=self)

    async def on_error(
        self,
        interaction: discord.Interaction[Any],
        error: Exception,
        item: discord.ui.Item[Any],
        /,
    ) -> None:
        await report_error(interaction, error, where=f"{type(self).__name__}")


class SourcesPaginator(InvokerView):
    """Previous / Next through the article list."""

    def __init__(
        self,
        articles: Sequence[Article],
        owner_id: int,
        *,
        per_page: int,
        timeout: float,
        tr: Frame = ENGLISH,
    ) -> None:
        super().__init__(owner_id, timeout=timeout)
        self.articles = list(articles)
        self.per_page = max(1, per_page)
        self.page = 0
        self.pages = page_count(len(self.articles), self.per_page)
        self.tr = tr
        self.previous_page.label = tr.gettext("Previous")
        self.next_page.label = tr.gettext("Next")
        self._sync_buttons()

    def current_embed(self) -> discord.Embed:
        return render_sources_page(self.articles, self.page, self.per_page, tr=self.tr)

    def _sync_buttons(self) -> None:
        self.previous_page.disabled = self.page <= 0
        self.next_page.disabled = self.page >= self.pages - 1

    async def _turn(self, interaction: discord.Interaction[Any], step: int) -> None:
        self.page = min(max(self.page + step, 0), self.pages - 1)
        self._sync_buttons()
        await interaction.response.edit_message(embed=self.current_embed(), view=self)

    @discord.ui.button(label="Previous", emoji="◀️", style=discord.ButtonStyle.secondary)
    async def previous_page(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await self._turn(interaction, -1)

    @discord.ui.button(label="Next", emoji="▶️", style=discord.ButtonStyle.secondary)
    async def next_page(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await self._turn(interaction, +1)


class ConfirmView(InvokerView):
    """Confirm / Cancel for a moderator action; ``value`` is True, False, or None on timeout.

    With ``moderators_only`` the moderator rule is checked again at click time, in case a role
    was removed while the prompt was open.
    """

    def __init__(
        self,
        owner_id: int,
        *,
        timeout: float,
        confirm_label: str = "Confirm",
        moderators_only: bool = True,
    ) -> None:
        super().__init__(owner_id, timeout=timeout)
        self.value: bool | None = None
        # The button press that decided it: its follow-up token is fresh for another 15 minutes.
        self.decision: discord.Interaction[Any] | None = None
        self.moderators_only = moderators_only
        self.confirm.label = confirm_label

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        if not await super().interaction_check(interaction):
            return False
        if self.moderators_only and not is_moderator(interaction):
            await send_private(interaction, "You are no longer a moderator here.")
            return False
        return True

    async def _finish(self, interaction: discord.Interaction[Any], value: bool) -> None:
        self.value = value
        self.decision = interaction
        self.disable_all()
        await interaction.response.edit_message(view=self)
        self.stop()

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await self._finish(interaction, True)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await self._finish(interaction, False)
