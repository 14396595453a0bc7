"""The buttons under every answer: More sources, 👍 / 👎 and Open thread.

They are ``DynamicItem``s: everything they need is in their ``custom_id`` (the answer id from
``bot.db``), so they keep working after a restart without re-registering each message. The ask
cog registers them when it loads. Labels and replies are in the language of the member who is
looking (``tr``, from the interaction's locale); a button rebuilt from its ``custom_id`` answers in
the clicker's language.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord

from bot.db import AnswerExpired
from bot.discord.render import render_more_sources
from bot.discord.replies import EXPIRED, NO_MENTIONS, frame_for, guarded, send_private
from bot.i18n import ENGLISH, N_, Frame

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
