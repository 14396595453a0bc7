"""Connecting to Discord at start-up: retry what may pass (no network yet, Discord 5xx), stop on what will not.

A bot started by systemd at boot often starts before the network is up, and Discord has bad
minutes: both are retried with exponential backoff, each failed attempt logged in one line. An
invalid token is not retried (the caller turns ``LoginFailure`` into one line and exit 1), and
when every attempt failed the error is one line, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import discord

from bot.errors import ConnectionFailed

log = logging.getLogger(__name__)

ATTEMPTS = 6
FIRST_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 60.0
RETRYABLE = (discord.DiscordServerError, discord.GatewayNotFound, aiohttp.ClientError, OSError, TimeoutError)


def describe(exc: BaseException) -> str:
    """A short, token-free description of a connection failure for the log."""
    if isinstance(exc, discord.HTTPException):
        return f"Discord answered {exc.status}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def start_with_retry(
    client: discord.Client,
    token: str,
    *,
    attempts: int | None = None,
    first_delay: float | None = None,
) -> None:
    """``client.start(token)`` with retries for the log-in and the first gateway connection.

    Raises ``discord.LoginFailure`` at once for a rejected token, and ``ConnectionFailed`` (one
    line) when Discord could not be reached in ``attempts`` tries.
    """
    attempts = ATTEMPTS if attempts is None else attempts
    first_delay = FIRST_DELAY_SECONDS if first_delay is None else first_delay
    await _retrying("log in", lambda: client.login(token), client, attempts, first_delay)
    await _retrying("connect to the gateway", lambda: client.connect(reconnect=True), client, attempts, first_delay)


async def _retrying(what: str, step: object, client: discord.Client, attempts: int, first_delay: float) -> None:
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            await step()  # type: ignore[operator]
            return
        except discord.LoginFailure:
            raise
        except RETRYABLE as exc:
            # Once set-up has loaded the extensions, a second log-in would load them twice.
            setup_done = bool(getattr(client, "extensions", None)) and what == "log in"
            if attempt == attempts or setup_done or client.is_closed():
                raise ConnectionFailed(
                    f"Could not {what} to Discord ({describe(exc)}) after {attempt} attempt(s); "
                    "check the network and Discord's status, then start the bot again."
                ) from None
            log.warning(
                "could not %s (attempt %d of %d: %s); retrying in %.0f s", what, attempt, attempts, describe(exc), delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_SECONDS)
