"""The Discord client: intents, worker pool, extensions, persistent views, command errors.

``DirectiveBot(settings, service)`` holds no global state, so tests can start several against a
fake Discord. All knowledge-base work (model, FAISS) runs in ``run_blocking``'s worker pool and
all SQLite work in ``run_db``'s single thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import pkgutil
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.db import Database
from bot.discord.cooldown import QuestionLimiter
from bot.discord.replies import NO_MENTIONS, report_error
from bot.discord.views import PERSISTENT_ITEMS
from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.models import Answer, Article
    from bot.service import IndexInfo

log = logging.getLogger(__name__)

R = TypeVar("R")

COGS_PACKAGE = "bot.discord.cogs"


class AnswerService(Protocol):
    """What the bot needs from ``bot.service.KnowledgeService`` (tests pass a small fake)."""

    settings: Settings

    def ask(self, question: str, *, max_excerpts: int | None = None) -> Answer: ...

    def info(self) -> IndexInfo: ...

    def articles(self) -> list[Article]: ...

    def covered_topics(self) -> tuple[str, ...]: ...

    def reload_if_changed(self) -> tuple[str, str] | None: ...


def find_extensions(package: str = COGS_PACKAGE) -> tuple[str, ...]:
    """Every cog module or package under ``bot/discord/cogs`` (a new ``kb`` cog needs no edit here)."""
    module = __import__(package, fromlist=["__path__"])
    return tuple(
        f"{package}.{info.name}"
        for info in sorted(pkgutil.iter_modules(module.__path__), key=lambda i: i.name)
        if not info.name.startswith("_")
    )


def build_intents(settings: Settings) -> discord.Intents:
    """Only what the bot uses: guilds always; message content only to answer mentions and threads."""
    intents = discord.Intents.none()
    intents.guilds = True
    if settings.discord.mention_replies:
        intents.guild_messages = True
        intents.message_content = True
    return intents


class DirectiveTree(app_commands.CommandTree["DirectiveBot"]):
    """The command tree, with one error handler for every slash command and context menu."""

    async def on_error(
        self,
        interaction: discord.Interaction[DirectiveBot],
        error: app_commands.AppCommandError,
        /,
    ) -> None:
        name = interaction.command.qualified_name if interaction.command else "unknown command"
        await report_error(interaction, error, where=f"/{name}")


class DirectiveBot(commands.AutoShardedBot):
    """The bot, built from settings and an opened knowledge service."""

    tree: DirectiveTree  # type: ignore[assignment]

    def __init__(
        self,
        settings: Settings,
        service: AnswerService,
        *,
        db: Database | None = None,
        extensions: Sequence[str] | None = None,
        sync_commands: bool = True,
        poll_index: bool = True,
        handle_sighup: bool = False,
        guild_ready_timeout: float = 2.0,
        **options: Any,
    ) -> None:
        shard_ids = list(settings.discord.shard_ids) or None
        if shard_ids is not None and settings.discord.shard_count is None:
            raise ConfigError("discord.shard_ids needs discord.shard_count as well.")
        super().__init__(
            command_prefix=commands.when_mentioned,  # unused: the bot has no prefix commands
            help_command=None,
            intents=build_intents(settings),
            allowed_mentions=NO_MENTIONS,
            shard_count=settings.discord.shard_count,
            shard_ids=shard_ids,
            tree_cls=DirectiveTree,
            guild_ready_timeout=guild_ready_timeout,
            **options,
        )
        self.settings = settings
        self.service = service
        self._db = db
        self._owns_db = db is None
        self.extension_names = tuple(extensions) if extensions is not None else None
        self.sync_commands = sync_commands
        self.poll_index = poll_index
        # SIGHUP means "check for a new index now"; one process-wide handler, so only run_bot asks for it.
        self.handle_sighup = handle_sighup
        self._sighup_installed = False
        self._reload_now = asyncio.Event()
        self._reload_reason = "poll"
        self.limiter = QuestionLimiter.from_settings(settings.discord)
        self.bot_threads: set[int] = set()
        self.executor = ThreadPoolExecutor(max(1, settings.discord.workers), thread_name_prefix="directive-ask")
        self.db_executor = ThreadPoolExecutor(1, thread_name_prefix="directive-db")
        self._poller: asyncio.Task[None] | None = None
        self._shut_down = False

    @property
    def db(self) -> Database:
        """The bot's SQLite store (opened in ``setup_hook`` unless one was given)."""
        if self._db is None:
            raise RuntimeError("the database is opened in setup_hook; the bot has not started")
        return self._db

    async def run_blocking(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run CPU-heavy service work (model, FAISS) in the worker pool, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def run_db(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run a SQLite call on the database thread, so it never waits behind a slow answer."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.db_executor, functools.partial(fn, *args, **kwargs))

    async def setup_hook(self) -> None:
        if self._db is None:
            self._db = await self.run_db(Database.open, self.settings)
        self.bot_threads = await self.run_db(self.db.bot_threads)
        names = self.extension_names if self.extension_names is not None else find_extensions()
        for name in names:
            await self.load_extension(name)
        self.add_dynamic_items(*PERSISTENT_ITEMS)
        if self.sync_commands:
            await self.sync_tree()
        if self.handle_sighup:
            self._install_sighup()
        if self.poll_index and (self.settings.discord.index_poll_seconds > 0 or self._sighup_installed):
            self._poller = asyncio.create_task(self._poll_index(), name="directive-index-poll")

    def _install_sighup(self) -> None:
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.request_index_reload, "SIGHUP")
        except (NotImplementedError, RuntimeError, ValueError, AttributeError):
            log.warning("SIGHUP cannot be handled here; new indexes are taken up by polling only")
            return
        self._sighup_installed = True

    def request_index_reload(self, reason: str = "request") -> None:
        """Check for a new index now rather than at the next poll (what SIGHUP does)."""
        self._reload_reason = reason
        self._reload_now.set()

    async def sync_tree(self) -> list[app_commands.AppCommand]:
        """Publish the commands: to ``discord.sync_guild`` (instant) when set, else globally."""
        guild_id = self.settings.discord.sync_guild
        try:
            if guild_id is not None:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
            else:
                synced = await self.tree.sync()
        except discord.HTTPException:
            # The commands Discord already has keep working; a failed sync must not stop the bot.
            log.exception("command sync failed; continuing with the commands Discord already has")
            return []
        log.info(
            "synced %d commands to %s",
            len(synced),
            f"guild {guild_id}" if guild_id else "all guilds",
        )
        return synced

    async def _poll_index(self) -> None:
        """Swap in an index built offline (``directive-bot index build``) without a restart.

        Checks every ``discord.index_poll_seconds`` (a read of the small CURRENT pointer) and at once
        on SIGHUP or :meth:`request_index_reload`.
        """
        interval = self.settings.discord.index_poll_seconds
        while not self.is_closed():
            reason = "poll"
            try:
                await asyncio.wait_for(self._reload_now.wait(), timeout=interval if interval > 0 else None)
                reason = self._reload_reason
            except TimeoutError:
                pass
            self._reload_now.clear()
            try:
                changed = await self.run_blocking(self.service.reload_if_changed)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("checking for a new index failed")
                continue
            if changed is not None:
                log.info("index reloaded old_version=%s new_version=%s via=%s", *changed, reason)
            elif reason != "poll":
                log.info("index checked via=%s: no new index", reason)

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: mentions are handled by the ask cog's listener."""

    async def on_ready(self) -> None:
        log.info(
            "ready user=%s guilds=%d shards=%s",
            self.user,
            len(self.guilds),
            self.shard_count,
        )

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        if self._sighup_installed:
            self._sighup_installed = False
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        try:
            await super().close()
        finally:
            self._shutdown_pools()

    def _shutdown_pools(self) -> None:
        if self._shut_down:
            return
        self._shut_down = True
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self._owns_db and self._db is not None:
            # Closed on the database thread, after any write still queued there.
            self.db_executor.submit(self._db.close)
        self.db_executor.shutdown(wait=False)


async def run_bot(settings: Settings, *, service: AnswerService | None = None) -> None:
    """``directive-bot run``: check the token, open the knowledge service off the loop, connect."""
    token = settings.discord_token
    if not token:
        raise ConfigError("DISCORD_TOKEN is not set; export the bot token in the environment and run again.")
    if not logging.getLogger().handlers:
        discord.utils.setup_logging()
    if service is None:
        from bot.service import KnowledgeService

        opened = await asyncio.to_thread(KnowledgeService.open, settings, build_if_needed=True, log=log.info)
        service = opened
    async with DirectiveBot(settings, service, handle_sighup=True) as bot:
        try:
            await bot.start(token)
        except discord.LoginFailure:
            raise ConfigError(
                "Discord rejected DISCORD_TOKEN; copy the bot token again from the developer portal."
            ) from None
        except discord.PrivilegedIntentsRequired:
            raise ConfigError(
                "Enable the Message Content intent for the bot in the developer portal, "
                "or set discord.mention_replies: false."
            ) from None
