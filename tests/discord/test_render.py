"""Rendering answers to embeds: Discord's limits, verbatim quotes, escaping, safe links, declines."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass

import discord
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.discord.render import (
    CONTENT_LIMIT,
    DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    FIELD_COUNT_LIMIT,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    FOOTER_LIMIT,
    TITLE_LIMIT,
    attribution,
    escape_text,
    fit_quote,
    render_about,
    render_answer,
    render_more_sources,
    render_sources_page,
    safe_url,
    sentence_ends,
)
from bot.i18n import frame
from bot.records import Answer, Article, Excerpt, Source

SENTENCE = "Sentence {n} of the report explains what the directive means for developers in detail."
LONG_PARAGRAPH = " ".join(SENTENCE.format(n=n) for n in range(80))  # ~7,000 characters
LONG_SENTENCE = "The directive, which officials described at length, " + "covers many things, " * 25 + "and ends here."
LONG_SENTENCES = " ".join([LONG_SENTENCE] * 12)  # ~6,000 characters in 550-character sentences


def make_source(n: int = 1, **overrides: object) -> Source:
    values: dict[str, object] = {
        "article_id": f"article-{n}",
        "title": f"Officials explain the order, part {n}",
        "publisher": f"Daily Paper {n}",
        "url": f"https://news.example.com/story-{n}",
        "published": "2025-03-07",
    }
    values.update(overrides)
    return Source(**values)  # type: ignore[arg-type]


def make_excerpt(quote: str, n: int = 1, **source: object) -> Excerpt:
    return Excerpt(
        quote=quote,
        start=0,
        end=len(quote),
        score=1.0 / n,
        source=make_source(n, **source),
        chunk_id=f"article-{n}:0",
    )


def make_answer(*excerpts: Excerpt, question: str = "What does the order restrict?") -> Answer:
    return Answer(
        question=question,
        declined=False,
        excerpts=excerpts,
        index_version="v-2025-06-01",
    )


def unescape(text: str) -> str:
    """Undo render's escaping: what a reader sees in Discord."""
    return re.sub(r"\\(.)", r"\1", text.replace("\u200b", ""), flags=re.DOTALL)


@dataclass
class Block:
    quote: str  # as rendered, without the "> " prefixes
    credit: str


def blocks(description: str) -> list[Block]:
    """Split a rendered answer into (quote, attribution) pairs."""
    found: list[Block] = []
    quote_lines: list[str] = []
    for line in description.split("\n"):
        if line.startswith("> "):
            quote_lines.append(line[2:])
        elif line.startswith("— "):
            found.append(Block("\n".join(quote_lines), line))
            quote_lines = []
        else:
            assert line == "", f"unexpected line {line!r}"
    assert not quote_lines
    return found


def assert_within_limits(embed: discord.Embed, content: str | None = None) -> None:
    assert len(embed.title or "") <= TITLE_LIMIT
    assert len(embed.description or "") <= DESCRIPTION_LIMIT
    assert len(embed.fields) <= FIELD_COUNT_LIMIT
    for field in embed.fields:
        assert len(field.name or "") <= FIELD_NAME_LIMIT
        assert len(field.value or "") <= FIELD_VALUE_LIMIT
    assert len(embed.footer.text or "") <= FOOTER_LIMIT
    assert len(embed) <= EMBED_TOTAL_LIMIT
    assert content is None or len(content) <= CONTENT_LIMIT


# -- limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "paragraph",
    [LONG_PARAGRAPH, LONG_SENTENCES],
    ids=["short-sentences", "long-sentences"],
)
@pytest.mark.parametrize("max_excerpts", [1, 3, 10])
def test_ten_long_excerpts_never_exceed_any_limit(max_excerpts: int, paragraph: str) -> None:
    excerpts = [make_excerpt(paragraph, n) for n in range(1, 11)]
    rendered = render_answer(make_answer(*excerpts), max_excerpts=max_excerpts)
    assert_within_limits(rendered.embed)
    assert 1 <= rendered.shown <= max_excerpts


def test_oversized_metadata_still_fits_every_limit() -> None:
    huge = "W" * 5000
    also = tuple(make_source(100 + n, publisher=f"Outlet {n} " + "x" * 300) for n in range(30))
    excerpts = [
        Excerpt(
            quote=LONG_PARAGRAPH,
            start=0,
            end=len(LONG_PARAGRAPH),
            score=1.0,
            source=make_source(n, title=huge, publisher=huge, url="https://example.com/" + "a" * 3000),
            chunk_id=f"a-{n}:0",
            also_reported_by=also,
        )
        for n in range(10)
    ]
    rendered = render_answer(make_answer(*excerpts, question="Q" * 3000), max_excerpts=10)
    assert_within_limits(rendered.embed)
    assert rendered.shown >= 1


def test_excerpts_that_do_not_fit_are_dropped_and_counted_in_the_footer() -> None:
    excerpts = [make_excerpt(LONG_SENTENCES, n) for n in range(1, 11)]
    rendered = render_answer(make_answer(*excerpts), max_excerpts=10)
    assert rendered.shown < 10
    assert f"{10 - rendered.shown} more excerpts under More sources" in (rendered.embed.footer.text or "")


def test_every_quote_line_is_block_quoted() -> None:
    quote = "First paragraph of the article.\n\nSecond paragraph.\nThird line."
    rendered = render_answer(make_answer(make_excerpt(quote)))
    description = rendered.embed.description or ""
    quote_part = description.split("\n— ")[0]
    assert all(line.startswith("> ") for line in quote_part.split("\n"))


def test_answer_is_one_embed() -> None:
    rendered = render_answer(make_answer(make_excerpt("A short quote.")))
    assert isinstance(rendered.embed, discord.Embed)


def test_footer_names_the_index_version() -> None:
    rendered = render_answer(make_answer(make_excerpt("A short quote.")))
    assert "v-2025-06-01" in (rendered.embed.footer.text or "")


# -- quotes are verbatim --------------------------------------------------------------------


def test_quote_that_fits_is_shown_whole_and_identical() -> None:
    quote = "The order, signed Friday, restricts exports of the models.\nIt takes effect in 30 days."
    (block,) = blocks(render_answer(make_answer(make_excerpt(quote))).embed.description or "")
    assert unescape(block.quote) == quote


def test_long_quote_is_cut_after_a_whole_sentence_with_an_ellipsis() -> None:
    rendered = render_answer(make_answer(make_excerpt(LONG_PARAGRAPH)), max_excerpts=1)
    (block,) = blocks(rendered.embed.description or "")
    shown = unescape(block.quote)
    assert shown.endswith(" …")
    kept = shown[: -len(" …")]
    assert LONG_PARAGRAPH.startswith(kept)
    assert len(kept) in sentence_ends(LONG_PARAGRAPH)


@pytest.mark.parametrize(
    "paragraph",
    [LONG_PARAGRAPH, LONG_SENTENCES],
    ids=["short-sentences", "long-sentences"],
)
@pytest.mark.parametrize("max_excerpts", [1, 3, 5, 10])
def test_every_cut_quote_in_a_full_answer_is_a_sentence_prefix(paragraph: str, max_excerpts: int) -> None:
    excerpts = [make_excerpt(paragraph, n) for n in range(1, 11)]
    rendered = render_answer(make_answer(*excerpts), max_excerpts=max_excerpts)
    for block in blocks(rendered.embed.description or ""):
        shown = unescape(block.quote)
        kept = shown.removesuffix(" …")
        assert shown.endswith(" …")
        assert len(kept) in sentence_ends(paragraph)
        assert paragraph[: len(kept)] == kept


def test_quote_whose_first_sentence_is_too_long_is_cut_at_a_word_only_when_first() -> None:
    one_sentence = " ".join(["word"] * 2000) + "."
    assert fit_quote(one_sentence, 500) is None
    cut = fit_quote(one_sentence, 500, allow_word_cut=True)
    assert cut is not None and len(cut) <= 500
    kept = unescape(cut[2:]).removesuffix(" …")
    assert one_sentence.startswith(kept) and kept.endswith("word")


@pytest.mark.parametrize(
    ("text", "not_a_boundary_after"),
    [
        ("The U.S. Department of Commerce said so. Then it left.", "U.S."),
        ("Mr. Smith agreed. Others did not.", "Mr."),
        ("Some models, e.g. this one, are covered. Others are not.", "e.g."),
        ("Growth was 3.5 percent. Analysts agreed.", "3."),
    ],
)
def test_abbreviations_and_decimals_are_not_sentence_ends(text: str, not_a_boundary_after: str) -> None:
    position = text.index(not_a_boundary_after) + len(not_a_boundary_after)
    assert position not in sentence_ends(text)
    assert sentence_ends(text)  # the real boundary is still found


# -- escaping -------------------------------------------------------------------------------

MARKUP = [
    "**bold** and __underline__",
    "*italic* and _italic_",
    "`code` and ```block```",
    "~~struck~~ and ||spoiler||",
    "> not a nested quote",
    ">>> not a quote block",
    "# Not a heading",
    "-# not subtext",
    "- not a list item",
    "1. not a numbered item",
    "[click here](https://evil.example/phish)",
    "a backslash \\ stays",
]
MENTIONS = [
    "@everyone look",
    "@here now",
    "ping <@123>",
    "ping <@!123456789012345678>",
    "role <@&5>",
    "see <#42>",
]


@pytest.mark.parametrize("text", MARKUP + MENTIONS)
def test_markup_in_quotes_is_shown_literally(text: str) -> None:
    (block,) = blocks(render_answer(make_answer(make_excerpt(text))).embed.description or "")
    assert unescape(block.quote) == text


@pytest.mark.parametrize("text", MARKUP)
def test_markdown_characters_in_quotes_are_all_escaped(text: str) -> None:
    (block,) = blocks(render_answer(make_answer(make_excerpt(text))).embed.description or "")
    assert re.search(r"(?<!\\)[*_`~|\[\]]", block.quote) is None
    assert not re.match(r"(#|-|>|\d+\.)", block.quote)


@pytest.mark.parametrize("text", MENTIONS)
def test_mentions_in_quotes_cannot_resolve(text: str) -> None:
    (block,) = blocks(render_answer(make_answer(make_excerpt(text))).embed.description or "")
    assert re.search(r"(?<!\\)<[@#]", block.quote) is None
    assert "@everyone" not in block.quote and "@here" not in block.quote


@given(
    st.text(
        alphabet=st.sampled_from(list("ab .,!?*_~|`>#-[]()<>@&:/\n0123456789\\")),
        max_size=200,
    )
)
def test_escaping_never_changes_what_is_shown(text: str) -> None:
    assert unescape(escape_text(text)) == text


# -- links and attribution ------------------------------------------------------------------


def test_safe_url_is_linked_from_the_title() -> None:
    credit = attribution(make_excerpt("Quote."))
    assert "[Officials explain the order, part 1](https://news.example.com/story-1)" in credit


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        "https://example.com/a)b",
        "https://example.com/a b",
        "https://example.com/x\n",
        "ftp://example.com/file",
        "data:text/html,<b>x</b>",
        "https:///no-host",
        "//example.com/no-scheme",
        "",
        None,
    ],
)
def test_unsafe_url_is_not_linked(url: str | None) -> None:
    credit = attribution(make_excerpt("Quote.", url=url))
    assert "](" not in credit
    assert safe_url(url) is None
    assert credit.startswith("— Officials explain the order, part 1")


def test_markdown_in_a_linked_title_is_escaped() -> None:
    credit = attribution(make_excerpt("Quote.", title="**Breaking** [news](https://evil.example) _now_"))
    link_text = credit[len("— [") : credit.index("](https://news.example.com")]
    assert unescape(link_text) == "**Breaking** [news](https://evil.example) _now_"
    assert re.search(r"(?<!\\)[*_\[\]]", link_text) is None


def test_a_pinned_quote_is_marked_as_chosen_by_the_moderators_in_the_readers_language() -> None:
    pinned = dataclasses.replace(make_excerpt("The order applies to foreign nationals.", 1), pinned=True)
    german = frame("de")
    rendered = render_answer(make_answer(pinned, make_excerpt("Other models were not affected.", 2)), tr=german)
    first, second = blocks((rendered.embed.description or "").removeprefix(f"*{german.sources_note()}*\n\n"))
    assert first.credit.endswith("· 📌 von den Moderatoren ausgewählt")
    assert "📌" not in second.credit


def test_attribution_names_publisher_and_readable_date() -> None:
    credit = attribution(make_excerpt("Quote."))
    assert "Daily Paper 1" in credit
    assert "7 March 2025" in credit


def test_unparseable_date_is_shown_as_written() -> None:
    assert "spring 2025" in attribution(make_excerpt("Quote.", published="spring 2025"))


def test_missing_publisher_and_date_are_left_out() -> None:
    credit = attribution(make_excerpt("Quote.", publisher=None, published=None))
    assert credit == "— [Officials explain the order, part 1](https://news.example.com/story-1)"


def test_corroborating_outlets_are_counted_and_named() -> None:
    excerpt = Excerpt(
        quote="Quote.",
        start=0,
        end=6,
        score=1.0,
        source=make_source(1),
        chunk_id="a:0",
        also_reported_by=(
            make_source(2, publisher="Wire A"),
            make_source(3, publisher="Wire B"),
        ),
    )
    assert attribution(excerpt).endswith("also reported by 2 outlets: Wire A, Wire B")


def test_many_corroborating_outlets_are_summarised() -> None:
    others = tuple(make_source(n, publisher=f"Outlet {n}") for n in range(10))
    excerpt = Excerpt(
        quote="Q.",
        start=0,
        end=2,
        score=1.0,
        source=make_source(1),
        chunk_id="a:0",
        also_reported_by=others,
    )
    assert attribution(excerpt).endswith("Outlet 4 and 5 more")


# -- declines -------------------------------------------------------------------------------


def declined(topics: tuple[str, ...]) -> Answer:
    return Answer(
        question="Will it rain tomorrow?",
        declined=True,
        excerpts=(),
        index_version="v1",
        covered_topics=topics,
        reason="below threshold",
    )


def test_declined_reply_says_it_is_not_covered_and_lists_topics() -> None:
    topics = ("who the order applies to", "export licences", "the **deadline**")
    rendered = render_answer(declined(topics))
    description = rendered.embed.description or ""
    assert rendered.shown == 0
    assert "couldn't find anything" in description
    for topic in topics:
        assert escape_text(topic) in description
    assert_within_limits(rendered.embed)


def test_declined_reply_without_topics_points_to_sources() -> None:
    description = render_answer(declined(())).embed.description or ""
    assert "/sources" in description


def test_declined_reply_caps_a_huge_topic_list() -> None:
    rendered = render_answer(declined(tuple("topic " + "x" * 500 for _ in range(200))))
    assert_within_limits(rendered.embed)


def test_find_sources_decline_says_plainly_nothing_was_found() -> None:
    rendered = render_answer(declined(("export licences",)), subject="message")
    assert "found nothing in the knowledge base about that message" in (rendered.embed.description or "")


# -- more sources, sources list, about ------------------------------------------------------


def test_more_sources_starts_after_the_excerpts_already_shown() -> None:
    excerpts = [make_excerpt(f"Quote number {n}.", n) for n in range(1, 6)]
    rendered = render_more_sources("Q?", excerpts, start=3, index_version="v1", max_excerpts=3)
    shown = [unescape(b.quote) for b in blocks(rendered.embed.description or "")]
    assert shown == ["Quote number 4.", "Quote number 5."]


def make_article(n: int, **overrides: object) -> Article:
    values: dict[str, object] = {
        "id": f"a-{n}",
        "title": f"Article {n}",
        "body": "Body.",
        "publisher": "Paper",
        "url": f"https://example.com/{n}",
        "published": dt.date(2025, 1, 1) + dt.timedelta(days=n),
    }
    values.update(overrides)
    return Article(**values)  # type: ignore[arg-type]


def test_sources_page_shows_its_slice_and_position() -> None:
    articles = [make_article(n) for n in range(25)]
    embed = render_sources_page(articles, page=1, per_page=10)
    assert "**11.** [Article 10](https://example.com/10)" in (embed.description or "")
    assert "Article 9]" not in (embed.description or "")
    assert embed.footer.text == "Page 2 of 3 · 25 articles"


@pytest.mark.parametrize(("page", "expected"), [(-5, "Page 1 of 3"), (99, "Page 3 of 3")])
def test_sources_page_number_is_clamped(page: int, expected: str) -> None:
    embed = render_sources_page([make_article(n) for n in range(25)], page=page, per_page=10)
    assert (embed.footer.text or "").startswith(expected)


def test_sources_page_with_huge_titles_fits() -> None:
    articles = [make_article(n, title="T" * 5000, publisher="P" * 5000) for n in range(30)]
    assert_within_limits(render_sources_page(articles, page=0, per_page=30))


def test_empty_sources_list_says_so() -> None:
    assert "no articles" in (render_sources_page([], page=0, per_page=10).description or "")


@dataclass(frozen=True)
class FakeInfo:
    index_version: str = "v-2025-06-01"
    built_at: dt.datetime | None = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    articles: int = 42
    chunks: int = 900
    model: str = "sentence-transformers/all-MiniLM-L6-v2"
    dimension: int = 384
    last_build_seconds: float | None = 12.0
    stale: bool = False


def test_about_states_what_the_bot_does_not_do_and_the_index_facts() -> None:
    embed = render_about(FakeInfo())  # type: ignore[arg-type]
    values = {field.name: field.value for field in embed.fields}
    assert "never write claims of my own" in (embed.description or "")
    assert "not legal advice" in (embed.description or "").replace("Nothing I show is legal advice", "not legal advice")
    assert values["Articles"] == "42" and values["Passages"] == "900"
    assert "v-2025-06-01" in values["Index version"]
    assert_within_limits(embed)


def test_about_tolerates_an_unknown_build_time_and_flags_staleness() -> None:
    embed = render_about(FakeInfo(built_at=None, stale=True))  # type: ignore[arg-type]
    names = [field.name for field in embed.fields]
    assert "Index built" not in names and "Note" in names


def test_a_tentative_answer_says_the_passages_may_not_answer_exactly() -> None:
    from dataclasses import replace as _replace

    from bot.discord.render import TENTATIVE_NOTE, render_answer

    answer = _replace(make_answer(make_excerpt("The order restricts two models.")), tentative=True)
    rendered = render_answer(answer)
    assert rendered.embed.description.startswith(f"*{TENTATIVE_NOTE}*")
    assert not render_answer(_replace(answer, tentative=False)).embed.description.startswith("*")


def test_a_tentative_answer_names_what_the_articles_never_mention() -> None:
    from dataclasses import replace as _replace

    from bot.discord.render import render_answer

    answer = _replace(
        make_answer(make_excerpt("The order restricts two models.")), tentative=True, unknown_names=("Japan",)
    )
    assert render_answer(answer).embed.description.startswith("*My articles never mention Japan;")
