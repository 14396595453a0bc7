"""Article -> sentences -> chunks, by exact character offsets into the article body.

Chunks never cut a sentence, stay inside one section (headings are context, not quotes) and
overlap by whole sentences so an answer near a boundary is whole in at least one chunk.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from bot.knowledge import is_heading
from bot.models import Article, Chunk, Sentence

TokenCounter = Callable[[str], int]
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Paragraph:
    start: int
    end: int
    text: str
    heading: bool


def paragraphs(body: str) -> list[Paragraph]:
    """Blank-line separated paragraphs with their offsets."""
    out: list[Paragraph] = []
    pos = 0
    for match in [*_PARAGRAPH_BREAK.finditer(body), None]:
        end = match.start() if match else len(body)
        raw = body[pos:end]
        stripped = raw.strip()
        if stripped:
            start = pos + (len(raw) - len(raw.lstrip()))
            out.append(Paragraph(start, start + len(stripped), stripped, is_heading(stripped)))
        if match:
            pos = match.end()
    return out


@functools.lru_cache(maxsize=1)
def _segmenter():  # pysbd builds regexes on construction; do it once
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def split_sentences(text: str, offset: int = 0) -> list[Sentence]:
    """Sentences of one paragraph, located exactly in ``text`` (whitespace trimmed)."""
    return [Sentence(offset + start, offset + end, text[start:end]) for start, end in _sentence_bounds(text)]


@functools.lru_cache(maxsize=4096)
def _sentence_bounds(text: str) -> tuple[tuple[int, int], ...]:
    """The segmenter is slow; chunking and the sentence store ask for the same paragraphs."""
    out: list[tuple[int, int]] = []
    cursor = 0
    for piece in _segmenter().segment(text):
        piece = piece.strip()
        if not piece:
            continue
        found = text.find(piece, cursor)
        if found < 0:  # the segmenter normalised something: fall back to the rest as one sentence
            rest = text[cursor:].strip()
            if rest:
                start = text.index(rest, cursor)
                out.append((start, start + len(rest)))
            break
        out.append((found, found + len(piece)))
        cursor = found + len(piece)
    return tuple(out)


@dataclass(frozen=True)
class Section:
    heading: str | None
    paragraphs: tuple[Paragraph, ...]


def sections(body: str) -> list[Section]:
    """Group paragraphs under the heading that precedes them."""
    out: list[Section] = []
    heading: str | None = None
    current: list[Paragraph] = []
    for para in paragraphs(body):
        if para.heading:
            if current:
                out.append(Section(heading, tuple(current)))
                current = []
            heading = para.text
            continue
        current.append(para)
    if current:
        out.append(Section(heading, tuple(current)))
    return out


def article_sentences(article: Article) -> list[tuple[int, Sentence]]:
    """(paragraph number, sentence) for every body sentence outside headings."""
    out: list[tuple[int, Sentence]] = []
    for number, para in enumerate(paragraphs(article.body)):
        if para.heading:
            continue
        out.extend((number, s) for s in split_sentences(para.text, para.start))
    return out


def chunk_article(
    article: Article,
    *,
    target_tokens: int,
    overlap_sentences: int = 1,
    count_tokens: TokenCounter = lambda text: len(text.split()),
) -> list[Chunk]:
    """Greedy packing of whole sentences up to ``target_tokens``; ids are ``{article_id}:{n}``."""
    if target_tokens < 1:
        raise ValueError("target_tokens must be positive")
    chunks: list[Chunk] = []
    body = article.body
    for section in sections(body):
        sents = [s for p in section.paragraphs for s in split_sentences(p.text, p.start)]
        if not sents:
            continue
        sizes = [max(1, count_tokens(s.text)) for s in sents]
        i = 0
        while i < len(sents):
            j = i
            total = 0
            while j < len(sents) and (j == i or total + sizes[j] <= target_tokens):
                total += sizes[j]
                j += 1
            start, end = sents[i].start, sents[j - 1].end
            n = len(chunks)
            chunks.append(
                Chunk(
                    id=f"{article.id}:{n}",
                    article_id=article.id,
                    n=n,
                    start=start,
                    end=end,
                    text=body[start:end],
                    heading=section.heading,
                    title=article.title,
                )
            )
            if j >= len(sents):
                break
            i = max(i + 1, j - overlap_sentences)
    return chunks
