"""Who counts as a moderator, declared once for Discord's UI and for the run-time check.

Discord hides a command from members without ``default_member_permissions`` (Manage Server here),
but server admins can override that in Integrations settings, and buttons and modals have no such
gate at all. So the same rule is checked again at run time: Manage Server, or one of the roles in
``settings.discord.moderator_roles``. (The pattern is RoboDanny's ``hybrid_permissions_check``.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import discord
from discord import app_commands

# The one declaration: Discord's UI default and the run-time permission test both read it.
MODERATOR_PERMISSIONS = discord.Permissions(manage_guild=True)

NOT_MODERATOR_MESSAGE = "Only moderators (Manage Server or a moderator role) can do that."


class NotModerator(app_commands.CheckFailure):
    """Raised by the moderator check; its message is shown privately to the user."""

    def __init__(self, message: str = NOT_MODERATOR_MESSAGE) -> None:
        super().__init__(message)


def member_is_moderator(
    permissions: discord.Permissions,
    role_ids: Iterable[int],
    moderator_roles: Iterable[int],
) -> bool:
    """The rule itself: the moderator permissions, or any configured moderator role."""
    if permissions.administrator or permissions >= MODERATOR_PERMISSIONS:
        return True
    wanted = set(moderator_roles)
    return bool(wanted) and any(role_id in wanted for role_id in role_ids)


def _moderator_roles(interaction: discord.Interaction[Any]) -> tuple[int, ...]:
    settings = getattr(interaction.client, "settings", None)
    return tuple(settings.discord.moderator_roles) if settings is not None else ()


def is_moderator(interaction: discord.Interaction[Any]) -> bool:
    """True when the user behind ``interaction`` is a moderator of the guild it came from.

    Used by slash-command groups (through :class:`ModeratorGroup`), buttons, selects and modals alike.
    Never true in DMs: there is no guild to moderate.
    """
    if interaction.guild_id is None:
        return False
    member = interaction.user
    if not isinstance(member, discord.Member):
        return False
    # interaction.permissions is what Discord resolved for this member in this channel.
    permissions = interaction.permissions
    # The bot keeps the guilds intent, so the guild's roles are cached and member.roles is complete.
    role_ids = {role.id for role in member.roles}
    return member_is_moderator(permissions, role_ids, _moderator_roles(interaction))


def ensure_moderator(interaction: discord.Interaction[Any]) -> bool:
    """Check predicate: True, or raise :class:`NotModerator` with a message for the user."""
    if not is_moderator(interaction):
        raise NotModerator()
    return True


class ModeratorGroup(app_commands.Group):
    """A slash-command group (e.g. ``/kb``) gated by the same rule for every subcommand.

    Discord only honours default permissions on top-level commands, so the group carries them,
    and ``interaction_check`` repeats the run-time test for each subcommand.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("default_permissions", MODERATOR_PERMISSIONS)
        kwargs.setdefault("guild_only", True)
        super().__init__(**kwargs)

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        return ensure_moderator(interaction)
