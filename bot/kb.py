"""Knowledge-base changes shared by the CLI and the moderators' Discord commands.

Every change is prepared first (a Preview a person can confirm), then applied: the file is written
atomically and an audit entry records who, when, what, and the content hash before and after.
Nothing is written when preparing fails. The audit entry is written *before* the file, as
'pending', and completed after; so a change is never made without a row, and a crash or a held
database lock in between leaves a pending row as evidence rather than silence.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import KnowledgeSettings, Settings
from bot.errors import ExtractionFailed, KnowledgeError, StorageError
from bot.knowledge import (
    article_from_raw,
    article_path,
    get_article,
    load_knowledge,
    parse_article,
    read_bounded,
    too_big,
    unique_id,
    validate_id,
    with_metadata,
    write_article,
)
from bot.records import Article

if TYPE_CHECKING:
    from bot.db import Database
    from bot.extract import ExtractedArticle
    from bot.fetch import FetchedPage, FetchPolicy

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = KnowledgeSettings().max_article_bytes  # the default of knowledge.max_article_bytes
COMPLETE_ATTEMPTS = 3
ALLOWED_SUFFIXES = (".md", ".txt", ".html", ".htm")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Duplicate:
    article_id: str
    title: str
    similarity: float
    reason: str

    @property
    def exact(self) -> bool:
        return self.similarity >= 0.9


@dataclass(frozen=True)
class Preview:
    """What would be added, for a person to confirm before anything is written."""

    article: Article
    origin: str
    duplicates: tuple[Duplicate, ...] = ()

    @property
    def words(self) -> int:
        return len(_WORD.findall(self.article.body))

    @property
    def first_paragraph(self) -> str:
        return self.article.body.split("\n\n", 1)[0]


@dataclass(frozen=True)
class Change:
    action: str
    article: Article
    hash_before: str | None
    hash_after: str | None
    audit_pending: bool = False  # the change was made but its audit row could not be marked done


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = [w.casefold() for w in _WORD.findall(text)]
    return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def find_duplicates(candidate: Article, existing: Iterable[Article], threshold: float = 0.3) -> tuple[Duplicate, ...]:
    """Same URL, or much of the same wording (word 5-gram containment)."""
    mine = _shingles(candidate.body)
    out = []
    for art in existing:
        if art.id == candidate.id and art.body == candidate.body:
            out.append(Duplicate(art.id, art.title, 1.0, "identical text"))
            continue
        if candidate.url and art.url and candidate.url.rstrip("/") == art.url.rstrip("/"):
            out.append(Duplicate(art.id, art.title, 1.0, "same URL"))
            continue
        theirs = _shingles(art.body)
        if not mine or not theirs:
            continue
        overlap = len(mine & theirs) / min(len(mine), len(theirs))
        if overlap >= threshold:
            out.append(Duplicate(art.id, art.title, round(overlap, 2), f"{overlap:.0%} of the wording matches"))
    return tuple(sorted(out, key=lambda d: -d.similarity))


class KnowledgeBase:
    """The articles directory plus an optional audit log (``bot.db.Database``)."""

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.dir = Path(settings.paths.knowledge_dir)
        self.db = db

    @property
    def max_bytes(self) -> int:
        """``knowledge.max_article_bytes``: the one size limit for article files and uploads."""
        return self.settings.knowledge.max_article_bytes

    # --- reading ------------------------------------------------------------------------------

    def list(self) -> list[Article]:
        arts = load_knowledge(self.dir, max_bytes=self.max_bytes) if self.dir.exists() else []
        return sorted(arts, key=lambda a: (a.published or a.added or dt.date.min, a.title), reverse=True)

    def get(self, article_id: str) -> Article:
        validate_id(article_id)
        return get_article(self.dir, article_id, max_bytes=self.max_bytes)

    def matching_articles(self, text: str, limit: int = 25) -> list[Article]:
        """For autocomplete: ids or titles containing the text."""
        needle = text.casefold().strip()
        arts = self.list()
        hits = [a for a in arts if needle in a.id or needle in a.title.casefold()] if needle else arts
        return hits[:limit]

    # --- preparing ----------------------------------------------------------------------------

    def _taken(self) -> list[str]:
        return [p.stem for p in self.dir.glob("*.md")] if self.dir.exists() else []

    def _preview(self, article: Article, origin: str) -> Preview:
        existing = self.list()
        return Preview(article, origin, find_duplicates(article, existing))

    def prepare_text(
        self,
        raw: str,
        *,
        origin: str = "text",
        title: str | None = None,
        publisher: str | None = None,
        url: str | None = None,
        published: dt.date | None = None,
        author: str | None = None,
        notes: str | None = None,
        article_id: str | None = None,
    ) -> Preview:
        size = len(raw.encode("utf-8", "surrogatepass"))
        if size > self.max_bytes:  # a fetched page's text, or a form, is held to the same limit as a file
            raise too_big(origin, size, self.max_bytes)
        article = article_from_raw(
            raw,
            article_id=article_id,
            taken_ids=self._taken(),
            title=title,
            publisher=publisher,
            url=url,
            published=published,
            added=dt.date.today(),
            author=author,
            notes=notes,
        )
        return self._preview(article, origin)

    def prepare_extracted(
        self, extracted: ExtractedArticle, *, origin: str, fallback_url: str | None = None
    ) -> Preview:
        """From ``bot.extract.ExtractedArticle`` (a fetched page or an uploaded HTML file)."""
        if not extracted.title:
            raise ExtractionFailed(f"No headline found in {origin}; add it as text with a title instead.")
        return self.prepare_text(
            extracted.text,
            origin=origin,
            title=extracted.title,
            publisher=extracted.publisher,
            url=extracted.url or fallback_url,
            published=extracted.published,
            author=extracted.author,
        )

    def prepare_file(self, name: str, data: bytes) -> Preview:
        """An uploaded or local file: ``.md`` with front matter, ``.txt`` or ``.html``."""
        suffix = Path(name).suffix.lower()
        if suffix not in ALLOWED_SUFFIXES:
            raise KnowledgeError(f"{name}: only {', '.join(ALLOWED_SUFFIXES)} files can be added.")
        if not data.strip():
            raise KnowledgeError(f"{name} is empty.")
        if len(data) > self.max_bytes:
            raise too_big(name, len(data), self.max_bytes)
        if b"\x00" in data[:8192]:
            raise KnowledgeError(f"{name} is a binary file, not text.")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise KnowledgeError(f"{name} is not UTF-8 text.") from None
        if suffix in (".html", ".htm"):
            from bot.extract import extract_article

            return self.prepare_extracted(extract_article(text), origin=name)
        if suffix == ".md" and text.lstrip().startswith("---"):
            parsed = parse_article(text, name)
            taken = self._taken()
            body = article_from_raw(parsed.body, title=parsed.title).body
            article = Article(
                id=parsed.id if parsed.id not in taken else unique_id(parsed.id, taken),
                title=parsed.title,
                body=body,
                publisher=parsed.publisher,
                url=parsed.url,
                published=parsed.published,
                added=parsed.added or dt.date.today(),
                author=parsed.author,
                notes=parsed.notes,
            )
            return self._preview(article, name)
        return self.prepare_text(text, origin=name)

    def prepare_path(self, path: Path) -> Preview:
        """A local file named by a person (``kb add FILE``, ``kb import``): bounded, regular files only."""
        path = Path(path)
        data = read_bounded(path, self.max_bytes)
        return self.prepare_file(path.name if path.suffix else path.name + ".txt", data)

    def prepare_url(self, url: str) -> Preview:
        """Fetch safely (blocking), extract, clean."""
        from bot.fetch import fetch_url_sync

        return self.prepare_page(fetch_url_sync(url, self.fetch_policy()))

    def prepare_page(self, page: FetchedPage) -> Preview:
        """A page already fetched (``bot.fetch.FetchedPage``, e.g. by the async ``fetch_url``): extract, clean."""
        from bot.extract import extract_article, extract_text_file

        extracted = (
            extract_text_file(page.text) if page.content_type == "text/plain" else extract_article(page.text, page.url)
        )
        return self.prepare_extracted(extracted, origin=page.url, fallback_url=page.url)

    def fetch_policy(self) -> FetchPolicy:
        """The limits in ``settings.fetch``; public addresses only."""
        from bot.fetch import FetchPolicy

        f = self.settings.fetch
        return FetchPolicy(max_bytes=f.max_bytes, timeout_seconds=f.timeout_seconds, max_redirects=f.max_redirects)

    # --- applying -----------------------------------------------------------------------------

    def _apply(self, actor: str, change: Change, detail: str, make: Callable[[], object]) -> Change:
        """Record the change as pending, make it, then mark it done (or failed): never one without the other.

        When the audit log cannot be written (a lock held past the busy timeout, a full disk) the
        change is not made at all.
        """
        entry = None
        if self.db is not None:
            entry = self.db.record_change(
                actor=actor,
                action=change.action,
                article_id=change.article.id,
                hash_before=change.hash_before,
                hash_after=change.hash_after,
                detail=detail,
                status="pending",
            )
        try:
            make()
        except BaseException as exc:
            if entry is not None:
                try:
                    self.db.complete_change(entry, "failed", f"{detail} (not made: {type(exc).__name__})")  # type: ignore[union-attr]
                except StorageError as again:
                    log.warning("audit row %s stays pending: %s", entry, again)
            if isinstance(exc, OSError):
                raise _write_error(exc, article_path(self.dir, change.article.id)) from exc
            raise
        if entry is None:
            return change
        for attempt in range(1, COMPLETE_ATTEMPTS + 1):
            try:
                self.db.complete_change(entry, "done")  # type: ignore[union-attr]
                return change
            except StorageError as exc:
                log.warning("marking audit row %s done failed (attempt %d): %s", entry, attempt, exc)
                time.sleep(0.2 * attempt)
        return Change(change.action, change.article, change.hash_before, change.hash_after, audit_pending=True)

    def add(self, preview: Preview, *, actor: str) -> Change:
        article = preview.article
        path = article_path(self.dir, article.id)
        if path.exists() or path.is_symlink():
            raise KnowledgeError(
                f"An article with id {article.id!r} already exists; remove it first or choose another id."
            )

        def make() -> None:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_article(self.dir, article)

        change = Change("add", article, None, article.content_hash)
        return self._apply(actor, change, f"added from {preview.origin}: {article.title}", make)

    def remove(self, article_id: str, *, actor: str) -> Change:
        article = self.get(article_id)
        change = Change("remove", article, article.content_hash, None)
        return self._apply(actor, change, f"removed: {article.title}", article_path(self.dir, article_id).unlink)

    def edit(self, article_id: str, *, actor: str, **fields: object) -> Change:
        before = self.get(article_id)
        after = with_metadata(before, **fields)
        if after == before:
            return Change("edit", before, before.content_hash, before.content_hash)
        change = Change("edit", after, before.content_hash, after.content_hash)
        changed = ", ".join(sorted(k for k in fields if getattr(before, k) != getattr(after, k)))
        return self._apply(actor, change, f"edited {changed or 'nothing'}", lambda: write_article(self.dir, after))

    def import_files(self, paths: Iterable[Path], *, actor: str, **meta: object) -> list[Change]:
        """Clean raw article files into the knowledge base (all prepared before any is written)."""
        previews = []
        taken = set(self._taken())
        for path in paths:
            preview = self.prepare_path(Path(path))
            if preview.article.id in taken:
                fresh = unique_id(preview.article.id, taken)
                preview = Preview(with_id(preview.article, fresh), preview.origin, preview.duplicates)
            taken.add(preview.article.id)
            if meta:
                preview = Preview(with_metadata(preview.article, **meta), preview.origin, preview.duplicates)
            previews.append(preview)
        return [self.add(p, actor=actor) for p in previews]


def _write_error(exc: OSError, path: Path) -> StorageError:
    if exc.errno == errno.ENOSPC:
        advice = "free some space and try again"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        advice = "make the knowledge directory writable and try again"
    else:
        advice = "fix the problem and try again"
    return StorageError(
        f"Could not write {path.parent.name}/{path.name} ({exc.strerror or exc}); nothing was changed. "
        f"{advice[0].upper() + advice[1:]}."
    )


def with_id(article: Article, article_id: str) -> Article:
    from dataclasses import replace

    return replace(article, id=validate_id(article_id))
