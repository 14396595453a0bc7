"""Private (ephemeral) replies and error reporting shared by commands, buttons and modals.

Every user-facing failure is one line: a ``DirectiveError``'s own message, a check's message, or
a generic apology. Tracebacks go to the log, never to Discord.

The fixed messages are English message ids (``N_``) translated where they are sent, into the
language of the interaction (:func:`frame_for`) or, for a mention, of the server
(:func:`frame_for_guild`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands

from bot.errors import DirectiveError
from bot.i18n import ENGLISH, N_, Frame, frame

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
GENERIC_ERROR = N_("Something went wrong; the error was logged.")
EXPIRED = N_("This answer has expired; ask again.")
# Sent to everyone still waiting when the bot stops (a restart or deploy): nothing is lost silently.
RESTARTING = N_("I restarted before I could answer this; please ask again.")
# A deferred reply that shows a place in the queue starts with this (and has no embed).
QUEUE_NOTICE_PREFIX = "⏳ "


def frame_for(interaction: discord.Interaction[Any]) -> Frame:
    """The member's own language: Discord sends the client's locale with every interaction."""
    locale = getattr(interaction, "locale", None)
    return frame(getattr(locale, "value", locale))


def frame_for_guild(guild: discord.Guild | None) -> Frame:
    """For a message (no interaction, so no member locale): the server's preferred locale, else English."""
    locale = getattr(guild, "preferred_locale", None) if guild is not None else None
    return frame(getattr(locale, "value", locale)) if locale is not None else ENGLISH


def _duration(seconds: float, tr: Frame = ENGLISH) -> str:
    """Seconds under a minute, minutes above: members need the order of magnitude, not false precision."""
    if seconds < 60:
        return tr.gettext("{seconds} s").format(seconds=max(1, round(seconds)))
    return tr.gettext("{minutes} min").format(minutes=max(1, round(seconds / 60)))


def queue_notice(position: int, eta_seconds: float, tr: Frame = ENGLISH) -> str:
    """What a member sees while their question waits: where they are and about how long."""
    ahead = position - 1
    if ahead == 0:
        place = tr.gettext("you're next")
    else:
        place = tr.ngettext("{count} question ahead of yours", "{count} questions ahead of yours", ahead).format(
            count=ahead
        )
    text = tr.gettext(
        "Queued, about {duration}: many people are asking right now ({place}). Your answer will appear here."
    )
    return QUEUE_NOTICE_PREFIX + text.format(duration=_duration(eta_seconds, tr), place=place)


def is_queue_notice(content: str | None) -> bool:
    return bool(content) and content.startswith(QUEUE_NOTICE_PREFIX)  # type: ignore[union-attr]


def too_busy(waiting: int, retry_after: float, tr: Frame = ENGLISH) -> str:
    """The one refusal left: the queue is at its hard bound; say when it will have drained."""
    text = tr.ngettext(
        "I'm too busy to take another question right now ({count} is waiting); please ask again in about {duration}.",
        "I'm too busy to take another question right now ({count} are waiting); please ask again in about {duration}.",
        waiting,
    )
    return text.format(count=waiting, duration=_duration(retry_after, tr))


async def send_private(
    interaction: discord.Interaction[Any],
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    view: discord.ui.View | None = None,
) -> None:
    """Reply only to the user, whether or not the interaction was already answered or deferred.

    Never raises for a gone interaction: there is nobody left to tell.
    """
    kwargs: dict[str, Any] = {"ephemeral": True, "allowed_mentions": NO_MENTIONS}
    if content is not None:
        kwargs["content"] = content
    if embed is not None:
        kwargs["embed"] = embed
    if view is not None:
        kwargs["view"] = view
    try:
        if interaction.response.is_done():
            await interaction.followup.send(**kwargs)
        else:
            await interaction.response.send_message(**kwargs)
    except discord.HTTPException as exc:
        log.warning("could not reply to interaction %s: %s", interaction.id, exc)


def user_message(error: BaseException, tr: Frame = ENGLISH) -> str | None:
    """The one line to show for an error we expect, or None for a bug (which gets logged).

    A ``DirectiveError`` or a check carries its own (English) message, shown as it is.
    """
    original = getattr(error, "original", None)
    if isinstance(error, app_commands.CommandInvokeError) and original is not None:
        error = original
    if isinstance(error, DirectiveError):
        return str(error).strip().splitlines()[0] if str(error).strip() else tr.gettext(GENERIC_ERROR)
    if isinstance(error, app_commands.CheckFailure):
        return str(error).strip() or tr.gettext("You can't use that here.")
    if isinstance(error, app_commands.TransformerError):
        return tr.gettext("One of the values you gave isn't valid; please check it and try again.")
    return None


async def report_error(interaction: discord.Interaction[Any], error: BaseException, *, where: str) -> None:
    """Tell the user privately, in their language, what went wrong, logging the traceback when it is a bug."""
    tr = frame_for(interaction)
    message = user_message(error, tr)
    if message is None:
        original = getattr(error, "original", error)
        log.error(
            "unhandled error in %s",
            where,
            exc_info=(type(original), original, original.__traceback__),
        )
        message = tr.gettext(GENERIC_ERROR)
    await send_private(interaction, message)


async def guarded(
    interaction: discord.Interaction[Any],
    action: Callable[[], Awaitable[None]],
    *,
    where: str,
) -> None:
    """Run a button or modal action; errors become a private one-line reply, never a traceback.

    Dynamic items have no ``on_error`` hook (discord.py only logs), so their callbacks use this.
    """
    try:
        await action()
    except Exception as exc:
        await report_error(interaction, exc, where=where)
