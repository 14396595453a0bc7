"""Short-lived views shared by the features: bound to the user who opened them, and timing out.

``InvokerView`` answers only its invoker and disables its buttons in place on timeout (RoboDanny's
confirmation view); ``ConfirmView`` is Confirm / Cancel for a moderator action; ``Paginator`` turns
pages of an embed with Previous / Next. Labels are in the language of the member who is looking.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import discord

from bot.discord.checks import is_moderator
from bot.discord.render import page_count, render_sources_page
from bot.discord.replies import frame_for, report_error, send_private
from bot.i18n import ENGLISH, Frame
from bot.records import Article


class InvokerView(discord.ui.View):
    """A view only its invoker may use; on timeout its buttons are disabled in place."""

    def __init__(self, owner_id: int, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        # Set after sending: the interaction whose response carries this view (editable for 15 min).
        self.origin: discord.Interaction[Any] | None = None

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await send_private(
            interaction,
            frame_for(interaction).gettext("These buttons belong to someone else; run the command yourself."),
        )
        return False

    def disable_all(self) -> None:
        for child in self.children:
            if isinstance(child, (discord.ui.Button, discord.ui.Select)):
                child.disabled = True

    async def on_timeout(self) -> None:
        self.disable_all()
        if self.origin is not None:
            with contextlib.suppress(discord.HTTPException):
                await self.origin.edit_original_response(view=self)

    async def on_error(
        self,
        interaction: discord.Interaction[Any],
        error: Exception,
        item: discord.ui.Item[Any],
        /,
    ) -> None:
        await report_error(interaction, error, where=f"{type(self).__name__}")


class SourcesPaginator(InvokerView):
    """Previous / Next through the article list."""

    def __init__(
        self,
        articles: Sequence[Article],
        owner_id: int,
        *,
        per_page: int,
        timeout: float,
        tr: Frame = ENGLISH,
    ) -> None:
        super().__init__(owner_id, timeout=timeout)
        self.articles = list(articles)
        self.per_page = max(1, per_page)
        self.page = 0
        self.pages = page_count(len(self.articles), self.per_page)
        self.tr = tr
        self.previous_page.label = tr.gettext("Previous")
        self.next_page.label = tr.gettext("Next")
        self._sync_buttons()

    def current_embed(self) -> discord.Embed:
        return render_sources_page(self.articles, self.page, self.per_page, tr=self.tr)

    def _sync_buttons(self) -> None:
        self.previous_page.disabled = self.page <= 0
        self.next_page.disabled = self.page >= self.pages - 1

    async def _turn(self, interaction: discord.Interaction[Any], step: int) -> None:
        self.page = min(max(self.page + step, 0), self.pages - 1)
        self._sync_buttons()
        await interaction.response.edit_message(embed=self.current_embed(), view=self)

    @discord.ui.button(label="Previous", emoji="◀️", style=discord.ButtonStyle.secondary)
    async def previous_page(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await self._turn(interaction, -1)

    @discord.ui.button(label="Next", emoji="▶️", style=discord.ButtonStyle.secondary)
    async def next_page(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await self._turn(interaction, +1)


class ConfirmView(InvokerView):
    """Confirm / Cancel for a moderator action; ``value`` is True, False, or None on timeout.

    With ``moderators_only`` the moderator rule is checked again at click time, in case a role
    was removed while the prompt was open.
    """

    def __init__(
        self,
        owner_id: int,
        *,
        timeout: float,
        confirm_label: str = "Confirm",
        moderators_only: bool = True,
    ) -> None:
        super().__init__(owner_id, timeout=timeout)
        self.value: bool | None = None
        # The button press that decided it: its follow-up token is fresh for another 15 minutes.
        self.decision: discord.Interaction[Any] | None = None
        self.moderators_only = moderators_only
        self.confirm.label = confirm_label

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        if not await super().interaction_check(interaction):
            return False
        if self.moderators_only and not is_moderator(interaction):
            await send_private(interaction, "You are no longer a moderator here.")
            return False
        return True

    async def _finish(self, interaction: discord.Interaction[Any], value: bool) -> None:
        self.value = value
        self.decision = interaction
        self.disable_all()
        await interaction.response.edit_message(view=self)
        self.stop()

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await self._finish(interaction, True)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await self._finish(interaction, False)
