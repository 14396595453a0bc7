"""The facade the edges use: load once, answer many questions, rebuild and swap without downtime.

Methods are blocking (model inference, FAISS, disk); the Discord edge calls them in worker
threads. The live index is one immutable reference, replaced in a single assignment, so a
question in flight keeps the index it started with while a rebuild swaps in the next.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bot.answer import compose, covered_topics
from bot.answer_cache import AnswerCache, normalise_question
from bot.config import RetrievalSettings, Settings
from bot.errors import (
    DirectiveError,
    IndexMismatch,
    IndexMissing,
    KnowledgeError,
    NotFound,
    PinError,
    RebuildInProgress,
    StorageError,
)
from bot.language import Detection, detect
from bot.multilingual import (
    ENABLE_HINT,
    MODEL_LANGUAGES,
    MultilingualEncoder,
    MultilingualRetriever,
    answer_settings,
    available,
    finish,
    unsupported,
)
from bot.pins import (
    Pin,
    PinBook,
    PinDraft,
    PinnedQuote,
    SentenceChoice,
    apply_match,
    check_imported,
    clean_phrasings,
    export_yaml,
    find_verbatim,
    make_draft,
    quote_at,
    quote_from_ref,
    read_export,
    search_sentences,
    verify,
)
from bot.records import Answer, Article, Excerpt
from bot.retrieval import Mode, Retrieval, Retriever, clean_question
from bot.store import (
    BuildReport,
    IndexStatus,
    LoadedIndex,
    build_index,
    index_status,
    load_index,
    read_manifest,
    read_pointer_text,
)

if TYPE_CHECKING:
    from pathlib import Path

    from bot.db import Database
    from bot.embedding import Embedder
    from bot.late import LateInteraction
    from bot.rerank import CrossEncoder

log = logging.getLogger(__name__)

REBUILD_LOG_ATTEMPTS = 3  # a rebuild-log entry waits out a database another process holds locked

__all__ = ["BuildReport", "ImportReport", "IndexInfo", "KnowledgeService", "RebuildOutcome", "RunningRebuild"]

UNEXPECTED_FAILURE = "an unexpected error (it was logged)"


@dataclass(frozen=True)
class IndexInfo:
    index_version: str
    built_at: dt.datetime | None
    articles: int
    chunks: int
    model: str
    dimension: int
    last_build_seconds: float | None
    stale: bool


@dataclass(frozen=True)
class RunningRebuild:
    """A rebuild this process is running: who started it (as the logs name them, and as people know them) and when."""

    started_by: str
    name: str
    started_at: dt.datetime


@dataclass(frozen=True)
class RebuildOutcome:
    """A finished rebuild: the report, or why it failed and which index is still serving.

    ``logged`` says whether its rebuild-log entry was written (a swapped-in build stays live without it).
    """

    report: BuildReport | None
    error: str | None = None
    serving_version: str | None = None
    logged: bool = True

    @property
    def ok(self) -> bool:
        return self.report is not None


@dataclass(frozen=True)
class ImportReport:
    """``kb pins import``: pins added, and questions skipped because they were already pinned here."""

    added: tuple[Pin, ...]
    skipped: tuple[str, ...]


@dataclass(frozen=True)
class _Live:
    index: LoadedIndex
    retriever: Retriever
    topics: tuple[str, ...]
    signature: str | None
    # Questions in other languages (bot.multilingual); None without the model or its vectors in this build.
    multilingual: MultilingualRetriever | None = None


class KnowledgeService:
    """Embedder, reranker and the live index behind one thread-safe object."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        reranker: CrossEncoder | None,
        count_tokens: Callable[[str], int],
        late: LateInteraction | None = None,
        multilingual: MultilingualEncoder | None = None,
    ) -> None:
        self.settings = settings
        self.multilingual = multilingual
        self.embedder = embedder
        self.reranker = reranker
        self.late = late
        self.count_tokens = count_tokens
        self._live: _Live | None = None
        self._swap_lock = threading.Lock()
        self._rebuild_lock = threading.Lock()
        self._running: RunningRebuild | None = None
        # Repeated questions: keyed by (normalised question, excerpts) per index version and pin book.
        self.answer_cache: AnswerCache[Answer] = AnswerCache(settings.discord.answer_cache_size)
        # Moderators' pins: served only when a database is attached (the bot and `ask` attach one;
        # evaluation does not unless asked), checked against the live index whenever it changes.
        self._pin_db: Database | None = None
        self._pin_lock = threading.Lock()
        self._pins: PinBook = PinBook.empty()

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        build_if_needed: bool = True,
        log: Callable[[str], None] | None = None,
        embedder: Embedder | None = None,
        reranker: CrossEncoder | None = None,
        late: LateInteraction | None = None,
    ) -> KnowledgeService:
        """Load the models (or share ones already loaded) and the index, building it first when missing or stale."""
        from bot.embedding import Embedder, model_token_counter
        from bot.language import load_in_background

        load_in_background()  # overlaps the language classifier's load with the models' and the index's
        say = log or (lambda _msg: None)
        embedder = embedder or Embedder(settings.embedding, cache_dir=encoder_cache(settings))
        if reranker is None and settings.retrieval.rerank:
            from bot.rerank import CrossEncoder

            reranker = CrossEncoder(settings.retrieval.rerank_model)
        if late is None and settings.retrieval.late_interaction:
            from bot.late import LateInteraction

            late = LateInteraction(settings.retrieval.late_model, dim=settings.retrieval.late_dim)
        multilingual = _multilingual_encoder(settings)
        service = cls(settings, embedder, reranker, model_token_counter(settings.embedding), late, multilingual)
        status = index_status(settings, model_name=embedder.name)
        if status.fresh and multilingual is not None and not _has_vectors_of(settings, multilingual):
            status = replace(status, fresh=False, settings_changed=("multilingual model",))
        if not status.fresh:
            if not build_if_needed:
                if not status.built:
                    raise IndexMissing(f"No index in {settings.paths.index_dir}; run `directive-bot index build`.")
            else:
                say(
                    f"Index {status.summary}; building it now."
                    if status.built
                    else f"No index in {settings.paths.index_dir} yet; building it now."
                )
                service.rebuild(started_by="startup")
                return service
        service._load()
        return service

    @classmethod
    def for_building(cls, settings: Settings) -> KnowledgeService:
        """The models a build embeds with (no cross-encoder) and no index loaded: what `index build` runs on."""
        from bot.embedding import Embedder, model_token_counter
        from bot.multilingual import encoder_for

        embedder = Embedder(settings.embedding, cache_dir=encoder_cache(settings))
        late = None
        if settings.retrieval.late_interaction:
            from bot.late import LateInteraction

            late = LateInteraction(settings.retrieval.late_model, dim=settings.retrieval.late_dim)
        return cls(settings, embedder, None, model_token_counter(settings.embedding), late, encoder_for(settings))

    # --- index lifecycle ----------------------------------------------------------------------

    def _load(self) -> tuple[str | None, str]:
        signature = read_pointer_text(self.settings.paths.index_dir)
        index = load_index(
            self.settings.paths.index_dir, expect_model=self.embedder.name, expect_dim=self.embedder.dimension
        )
        retriever = Retriever(index, self.embedder, self.settings.retrieval, late=self.late, reranker=self.reranker)
        ml = None
        if (
            self.multilingual is not None
            and (index.manifest.get("multilingual") or {}).get("name") == self.multilingual.name
        ):
            ml = MultilingualRetriever(index, retriever.layout, self.multilingual, self.settings)
        live = _Live(index, retriever, covered_topics(index), signature, ml)
        with self._swap_lock:
            old = self._live.index.version if self._live else None
            self._live = live
        if self._pin_db is not None:
            try:
                self.refresh_pins()
            except StorageError as exc:  # pins of another index version are never served (see _with_pins)
                log.warning("could not re-check the pins against index %s; serving none: %s", index.version, exc)
        return old, index.version

    @property
    def live(self) -> _Live:
        live = self._live
        if live is None:
            raise IndexMissing("The index is not loaded; run `directive-bot index build`.")
        return live

    @property
    def live_version(self) -> str | None:
        """The index version serving now; None before the first load."""
        live = self._live
        return live.index.version if live is not None else None

    def indexed_chunks(self, article_id: str) -> int:
        """How many chunks of one article the live index holds (0 for an article it does not hold)."""
        return len(self.live.index.chunks_of(article_id))

    @property
    def running_rebuild(self) -> RunningRebuild | None:
        """The rebuild this process is running now, if any."""
        return self._running

    def rebuild(
        self,
        *,
        started_by: str = "cli",
        name: str | None = None,
        force: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> BuildReport:
        """Incremental build and atomic swap; the old index keeps serving until the new one is loaded.

        ``name`` is how people know who started it (``started_by`` is how the logs name them).
        """
        if not self._rebuild_lock.acquire(blocking=False):
            running = self._running
            holder = f"started by {running.started_by} at {running.started_at:%H:%M:%S} UTC" if running else "starting"
            raise RebuildInProgress(f"A rebuild is already running ({holder}); wait for it to finish.")
        try:
            self._running = RunningRebuild(started_by, name or started_by, dt.datetime.now(dt.UTC))
            report = self._build(started_by=started_by, force=force, progress=progress)
            if self._live is None or self._live.index.version != report.index_version or report.embedded:
                self._load()
            return report
        finally:
            self._running = None
            self._rebuild_lock.release()

    def rebuild_logged(
        self,
        *,
        started_by: str,
        name: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> RebuildOutcome:
        """Rebuild and swap in here, recording success or failure in the rebuild log (what `/kb` runs).

        A failure is returned, not raised: the old index keeps serving. ``RebuildInProgress`` (this
        process or another holds the build) is raised and not recorded.
        """
        started = time.time()
        log.info("rebuild started by=%s serving=%s", started_by, self.live_version)
        try:
            report = self.rebuild(started_by=started_by, name=name, progress=progress)
        except RebuildInProgress:
            raise
        except DirectiveError as exc:
            return self._rebuild_failed(started_by, started, self._failure_reason(exc))
        except Exception:
            log.exception("rebuild started by %s failed", started_by)
            return self._rebuild_failed(started_by, started, UNEXPECTED_FAILURE)
        detail = _build_detail(report)
        logged = self.record_rebuild(started_by, started, report.seconds, True, detail)
        log.info("rebuild done by=%s %s in %.1fs", started_by, detail, report.seconds)
        return RebuildOutcome(report, logged=logged)

    def _rebuild_failed(self, started_by: str, started: float, reason: str) -> RebuildOutcome:
        serving = self.live_version
        log.warning("rebuild by=%s failed; still serving %s: %s", started_by, serving, reason)
        logged = self.record_rebuild(started_by, started, time.time() - started, False, reason)
        return RebuildOutcome(None, error=reason, serving_version=serving, logged=logged)

    def _failure_reason(self, exc: DirectiveError) -> str:
        """The error's first line, naming files as people know them (knowledge/x.md), not by absolute path."""
        reason = _first_line(exc)
        return reason.replace(f"{self.settings.paths.knowledge_dir}{os.sep}", "knowledge/")

    def _build(self, *, started_by: str, force: bool, progress: Callable[[int, int], None] | None) -> BuildReport:
        return build_index(
            self.settings,
            self.embedder,
            count_tokens=self.count_tokens,
            progress=progress,
            started_by=started_by,
            force=force,
            late=self.late,
            multilingual=self.multilingual,
        )

    def build_for_others(
        self,
        *,
        started_by: str,
        started: float,
        force: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[BuildReport, bool]:
        """Build and swap in for the processes that serve (`index build`), recording it in the rebuild log.

        A failure is recorded too (so `/kb status` shows it) and raised; a build refused because another
        one holds the lock is not recorded. Returns the report and whether its log entry was written:
        a build that swapped in stays swapped in even when the log could not be written.
        """
        try:
            report = self._build(started_by=started_by, force=force, progress=progress)
        except RebuildInProgress:
            raise
        except DirectiveError as exc:
            self.record_rebuild(started_by, started, time.time() - started, False, self._failure_reason(exc))
            raise
        return report, self.record_rebuild(started_by, started, report.seconds, True, _build_detail(report))

    def record_rebuild(self, started_by: str, started: float, seconds: float, ok: bool, detail: str) -> bool:
        """One rebuild-log entry, retrying a held lock; False when it could not be written.

        It goes to the database attached with :meth:`use_pins` (the bot's), else to the one in settings.
        """
        from bot.db import Database

        entry = {
            "started_by": started_by,
            "started_at": dt.datetime.fromtimestamp(started, dt.UTC),
            "seconds": seconds,
            "ok": ok,
            "detail": detail,
        }
        for attempt in range(1, REBUILD_LOG_ATTEMPTS + 1):
            try:
                if self._pin_db is not None:
                    self._pin_db.record_rebuild(**entry)
                else:
                    with Database.open(self.settings) as db:
                        db.record_rebuild(**entry)
                return True
            except StorageError as exc:
                log.warning("writing the rebuild log failed (attempt %d of %d): %s", attempt, REBUILD_LOG_ATTEMPTS, exc)
                if attempt < REBUILD_LOG_ATTEMPTS:
                    time.sleep(0.5 * attempt)
        return False

    def reload_if_changed(self) -> tuple[str, str] | None:
        """Take up a build made by another process (an operator's `index build`)."""
        signature = read_pointer_text(self.settings.paths.index_dir)
        if self._live is not None and signature == self._live.signature:
            return None
        if signature is None:
            return None
        try:
            old, new = self._load()
        except (IndexMismatch, IndexMissing) as exc:
            log.warning("index changed on disk but could not be loaded; still serving the old one: %s", exc)
            return None
        return (old or "none", new)

    # --- questions ----------------------------------------------------------------------------

    def ask(
        self,
        question: str,
        *,
        max_excerpts: int | None = None,
        mode: Mode = "hybrid",
        rerank: bool = True,
        use_pins: bool = True,
    ) -> Answer:
        """Answer one question by quoting the knowledge base, or decline.

        When the question matches a moderators' pin (and pins are attached), the pinned quotes lead
        the answer; ``use_pins=False`` gives the automatic answer alone.
        """
        text = clean_question(question, self.settings.question)
        live = self.live
        detected = self.language_of(text)
        if not detected.english:
            return self._ask_other_language(text, detected.language, max_excerpts, live)
        retrieval = live.retriever.search(text, mode=mode, rerank=rerank)
        answer = self.answer_from(text, retrieval, max_excerpts=max_excerpts, live=live)
        return self._with_pins(answer, max_excerpts) if use_pins else answer

    def _with_pins(self, answer: Answer, max_excerpts: int | None) -> Answer:
        """The composed answer with the matching pin's quotes first (a pin checked against this index only)."""
        book = self._pins
        if not len(book) or book.index_version != answer.index_version:
            return answer
        match = book.match(answer.question, self.embedder.encode_query)
        if match is None:
            return answer
        return apply_match(answer, match, book.excerpts[match.pin.id], max_excerpts=max_excerpts)

    def language_of(self, question: str) -> Detection:
        """The language a question is routed by (English unless the script or a confident classifier says not)."""
        m = self.settings.multilingual
        return detect(question, min_confidence=m.min_confidence, min_letters=m.min_letters)

    def _ask_other_language(self, text: str, language: str, max_excerpts: int | None, live: _Live) -> Answer:
        """A question in another language: the multilingual path, or a polite English decline."""
        if live.multilingual is None or language not in MODEL_LANGUAGES:
            if live.multilingual is None and self.settings.multilingual.enabled and not available():
                log.info(
                    "a question in %s was declined: the multilingual model is not installed; %s", language, ENABLE_HINT
                )
            return unsupported(text, language, live.index.version, live.topics)
        retrieval = live.multilingual.search(text)
        return self.answer_from(text, retrieval, max_excerpts=max_excerpts, live=live)

    def retrieve(
        self, question: str, *, mode: Mode = "hybrid", rerank: bool = True, read: int | None = None
    ) -> Retrieval:
        """The expensive half of ``ask`` (models, search): evaluation scores many settings of the cheap half on it.

        A question in another language gets the multilingual path's windows (none when it cannot be read)."""
        text = clean_question(question, self.settings.question)
        live = self.live
        detected = self.language_of(text)
        if not detected.english:
            if live.multilingual is None or detected.language not in MODEL_LANGUAGES:
                return Retrieval((), (), 0.0, 0.0, 0.0, reranked=True)
            return live.multilingual.search(text, read=read)
        return live.retriever.search(text, mode=mode, rerank=rerank, read=read)

    def answer_from(
        self,
        question: str,
        retrieval: Retrieval,
        *,
        settings: RetrievalSettings | None = None,
        max_excerpts: int | None = None,
        live: _Live | None = None,
    ) -> Answer:
        """The cheap half of ``ask``: quotes or a decline from a retrieval, under the given settings.

        A question in another language is judged on the multilingual scale (``multilingual`` settings)."""
        live = live or self.live
        detected = self.language_of(question)
        if not detected.english:
            rules = settings or answer_settings(self.settings)
            answer = compose(
                question, live.index, retrieval, rules, max_excerpts=max_excerpts, covered_topics=live.topics
            )
            return finish(answer, retrieval, rules, detected.language)
        return compose(
            question,
            live.index,
            retrieval,
            settings or self.settings.retrieval,
            max_excerpts=max_excerpts,
            covered_topics=live.topics,
        )

    def ask_cached(self, question: str, *, max_excerpts: int | None = None, compute: bool = True) -> Answer | None:
        """``ask``, computed once per normalised question and index version and shared by every asker.

        With ``compute=False`` it only looks (cheap, safe on an event loop) and returns None on a
        miss. The answer carries this caller's own wording of the question; an answer computed
        while a new index was swapped in is returned but not cached under the old version.
        """
        text = clean_question(question, self.settings.question)
        version = self.live.index.version
        generation = self._pins.generation
        # A change of pins changes answers: the cache is per index version and pin book.
        cache_version = f"{version}/pins-{generation}"
        key = (normalise_question(text), max_excerpts)
        if compute:
            answer = self.answer_cache.get_or_compute(
                cache_version,
                key,
                lambda: self.ask(text, max_excerpts=max_excerpts),
                cacheable=lambda a: a.index_version == version and self._pins.generation == generation,
            )
        else:
            answer = self.answer_cache.get(cache_version, key)
            if answer is None:
                return None
        return answer if answer.question == text else replace(answer, question=text)

    # --- moderators' pins -----------------------------------------------------------------------

    @property
    def pin_db(self) -> Database | None:
        return self._pin_db

    def use_pins(self, db: Database | None) -> list[Pin]:
        """Serve the pins stored in ``db`` (checked against the live index now); None serves none."""
        self._pin_db = db
        return self.refresh_pins()

    def refresh_pins(self, *, actor: str = "index check") -> list[Pin]:
        """Check every pin against the articles the live index serves, store the outcome, serve the good ones.

        Runs whenever an index is loaded (every build, every start) and after every pin change. A
        pin whose passage changed or disappeared is marked stale (audited) and left out.
        """
        with self._pin_lock:
            generation = self._pins.generation + 1
            db, live = self._pin_db, self._live
            if db is None or live is None:
                self._pins = PinBook.empty(generation)
                return []
            checked = [
                stored
                for pin in db.pins()
                if (stored := db.save_pin_check(verify(pin, live.index.articles), actor=actor)) is not None
            ]
            pinned = {q.article_id for pin in checked for q in pin.quotes}
            chunk_of = {aid: [(c.start, c.end, c.id) for c in live.index.chunks_of(aid)] for aid in pinned}
            self._pins = PinBook.build(
                checked,
                live.index.articles,
                self.embedder,
                index_version=live.index.version,
                generation=generation,
                chunk_of=chunk_of,
            )
            return checked

    def _require_pins(self) -> Database:
        if self._pin_db is None:
            raise PinError("Pins are kept in the bot's database, which is not open here.")
        return self._pin_db

    def pins(self) -> list[Pin]:
        """Every pin with its state, hits and votes (stale ones too: moderators fix those)."""
        return self._require_pins().pins()

    def search_passages(self, text: str, limit: int = 25) -> list[SentenceChoice]:
        """Sentences of the served articles containing every word of ``text`` (the pin search)."""
        index = self.live.index
        return search_sentences(text, index.articles, index.sentences, limit=limit)

    def passage_at(self, ref: str) -> PinnedQuote:
        """A passage by ``article@start-end`` (a search suggestion or one of the bot's excerpts)."""
        return quote_from_ref(ref, self.live.index.articles)

    def passage_of(self, article_id: str, start: int, end: int) -> PinnedQuote:
        article = self.live.index.articles.get(article_id)
        if article is None:
            raise PinError(f"No article `{article_id}` is served now; ask again and choose another passage.")
        return quote_at(article, start, end)

    def find_passage(self, text: str) -> PinnedQuote:
        """Pasted text found word for word in a served article (refused, saying so, when it is not)."""
        return find_verbatim(text, self.live.index.articles.values())

    def draft_pin(
        self, question: str, quotes: list[PinnedQuote] | tuple[PinnedQuote, ...], phrasings: tuple[str, ...] = ()
    ) -> PinDraft:
        """A pin ready for the preview: question checked like any question, one to three passages."""
        text = clean_question(question, self.settings.question)
        return make_draft(text, quotes, clean_phrasings(text, phrasings, max_chars=self.settings.question.max_chars))

    def with_phrasings(self, draft: PinDraft, phrasings: list[str] | tuple[str, ...]) -> PinDraft:
        more = clean_phrasings(
            draft.question, (*draft.phrasings, *phrasings), max_chars=self.settings.question.max_chars
        )
        return PinDraft(draft.question, draft.quotes, more)

    def preview_excerpts(self, quotes: Sequence[PinnedQuote]) -> list[Excerpt]:
        """Chosen passages as members will see them: attributed and marked as the moderators' choice."""
        articles = self.live.index.articles
        return [
            Excerpt(q.quote, q.start, q.end, 1.0, articles[q.article_id].source, "", pinned=True)
            for q in quotes
            if q.article_id in articles
        ]

    def pinned_for(self, question: str) -> int | None:
        """The pin that already holds this question (same normalised words), if any."""
        from bot.pins import normalise

        key = normalise(clean_question(question, self.settings.question))
        return next((p.id for p in self.pins() if key in {normalise(q) for q in p.questions}), None)

    def save_pin(self, draft: PinDraft, *, actor: str) -> Pin:
        """Store the pin (audited) after checking its passages once more, and serve it at once."""
        db = self._require_pins()
        articles = self.live.index.articles
        draft = check_imported(draft, articles)
        pin = db.add_pin(draft, actor=actor)
        self.refresh_pins()
        return pin

    def unpin(self, pin_id: int, *, actor: str) -> Pin:
        pin = self._require_pins().remove_pin(pin_id, actor=actor)
        self.refresh_pins()
        return pin

    def add_pin_phrasings(self, pin_id: int, phrasings: list[str] | tuple[str, ...], *, actor: str) -> Pin:
        db = self._require_pins()
        pin = db.get_pin(pin_id)
        fresh = clean_phrasings(pin.question, phrasings, max_chars=self.settings.question.max_chars)
        if not fresh:
            raise PinError("Give a phrasing that differs from the pinned question; nothing was changed.")
        after = db.add_phrasings(pin_id, fresh, actor=actor)
        self.refresh_pins()
        return after

    def export_pins(self, path: Path) -> int:
        return export_yaml(self.pins(), path)

    def import_pins(self, path: Path, *, actor: str) -> ImportReport:
        """Pins from an export, each passage found again word for word here first; all or nothing.

        Questions already pinned here are skipped (so importing the same file twice adds nothing).
        """
        db = self._require_pins()
        articles = self.live.index.articles
        drafts = [
            check_imported(self.draft_pin(d.question, d.quotes, d.phrasings), articles) for d in read_export(path)
        ]
        taken = {key for pin in db.pins() for key in _keys(pin.questions)}
        added: list[Pin] = []
        skipped: list[str] = []
        for draft in drafts:
            if taken & _keys(draft.questions):
                skipped.append(draft.question)
                continue
            added.append(db.add_pin(draft, actor=actor, action="pin import"))
            taken |= _keys(draft.questions)
        self.refresh_pins()
        return ImportReport(tuple(added), tuple(skipped))

    # --- facts --------------------------------------------------------------------------------

    def info(self) -> IndexInfo:
        live = self.live
        manifest = live.index.manifest
        try:
            stale = not index_status(self.settings, model_name=self.embedder.name).fresh
        except (KnowledgeError, NotFound):  # a broken or vanishing knowledge file: stale, not /about broken
            stale = True
        built = manifest.get("built_at")
        return IndexInfo(
            index_version=live.index.version,
            built_at=dt.datetime.fromisoformat(built) if built else None,
            articles=manifest["counts"]["articles"],
            chunks=manifest["counts"]["chunks"],
            model=manifest["model"]["name"],
            dimension=manifest["model"]["dimension"],
            last_build_seconds=manifest.get("build_seconds"),
            stale=stale,
        )

    def status(self) -> IndexStatus:
        return index_status(self.settings, model_name=self.embedder.name)

    def articles(self) -> list[Article]:
        """Articles as served (the loaded index), newest first."""
        arts = list(self.live.index.articles.values())
        return sorted(arts, key=lambda a: (a.published or a.added or dt.date.min, a.title), reverse=True)

    def covered_topics(self) -> tuple[str, ...]:
        return self.live.topics


def _build_detail(report: BuildReport) -> str:
    """A build in one line of the rebuild log: versions, the difference, what was embedded."""
    return (
        f"{report.previous_version or 'none'} -> {report.index_version}: +{len(report.added)} "
        f"~{len(report.changed)} -{len(report.removed)}, {report.embedded} embedded"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _keys(questions: tuple[str, ...]) -> set[str]:
    from bot.pins import normalise

    return {normalise(q) for q in questions}


def encoder_cache(settings: Settings) -> Path:
    """Where the embedding model's ONNX copy is kept (``bot.embedding``): beside the embedding cache, so
    every process on this index (the bot, each shard, ``directive-bot ask``) shares one copy; or
    ``embedding.onnx_dir``, to share it between index directories."""
    return settings.embedding.onnx_dir or settings.paths.index_dir / "cache" / "encoders"


def _multilingual_encoder(settings: Settings) -> MultilingualEncoder | None:
    """The shared multilingual model when enabled and installed; a one-line hint when enabled but missing."""
    if not settings.multilingual.enabled:
        return None
    if not available():
        log.info("questions in other languages will be declined: %s to enable them", ENABLE_HINT)
        return None
    from bot.multilingual import shared_encoder

    return shared_encoder()


def _has_vectors_of(settings: Settings, encoder: MultilingualEncoder) -> bool:
    """Whether the live build holds multilingual vectors made by this encoder."""
    try:
        manifest = read_manifest(settings.paths.index_dir)
    except DirectiveError:
        return False
    return bool(manifest) and (manifest.get("multilingual") or {}).get("name") == encoder.name
