"""``/sources``: browse the articles the bot can quote, a page at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.replies import NO_MENTIONS, frame_for
from bot.discord.views import SourcesPaginator

if TYPE_CHECKING:
    from bot.discord.client import DirectiveBot

SOURCES_PER_PAGE = 10


class Sources(commands.Cog):
    """List the knowledge base's articles."""

    def __init__(self, bot: DirectiveBot) -> None:
        self.bot = bot

    @app_commands.command(name="sources", description="Browse the news articles I quote from.")
    async def sources(self, interaction: discord.Interaction[DirectiveBot]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        articles = await self.bot.run_blocking(self.bot.service.articles)  # newest first
        view = SourcesPaginator(
            articles,
            interaction.user.id,
            per_page=SOURCES_PER_PAGE,
            timeout=self.bot.settings.discord.view_timeout_seconds,
            tr=frame_for(interaction),
        )
        if view.pages > 1:
            view.origin = interaction
            await interaction.followup.send(
                embed=view.current_embed(),
                view=view,
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
        else:
            view.stop()
            await interaction.followup.send(embed=view.current_embed(), ephemeral=True, allowed_mentions=NO_MENTIONS)


async def setup(bot: DirectiveBot) -> None:
    await bot.add_cog(Sources(bot))
