"""The Discord client: intents, worker pool, extensions, persistent views, command sync, errors.

``DirectiveBot(settings, service)`` holds no global state, so tests can start several against a
fake Discord. Answering (model, FAISS) runs in ``run_blocking``'s worker pool and the edge's own
SQLite work (stored answers, votes, gaps, audit rows) in ``run_db``'s single thread, never on the
event loop; rebuilds and their log entries are the knowledge service's (the kb cog's build thread).

Command sync is rate-limited by Discord and global changes take a while to spread, so a start-up
syncs only when the command tree differs from the last one synced (its hash is kept in
``data_dir``), and only in the process running shard 0; ``directive-bot sync`` forces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import functools
import hashlib
import json
import logging
import os
import pkgutil
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.db import Database
from bot.discord.cooldown import QuestionLimiter
from bot.discord.queue import lower_thread_priority
from bot.discord.replies import NO_MENTIONS, report_error
from bot.discord.startup import start_with_retry
from bot.discord.translator import CatalogueTranslator
from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.pins import Pin, PinDraft, PinnedQuote, SentenceChoice
    from bot.records import Answer, Article, Excerpt
    from bot.service import IndexInfo, RebuildOutcome, RunningRebuild
    from bot.store import IndexStatus

log = logging.getLogger(__name__)

R = TypeVar("R")

COGS_PACKAGE = "bot.discord.cogs"
SYNC_STATE_FILE = "command-sync.json"
SYNC_LOCK_FILE = "command-sync.lock"
PRUNE_EVERY_SECONDS = 24 * 3600


class AnswerService(Protocol):
    """Everything the Discord edge asks of ``bot.service.KnowledgeService`` (tests pass small fakes).

    Asking (the ask, sources and about cogs), the index and its rebuilds, and the moderators'
    pins (the kb cog); blocking methods, called through ``run_blocking`` or a cog's own pool.
    """

    settings: Settings

    # -- asking
    def ask(self, question: str, *, max_excerpts: int | None = None, use_pins: bool = True) -> Answer: ...

    def ask_cached(self, question: str, *, max_excerpts: int | None = None, compute: bool = True) -> Answer | None: ...

    def articles(self) -> list[Article]: ...

    def covered_topics(self) -> tuple[str, ...]: ...

    # -- the index
    def info(self) -> IndexInfo: ...

    def status(self) -> IndexStatus: ...

    @property
    def live_version(self) -> str | None: ...

    def indexed_chunks(self, article_id: str) -> int: ...

    def reload_if_changed(self) -> tuple[str, str] | None: ...

    @property
    def running_rebuild(self) -> RunningRebuild | None: ...

    def rebuild_logged(
        self, *, started_by: str, name: str | None = None, progress: Callable[[int, int], None] | None = None
    ) -> RebuildOutcome: ...

    # -- the moderators' pins
    @property
    def pin_db(self) -> Database | None: ...

    def use_pins(self, db: Database | None) -> list[Pin]: ...

    def search_passages(self, text: str, limit: int = 25) -> list[SentenceChoice]: ...

    def passage_at(self, ref: str) -> PinnedQuote: ...

    def passage_of(self, article_id: str, start: int, end: int) -> PinnedQuote: ...

    def find_passage(self, text: str) -> PinnedQuote: ...

    def draft_pin(self, question: str, quotes: list[PinnedQuote] | tuple[PinnedQuote, ...]) -> PinDraft: ...

    def with_phrasings(self, draft: PinDraft, phrasings: list[str] | tuple[str, ...]) -> PinDraft: ...

    def preview_excerpts(self, quotes: Sequence[PinnedQuote]) -> list[Excerpt]: ...

    def pinned_for(self, question: str) -> int | None: ...

    def save_pin(self, draft: PinDraft, *, actor: str) -> Pin: ...

    def unpin(self, pin_id: int, *, actor: str) -> Pin: ...

    def add_pin_phrasings(self, pin_id: int, phrasings: list[str] | tuple[str, ...], *, actor: str) -> Pin: ...


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
        # Workers may yield the cores to the event loop (discord.worker_niceness), for a machine shared with other work.
        self.executor = ThreadPoolExecutor(
            max(1, settings.discord.workers),
            thread_name_prefix="directive-ask",
            initializer=lower_thread_priority,
            initargs=(settings.discord.worker_niceness,),
        )
        self.db_executor = ThreadPoolExecutor(1, thread_name_prefix="directive-db")
        self._poller: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
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
        # Command names and descriptions in each member's language (the same catalogues as replies).
        await self.tree.set_translator(CatalogueTranslator())
        names = self.extension_names if self.extension_names is not None else find_extensions()
        for name in names:
            await self.load_extension(name)
        use_pins = getattr(self.service, "use_pins", None)
        if use_pins is not None:  # the moderators' pins in this bot's database, checked against the index
            await self.run_blocking(use_pins, self.db)
        if self.sync_commands and self.settings.discord.sync_on_start:
            if self.syncs_commands:
                await self.sync_tree()
            else:
                log.info("not syncing commands: shard 0 runs in another process and syncs them")
        if self.handle_sighup:
            self._install_sighup()
        if self.poll_index and (self.settings.discord.index_poll_seconds > 0 or self._sighup_installed):
            self._poller = asyncio.create_task(self._poll_index(), name="directive-index-poll")
        if self.settings.discord.answers_kept_days > 0:
            self._pruner = asyncio.create_task(self._prune_answers(), name="directive-prune-answers")

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

    @property
    def syncs_commands(self) -> bool:
        """Whether this process may sync at start-up: the one running shard 0 (or every shard)."""
        shard_ids = self.settings.discord.shard_ids
        return not shard_ids or 0 in shard_ids

    async def command_hash(self) -> str:
        """A hash of exactly what a sync would send: every command as Discord receives it.

        Translations included, so a new or corrected translation is synced like any other change.
        """
        guild_id = self.settings.discord.sync_guild
        found = list(self.tree.get_commands())  # global ones (a guild sync copies them to the guild)
        if guild_id is not None:
            found += self.tree.get_commands(guild=discord.Object(id=guild_id))
        translator = self.tree.translator
        dicts = [
            await c.get_translated_payload(self.tree, translator) if translator is not None else c.to_dict(self.tree)
            for c in found
        ]
        payload = sorted(dicts, key=lambda d: (d.get("type", 1), d["name"]))
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _sync_target(self) -> str:
        guild_id = self.settings.discord.sync_guild
        return f"{self.application_id}/{'guild:' + str(guild_id) if guild_id is not None else 'global'}"

    async def sync_tree(self, *, force: bool = False) -> list[app_commands.AppCommand] | None:
        """Publish the commands unless Discord already has exactly these; None when nothing was sent.

        Publishes to ``discord.sync_guild`` (instant) when set, else globally. A file lock in
        ``data_dir`` keeps two processes on one machine from syncing at once; the hash of what
        was synced is written only after Discord accepted it.
        """
        state_dir = Path(self.settings.paths.data_dir)
        digest = await self.command_hash()
        target = self._sync_target()
        lock = await asyncio.to_thread(_try_lock, state_dir / SYNC_LOCK_FILE)
        if lock is None:
            log.info("another process is syncing commands; not syncing from this one")
            return None
        try:
            state = await asyncio.to_thread(_read_sync_state, state_dir)
            if not force and state.get(target, {}).get("hash") == digest:
                log.info("commands unchanged since the last sync (%s); not syncing", digest[:12])
                return None
            synced = await self._publish()
            if synced is None:
                return None
            state[target] = {"hash": digest, "synced_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
            await asyncio.to_thread(_write_sync_state, state_dir, state)
            return synced
        finally:
            lock.close()  # releases the lock

    async def _publish(self) -> list[app_commands.AppCommand] | None:
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
            return None
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

    async def prune_answers_once(self) -> int:
        """Delete stored answers older than ``discord.answers_kept_days``; how many were deleted."""
        age = dt.timedelta(days=self.settings.discord.answers_kept_days)
        removed = await self.run_db(self.db.prune_answers, older_than=age)
        if removed:
            log.info("deleted %d answers older than %d days", removed, age.days)
        return removed

    async def _prune_answers(self) -> None:
        """At start-up, then once a day, so the answers table stops growing forever."""
        while not self.is_closed():
            try:
                await self.prune_answers_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("deleting old answers failed")
            await asyncio.sleep(PRUNE_EVERY_SECONDS)

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
        for task in (self._poller, self._pruner):
            if task is not None:
                task.cancel()
        if self._db is not None and getattr(self.service, "pin_db", None) is self._db:
            self.service.use_pins(None)  # the database closes with the bot
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


def _try_lock(path: Path) -> Any:
    """An exclusive lock on ``path`` (an open file; closing it unlocks), or None when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held until the caller closes it
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _read_sync_state(state_dir: Path) -> dict[str, Any]:
    """What was last synced, per application and target; a missing or broken file means "never"."""
    try:
        data = json.loads((state_dir / SYNC_STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_sync_state(state_dir: Path, state: dict[str, Any]) -> None:
    """Atomically: a crash mid-write leaves the previous state, which at worst means one extra sync."""
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f".{SYNC_STATE_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, state_dir / SYNC_STATE_FILE)


class _NoService:
    """Stands in for the knowledge service where only the command tree is needed (``directive-bot sync``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __getattr__(self, name: str) -> Any:
        # AttributeError, so optional features probed with getattr(service, name, None) read as absent.
        raise AttributeError(f"the knowledge service is not loaded here (asked for {name})")


async def sync_commands(settings: Settings) -> list[app_commands.AppCommand] | None:
    """``directive-bot sync``: log in over HTTP only (no gateway, no models) and publish the commands."""
    token = settings.discord_token
    if not token:
        raise ConfigError("DISCORD_TOKEN is not set; export the bot token in the environment and run again.")
    bot = DirectiveBot(settings, _NoService(settings), sync_commands=False, poll_index=False)
    async with bot:
        try:
            await bot.login(token)
        except discord.LoginFailure:
            raise ConfigError(
                "Discord rejected DISCORD_TOKEN; copy the bot token again from the developer portal."
            ) from None
        synced = await bot.sync_tree(force=True)
        if synced is None:
            raise ConfigError("Command sync did not complete (see the log above); try again.")
        return synced


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
        # A stop (systemd, docker) closes cleanly, so members still waiting are told to ask again.
        loop = asyncio.get_running_loop()
        closing: set[asyncio.Task[None]] = set()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, lambda: closing.add(loop.create_task(bot.close())))
        try:
            await start_with_retry(bot, token)
        except discord.LoginFailure:
            raise ConfigError(
                "Discord rejected DISCORD_TOKEN; copy the bot token again from the developer portal."
            ) from None
        except discord.PrivilegedIntentsRequired:
            raise ConfigError(
                "Enable the Message Content intent for the bot in the developer portal, "
                "or set discord.mention_replies: false."
            ) from None
