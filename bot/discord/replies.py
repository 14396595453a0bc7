"""Private (ephemeral) replies and error reporting shared by commands, buttons and modals.

Every user-facing failure is one line: a ``DirectiveError``'s own message, a check's message, or
a generic apology. Tracebacks go to the log, never to Discord.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands

from bot.errors import DirectiveError

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
GENERIC_ERROR = "Something went wrong; the error was logged."
EXPIRED = "This answer has expired; ask again."
# Sent to everyone still waiting when the bot stops (a restart or deploy): nothing is lost silently.
RESTARTING = "I restarted before I could answer this; please ask again."
# A deferred reply that shows a place in the queue starts with this (and has no embed).
QUEUE_NOTICE_PREFIX = "⏳ "


def _duration(seconds: float) -> str:
    """Seconds under a minute, minutes above: members need the order of magnitude, not false precision."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    return f"{max(1, round(seconds / 60))} min"


def queue_notice(position: int, eta_seconds: float) -> str:
    """What a member sees while their question waits: where they are and about how long."""
    ahead = position - 1
    place = "you're next" if ahead == 0 else f"{ahead} question{'s' if ahead != 1 else ''} ahead of yours"
    return (
        f"{QUEUE_NOTICE_PREFIX}Queued, about {_duration(eta_seconds)}: many people are asking right now "
        f"({place}). Your answer will appear here."
    )


def is_queue_notice(content: str | None) -> bool:
    return bool(content) and content.startswith(QUEUE_NOTICE_PREFIX)  # type: ignore[union-attr]


def too_busy(waiting: int, retry_after: float) -> str:
    """The one refusal left: the queue is at its hard bound; say when it will have drained."""
    return (
        f"I'm too busy to take another question right now ({waiting} are waiting); "
        f"please ask again in about {_duration(retry_after)}."
    )


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


def user_message(error: BaseException) -> str | None:
    """The one line to show for an error we expect, or None for a bug (which gets logged)."""
    original = getattr(error, "original", None)
    if isinstance(error, app_commands.CommandInvokeError) and original is not None:
        error = original
    if isinstance(error, DirectiveError):
        return str(error).strip().splitlines()[0] if str(error).strip() else GENERIC_ERROR
    if isinstance(error, app_commands.CheckFailure):
        return str(error).strip() or "You can't use that here."
    if isinstance(error, app_commands.TransformerError):
        return "One of the values you gave isn't valid; please check it and try again."
    return None


async def report_error(interaction: discord.Interaction[Any], error: BaseException, *, where: str) -> None:
    """Tell the user privately what went wrong, logging the traceback when it is a bug."""
    message = user_message(error)
    if message is None:
        original = getattr(error, "original", error)
        log.error(
            "unhandled error in %s",
            where,
            exc_info=(type(original), original, original.__traceback__),
        )
        message = GENERIC_ERROR
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
