"""Asking: ``/ask``, mentioning the bot (or any message in a thread it opened), and Find sources.

All three share one path: the member's rate limit; a cached answer at once, or a place in the
fair queue (``bot.discord.queue``) whose workers compute in the worker pool; the embed from
``render``; the answer stored for its buttons; declined questions recorded as gaps; and one
structured log line per question. Interactions are deferred at once and, while they wait long,
show their place in the queue; when the bot stops, everyone still waiting is told to ask again.

The frame of every reply (not the quotes) is in the asker's language: the interaction's locale for
``/ask`` and Find sources, the server's preferred locale for a mention or a thread message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.answer_cache import normalise_question
from bot.discord.cogs.ask._buttons import PERSISTENT_ITEMS, answer_view
from bot.discord.markup import mentions_user, strip_mentions_of, without_discord_markup
from bot.discord.queue import FairQueue, Place, QueueClosed, QueueFull, Waiting
from bot.discord.render import RenderedAnswer, cut_content, render_answer
from bot.discord.replies import (
    GENERIC_ERROR,
    NO_MENTIONS,
    RESTARTING,
    frame_for,
    frame_for_guild,
    queue_notice,
    send_private,
    too_busy,
    user_message,
)
from bot.errors import DirectiveError, InvalidQuestion
from bot.i18n import ENGLISH, N_, Frame
from bot.query import in_context, is_acknowledgement, is_follow_up
from bot.records import Answer

if TYPE_CHECKING:
    from bot.config import QuestionSettings
    from bot.discord.client import DirectiveBot

log = logging.getLogger(__name__)

Via = Literal["slash", "mention", "thread", "find_sources"]

# Notices to a message (which cannot be private) disappear after this many seconds.
NOTICE_SECONDS = 15.0
# A queue notice is refreshed while the question still waits, every QUEUE_REFRESH_SECONDS at least and
# every third of the expected wait at most: each refresh is one edit through the event loop, and with
# hundreds waiting, refreshing them all every few seconds costs the answering itself.
QUEUE_REFRESH_SECONDS = 10.0
QUEUE_REFRESHES_PER_WAIT = 3
# On shutdown, how long to wait for the "please ask again" replies to go out.
SHUTDOWN_GRACE_SECONDS = 5.0
MENTION_HINT = N_("Ask me a question after the mention, e.g. “what does the order restrict?”")


@dataclass(frozen=True)
class Reply:
    """An answered question, ready to send."""

    answer: Answer
    rendered: RenderedAnswer
    answer_id: str | None  # None: not stored, so no buttons


def refresh_interval(place: Place | None) -> float:
    """Seconds until a waiting member's queue notice is refreshed: longer waits are refreshed less often."""
    if place is None:
        return QUEUE_REFRESH_SECONDS
    return max(QUEUE_REFRESH_SECONDS, place.eta / QUEUE_REFRESHES_PER_WAIT)


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


def channel_allowed(channel: Any, allowed: Iterable[int]) -> bool:
    """Whether mentions are answered in ``channel``: all when the list is empty; threads follow their parent."""
    wanted = set(allowed)
    if not wanted:
        return True
    ids = {getattr(channel, "id", None), getattr(channel, "parent_id", None)}
    return bool(ids & wanted)


def in_own_words(answer: Answer, asked: str | None) -> Answer:
    """The shared answer to a repeated question, titled with this asker's wording (same normalised form)."""
    if asked is None:
        return answer
    text = " ".join(asked.split())
    if text == answer.question or normalise_question(text) != normalise_question(answer.question):
        return answer
    return dataclasses.replace(answer, question=text)


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

    def __init__(self, bot: DirectiveBot) -> None:
        self.bot = bot
        settings = bot.settings.discord
        self.queue: FairQueue[Answer] = FairQueue(workers=settings.workers, limit=settings.queue_limit)
        self.find_sources_menu = app_commands.ContextMenu(name="Find sources", callback=self.find_sources)
        self.bot.tree.add_command(self.find_sources_menu)
        self._typing: set[asyncio.Task[None]] = set()
        # Handlers with a member waiting on them, so a shutdown can let their last reply go out.
        self._waiting_handlers: set[asyncio.Task[Any]] = set()

    async def cog_load(self) -> None:
        # The answer buttons work on every answer ever posted, across restarts: their state is in the custom id.
        self.bot.add_dynamic_items(*PERSISTENT_ITEMS)

    async def cog_unload(self) -> None:
        """Tell everyone still waiting to ask again, before the connection closes."""
        self.bot.remove_dynamic_items(*PERSISTENT_ITEMS)
        self.bot.tree.remove_command(self.find_sources_menu.name, type=self.find_sources_menu.type)
        for task in self._typing:
            task.cancel()
        failed = await self.queue.close()
        handlers = {t for t in self._waiting_handlers if t is not asyncio.current_task()}
        if handlers:
            log.info("shutting down: telling %d waiting asker(s) to ask again (%d questions)", len(handlers), failed)
            await asyncio.wait(handlers, timeout=SHUTDOWN_GRACE_SECONDS)

    def _track(self) -> asyncio.Task[Any] | None:
        task = asyncio.current_task()
        if task is not None:
            self._waiting_handlers.add(task)
        return task

    # -- the shared path -----------------------------------------------------------------------

    def enqueue(self, question: str, *, guild_id: int | None, user_id: int) -> Answer | Waiting[Answer]:
        """A cached answer at once, or a place in the fair queue (raises ``QueueFull`` / ``QueueClosed``).

        Synchronous: the place is taken before the caller awaits anything, so the bound holds.
        The lane is the server (a DM is its own lane), so one busy server cannot starve others.
        """
        cached = self._cached(question)
        if cached is not None:
            return cached
        lane: object = ("guild", guild_id) if guild_id is not None else ("dm", user_id)
        return self.queue.submit(lane, normalise_question(question), lambda: self._compute(question))

    def _cached(self, question: str) -> Answer | None:
        """Look in the answer cache on the loop (a dictionary lookup); any problem is left to the worker."""
        try:
            found = self.bot.service.ask_cached(question, compute=False)
        except DirectiveError:
            return None
        return found if isinstance(found, Answer) else None

    async def _compute(self, question: str) -> Answer:
        answer = await self.bot.run_blocking(self.bot.service.ask_cached, question)
        if answer is None:  # pragma: no cover - compute=True always returns an answer
            raise RuntimeError("the service returned no answer")
        return answer

    async def answer(
        self,
        question: str,
        *,
        via: Via,
        guild_id: int | None,
        channel_id: int | None,
        user_id: int,
        record_gap: bool = True,
        tr: Frame = ENGLISH,
    ) -> Reply:
        """Answer through the queue, render, store; raises ``DirectiveError`` for bad questions."""
        started = time.perf_counter()
        queued = self.enqueue(question, guild_id=guild_id, user_id=user_id)
        answer = queued if isinstance(queued, Answer) else await queued.result()
        return await self.reply_for(
            answer,
            via=via,
            guild_id=guild_id,
            channel_id=channel_id,
            user_id=user_id,
            record_gap=record_gap,
            started=started,
            asked=question,
            tr=tr,
        )

    async def reply_for(
        self,
        answer: Answer,
        *,
        via: Via,
        guild_id: int | None,
        channel_id: int | None,
        user_id: int,
        record_gap: bool,
        started: float,
        asked: str | None = None,
        tr: Frame = ENGLISH,
    ) -> Reply:
        """Render an answer in the asker's language, store it for its buttons (or record the gap), log one line.

        The cached ``Answer`` is shared by askers of every language; only its rendering is theirs.
        """
        settings = self.bot.settings.discord
        answer = in_own_words(answer, asked)
        subject: Literal["question", "message"] = "message" if via == "find_sources" else "question"
        # Off the event loop: when a popular question's answer arrives, dozens of askers render at once.
        rendered = await asyncio.to_thread(
            render_answer, answer, max_excerpts=settings.excerpts_per_answer, subject=subject, tr=tr
        )
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
            await self._record_gap(answer.question, guild_id)
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
            f"question via={via} guild={guild_id} latency_ms={latency_ms:.0f} abstained={answer.declined} "
            f"excerpts={len(answer.excerpts)} shown={rendered.shown} index_version={answer.index_version} "
            f"waiting={self.queue.waiting}"
        )
        if settings.log_question_text:
            line += f" question={answer.question!r}"
        log.info("%s", line)

    def _view(self, reply: Reply, *, allow_thread: bool, tr: Frame = ENGLISH) -> discord.ui.View | None:
        if reply.answer_id is None:
            return None
        shown = reply.rendered.shown
        more_from = shown if shown < len(reply.answer.excerpts) else None
        return answer_view(reply.answer_id, more_from=more_from, allow_thread=allow_thread, tr=tr)

    def _can_thread(self, channel: Any) -> bool:
        """Only plain text channels take threads, and answering there needs mention replies."""
        return self.bot.settings.discord.mention_replies and isinstance(channel, discord.TextChannel)

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
            await send_private(interaction, frame_for(interaction).gettext("That message has no text I can look up."))
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
        """Refusals (rate limit, full queue) privately and at once; otherwise defer at once, then answer.

        Deferring first leaves all of Discord's 3 seconds to the acknowledgement, however busy the
        machine is; the answer (or the member's place in the queue) is edited into the reply.
        """
        started = time.perf_counter()
        tr = frame_for(interaction)
        # No worker starts a new computation until this interaction is acknowledged (see the queue).
        with self.queue.acknowledging():
            refused = self.bot.limiter.admit(interaction.user.id)
            if refused is not None:
                await send_private(interaction, refused.message_in(tr))
                return
            try:
                queued = self.enqueue(question, guild_id=interaction.guild_id, user_id=interaction.user.id)
            except QueueFull as full:
                log.warning("queue full: %d waiting; refused a question via=%s", full.waiting, via)
                await send_private(interaction, too_busy(full.waiting, full.retry_after, tr))
                return
            except QueueClosed:
                await send_private(interaction, tr.gettext(RESTARTING))
                return
            task = self._track()
            try:
                await interaction.response.defer(ephemeral=private, thinking=True)
            except discord.HTTPException as exc:
                # Too late to acknowledge: nobody can be shown an answer. The computation still
                # serves any other asker of the same question.
                log.warning("could not defer interaction %s: %s", interaction.id, exc)
                if task is not None:
                    self._waiting_handlers.discard(task)
                return
        try:
            try:
                answer = queued if isinstance(queued, Answer) else await self._wait_in_queue(interaction, queued, tr)
                reply = await self.reply_for(
                    answer,
                    via=via,
                    guild_id=interaction.guild_id,
                    channel_id=interaction.channel_id,
                    user_id=interaction.user.id,
                    record_gap=via != "find_sources",
                    started=started,
                    asked=question,
                    tr=tr,
                )
            except QueueClosed:
                await self._edit_reply(interaction, content=tr.gettext(RESTARTING), embed=None, view=None)
                return
            except Exception as exc:
                await self._fail(interaction, exc, tr)
                return
            view = self._view(reply, allow_thread=allow_thread, tr=tr)
            # Editing (not a followup) replaces the "thinking…" placeholder or the queue notice alike.
            await self._edit_reply(interaction, content=None, embed=reply.rendered.embed, view=view)
        finally:
            if task is not None:
                self._waiting_handlers.discard(task)

    async def _wait_in_queue(
        self, interaction: discord.Interaction[Any], queued: Waiting[Answer], tr: Frame = ENGLISH
    ) -> Answer:
        """Wait for the answer; while the expected wait is long, show the member their place."""
        result = asyncio.create_task(queued.result(), name=f"directive-wait-{interaction.id}")
        notice_after = self.bot.settings.discord.queue_notice_seconds
        shown: str | None = None
        try:
            while True:
                place = queued.place()
                if place is not None and place.eta >= notice_after:
                    # A notice can wait; acknowledging the interactions still arriving cannot.
                    await self.queue.after_acknowledgements()
                    text = queue_notice(place.position, place.eta, tr)
                    if text != shown:
                        shown = text
                        await self._edit_reply(interaction, content=text)
                done, _ = await asyncio.wait({result}, timeout=refresh_interval(place))
                if done:
                    return result.result()
        finally:
            if not result.done():
                result.cancel()

    async def _edit_reply(self, interaction: discord.Interaction[Any], **fields: Any) -> None:
        """Replace the deferred reply's content; a gone interaction is logged, not raised."""
        try:
            await interaction.edit_original_response(allowed_mentions=NO_MENTIONS, **fields)
        except discord.HTTPException as exc:
            log.warning("could not edit the reply to interaction %s: %s", interaction.id, exc)

    async def _fail(self, interaction: discord.Interaction[Any], error: Exception, tr: Frame = ENGLISH) -> None:
        """One line for the user, replacing the deferred reply (private when the question was)."""
        message = user_message(error, tr)
        if message is None:
            log.error("unhandled error answering a question", exc_info=error)
            message = tr.gettext(GENERIC_ERROR)
        await self._edit_reply(interaction, content=message, embed=None, view=None)

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

    async def _in_thread_context(self, thread_id: int, text: str) -> str:
        """A short message in a bot thread, read after the question the thread was opened from
        ("how long?" after "are foreigners cut off?"; bot.query.in_context). Without that question
        (pruned, or the database unavailable) the message stands alone: nobody is refused for it."""
        settings = self.bot.settings.question
        if not is_follow_up(text, settings.follow_up_words):
            return text  # a full question stands alone: no need to read the thread's
        try:
            context = await self.bot.run_db(self.bot.db.thread_question, thread_id)
        except DirectiveError:
            log.warning("thread %s: its question could not be read; answering the message alone", thread_id)
            return text
        return in_context(text, context, max_words=settings.follow_up_words, max_chars=settings.max_chars)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        addressed = self.addressed_question(message)
        if addressed is None:
            return
        via, question = addressed
        # A message carries no member locale: the server's preferred locale frames the reply.
        tr = frame_for_guild(message.guild)
        if not question:
            if via == "mention":
                await self._reply_notice(message, tr.gettext(MENTION_HINT))
            return
        if via == "thread" and is_acknowledgement(question):
            return  # "thanks!" in a thread is conversation, not a question
        guild_id = message.guild.id if message.guild else None
        started = time.perf_counter()
        refused = self.bot.limiter.admit(message.author.id)
        if refused is not None:
            await self._reply_notice(message, refused.message_in(tr))
            return
        asked = await self._in_thread_context(message.channel.id, question) if via == "thread" else question
        try:
            queued = self.enqueue(asked, guild_id=guild_id, user_id=message.author.id)
        except QueueFull as full:
            log.warning("queue full: %d waiting; refused a question via=%s", full.waiting, via)
            await self._reply_notice(message, too_busy(full.waiting, full.retry_after, tr))
            return
        except QueueClosed:
            await self._reply_notice(message, tr.gettext(RESTARTING))
            return
        task = self._track()
        try:
            self._show_typing(message.channel)
            try:
                answer = queued if isinstance(queued, Answer) else await queued.result()
                reply = await self.reply_for(
                    answer,
                    via=via,
                    guild_id=guild_id,
                    channel_id=message.channel.id,
                    user_id=message.author.id,
                    record_gap=True,
                    started=started,
                    asked=question,
                    tr=tr,
                )
            except QueueClosed:
                await self._reply_notice(message, tr.gettext(RESTARTING))
                return
            except DirectiveError as exc:
                await self._reply_notice(message, user_message(exc, tr) or tr.gettext(GENERIC_ERROR))
                return
            except Exception:
                log.exception("unhandled error answering a mention")
                await self._reply_notice(message, tr.gettext(GENERIC_ERROR))
                return
            view = self._view(reply, allow_thread=self._can_thread(message.channel), tr=tr)
            kwargs: dict[str, Any] = {}
            if view is not None:
                kwargs["view"] = view
            await self._send_reply(message, embed=reply.rendered.embed, **kwargs)
        finally:
            if task is not None:
                self._waiting_handlers.discard(task)

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
