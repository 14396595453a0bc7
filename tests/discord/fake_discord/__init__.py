"""A local fake Discord (REST API v10 + gateway websocket) for tests.

The real, unmodified discord.py client connects to it (see ``harness.py`` for
the redirect).  It listens on 127.0.0.1 only and accepts nothing but its own
test token (``fake-test-token.<random>``).

It keeps a small but faithful model of Discord: users, guilds, roles,
members, channels, threads, messages, application commands and interactions,
and it enforces what real Discord enforces and bots commonly get wrong:

* the 3 second deadline for the first interaction response (10062),
* a single initial response per interaction (40060),
* 15 minute validity of interaction webhook tokens (followups),
* message / embed / component limits (50035 with a Discord-shaped ``errors``
  body) and empty messages (50006),
* channel permissions computed from roles and overwrites (50001 / 50013),
* the MESSAGE_CONTENT intent (content is blanked unless the bot is mentioned),
* rate limits on demand (429 with ``Via`` so discord.py retries).

Everything that waits takes an explicit timeout and raises
:class:`FakeDiscordTimeout` (an ``AssertionError`` *and* a ``TimeoutError``)
with a description of what was awaited.

The package, by part:

* ``fake``: :class:`FakeDiscord`, the front tests drive (lifecycle, state setup, queries, rate limits);
* ``state``: users, guilds, roles, members, channels, messages, and records of requests and interactions;
* ``gateway``: the websocket, sessions, dispatch, heartbeats;
* ``rest`` and ``handlers``: the HTTP server and the REST v10 endpoints;
* ``validation``: Discord's limits on messages, embeds, components and commands;
* ``messages`` and ``interactions``: what users send and the interactions a test starts;
* ``constants`` and ``errors``: Discord's numbers and the fake's errors.
"""

from tests.discord.fake_discord.constants import (
    DISCORD_EPOCH_MS,
    TEST_TOKEN_PREFIX,
    CallbackType,
    ChannelType,
    Intent,
    InteractionType,
    MessageFlag,
    Perm,
)
from tests.discord.fake_discord.errors import ApiError, CommandNotAvailable, FakeDiscordTimeout, FakeDiscordUsageError
from tests.discord.fake_discord.fake import FakeDiscord
from tests.discord.fake_discord.state import (
    ErrorRecord,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    InteractionRecord,
    RequestRecord,
    ResponseRecord,
    StandardGuild,
)

__all__ = [
    "DISCORD_EPOCH_MS",
    "TEST_TOKEN_PREFIX",
    "ApiError",
    "CallbackType",
    "ChannelType",
    "CommandNotAvailable",
    "ErrorRecord",
    "FakeChannel",
    "FakeDiscord",
    "FakeDiscordTimeout",
    "FakeDiscordUsageError",
    "FakeGuild",
    "FakeMember",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "Intent",
    "InteractionRecord",
    "InteractionType",
    "MessageFlag",
    "Perm",
    "RequestRecord",
    "ResponseRecord",
    "StandardGuild",
]
