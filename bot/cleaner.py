"""The cleaner that turns a raw scraped article into an article body.

It removes boilerplate (ads, stray tokens, calls to action, link bait, repeated headings) but never
rewrites the article's own words: quotes are later checked character for character against the body.
"""

from __future__ import annotations

import re
import unicodedata

_BOILERPLATE_LINES = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^advertisement$",
        r"^(sponsored|ad)$",
        r"^leave a (comment|reply)$",
        r"^your email address will not be published\b.*$",
        r"^required fields are marked\b.*$",
        r"^you may also like\b.*$",
        r"^(related|recommended) (articles|stories|posts)\b.*$",
        r"^please provide the content that you want to be rewritten\.?$",
        r"^share (this|on)\b.{0,40}$",
        r"^(key takeaways on|read more|read also|see also|also read)\b.{0,120}$",
    )
]
# A stray token: one lowercase word mixing letters and digits (tracking ids such as ``tmnox3v6sl``).
_STRAY_TOKEN = re.compile(r"^(?=[a-z0-9]*\d)(?=[a-z0-9]*[a-z])[a-z0-9]{6,24}$")
# "Anthropic News | Headline": a section label and a pipe, the shape of a related-article link.
_RELATED_LINK = re.compile(r"^[\w’'&.-]+(?: [\w’'&.-]+){0,2} \| .{10,}$")
# Calls to action and link bait, removed sentence by sentence.
_BAIT_SENTENCES = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^for more (information|on)\b.*\b(read about|check out|see|visit)\b",
        r"\bcheck out (this|our)\b",
        r"\bsubscribe to (our|the) newsletter\b",
        r"\bsign up for (our|the) newsletter\b",
        r"^continue reading\b",
        r"^join the discussion\b",
        r"\bstay informed on the latest\b",
        r"^click here\b",
    )
]
_PRO_TIP = re.compile(r"^pro tip:?$", re.IGNORECASE)
_BYLINE = re.compile(r"^by\s+(?P<name>[A-Z][\w.’' -]{1,60})$")
_BULLET = re.compile(r"^\s*(?:[•●▪◦‣∙·*\-–]\s+)+")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200c\u200d\u2060\ufeff]")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?…])(?:[”’\")\]]*)\s+(?=[“‘\"(\[]?[A-Z0-9])")


def is_heading(paragraph: str) -> bool:
    """A short line without closing punctuation reads as a heading, not prose."""
    text = paragraph.strip()
    if not text or "\n" in text or len(text) > 120:
        return False
    if len(text.split()) > 16:
        return False
    if text[-1] in '.!:;,"”’)…':
        return False
    return text[0].isupper() or text[0].isdigit() or text[0] in "“‘\"'"


def _split_sentences_rough(paragraph: str) -> list[str]:
    """Enough sentence splitting to drop bait sentences; chunking uses a real segmenter."""
    return [s for s in _SENTENCE_SPLIT.split(paragraph) if s]


def _raw_paragraphs(raw: str) -> list[str]:
    """Every non-empty line starts a paragraph; indented lines after a bullet continue it."""
    text = _CONTROL.sub("", unicodedata.normalize("NFC", raw)).replace("\r\n", "\n").replace("\r", "\n")
    paragraphs: list[str] = []
    in_bullet = False
    bullet_indent = 0
    for line in text.split("\n"):
        if not line.strip():
            in_bullet = False
            continue
        indent = len(line) - len(line.lstrip())
        if _BULLET.match(line):
            paragraphs.append(_BULLET.sub("", line, count=1))
            in_bullet, bullet_indent = True, indent
            continue
        if in_bullet and indent > bullet_indent and paragraphs:
            paragraphs[-1] = paragraphs[-1] + " " + line.strip()
            continue
        in_bullet = False
        paragraphs.append(line)
    return [_SPACES.sub(" ", p).strip() for p in paragraphs if p.strip()]


def _clean_once(paragraphs: list[str]) -> list[str]:
    out: list[str] = []
    seen_headings: set[str] = set()
    skip_next = False
    for para in paragraphs:
        if skip_next:
            skip_next = False
            continue
        if _PRO_TIP.match(para):
            skip_next = True  # the call to action that follows the label
            continue
        if para.lower().startswith("pro tip:"):
            continue
        if _STRAY_TOKEN.match(para) or any(p.match(para) for p in _BOILERPLATE_LINES):
            continue
        if _RELATED_LINK.match(para):
            continue
        if is_heading(para):
            key = para.casefold()
            if key in seen_headings:
                continue  # a heading repeated (templates often print it twice)
            seen_headings.add(key)
            out.append(para)
            continue
        sentences = _split_sentences_rough(para)
        kept = [s for s in sentences if not any(p.search(s) for p in _BAIT_SENTENCES)]
        if len(kept) != len(sentences):
            para = " ".join(kept).strip()
            if not para:
                continue
        out.append(para)
    # Headings left with nothing after them introduced content that was removed.
    while out and is_heading(out[-1]):
        out.pop()
    return out


def clean_text(raw: str) -> str:
    """Clean a raw article into paragraphs separated by blank lines. Idempotent."""
    paragraphs = _raw_paragraphs(raw)
    for _ in range(20):
        cleaned = _clean_once(paragraphs)
        if cleaned == paragraphs:
            break
        paragraphs = cleaned
    return "\n\n".join(paragraphs)


def split_title(cleaned: str) -> tuple[str | None, str | None, str]:
    """Take the headline (first paragraph) and an optional ``by Name`` byline off a cleaned text."""
    paragraphs = cleaned.split("\n\n") if cleaned else []
    title = None
    author = None
    if (paragraphs and is_heading(paragraphs[0])) or (paragraphs and len(paragraphs[0]) <= 160 and len(paragraphs) > 1):
        title = paragraphs.pop(0)
    if paragraphs:
        m = _BYLINE.match(paragraphs[0])
        if m:
            author = m.group("name").strip()
            paragraphs.pop(0)
    return title, author, "\n\n".join(paragraphs)
