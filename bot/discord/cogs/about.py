"""``/about``: what the bot does and does not do, and the state of the index it answers from."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.render import render_about
from bot.discord.replies import NO_MENTIONS, frame_for

if TYPE_CHECKING:
    from bot.db import RebuildEntry
    from bot.discord.client import DirectiveBot

log = logging.getLogger(__name__)


class About(commands.Cog):
    """Explain the bot."""

    def __init__(self, bot: DirectiveBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="about",
        description="What I do (and don't), and how current my articles are.",
    )
    async def about(self, interaction: discord.Interaction[DirectiveBot]) -> None:
        # Deferred: the worker pool may be busy answering questions.
        await interaction.response.defer(ephemeral=True, thinking=True)
        info = await self.bot.run_blocking(self.bot.service.info)
        last: RebuildEntry | None = None
        try:
            last = await self.bot.run_db(self.bot.db.last_rebuild)
        except Exception:
            log.exception("reading the rebuild log failed; /about shows the index alone")
        await interaction.followup.send(
            embed=render_about(info, last_rebuild=last, tr=frame_for(interaction)),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )


async def setup(bot: DirectiveBot) -> None:
    await bot.add_cog(About(bot))
