"""Proves the fake Discord behaves like Discord, using the real discord.py client.

Every test starts a small ``commands.Bot`` written here (one behaviour per test).
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import aiohttp
import discord
import pytest
import pytest_asyncio
from discord import app_commands
from discord.ext import commands
from discord.webhook.async_ import async_context, interaction_response_params

from .fake_discord import CommandNotAvailable, FakeDiscord, Perm
from .harness import redirect_discord_py

# --------------------------------------------------------------------------------------
# A minimal bot exercising every interaction style
# --------------------------------------------------------------------------------------


class ConfirmView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=30)

    @discord.ui.button(label="Confirm", custom_id="confirm", style=discord.ButtonStyle.success)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(content=f"confirmed by {interaction.user.name}", view=None)


class FeedbackModal(discord.ui.Modal, title="Feedback"):
    answer = discord.ui.TextInput(label="Your answer", custom_id="answer", max_length=200)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"thanks: {self.answer.value}", ephemeral=True)


class MiniBot(commands.Bot):
    def __init__(self, *, sharded_intents: discord.Intents | None = None) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=sharded_intents or discord.Intents.default())
        self.seen_messages: list[discord.Message] = []
        self.error_codes: list[int] = []
        self.resumed = 0
        self.threads_created: list[discord.Thread] = []
        self.release = asyncio.Event()
        self._add_commands()

    def _add_commands(self) -> None:
        tree = self.tree

        @tree.command(description="Ask a question")
        @app_commands.describe(question="What to ask")
        async def ask(interaction: discord.Interaction, question: str) -> None:
            await interaction.response.defer(thinking=True)
            await asyncio.sleep(0.05)
            await interaction.followup.send(
                f"answer: {question}",
                embed=discord.Embed(title="Sources", description="1. the docs"),
                allowed_mentions=discord.AllowedMentions.none(),
            )

        @tree.command(description="Only you can see this")
        async def secret(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("only you", ephemeral=True)

        kb = app_commands.Group(
            name="kb", description="Knowledge base", default_permissions=discord.Permissions(manage_guild=True)
        )

        @kb.command(name="add", description="Add a URL")
        async def kb_add(interaction: discord.Interaction, url: str) -> None:
            await interaction.response.send_message(f"added {url}", ephemeral=True)

        tree.add_command(kb)

        @tree.command(description="Confirmation panel")
        async def panel(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("Confirm?", view=ConfirmView())

        @tree.command(description="Leave feedback")
        async def feedback(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(FeedbackModal())

        @tree.command(description="Responds too late")
        async def slow(interaction: discord.Interaction) -> None:
            await asyncio.sleep(3.5)
            try:
                await interaction.response.send_message("too late")
            except discord.HTTPException as exc:
                self.error_codes.append(exc.code)

        @tree.command(description="Responds twice")
        async def double(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("first")
            # bypass discord.py's own guard to hit the server a second time
            try:
                await async_context.get().create_interaction_response(
                    interaction.id,
                    interaction.token,
                    session=interaction._session,
                    params=interaction_response_params(type=4, data={"content": "second"}),
                )
            except discord.HTTPException as exc:
                self.error_codes.append(exc.code)

        @tree.command(description="Oversize embed")
        async def big(interaction: discord.Interaction) -> None:
            try:
                await interaction.response.send_message(embed=discord.Embed(description="x" * 5000))
            except discord.HTTPException as exc:
                self.error_codes.append(exc.code)
                await interaction.response.send_message("answer too long")

        @tree.command(description="Blocks the event loop")
        async def block(interaction: discord.Interaction) -> None:
            time.sleep(1.5)  # deliberately blocking
            await interaction.response.send_message("done")

        @tree.command(description="Defers, waits for the test, then follows up")
        async def later(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            await self.release.wait()
            try:
                await interaction.followup.send("finally")
            except discord.HTTPException as exc:
                self.error_codes.append(exc.code)

        @tree.command(description="Search the docs")
        async def search(interaction: discord.Interaction, topic: str) -> None:
            await interaction.response.send_message(f"searching {topic}")

        @search.autocomplete("topic")
        async def search_topic(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=f"{current} {n}", value=f"{current}-{n}") for n in ("guide", "api")]

        @tree.context_menu(name="Quote")
        async def quote(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.send_message(f"quoted: {message.content}", ephemeral=True)

    async def setup_hook(self) -> None:
        await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        if message.author.id == self.user.id:
            return
        self.seen_messages.append(message)
        if self.user in message.mentions:
            if "thread" in message.content:
                await message.create_thread(name="discussion")
            else:
                await message.reply("pong", mention_author=False)

    async def on_resumed(self) -> None:
        self.resumed += 1

    async def on_thread_create(self, thread: discord.Thread) -> None:
        self.threads_created.append(thread)


@pytest_asyncio.fixture
async def env(discord_harness):
    fake: FakeDiscord = discord_harness.fake
    sg = await fake.create_standard_guild()
    bot = MiniBot()
    await discord_harness.start_client(bot)
    return SimpleNamespace(fake=fake, bot=bot, sg=sg, channel=sg.channel, harness=discord_harness)


def seen_contents(bot: MiniBot) -> list[str]:
    return [m.content for m in bot.seen_messages]


# --------------------------------------------------------------------------------------
# Login, sync, sharding
# --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_login_calls_users_me_and_application_info(env):
    paths = [(r.method, r.path) for r in env.fake.requests]
    assert ("GET", "/users/@me") in paths
    assert ("GET", "/oauth2/applications/@me") in paths
    assert env.bot.user.id == env.fake.bot_user.id
    assert env.bot.application_id == env.fake.app_id
    assert env.fake.unknown_routes == []


@pytest.mark.asyncio
async def test_gateway_uses_zlib_stream_and_delivers_guild_create(env):
    conn = env.fake.live_connections()[0]
    assert conn.compression == discord.utils._ActiveDecompressionContext.COMPRESSION_TYPE == "zlib-stream"
    guild = env.bot.get_guild(env.sg.guild.id)
    assert guild is not None and guild.me is not None
    assert {c.name for c in guild.text_channels} == {"general"}
    assert {r.name for r in guild.roles} >= {"@everyone", "Moderator"}


@pytest.mark.asyncio
async def test_command_sync_registers_names_and_options(env):
    cmds = {c["name"]: c for c in env.fake.registered_commands()}
    assert set(cmds) == {
        "ask",
        "secret",
        "kb",
        "panel",
        "feedback",
        "slow",
        "double",
        "big",
        "block",
        "later",
        "search",
        "Quote",
    }
    [question] = cmds["ask"]["options"]
    assert (question["name"], question["type"], question["required"]) == ("question", 3, True)
    add = cmds["kb"]["options"][0]
    assert (add["name"], add["type"]) == ("add", 1)
    assert [(o["name"], o["type"], o.get("required")) for o in add["options"]] == [("url", 3, True)]
    assert cmds["kb"]["default_member_permissions"] == str(Perm.MANAGE_GUILD)
    assert cmds["Quote"]["type"] == 3


@pytest.mark.asyncio
@pytest.mark.fake_discord(shard_count=2)
async def test_autosharded_bot_receives_each_guild_on_its_shard(discord_harness):
    fake = discord_harness.fake
    g0 = await fake.create_guild("Shard zero", shard_id=0)
    g1 = await fake.create_guild("Shard one", shard_id=1)
    bot = commands.AutoShardedBot(command_prefix="!", intents=discord.Intents.default())
    await discord_harness.start_client(bot)
    assert bot.shard_count == 2
    assert {g.id for g in bot.guilds} == {g0.id, g1.id}
    assert bot.get_guild(g0.id).shard_id == 0 and bot.get_guild(g1.id).shard_id == 1
    assert sorted(c.shard for c in fake.live_connections()) == [(0, 2), (1, 2)]
    assert ("GET", "/gateway/bot") in [(r.method, r.path) for r in fake.requests]


# --------------------------------------------------------------------------------------
# Slash commands
# --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_slash_defer_then_followup_fills_the_original(env):
    rec = await env.fake.invoke_slash("ask", {"question": "what is x?"})
    resp = await rec.wait_response(timeout=3)
    assert resp.type == 5 and not resp.ephemeral
    [followup] = await rec.wait_followups(1, timeout=3)
    assert followup.content == "answer: what is x?"
    assert followup.embeds[0]["title"] == "Sources"
    assert followup.allowed_mentions == {"parse": []}
    assert followup is rec.original and not followup.loading
    assert followup in env.fake.channel_messages(env.channel)


@pytest.mark.asyncio
async def test_ephemeral_response_is_flagged_and_not_in_channel(env):
    rec = await env.fake.invoke_slash("secret")
    resp = await rec.wait_response(timeout=3)
    assert resp.type == 4 and resp.content == "only you"
    assert resp.ephemeral and resp.flags & 64
    assert rec.original not in env.fake.channel_messages(env.channel)
    assert rec.original in env.fake.channel_messages(env.channel, include_ephemeral=True)


@pytest.mark.asyncio
async def test_subcommand_with_option_reaches_the_handler(env):
    rec = await env.fake.invoke_slash("kb add", {"url": "https://example.com/doc"}, user=env.sg.moderator)
    resp = await rec.wait_response(timeout=3)
    assert resp.content == "added https://example.com/doc"
    assert rec.data["options"][0] == {
        "name": "add",
        "type": 1,
        "options": [{"name": "url", "type": 3, "value": "https://example.com/doc"}],
    }


@pytest.mark.asyncio
async def test_default_member_permissions_hide_command_from_plain_member(env):
    with pytest.raises(CommandNotAvailable):
        await env.fake.invoke_slash("kb add", {"url": "https://example.com"}, user=env.sg.member)


@pytest.mark.asyncio
async def test_message_context_menu_gets_resolved_target(env):
    target = await env.fake.send_message(env.channel, env.sg.member, "remember this")
    rec = await env.fake.invoke_message_command("Quote", target, user=env.sg.member)
    resp = await rec.wait_response(timeout=3)
    assert resp.content == "quoted: remember this"


@pytest.mark.asyncio
async def test_autocomplete_returns_choices(env):
    rec = await env.fake.autocomplete("search", {"topic": "inst"}, focused="topic")
    resp = await rec.wait_response(timeout=3)
    assert resp.type == 8
    assert resp.choices == [{"name": "inst guide", "value": "inst-guide"}, {"name": "inst api", "value": "inst-api"}]


# --------------------------------------------------------------------------------------
# Messages, components, modals
# --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_mention_is_answered_with_a_reply_reference(env):
    fake = env.fake
    user_msg = await fake.send_message(env.channel, env.sg.member, f"{fake.mention(fake.bot_user)} hello")
    reply = await fake.wait_for_message(env.channel, after=user_msg, timeout=3)
    assert reply.content == "pong"
    assert reply.type == 19 and reply.reference_id == user_msg.id
    assert reply.allowed_mentions["replied_user"] is False
    assert reply.mentions == []  # the author was not pinged


@pytest.mark.asyncio
async def test_message_content_is_blank_without_intent_unless_mentioned(env):
    fake = env.fake
    await fake.send_message(env.channel, env.sg.member, "no mention here")
    mention = await fake.send_message(env.channel, env.sg.member, f"{fake.mention(fake.bot_user)} visible")
    await fake.wait_for_message(env.channel, after=mention, timeout=3)
    assert seen_contents(env.bot) == ["", f"<@{fake.bot_user.id}> visible"]


@pytest.mark.asyncio
async def test_thread_created_from_message_dispatches_thread_create(env):
    fake = env.fake
    msg = await fake.send_message(env.channel, env.sg.member, f"{fake.mention(fake.bot_user)} thread please")
    await fake.wait_until(lambda: env.bot.threads_created, timeout=3, what="on_thread_create")
    thread = env.bot.threads_created[0]
    assert thread.id == msg.id and thread.parent_id == env.channel.id and thread.name == "discussion"
    assert fake.channels[msg.id].is_thread


@pytest.mark.asyncio
async def test_button_click_is_handled_by_the_view(env):
    fake = env.fake
    rec = await fake.invoke_slash("panel")
    resp = await rec.wait_response(timeout=3)
    assert resp.message.find_component("confirm")["label"] == "Confirm"
    click = await fake.click_button(resp.message, "confirm", user=env.sg.moderator)
    update = await click.wait_response(timeout=3)
    assert update.type == 7
    assert resp.message.content == "confirmed by moderator"
    assert resp.message.components == []


@pytest.mark.asyncio
async def test_modal_submit_reaches_on_submit(env):
    fake = env.fake
    rec = await fake.invoke_slash("feedback")
    resp = await rec.wait_response(timeout=3)
    assert resp.type == 9 and resp.modal["title"] == "Feedback"
    submit = await fake.submit_modal(rec, values={"answer": "great bot"})
    answer = await submit.wait_response(timeout=3)
    assert answer.content == "thanks: great bot" and answer.ephemeral


# --------------------------------------------------------------------------------------
# Enforcement
# --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_response_after_three_seconds_gets_unknown_interaction(env):
    rec = await env.fake.invoke_slash("slow")
    [err] = await rec.wait_rejected(1, timeout=6)
    assert (err.status, err.code) == (404, 10062)
    await env.fake.wait_until(lambda: env.bot.error_codes, timeout=2, what="the bot to see the error")
    assert env.bot.error_codes == [10062]
    assert rec.response is None


@pytest.mark.asyncio
async def test_second_response_gets_already_acknowledged(env):
    rec = await env.fake.invoke_slash("double")
    [err] = await rec.wait_rejected(1, timeout=3)
    assert (err.status, err.code) == (400, 40060)
    assert rec.response.content == "first"
    await env.fake.wait_until(lambda: env.bot.error_codes, timeout=2, what="the bot to see the error")
    assert env.bot.error_codes == [40060]


@pytest.mark.asyncio
async def test_oversize_embed_gets_invalid_form_body(env):
    rec = await env.fake.invoke_slash("big")
    [err] = await rec.wait_rejected(1, timeout=3)
    assert (err.status, err.code) == (400, 50035)
    assert "data.embeds.0.description" in err.error_paths()
    resp = await rec.wait_response(timeout=3)  # the rejected call did not acknowledge it
    assert resp.content == "answer too long"
    assert env.bot.error_codes == [50035]


@pytest.mark.asyncio
async def test_followup_after_token_expiry_is_rejected(env):
    rec = await env.fake.invoke_slash("later")
    await rec.wait_response(timeout=3)
    env.fake.advance_clock(15 * 60 + 1)
    env.bot.release.set()
    [err] = await rec.wait_rejected(1, timeout=3)
    assert (err.status, err.code) == (401, 50027)


@pytest.mark.asyncio
async def test_429_with_via_header_is_retried_then_succeeds(env):
    fake = env.fake
    rule = fake.rate_limit("POST", r"^/channels/\d+/messages$", times=1, retry_after=0.3)
    user_msg = await fake.send_message(env.channel, env.sg.member, f"{fake.mention(fake.bot_user)} hi")
    reply = await fake.wait_for_message(env.channel, after=user_msg, timeout=5)
    assert reply.content == "pong"
    assert rule.hits == 1
    attempts = fake.requests_to("POST", r"^/channels/\d+/messages$")
    assert [r.status for r in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 0.29


@pytest.mark.asyncio
async def test_unknown_route_is_404_and_recorded(env):
    with pytest.raises(discord.NotFound):
        await env.bot.http.request(discord.http.Route("GET", "/nonexistent/thing"))
    assert ("GET", "/nonexistent/thing") in env.fake.unknown_routes


@pytest.mark.asyncio
async def test_foreign_token_is_rejected_with_401(fake_discord):
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{fake_discord.api_base}/users/@me", headers={"Authorization": "Bot not-the-test-token"}) as resp,
    ):
        assert resp.status == 401
        assert resp.headers["Content-Type"] == "application/json"


@pytest.mark.asyncio
async def test_redirect_refuses_a_non_test_token(fake_discord):
    with pytest.raises(RuntimeError), redirect_discord_py(fake_discord, token="MTIz.real-looking.token"):
        pass


# --------------------------------------------------------------------------------------
# Gateway: reconnect/resume, heartbeats
# --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_reconnect_then_resume_loses_no_event(env):
    fake = env.fake
    bot_mention = fake.mention(fake.bot_user)
    first = await fake.send_message(env.channel, env.sg.member, f"{bot_mention} one")
    await fake.wait_for_message(env.channel, after=first, timeout=3)
    assert await fake.send_reconnect() == 1
    second = await fake.send_message(env.channel, env.sg.member, f"{bot_mention} two")  # while reconnecting
    await fake.wait_for_resume(timeout=5)
    await fake.wait_for_message(env.channel, after=second, timeout=5)
    assert seen_contents(env.bot) == [f"{bot_mention} one", f"{bot_mention} two"]
    assert (fake.identify_count, fake.resume_count) == (1, 1)
    assert fake.live_connections()[0].path == "/resume/"
    await fake.wait_until(lambda: env.bot.resumed, timeout=2, what="on_resumed")


@pytest.mark.asyncio
async def test_heartbeat_gap_is_small_when_the_loop_is_free(env):
    fake = env.fake
    fake.reset_heartbeat_stats()
    await fake.wait_for_heartbeats(4, timeout=3)
    assert 0 < fake.max_heartbeat_gap < fake.heartbeat_interval + 0.25


@pytest.mark.asyncio
async def test_heartbeat_gap_is_large_when_a_handler_blocks_the_loop(env):
    fake = env.fake
    await fake.wait_for_heartbeats(1, timeout=3)
    fake.reset_heartbeat_stats()
    rec = await fake.invoke_slash("block")
    await rec.wait_response(timeout=5)
    await fake.wait_for_heartbeats(3, timeout=3)
    assert fake.max_heartbeat_gap >= 1.4


@pytest.mark.asyncio
async def test_next_change_returns_at_a_state_change_before_its_timeout(env):
    owner = await env.fake.create_user("changer")
    waiter = asyncio.create_task(env.fake.next_change(30.0))
    await asyncio.sleep(0)  # the waiter is registered
    await env.fake.create_guild("Changed", owner=owner)
    done, _ = await asyncio.wait({waiter}, timeout=5.0)
    assert waiter in done


@pytest.mark.asyncio
async def test_next_change_returns_after_its_timeout_when_nothing_changes(env):
    started = time.monotonic()
    await env.fake.next_change(0.2)
    assert 0.15 <= time.monotonic() - started < 5.0
