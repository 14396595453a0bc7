"""Asking: ``/ask``, mentions, thread follow-ups and Find sources (``_cog``), and the answer buttons (``_buttons``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.discord.client import DirectiveBot


async def setup(bot: DirectiveBot) -> None:
    from bot.discord.cogs.ask._cog import Ask

    await bot.add_cog(Ask(bot))
