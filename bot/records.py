"""Frozen records passed between pipeline stages: Article -> (SentenceSpan) -> Chunk -> Hit -> Excerpt -> Answer.

Data only (the machine-learning models live in embedding, late, rerank and multilingual)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field


def sha256(text: str) -> str:
    """Content hash used for change detection and embedding caches."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Article:
    """One cleaned article: front matter facts plus the body quotes are taken from."""

    id: str
    title: str
    body: str
    publisher: str | None = None
    url: str | None = None
    published: dt.date | None = None
    added: dt.date | None = None
    author: str | None = None
    notes: str | None = None

    @property
    def content_hash(self) -> str:
        """Hash of everything that changes what the index holds for this article."""
        head = "\x1f".join(str(v or "") for v in (self.title, self.publisher, self.url, self.published, self.author))
        return sha256(head + "\x1e" + self.body)

    @property
    def source(self) -> Source:
        return Source(
            article_id=self.id,
            title=self.title,
            publisher=self.publisher,
            url=self.url,
            published=self.published.isoformat() if self.published else None,
        )


@dataclass(frozen=True)
class Source:
    """Attribution for a quote: what a reader needs to find the article."""

    article_id: str
    title: str
    publisher: str | None
    url: str | None
    published: str | None

    def to_json(self) -> dict[str, str | None]:
        return {
            "article_id": self.article_id,
            "title": self.title,
            "publisher": self.publisher,
            "url": self.url,
            "published": self.published,
        }


@dataclass(frozen=True)
class Sentence:
    """A sentence of an article body, by offsets: ``body[start:end] == text``."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class SentenceSpan:
    """A sentence of an article body: ``body[start:end]``, in paragraph ``paragraph``."""

    article_id: str
    paragraph: int
    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    """A run of whole sentences from one article; ``body[start:end] == text``."""

    id: str
    article_id: str
    n: int
    start: int
    end: int
    text: str
    heading: str | None = None
    title: str = ""

    @property
    def embed_text(self) -> str:
        """What the model sees: title and section give context the sentences may lack."""
        parts = [p for p in (self.title, self.heading) if p]
        return (" — ".join(parts) + "\n" + self.text) if parts else self.text

    @property
    def text_hash(self) -> str:
        return sha256(self.embed_text)


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with the scores that put it there."""

    chunk: Chunk
    score: float
    dense_score: float = 0.0
    dense_rank: int | None = None
    lexical_rank: int | None = None
    late_rank: int | None = None


@dataclass(frozen=True)
class Excerpt:
    """A verbatim quote: ``article.body[start:end] == quote``."""

    quote: str
    start: int
    end: int
    score: float
    source: Source
    chunk_id: str
    also_reported_by: tuple[Source, ...] = ()
    # Chosen by the moderators for this question (``bot.pins``), not found by retrieval.
    pinned: bool = False

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.end)

    @property
    def id(self) -> str:
        return f"{self.source.article_id}@{self.start}-{self.end}"

    def to_json(self) -> dict[str, object]:
        return {
            "quote": self.quote,
            "score": round(self.score, 4),
            "span": [self.start, self.end],
            "source": self.source.to_json(),
            "also_reported_by": [s.article_id for s in self.also_reported_by],
            "also_reported_by_sources": [s.to_json() for s in self.also_reported_by],
            "chunk_id": self.chunk_id,
            "pinned": self.pinned,
        }


@dataclass(frozen=True)
class Timings:
    """Where the time of one answer went, in milliseconds."""

    embed_ms: float = 0.0
    search_ms: float = 0.0
    rerank_ms: float = 0.0  # the cross-encoder
    select_ms: float = 0.0  # growing, merging and collapsing the quotes
    compose_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.embed_ms + self.search_ms + self.rerank_ms + self.select_ms + self.compose_ms


@dataclass(frozen=True)
class Answer:
    """The reply to one question: quotes best first, or a decline."""

    question: str
    declined: bool
    excerpts: tuple[Excerpt, ...]
    index_version: str
    confidence: float = 0.0
    covered_topics: tuple[str, ...] = ()
    reason: str = ""
    timings: Timings = field(default_factory=Timings)
    # The best passage is relevant but may not answer exactly: say so rather than overclaim.
    tentative: bool = False
    # Names in the question that no article mentions (a reason the answer is tentative).
    unknown_names: tuple[str, ...] = ()
    # The moderators' pin whose quotes lead this answer (``bot.pins``), if any.
    pin_id: int | None = None
    # The language the question was read in (ISO 639-1, bot.language); quotes are always English.
    language: str = "en"

    def to_json(self) -> dict[str, object]:
        return {
            "question": self.question,
            "language": self.language,
            "abstained": self.declined,
            "index_version": self.index_version,
            "confidence": round(self.confidence, 4),
            "tentative": self.tentative,
            "unknown_names": list(self.unknown_names),
            "reason": self.reason,
            "pin_id": self.pin_id,
            "covered_topics": list(self.covered_topics),
            "excerpts": [e.to_json() for e in self.excerpts],
            "timings_ms": {
                "embed": round(self.timings.embed_ms, 2),
                "search": round(self.timings.search_ms, 2),
                "rerank": round(self.timings.rerank_ms, 2),
                # "select" has always included the cross-encoder; it keeps that meaning for readers of the JSON.
                "select": round(self.timings.rerank_ms + self.timings.select_ms, 2),
                "compose": round(self.timings.compose_ms, 2),
            },
        }
