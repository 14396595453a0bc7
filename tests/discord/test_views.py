"""The shared user-bound views (paginator, confirmation), with a mocked interaction."""

from __future__ import annotations

from unittest.mock import AsyncMock, MagicMock

import discord
import pytest

from bot.config import PathSettings, Settings
from bot.discord.views import ConfirmView, SourcesPaginator
from bot.records import Article
from tests.discord.mock_interactions import make_interaction, sent


def articles(n: int) -> list[Article]:
    return [Article(id=f"a{i}", title=f"T{i}", body="b") for i in range(n)]


@pytest.mark.asyncio
async def test_paginator_answers_only_its_invoker() -> None:
    view = SourcesPaginator(articles(30), owner_id=10, per_page=10, timeout=60)
    stranger = make_interaction(user_id=99)
    assert not await view.interaction_check(stranger)
    assert sent(stranger)["ephemeral"] is True
    assert await view.interaction_check(make_interaction(user_id=10))


@pytest.mark.asyncio
async def test_paginator_turns_pages_and_disables_the_ends() -> None:
    view = SourcesPaginator(articles(25), owner_id=10, per_page=10, timeout=60)
    assert view.previous_page.disabled and not view.next_page.disabled
    for _ in range(2):
        await view._turn(make_interaction(user_id=10), +1)
    assert view.page == 2 and view.next_page.disabled and not view.previous_page.disabled


@pytest.mark.asyncio
async def test_paginator_disables_its_buttons_on_timeout() -> None:
    view = SourcesPaginator(articles(25), owner_id=10, per_page=10, timeout=60)
    origin = make_interaction(user_id=10)
    origin.edit_original_response = AsyncMock()
    view.origin = origin
    await view.on_timeout()
    origin.edit_original_response.assert_awaited_once()
    assert all(child.disabled for child in view.children)


@pytest.mark.asyncio
async def test_confirmation_refuses_an_invoker_who_is_no_longer_a_moderator() -> None:
    view = ConfirmView(owner_id=10, timeout=30)
    interaction = make_interaction(MagicMock(settings=Settings(paths=PathSettings())), user_id=10)
    interaction.permissions = discord.Permissions.none()
    interaction.user.roles = []
    assert not await view.interaction_check(interaction)


@pytest.mark.asyncio
async def test_confirmation_records_the_choice_and_stops() -> None:
    view = ConfirmView(owner_id=10, timeout=30, moderators_only=False)
    await view._finish(make_interaction(user_id=10), True)
    assert view.value is True and view.is_finished()
    assert all(child.disabled for child in view.children)
