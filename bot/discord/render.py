"""Answers, source lists and the about card as Discord embeds: pure functions, no I/O.

Quoted text is only ever escaped (so it shows exactly as written: no markdown, no mentions, no
masked links) and, when it must be, cut at a sentence boundary with " …". Excerpts that do not
fit are dropped from the message; they stay reachable through "More sources".

Everything around the quotes is in the reader's language: each function takes a ``tr`` frame
from ``bot.i18n`` (English by default). Quotes, titles and publishers never go through it.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import discord

from bot.discord.markup import MARKUP_START
from bot.i18n import ENGLISH, N_, Frame
from bot.records import Answer, Article, Excerpt, Source

if TYPE_CHECKING:
    from bot.db import RebuildEntry
    from bot.service import IndexInfo

# Discord's documented limits.
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FIELD_COUNT_LIMIT = 25
FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
CONTENT_LIMIT = 2000

ELLIPSIS = " …"
# A quote cut shorter than this says too little; the excerpt is left for "More sources" instead.
MIN_QUOTE_CHARS = 160
# When its fair share of the space is too small for a whole sentence, a quote may grow to this.
STRETCH_QUOTE_CHARS = 1200
MAX_TOPICS = 15
MAX_OUTLETS_NAMED = 5

COLOUR_ANSWER = discord.Colour.blurple()
COLOUR_DECLINED = discord.Colour.light_grey()

DISCLAIMER = N_("Verbatim quotes from the articles named; not legal advice")


@dataclass(frozen=True)
class RenderedAnswer:
    """One message: one embed showing ``shown`` excerpts."""

    embed: discord.Embed
    shown: int


# -- escaping ---------------------------------------------------------------------------------

_NUMBERED_LIST = re.compile(r"^(\s*\d+)\.(?=\s)", re.MULTILINE)


def _escape_brackets(escaped: str) -> str:
    """Backslash every ``[`` and ``]`` not already escaped, so no masked link can form."""
    out: list[str] = []
    i = 0
    while i < len(escaped):
        ch = escaped[i]
        if ch == "\\" and i + 1 < len(escaped):
            out.append(escaped[i : i + 2])
            i += 2
            continue
        out.append("\\" + ch if ch in "[]" else ch)
        i += 1
    return "".join(out)


# escape_markdown puts the backslash of an indented "  - item" before the spaces; move it to the dash.
_INDENTED_DASH = re.compile(r"^\\(\s+)-", re.MULTILINE)


def escape_text(text: str) -> str:
    """Make ``text`` display literally in Discord: markdown, lists, headings, links and mentions."""
    text = discord.utils.escape_markdown(text, ignore_links=True)
    text = _INDENTED_DASH.sub(r"\1\\-", text)
    text = _NUMBERED_LIST.sub(r"\1\\.", text)
    text = _escape_brackets(text)
    text = MARKUP_START.sub(r"\\<", text)
    return discord.utils.escape_mentions(text)


def escape_cut(text: str, limit: int) -> str:
    """Escape ``text`` and shorten it (not a quote: titles, names) to ``limit`` characters."""
    escaped = escape_text(text)
    if len(escaped) <= limit:
        return escaped
    keep = min(len(text), limit)
    while keep > 0:
        # Cut the raw text, then escape: cutting escaped text could split a "\*" pair.
        candidate = escape_text(text[:keep].rstrip()) + "…"
        if len(candidate) <= limit:
            return candidate
        keep -= max(1, (len(candidate) - limit))
    return "…"[:limit]


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- links and dates --------------------------------------------------------------------------

_URL_UNSAFE = re.compile(r"[\s()<>\[\]\"'`\\]|[\x00-\x1f\x7f]")


def safe_url(url: str | None) -> str | None:
    """The URL when it can be a markdown link target: http(s), a host, nothing that breaks out."""
    if not url or len(url) > 512 or _URL_UNSAFE.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def format_date(published: str | None, tr: Frame = ENGLISH) -> str | None:
    """``2025-03-07`` -> ``7 March 2025`` (``7. März 2025`` in German); anything unparseable as written."""
    if not published:
        return None
    try:
        day = dt.date.fromisoformat(published[:10])
    except ValueError:
        return escape_text(_one_line(published))[:40]
    return tr.format_date(day)


def linked_title(source: Source | Article, *, limit: int = 200, tr: Frame = ENGLISH) -> str:
    """``[title](url)`` when the URL is safe to link, else the escaped title alone."""
    title = _one_line(source.title) or source.url or tr.gettext("Untitled")
    url = safe_url(source.url)
    if url is None:
        return escape_cut(title, limit)
    return f"[{escape_cut(title, limit)}]({url})"


def _outlet(source: Source) -> str:
    return _one_line(source.publisher or source.title or source.article_id)


def attribution(excerpt: Excerpt, tr: Frame = ENGLISH) -> str:
    """One line naming where a quote comes from, and who else reported the same thing."""
    parts = [linked_title(excerpt.source, tr=tr)]
    if excerpt.source.publisher:
        parts.append(escape_cut(_one_line(excerpt.source.publisher), 100))
    date = format_date(excerpt.source.published, tr)
    if date:
        parts.append(date)
    outlets: list[str] = []
    for other in excerpt.also_reported_by:
        name = _outlet(other)
        if name and name not in outlets:
            outlets.append(name)
    if outlets:
        named = tr.gettext(", ").join(escape_cut(name, 60) for name in outlets[:MAX_OUTLETS_NAMED])
        if len(outlets) > MAX_OUTLETS_NAMED:
            rest = len(outlets) - MAX_OUTLETS_NAMED
            named = tr.ngettext("{names} and {count} more", "{names} and {count} more", rest).format(
                names=named, count=rest
            )
        also = tr.ngettext(
            "also reported by {count} outlet: {names}", "also reported by {count} outlets: {names}", len(outlets)
        )
        parts.append(also.format(count=len(outlets), names=named))
    return "— " + " · ".join(parts)


# -- quotes -----------------------------------------------------------------------------------

# A sentence ends at . ! ? or … (plus closing quotes/brackets) followed by whitespace and then
# something that can start a sentence; "e.g. this" and "3.5 percent" are not boundaries.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9À-Þ])")
_ABBREVIATION = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|Sen|Rep|Gov|Gen|Jr|Sr|St|Inc|Co|Corp|Ltd|No|vs|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)|\b[A-Z])\.$"
)


def sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence end inside ``text`` (the end of text is not included)."""
    ends = []
    for match in _SENTENCE_END.finditer(text):
        if _ABBREVIATION.search(text, max(0, match.start() - 12), match.start() + 1):
            continue
        ends.append(match.end())
    return ends


def block_quote(escaped: str) -> str:
    """Prefix every line with ``> `` so multi-paragraph quotes stay one quote."""
    return "\n".join(f"> {line}" for line in escaped.split("\n"))


def fit_quote(quote: str, budget: int, *, allow_word_cut: bool = False) -> str | None:
    """The quote as a block quote within ``budget`` characters, or None when it cannot fit.

    The quote is shown whole if it fits; otherwise it is cut after the last sentence that fits and
    " …" is added. Only when ``allow_word_cut`` (the first excerpt of a message, whose first
    sentence alone is too long) is it cut at a word boundary instead.
    """
    whole = block_quote(escape_text(quote))
    if len(whole) <= budget:
        return whole
    for end in reversed(sentence_ends(quote)):
        if end + len(ELLIPSIS) + 2 > budget:
            continue  # escaping only adds characters: this prefix cannot fit
        candidate = block_quote(escape_text(quote[:end]) + ELLIPSIS)
        if len(candidate) <= budget:
            return candidate
    if allow_word_cut:
        for match in reversed(list(re.finditer(r"\S(?=\s)", quote))):
            if match.end() + len(ELLIPSIS) + 2 > budget:
                continue
            candidate = block_quote(escape_text(quote[: match.end()]) + ELLIPSIS)
            if len(candidate) <= budget:
                return candidate
    return None


# -- answers ----------------------------------------------------------------------------------


def _footer(index_version: str, hidden: int, tr: Frame = ENGLISH) -> str:
    text = tr.gettext(DISCLAIMER) + " · " + tr.gettext("index {version}").format(version=index_version)
    if hidden > 0:
        more = tr.ngettext(
            "{count} more excerpt under More sources", "{count} more excerpts under More sources", hidden
        )
        text += " · " + more.format(count=hidden)
    return text[:FOOTER_LIMIT]


def _excerpt_blocks(excerpts: Sequence[Excerpt], budget: int, tr: Frame = ENGLISH) -> list[str]:
    """Quote + attribution blocks, best first, that fit in ``budget``; stops at the first misfit."""
    blocks: list[str] = []
    used = 0
    for i, excerpt in enumerate(excerpts):
        credit = attribution(excerpt, tr)
        if excerpt.pinned:
            credit += f" · {tr.pinned_mark()}"
        sep = "\n\n" if blocks else ""
        room = budget - used - len(sep) - len(credit) - 1
        if room < MIN_QUOTE_CHARS and blocks:
            break
        # Share what is left fairly so the first quote cannot crowd out the rest.
        fair = (budget - used) // (len(excerpts) - i) - len(sep) - len(credit) - 1
        fair = max(fair, MIN_QUOTE_CHARS)
        shares = [s for s in dict.fromkeys((fair, max(fair, min(room, STRETCH_QUOTE_CHARS)))) if s <= room]
        quote = next(
            (q for q in (fit_quote(excerpt.quote, share) for share in shares) if q is not None),
            None,
        )
        if quote is None and not blocks and shares:
            # The best excerpt's first sentence alone is too long: a word-boundary cut beats nothing.
            quote = fit_quote(excerpt.quote, shares[0], allow_word_cut=True)
        if quote is None:
            break
        block = f"{sep}{quote}\n{credit}"
        blocks.append(block)
        used += len(block)
    return blocks


def _question_title(prefix: str, question: str) -> str:
    return prefix + escape_cut(_one_line(question), TITLE_LIMIT - len(prefix))


TENTATIVE_NOTE = N_("These are the closest passages I found; they may not answer your question exactly.")


def tentative_note(answer: Answer, tr: Frame = ENGLISH) -> str:
    """The hedge shown above a tentative answer, naming what the articles never mention."""
    if answer.unknown_names:
        names = tr.gettext(", ").join(escape_text(n) for n in answer.unknown_names[:5])
        return tr.gettext("My articles never mention {names}; these are the closest passages I found.").format(
            names=names[:300]
        )
    return tr.gettext(TENTATIVE_NOTE)


def render_excerpts(
    excerpts: Sequence[Excerpt],
    *,
    title: str,
    index_version: str,
    max_excerpts: int,
    note: str = "",
    tr: Frame = ENGLISH,
) -> RenderedAnswer:
    """An embed quoting the first excerpts that fit (at most ``max_excerpts``), best first.

    A reader whose frame is not English is told first that the quotes are English and untouched,
    so an English block under a German title reads as intended, not as a failure to translate.
    """
    candidates = list(excerpts[: max(1, max_excerpts)])
    embed = discord.Embed(title=title[:TITLE_LIMIT], colour=COLOUR_ANSWER)
    footer_room = len(_footer(index_version, len(excerpts), tr))
    lead = "".join(f"*{line}*\n\n" for line in (tr.sources_note(), note) if line)
    budget = min(DESCRIPTION_LIMIT, EMBED_TOTAL_LIMIT - len(embed.title or "") - footer_room) - len(lead)
    blocks = _excerpt_blocks(candidates, budget, tr)
    embed.description = lead + "".join(blocks)
    embed.set_footer(text=_footer(index_version, len(excerpts) - len(blocks), tr))
    return RenderedAnswer(embed=embed, shown=len(blocks))


def render_declined(
    question: str,
    topics: Sequence[str],
    *,
    subject: Literal["question", "message"] = "question",
    index_version: str | None = None,
    tr: Frame = ENGLISH,
) -> RenderedAnswer:
    """A kind no: the articles do not cover this, and here is what they do cover."""
    if subject == "message":
        title = tr.gettext("Nothing found in the knowledge base")
        lead = tr.gettext("I found nothing in the knowledge base about that message, so I have nothing to quote.")
    else:
        title = _question_title(tr.gettext("Not covered: "), question)
        lead = tr.gettext(
            "I couldn't find anything in my articles that answers this. I only quote articles, so I won't guess."
        )
    lines = [lead]
    shown_topics = [t for t in (_one_line(t) for t in topics) if t][:MAX_TOPICS]
    if shown_topics:
        lines.append("")
        lines.append("**" + tr.gettext("The articles I have cover:") + "**")
        lines.extend(f"• {escape_cut(t, 120)}" for t in shown_topics)
        lines.append("")
        lines.append(tr.gettext("Try asking about one of these, or use `/sources` to browse the articles."))
    else:
        lines.append("")
        lines.append(tr.gettext("Use `/sources` to browse the articles I can quote."))
    embed = discord.Embed(
        title=title[:TITLE_LIMIT],
        description="\n".join(lines)[:DESCRIPTION_LIMIT],
        colour=COLOUR_DECLINED,
    )
    if index_version:
        embed.set_footer(text=tr.gettext("index {version}").format(version=index_version)[:FOOTER_LIMIT])
    return RenderedAnswer(embed=embed, shown=0)


def render_answer(
    answer: Answer,
    *,
    max_excerpts: int = 3,
    subject: Literal["question", "message"] = "question",
    tr: Frame = ENGLISH,
) -> RenderedAnswer:
    """The reply to a question: quotes with attribution, or a kind decline listing covered topics."""
    if answer.declined or not answer.excerpts:
        return render_declined(
            answer.question,
            answer.covered_topics,
            subject=subject,
            index_version=answer.index_version,
            tr=tr,
        )
    prefix = tr.gettext("About that message: ") if subject == "message" else ""
    title = _question_title(prefix, answer.question)
    return render_excerpts(
        answer.excerpts,
        title=title,
        index_version=answer.index_version,
        max_excerpts=max_excerpts,
        note=tentative_note(answer, tr) if answer.tentative else "",
        tr=tr,
    )


def render_more_sources(
    question: str,
    excerpts: Sequence[Excerpt],
    *,
    start: int,
    index_version: str,
    max_excerpts: int = 3,
    tr: Frame = ENGLISH,
) -> RenderedAnswer:
    """The excerpts after the first ``start`` ones, for the "More sources" button."""
    title = _question_title(tr.gettext("More sources: "), question)
    return render_excerpts(
        excerpts[start:],
        title=title,
        index_version=index_version,
        max_excerpts=max_excerpts,
        tr=tr,
    )


# -- sources and about ------------------------------------------------------------------------


def page_count(total: int, per_page: int) -> int:
    """Pages needed for ``total`` items; at least one so an empty list still renders."""
    return max(1, math.ceil(total / max(1, per_page)))


def render_article_page(
    articles: Sequence[Article],
    page: int,
    per_page: int,
    *,
    title: str,
    colour: int,
    empty: str,
    line_for: Callable[[int, Article], str],
    tr: Frame = ENGLISH,
) -> discord.Embed:
    """Page ``page`` (0-based, clamped) of an article list, one ``line_for(n, article)`` each."""
    per_page = max(1, per_page)
    pages = page_count(len(articles), per_page)
    page = min(max(page, 0), pages - 1)
    embed = discord.Embed(title=title, colour=colour)
    if not articles:
        embed.description = empty
        return embed
    lines: list[str] = []
    used = 0
    first = page * per_page
    for n, article in enumerate(articles[first : first + per_page], start=first + 1):
        line = line_for(n, article)
        if used + len(line) + 1 > DESCRIPTION_LIMIT:
            break
        lines.append(line)
        used += len(line) + 1
    embed.description = "\n".join(lines)
    pages_text = tr.gettext("Page {page} of {pages}").format(page=page + 1, pages=pages)
    count = tr.ngettext("{count} article", "{count} articles", len(articles)).format(count=len(articles))
    embed.set_footer(text=f"{pages_text} · {count}")
    return embed


def _source_line(n: int, article: Article, tr: Frame = ENGLISH) -> str:
    details = [linked_title(article, limit=180, tr=tr)]
    if article.publisher:
        details.append(escape_cut(_one_line(article.publisher), 80))
    if article.published:
        details.append(format_date(article.published.isoformat(), tr) or "")
    return f"**{n}.** " + " · ".join(d for d in details if d)


def render_sources_page(
    articles: Sequence[Article], page: int, per_page: int = 10, *, tr: Frame = ENGLISH
) -> discord.Embed:
    """``/sources``: linked title, publisher, date; the articles themselves stay in English."""
    embed = render_article_page(
        articles,
        page,
        per_page,
        title=tr.gettext("Articles in the knowledge base"),
        colour=COLOUR_ANSWER,
        empty=tr.gettext("The knowledge base has no articles yet."),
        line_for=lambda n, article: _source_line(n, article, tr),
        tr=tr,
    )
    note = tr.sources_note()
    if note and articles:
        embed.description = f"*{note}*\n\n{embed.description}"[:DESCRIPTION_LIMIT]
    return embed


ABOUT_TEXT = N_(
    "I answer questions about the US government order restricting Anthropic's Fable 5 and "
    "Mythos 5 models by **quoting news articles** from a curated knowledge base, word for word, "
    "with each article's title, publisher, date and link.\n\n"
    "I never write claims of my own: every sentence in an answer is quoted from an article. "
    "When the articles don't cover a question I say so instead of guessing. Nothing I show is "
    "legal advice; read the linked articles for context."
)


def _when(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return f"{discord.utils.format_dt(moment, 'f')} ({discord.utils.format_dt(moment, 'R')})"


def render_about(info: IndexInfo, *, last_rebuild: RebuildEntry | None = None, tr: Frame = ENGLISH) -> discord.Embed:
    """What the bot is and is not, and the state of the index it answers from."""
    description = tr.gettext(ABOUT_TEXT)
    note = tr.sources_note()
    if note:
        description += "\n\n" + tr.gettext(
            "The articles are in English; I quote them as written and translate only the text around the quotes."
        )
    embed = discord.Embed(title=tr.gettext("About directive-bot"), description=description, colour=COLOUR_ANSWER)
    embed.add_field(
        name=tr.gettext("Index version"),
        value=f"`{_one_line(info.index_version)[:200]}`",
        inline=True,
    )
    embed.add_field(name=tr.gettext("Articles"), value=str(info.articles), inline=True)
    embed.add_field(name=tr.gettext("Passages"), value=str(info.chunks), inline=True)
    if info.built_at is not None:
        embed.add_field(name=tr.gettext("Index built"), value=_when(info.built_at), inline=False)
    if last_rebuild is not None:
        outcome = (
            tr.gettext("{when}, succeeded in {seconds} s, started by {who}")
            if last_rebuild.ok
            else tr.gettext("{when}, failed in {seconds} s, started by {who}")
        )
        value = outcome.format(
            when=_when(last_rebuild.started_at),
            seconds=f"{last_rebuild.seconds:.1f}",
            who=escape_cut(_one_line(last_rebuild.started_by), 80),
        )
        embed.add_field(name=tr.gettext("Last rebuild"), value=value[:FIELD_VALUE_LIMIT], inline=False)
    elif info.last_build_seconds is not None:
        embed.add_field(
            name=tr.gettext("Last build took"),
            value=f"{info.last_build_seconds:.1f} s",
            inline=False,
        )
    dimensions = tr.ngettext("{count} dimension", "{count} dimensions", info.dimension).format(count=info.dimension)
    embed.add_field(
        name=tr.gettext("Model"),
        value=f"`{_one_line(info.model)[:200]}` ({dimensions})",
        inline=False,
    )
    if info.stale:
        embed.add_field(
            name=tr.gettext("Note"),
            value=tr.gettext("Articles changed since this index was built; a rebuild will pick them up."),
            inline=False,
        )
    embed.set_footer(text=tr.gettext("Ask with /ask, by mentioning me, or with Apps → Find sources on a message."))
    return embed


def cut_content(text: str) -> str:
    """Plain message content within Discord's 2000 characters (for one-line notices)."""
    return text if len(text) <= CONTENT_LIMIT else text[: CONTENT_LIMIT - 1] + "…"
