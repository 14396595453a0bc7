"""``/kb``: the moderators' knowledge-base commands (``_cog``) and what they show (``_views``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.discord.client import DirectiveBot


async def setup(bot: DirectiveBot) -> None:
    from bot.discord.cogs.kb._cog import KnowledgeAdmin

    await bot.add_cog(KnowledgeAdmin(bot))
