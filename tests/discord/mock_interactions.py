"""A mocked interaction for unit tests of views and buttons (no Discord, no fake server)."""

from __future__ import annotations

from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord


def make_interaction(client: Any = None, *, user_id: int = 10) -> MagicMock:
    interaction = MagicMock(spec_set=discord.Interaction)
    interaction.client = client
    interaction.user = MagicMock(spec_set=discord.Member)
    interaction.user.id = user_id
    interaction.guild_id = 1
    interaction.response = MagicMock(spec_set=discord.InteractionResponse)
    interaction.response.is_done.return_value = False
    interaction.response.send_message = AsyncMock()
    interaction.response.edit_message = AsyncMock()
    return interaction


def sent(interaction: MagicMock) -> dict[str, Any]:
    interaction.response.send_message.assert_awaited_once()
    return interaction.response.send_message.await_args.kwargs
