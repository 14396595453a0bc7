"""Long rebuilds show progress: the moderator's reply is edited with chunks embedded of total and time left."""

from __future__ import annotations

import asyncio

from bot.discord.cogs.kb._views import ProgressMessage, render_progress


def test_progress_says_chunks_embedded_of_total_and_time_left() -> None:
    assert render_progress(100, 400, 20.0) == (
        "Rebuilding the index: embedded 100 of 400 chunks (25%), about 1 min left."
    )


def test_progress_before_the_first_chunk_estimates_nothing() -> None:
    assert "estimating the time left" in render_progress(0, 400, 5.0)


async def test_a_long_rebuild_edits_the_reply_with_its_progress() -> None:
    edits: list[str] = []

    async def edit(text: str) -> None:
        edits.append(text)

    progress = ProgressMessage(edit, asyncio.get_running_loop(), first_after=0.0, every=0.0)
    await asyncio.to_thread(progress, 50, 200)
    while not edits:
        await asyncio.sleep(0.01)
    assert len(edits) == 1
    assert edits[0].startswith("Rebuilding the index: embedded 50 of 200 chunks (25%), about ")


async def test_a_quick_rebuild_never_edits_the_reply() -> None:
    edits: list[str] = []

    async def edit(text: str) -> None:
        edits.append(text)

    progress = ProgressMessage(edit, asyncio.get_running_loop(), first_after=3600.0)
    for done in range(0, 201, 50):
        await asyncio.to_thread(progress, done, 200)
    await asyncio.sleep(0)
    assert edits == []
