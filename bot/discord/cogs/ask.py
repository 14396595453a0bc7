"""Asking: ``/ask``, mentioning the bot (or any message in a thread it opened), and Find sources.

All three share one path: rate limits, the answer computed in the worker pool, the embed from
``render``, the answer stored for its buttons, declined questions recorded as gaps, and one
structured log line per question.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.cooldown import Refused, Ticket
from bot.discord.render import RenderedAnswer, cut_content, render_answer
from bot.discord.replies import GENERIC_ERROR, NO_MENTIONS, send_private, user_message
from bot.discord.views import answer_view
from bot.errors import DirectiveError, InvalidQuestion
from bot.models import Answer

if TYPE_CHECKING:
    from bot.config import QuestionSettings
    from bot.discord.client import DirectiveBot

log = logging.getLogger(__name__)

Via = Literal["slash", "mention", "thread", "find_sources"]

# Notices to a message (which cannot be private) disappear after this many seconds.
NOTICE_SECONDS = 15.0
MENTION_HINT = "Ask me a question after the mention, e.g. “what does the order restrict?”"


@dataclass(frozen=True)
class Reply:
    """An answered question, ready to send."""

    answer: Answer
    rendered: RenderedAnswer
    answer_id: str | None

    @property
    def has_buttons(self) -> bool:
        return self.answer_id is not None


def question_from_message(content: str, limit: int) -> str:
    """A message's text as a question: whitespace collapsed, cut at a word boundary to ``limit``."""
    text = " ".join(content.split())
    if len(text) <= limit:
        return text
    cut = text[: limit + 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        return cut[:space].rstrip()
    return text[:limit].rstrip()  # one enormous word: cut it rather than send nothing


def strip_mentions_of(content: str, user_id: int) -> str:
    """Remove ``<@id>`` / ``<@!id>`` mentions of the bot so only the question remains."""
    return " ".join(re.sub(rf"<@!?{user_id}>", " ", content).split())


# Discord markup naming a user, role, channel or moment by id: the articles know nothing of these
# ids, and a question full of them reads to the retriever as noise and is declined. Commands and
# custom emoji keep their names.
_ID_MARKUP = re.compile(r"<(?:@[!&]?\d+|#\d+|t:-?\d+(?::[tTdDfFsSR])?)>")
_COMMAND_MARKUP = re.compile(r"</([^<>\n:]+):\d+>")
_EMOJI_MARKUP = re.compile(r"<a?:(\w+):\d+>")


def without_discord_markup(content: str) -> str:
    """The words of a question: mentions and timestamps removed, ``</ask:1>`` -> ``/ask``, whitespace collapsed."""
    text = _EMOJI_MARKUP.sub(r":\1:", _COMMAND_MARKUP.sub(r"/\1", content))
    return " ".join(_ID_MARKUP.sub(" ", text).split())


def mentions_user(content: str, user_id: int) -> bool:
    """An explicit mention in the text (a reply ping alone does not count as asking)."""
    return re.search(rf"<@!?{user_id}>", content) is not None


def channel_allowed(channel: Any, allowed: Iterable[int]) -> bool:
    """Whether mentions are answered in ``channel``: all when the list is empty; threads follow their parent."""
    wanted = set(allowed)
    if not wanted:
        return True
    ids = {getattr(channel, "id", None), getattr(channel, "parent_id", None)}
    return bool(ids & wanted)


def precheck_question(question: str, settings: QuestionSettings) -> str | None:
    """The core's own validation, run before any work so the error is private and instant.

    ``service.ask`` validates again; checking here means a bad question never waits behind busy
    workers (and so never gets a public "thinking…" placeholder).
    """
    # bot.retrieval pulls in numpy; the bot has it loaded already, unit tests may not need it.
    from bot.retrieval import clean_question

    try:
        clean_question(question, settings)
    except InvalidQuestion as exc:
        return str(exc)
    return None


class Ask(commands.Cog):
    """Answer questions with quotes from the knowledge base."""

    # Answers slower than this get a "thinking…" placeholder (Discord allows 3 s for the first reply).
    defer_after_seconds: float = 2.0

    def __init__(self, bot: DirectiveBot) -> None:
        self.bot = bot
        self.find_sources_menu = app_commands.ContextMenu(name="Find sources", callback=self.find_sources)
        self.bot.tree.add_command(self.find_sources_menu)
        self._typing: set[asyncio.Task[None]] = set()

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.find_sources_menu.name, type=self.find_sources_menu.type)
        for task in self._typing:
            task.cancel()

    # -- the shared path -----------------------------------------------------------------------

    async def answer(
        self,
        question: str,
        *,
        via: Via,
        guild_id: int | None,
        channel_id: int | None,
        user_id: int,
        record_gap: bool = True,
    ) -> Reply:
        """Answer in the worker pool, render, store; raises ``DirectiveError`` for bad questions."""
        settings = self.bot.settings.discord
        started = time.perf_counter()
        answer = await self.bot.run_blocking(self.bot.service.ask, question)
        subject: Literal["question", "message"] = "message" if via == "find_sources" else "question"
        rendered = render_answer(answer, max_excerpts=settings.excerpts_per_answer, subject=subject)
        answer_id = None
        if rendered.shown:
            answer_id = await self._save(
                answer,
                rendered,
                guild_id=guild_id,
                channel_id=channel_id,
                user_id=user_id,
            )
        elif record_gap:
            await self._record_gap(question, guild_id)
        latency_ms = (time.perf_counter() - started) * 1000
        self._log(via, answer, rendered, guild_id=guild_id, latency_ms=latency_ms)
        return Reply(answer=answer, rendered=rendered, answer_id=answer_id)

    async def _save(
        self,
        answer: Answer,
        rendered: RenderedAnswer,
        *,
        guild_id: int | None,
        channel_id: int | None,
        user_id: int,
    ) -> str | None:
        """Store the answer for its buttons; a storage failure costs the buttons, not the answer."""
        try:
            return await self.bot.run_db(
                self.bot.db.save_answer,
                answer,
                guild_id=guild_id,
                channel_id=channel_id,
                user_id=user_id,
                shown=rendered.shown,
            )
        except Exception:
            log.exception("saving answer failed; sending it without buttons")
            return None

    async def _record_gap(self, question: str, guild_id: int | None) -> None:
        try:
            await self.bot.run_db(self.bot.db.record_declined, question, guild_id)
        except Exception:
            log.exception("recording a declined question failed")

    def _log(
        self,
        via: Via,
        answer: Answer,
        rendered: RenderedAnswer,
        *,
        guild_id: int | None,
        latency_ms: float,
    ) -> None:
        settings = self.bot.settings.discord
        line = (
            f"question via={via} guild={guild_id} latency_ms={latency_ms:.0f} abstained={answer.abstained} "
            f"excerpts={len(answer.excerpts)} shown={rendered.shown} index_version={answer.index_version}"
        )
        if settings.log_question_text:
            line += f" question={answer.question!r}"
        log.info("%s", line)

    def _view(self, reply: Reply, *, allow_thread: bool) -> discord.ui.View | None:
        if reply.answer_id is None:
            return None
        shown = reply.rendered.shown
        more_from = shown if shown < len(reply.answer.excerpts) else None
        return answer_view(reply.answer_id, more_from=more_from, allow_thread=allow_thread)

    def _can_thread(self, channel: Any) -> bool:
        """Only plain text channels take threads, and answering there needs mention replies."""
        return self.bot.settings.discord.mention_replies and isinstance(channel, discord.TextChannel)

    def _admit(self, user_id: int, guild_id: int | None) -> Ticket | Refused:
        return self.bot.limiter.admit(user_id, guild_id)

    # -- /ask and Find sources ----------------------------------------------------------------

    @app_commands.command(
        name="ask",
        description="Ask what the news articles say about the order; I reply with quotes.",
    )
    @app_commands.describe(
        question="Your question, in your own words",
        private="Only you see the answer (default: the whole channel does)",
    )
    async def ask(
        self,
        interaction: discord.Interaction[DirectiveBot],
        question: str,
        private: bool = False,
    ) -> None:
        question = without_discord_markup(question)
        problem = precheck_question(question, self.bot.settings.question)
        if problem is not None:
            await send_private(interaction, problem)
            return
        await self._answer_interaction(
            interaction,
            question,
            via="slash",
            private=private,
            allow_thread=not private and self._can_thread(interaction.channel),
        )

    async def find_sources(self, interaction: discord.Interaction[DirectiveBot], message: discord.Message) -> None:
        """Quote what the knowledge base says about a message's claim (only the invoker sees it)."""
        question = question_from_message(
            without_discord_markup(message.clean_content), self.bot.settings.question.max_chars
        )
        if not question:
            await send_private(interaction, "That message has no text I can look up.")
            return
        await self._answer_interaction(interaction, question, via="find_sources", private=True, allow_thread=False)

    async def _answer_interaction(
        self,
        interaction: discord.Interaction[Any],
        question: str,
        *,
        via: Via,
        private: bool,
        allow_thread: bool,
    ) -> None:
        """Answer within Discord's 3 seconds when possible; defer ("thinking…") only when slower.

        Answering directly keeps any error private even for a public question: once a public
        "thinking…" placeholder exists, Discord makes the first follow-up public too.
        """
        admitted = self._admit(interaction.user.id, interaction.guild_id)
        if isinstance(admitted, Refused):
            await send_private(interaction, admitted.message)
            return
        with admitted:
            task = asyncio.ensure_future(
                self.answer(
                    question,
                    via=via,
                    guild_id=interaction.guild_id,
                    channel_id=interaction.channel_id,
                    user_id=interaction.user.id,
                    record_gap=via != "find_sources",
                )
            )
            try:
                done, _ = await asyncio.wait({task}, timeout=self.defer_after_seconds)
                if not done:
                    await interaction.response.defer(ephemeral=private, thinking=True)
                reply = await task
            except Exception as exc:
                await self._fail(interaction, exc, private=private)
                return
            finally:
                if not task.done():
                    task.cancel()
        kwargs: dict[str, Any] = {
            "embed": reply.rendered.embed,
            "ephemeral": private,
            "allowed_mentions": NO_MENTIONS,
        }
        if reply.rendered.content is not None:
            kwargs["content"] = cut_content(reply.rendered.content)
        view = self._view(reply, allow_thread=allow_thread)
        if view is not None:
            kwargs["view"] = view
        try:
            if interaction.response.is_done():
                await interaction.followup.send(**kwargs)
            else:
                await interaction.response.send_message(**kwargs)
        except discord.HTTPException as exc:
            log.warning(
                "could not deliver an answer for interaction %s: %s",
                interaction.id,
                exc,
            )

    async def _fail(self, interaction: discord.Interaction[Any], error: Exception, *, private: bool) -> None:
        """One line for the user; after a public placeholder it replaces the placeholder, so it is seen."""
        message = user_message(error)
        if message is None:
            log.error("unhandled error answering a question", exc_info=error)
            message = GENERIC_ERROR
        if interaction.response.is_done() and not private:
            try:
                await interaction.edit_original_response(
                    content=message, embed=None, view=None, allowed_mentions=NO_MENTIONS
                )
                return
            except discord.HTTPException:
                pass
        await send_private(interaction, message)

    # -- mentions and bot-opened threads -------------------------------------------------------

    def addressed_question(self, message: discord.Message) -> tuple[Via, str] | None:
        """The question a message puts to the bot, or None when it is not addressed to it."""
        me = self.bot.user
        if me is None or message.guild is None or message.author.bot or message.webhook_id is not None:
            return None
        settings = self.bot.settings.discord
        if not settings.mention_replies:
            return None
        in_bot_thread = message.channel.id in self.bot.bot_threads
        mentioned = mentions_user(message.content, me.id)
        if in_bot_thread:
            return ("thread", without_discord_markup(strip_mentions_of(message.content, me.id)))
        if mentioned and channel_allowed(message.channel, settings.allowed_channels):
            return ("mention", without_discord_markup(strip_mentions_of(message.content, me.id)))
        return None

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        addressed = self.addressed_question(message)
        if addressed is None:
            return
        via, question = addressed
        if not question:
            if via == "mention":
                await self._reply_notice(message, MENTION_HINT)
            return
        admitted = self._admit(message.author.id, message.guild.id if message.guild else None)
        if isinstance(admitted, Refused):
            await self._reply_notice(message, admitted.message)
            return
        with admitted:
            self._show_typing(message.channel)
            try:
                reply = await self.answer(
                    question,
                    via=via,
                    guild_id=message.guild.id if message.guild else None,
                    channel_id=message.channel.id,
                    user_id=message.author.id,
                )
            except DirectiveError as exc:
                await self._reply_notice(message, user_message(exc) or GENERIC_ERROR)
                return
            except Exception:
                log.exception("unhandled error answering a mention")
                await self._reply_notice(message, GENERIC_ERROR)
                return
        view = self._view(reply, allow_thread=self._can_thread(message.channel))
        kwargs: dict[str, Any] = {}
        if view is not None:
            kwargs["view"] = view
        await self._send_reply(message, embed=reply.rendered.embed, **kwargs)

    def _show_typing(self, channel: Any) -> None:
        """Start the typing indicator without waiting for it.

        It is cosmetic, and Discord rate-limits it hard in busy channels: awaiting it would hold
        the answer behind a 429's retry-after, and a network error would drop the question.
        """
        task = asyncio.create_task(self._type_in(channel), name=f"directive-typing-{channel.id}")
        self._typing.add(task)
        task.add_done_callback(self._typing.discard)

    @staticmethod
    async def _type_in(channel: Any) -> None:
        try:
            await channel.typing()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # cosmetic: never worth more than a debug line
            log.debug("typing indicator failed in channel %s: %s", channel.id, exc)

    async def _send_reply(self, message: discord.Message, **kwargs: Any) -> None:
        """Reply referencing the asking message (still sent if it was deleted meanwhile), pinging nobody."""
        try:
            await message.channel.send(
                reference=message.to_reference(fail_if_not_exists=False),
                allowed_mentions=NO_MENTIONS,
                mention_author=False,
                **kwargs,
            )
        except discord.HTTPException as exc:
            log.warning("could not reply in channel %s: %s", message.channel.id, exc)

    async def _reply_notice(self, message: discord.Message, text: str) -> None:
        """A one-line notice to a message; messages cannot be private, so it removes itself."""
        await self._send_reply(message, content=cut_content(text), delete_after=NOTICE_SECONDS)

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        if payload.thread_id in self.bot.bot_threads:
            self.bot.bot_threads.discard(payload.thread_id)
            try:
                await self.bot.run_db(self.bot.db.remove_bot_thread, payload.thread_id)
            except Exception:
                log.exception("forgetting deleted thread %s failed", payload.thread_id)


async def setup(bot: DirectiveBot) -> None:
    await bot.add_cog(Ask(bot))
