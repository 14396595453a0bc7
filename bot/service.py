"""The facade the edges use: load once, answer many questions, rebuild and swap without downtime.

Methods are blocking (model inference, FAISS, disk); the Discord edge calls them in worker
threads. The live index is one immutable reference, replaced in a single assignment, so a
question in flight keeps the index it started with while a rebuild swaps in the next.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bot.answer import compose, covered_topics
from bot.answer_cache import AnswerCache, normalise_question
from bot.config import RetrievalSettings, Settings
from bot.errors import IndexMismatch, IndexMissing, RebuildInProgress
from bot.knowledge import load_knowledge
from bot.models import Answer, Article
from bot.retrieval import Mode, Retrieval, Retriever, clean_question
from bot.store import (
    BuildReport,
    IndexStatus,
    LoadedIndex,
    build_index,
    index_status,
    load_index,
    manifest_signature,
)

if TYPE_CHECKING:
    from bot.embedding import Embedder
    from bot.late import LateInteraction
    from bot.rerank import CrossEncoder

log = logging.getLogger(__name__)

__all__ = ["BuildReport", "IndexInfo", "KnowledgeService"]


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
class _Live:
    index: LoadedIndex
    retriever: Retriever
    topics: tuple[str, ...]
    signature: str | None


class KnowledgeService:
    """Embedder, reranker and the live index behind one thread-safe object."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        reranker: CrossEncoder | None,
        count_tokens: Callable[[str], int],
        late: LateInteraction | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.reranker = reranker
        self.late = late
        self.count_tokens = count_tokens
        self._live: _Live | None = None
        self._swap_lock = threading.Lock()
        self._rebuild_lock = threading.Lock()
        self._rebuild_holder = ""
        # Repeated questions: keyed by (normalised question, excerpts) per index version.
        self.answer_cache: AnswerCache[Answer] = AnswerCache(settings.discord.answer_cache_size)

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

        say = log or (lambda _msg: None)
        embedder = embedder or Embedder(settings.embedding)
        if reranker is None and settings.retrieval.rerank:
            from bot.rerank import CrossEncoder

            reranker = CrossEncoder(settings.retrieval.rerank_model)
        if late is None and settings.retrieval.late_interaction:
            from bot.late import LateInteraction

            late = LateInteraction(settings.retrieval.late_model, dim=settings.retrieval.late_dim)
        service = cls(settings, embedder, reranker, model_token_counter(settings.embedding), late)
        status = index_status(settings, model_name=embedder.name)
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

    # --- index lifecycle ----------------------------------------------------------------------

    def _load(self) -> tuple[str | None, str]:
        signature = manifest_signature(self.settings.paths.index_dir)
        index = load_index(
            self.settings.paths.index_dir, expect_model=self.embedder.name, expect_dim=self.embedder.dimension
        )
        retriever = Retriever(index, self.embedder, self.settings.retrieval, late=self.late, reranker=self.reranker)
        live = _Live(index, retriever, covered_topics(index), signature)
        with self._swap_lock:
            old = self._live.index.version if self._live else None
            self._live = live
        return old, index.version

    @property
    def live(self) -> _Live:
        live = self._live
        if live is None:
            raise IndexMissing("The index is not loaded; run `directive-bot index build`.")
        return live

    def rebuild(
        self, *, started_by: str = "cli", force: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> BuildReport:
        """Incremental build and atomic swap; the old index keeps serving until the new one is loaded."""
        if not self._rebuild_lock.acquire(blocking=False):
            raise RebuildInProgress(f"A rebuild is already running ({self._rebuild_holder}); wait for it to finish.")
        try:
            self._rebuild_holder = f"started by {started_by} at {dt.datetime.now(dt.UTC):%H:%M:%S} UTC"
            report = build_index(
                self.settings,
                self.embedder,
                count_tokens=self.count_tokens,
                progress=progress,
                started_by=started_by,
                force=force,
                late=self.late,
            )
            if self._live is None or self._live.index.version != report.index_version or report.embedded:
                self._load()
            return report
        finally:
            self._rebuild_holder = ""
            self._rebuild_lock.release()

    def reload_if_changed(self) -> tuple[str, str] | None:
        """Take up a build made by another process (an operator's `index build`)."""
        signature = manifest_signature(self.settings.paths.index_dir)
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
        self, question: str, *, max_excerpts: int | None = None, mode: Mode = "hybrid", rerank: bool = True
    ) -> Answer:
        """Answer one question by quoting the knowledge base, or decline."""
        text = clean_question(question, self.settings.question)
        live = self.live
        retrieval = live.retriever.search(text, mode=mode, rerank=rerank)
        return self.answer_from(text, retrieval, max_excerpts=max_excerpts, live=live)

    def retrieve(
        self, question: str, *, mode: Mode = "hybrid", rerank: bool = True, read: int | None = None
    ) -> Retrieval:
        """The expensive half of ``ask`` (models, search): evaluation scores many settings of the cheap half on it."""
        return self.live.retriever.search(
            clean_question(question, self.settings.question), mode=mode, rerank=rerank, read=read
        )

    def answer_from(
        self,
        question: str,
        retrieval: Retrieval,
        *,
        settings: RetrievalSettings | None = None,
        max_excerpts: int | None = None,
        live: _Live | None = None,
    ) -> Answer:
        """The cheap half of ``ask``: quotes or a decline from a retrieval, under the given settings."""
        live = live or self.live
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
        key = (normalise_question(text), max_excerpts)
        if compute:
            answer = self.answer_cache.get_or_compute(
                version,
                key,
                lambda: self.ask(text, max_excerpts=max_excerpts),
                cacheable=lambda a: a.index_version == version,
            )
        else:
            answer = self.answer_cache.get(version, key)
            if answer is None:
                return None
        return answer if answer.question == text else replace(answer, question=text)

    # --- facts --------------------------------------------------------------------------------

    def info(self) -> IndexInfo:
        live = self.live
        manifest = live.index.manifest
        try:
            stale = not index_status(self.settings, model_name=self.embedder.name).fresh
        except Exception:  # a broken knowledge file makes the index stale, not /about broken
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

    def knowledge_articles(self) -> list[Article]:
        """Articles on disk, which may be ahead of the index."""
        return load_knowledge(self.settings.paths.knowledge_dir)

    def covered_topics(self) -> tuple[str, ...]:
        return self.live.topics
