"""Article -> sentences -> chunks, by exact character offsets into the article body.

Chunks never cut a sentence, stay inside one section (headings are context, not quotes) and
overlap by whole sentences so an answer near a boundary is whole in at least one chunk. A
"sentence" longer than ``max_sentence_chars`` (a run-on list, a page without punctuation) is
split at clause boundaries, else at word boundaries, so each part fits a chunk and the models see
all of it; every part is still an exact slice of the body.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from bot.cleaner import is_heading
from bot.config import ChunkingSettings
from bot.records import Article, Chunk, Sentence

TokenCounter = Callable[[str], int]
MAX_SENTENCE_CHARS = ChunkingSettings().max_sentence_chars
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# Where a long sentence may be split: after a clause mark followed by a space, else at a space.
_CLAUSE_BREAK = re.compile(r"[,;:)\]”’\u2013\u2014](?=\s)|\s[\u2013\u2014-](?=\s)")
_WORD_BREAK = re.compile(r"\s+")
# pysbd's regexes grow slow on very long text; paragraphs past this are pre-cut at sentence ends.
_SEGMENT_WINDOW = 20_000


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


def split_sentences(text: str, offset: int = 0, *, max_chars: int = MAX_SENTENCE_CHARS) -> list[Sentence]:
    """Sentences of one paragraph, located exactly in ``text`` (whitespace trimmed); long ones split in parts."""
    return [
        Sentence(offset + start, offset + end, text[start:end])
        for start, end in _sentence_bounds(text)
        for start, end in split_long(text, start, end, max_chars)
    ]


def split_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """``text[start:end]`` as parts of at most ``max_chars``, cut after a clause mark, else between words.

    Parts are trimmed of surrounding whitespace, so each is an exact slice; only a run of over
    ``max_chars`` characters without any space is cut mid-word.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    parts: list[tuple[int, int]] = []
    pos = start
    while end - pos > max_chars:
        limit = pos + max_chars
        floor = pos + max_chars // 3  # do not leave tiny parts behind
        cut = None
        for pattern in (_CLAUSE_BREAK, _WORD_BREAK):
            found = [m.end() for m in pattern.finditer(text, floor, limit)]
            if found:
                cut = found[-1]
                break
        if cut is None:
            cut = limit
        piece = text[pos:cut]
        lead = len(piece) - len(piece.lstrip())
        if piece.strip():
            parts.append((pos + lead, pos + len(piece.rstrip())))
        pos = cut
        while pos < end and text[pos].isspace():
            pos += 1
    if end > pos:
        piece = text[pos:end]
        lead = len(piece) - len(piece.lstrip())
        if piece.strip():
            parts.append((pos + lead, pos + len(piece.rstrip())))
    return parts


@functools.lru_cache(maxsize=4096)
def _sentence_bounds(text: str) -> tuple[tuple[int, int], ...]:
    """The segmenter is slow; chunking and the sentence store ask for the same paragraphs."""
    if len(text) > _SEGMENT_WINDOW:
        return _long_paragraph_bounds(text)
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


_ROUGH_END = re.compile(r"[.!?…][”’\")\]]*\s+")


def _long_paragraph_bounds(text: str) -> tuple[tuple[int, int], ...]:
    """A paragraph too long for pysbd: cut into windows at sentence ends (or anywhere), segment each."""
    out: list[tuple[int, int]] = []
    pos = 0
    while pos < len(text):
        stop = min(len(text), pos + _SEGMENT_WINDOW)
        if stop < len(text):
            ends = [m.end() for m in _ROUGH_END.finditer(text, pos + _SEGMENT_WINDOW // 2, stop)]
            stop = ends[-1] if ends else stop
        out.extend((pos + s, pos + e) for s, e in _sentence_bounds(text[pos:stop]))
        pos = stop
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


def article_sentences(article: Article, *, max_chars: int = MAX_SENTENCE_CHARS) -> list[tuple[int, Sentence]]:
    """(paragraph number, sentence) for every body sentence outside headings."""
    out: list[tuple[int, Sentence]] = []
    for number, para in enumerate(paragraphs(article.body)):
        if para.heading:
            continue
        out.extend((number, s) for s in split_sentences(para.text, para.start, max_chars=max_chars))
    return out


def chunk_article(
    article: Article,
    *,
    target_tokens: int,
    overlap_sentences: int = 1,
    count_tokens: TokenCounter = lambda text: len(text.split()),
    max_sentence_chars: int = MAX_SENTENCE_CHARS,
) -> list[Chunk]:
    """Greedy packing of whole sentences up to ``target_tokens``; ids are ``{article_id}:{n}``."""
    if target_tokens < 1:
        raise ValueError("target_tokens must be positive")
    chunks: list[Chunk] = []
    body = article.body
    for section in sections(body):
        sents = [s for p in section.paragraphs for s in split_sentences(p.text, p.start, max_chars=max_sentence_chars)]
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
