"""The moderator rule: Manage Server or a configured role, declared once for UI and run time."""

from __future__ import annotations

from unittest.mock import MagicMock

import discord
import pytest
from discord import app_commands

from bot.config import DiscordSettings, Settings
from bot.discord.checks import (
    MODERATOR_PERMISSIONS,
    ModeratorGroup,
    NotModerator,
    ensure_moderator,
    is_moderator,
    member_is_moderator,
)

MOD_ROLE = 555
OTHER_ROLE = 777


def role_with_id(role_id: int) -> discord.Role:
    role = MagicMock(spec_set=discord.Role)
    role.id = role_id
    return role


def make_interaction(
    *,
    permissions: discord.Permissions | None = None,
    roles: tuple[int, ...] = (),
    moderator_roles: tuple[int, ...] = (MOD_ROLE,),
    guild_id: int | None = 1,
    member: bool = True,
) -> discord.Interaction:
    interaction = MagicMock(spec_set=discord.Interaction)
    interaction.guild_id = guild_id
    interaction.permissions = permissions or discord.Permissions.none()
    user = MagicMock(spec_set=discord.Member if member else discord.User)
    if member:
        user.roles = [role_with_id(r) for r in roles]
    interaction.user = user
    client = MagicMock()
    client.settings = Settings(discord=DiscordSettings(moderator_roles=moderator_roles))
    interaction.client = client
    return interaction


def test_manage_server_permission_makes_a_moderator() -> None:
    assert is_moderator(make_interaction(permissions=discord.Permissions(manage_guild=True)))


def test_administrator_makes_a_moderator() -> None:
    assert is_moderator(make_interaction(permissions=discord.Permissions(administrator=True)))


def test_configured_role_makes_a_moderator() -> None:
    assert is_moderator(make_interaction(roles=(OTHER_ROLE, MOD_ROLE)))


@pytest.mark.parametrize(
    "interaction",
    [
        pytest.param(make_interaction(), id="no-permission-no-role"),
        pytest.param(make_interaction(roles=(OTHER_ROLE,)), id="unrelated-role"),
        pytest.param(
            make_interaction(permissions=discord.Permissions(manage_messages=True, kick_members=True)),
            id="other-permissions",
        ),
        pytest.param(
            make_interaction(roles=(MOD_ROLE,), moderator_roles=()),
            id="no-roles-configured",
        ),
        pytest.param(
            make_interaction(
                permissions=discord.Permissions(manage_guild=True),
                guild_id=None,
                member=False,
            ),
            id="direct-message",
        ),
    ],
)
def test_everyone_else_is_refused(interaction: discord.Interaction) -> None:
    assert not is_moderator(interaction)


def test_refusal_raises_a_check_failure_with_a_one_line_message() -> None:
    with pytest.raises(NotModerator) as caught:
        ensure_moderator(make_interaction())
    assert isinstance(caught.value, app_commands.CheckFailure)
    assert "\n" not in str(caught.value) and "moderator" in str(caught.value)


def test_the_rule_accepts_exactly_the_declared_permissions() -> None:
    assert member_is_moderator(MODERATOR_PERMISSIONS, (), ())
    assert not member_is_moderator(discord.Permissions.none(), (), ())


def test_moderator_group_declares_permissions_for_its_subcommands() -> None:
    group = ModeratorGroup(name="kb", description="knowledge base")
    assert group.default_permissions == MODERATOR_PERMISSIONS
    assert group.guild_only is True


@pytest.mark.asyncio
async def test_moderator_group_refuses_non_moderators_at_run_time() -> None:
    group = ModeratorGroup(name="kb", description="knowledge base")
    with pytest.raises(NotModerator):
        await group.interaction_check(make_interaction())
    assert await group.interaction_check(make_interaction(roles=(MOD_ROLE,)))
