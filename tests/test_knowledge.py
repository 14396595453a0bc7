import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.errors import KnowledgeError, NotFound
from bot.knowledge import (
    article_file_text,
    article_from_raw,
    clean_text,
    get_article,
    load_knowledge,
    parse_article,
    slugify,
    split_title,
    validate_id,
    write_article,
)
from bot.models import Article
from tests.conftest import KNOWLEDGE, SEEDS

HEADLINE = "Anthropic Suspends Mythos Model Access"
PARA = "The order came from the Commerce Department, a person said. It was unclear how long it would last."


def raw(*lines: str) -> str:
    return "\n".join(lines)


@pytest.mark.parametrize(
    "noise",
    [
        "tmnox3v6sl",
        "advertisement",
        "Advertisement",
        "Leave a Comment",
        "Your email address will not be published. Required fields are marked *",
        "You may also like",
        "Please provide the content that you want to be rewritten.",
        "Anthropic News | Anthropic Suspends Fable 5, Mythos 5 AI Models After US Security Order",
        "Key takeaways on Anthropic's concerning new Mythos AI model",
    ],
)
def test_cleaner_removes_boilerplate_line(noise: str) -> None:
    cleaned = clean_text(raw(HEADLINE, noise, PARA, noise))
    assert noise not in cleaned
    assert PARA in cleaned


@pytest.mark.parametrize(
    "bait",
    [
        "For more information on the impact of this withdrawal, you can read about the US government’s order.",
        "For more on how Anthropic is impacting business automation, "
        "check out this comparison of business automation solutions.",
        "Subscribe to our newsletter for weekly updates on how government regulations are reshaping the tech industry.",
    ],
)
def test_cleaner_removes_link_bait_sentence_but_keeps_the_rest_of_the_paragraph(bait: str) -> None:
    cleaned = clean_text(raw(HEADLINE, f"{PARA} {bait}"))
    assert bait not in cleaned
    assert PARA in cleaned


def test_cleaner_removes_pro_tip_call_to_action_with_its_paragraph() -> None:
    tip = "For companies relying on the API, ensure your compliance team reviews the guidelines."
    cleaned = clean_text(raw(HEADLINE, PARA, "Pro Tip:", tip, "Another paragraph of the article follows here."))
    assert "Pro Tip" not in cleaned and tip not in cleaned
    assert "Another paragraph of the article follows here." in cleaned


def test_cleaner_drops_a_heading_repeated_later() -> None:
    heading = "Why is the US government restricting AI access?"
    cleaned = clean_text(raw(HEADLINE, heading, PARA, heading, "Did you know?", "More text about it, as reported."))
    assert cleaned.count(heading) == 1


def test_cleaner_keeps_curly_quotes_and_dashes() -> None:
    text = "“We believe this is a misunderstanding,” Anthropic said — and it’s working to restore access."
    assert text in clean_text(raw(HEADLINE, text))


def test_cleaner_normalises_whitespace_and_separates_paragraphs_with_blank_lines() -> None:
    cleaned = clean_text("Title here\n\n\n  First   paragraph\u00a0text.  \nSecond paragraph.\r\n")
    assert cleaned == "Title here\n\nFirst paragraph text.\n\nSecond paragraph."


def test_cleaner_joins_bullet_continuation_lines() -> None:
    cleaned = clean_text(raw(HEADLINE, "  • Is this a permanent ban?", "    Anthropic has said it is working on it."))
    assert "Is this a permanent ban? Anthropic has said it is working on it." in cleaned
    assert "•" not in cleaned


@pytest.mark.parametrize("seed", sorted(SEEDS.glob("*.txt")) if SEEDS.exists() else [], ids=lambda p: p.name[:3])
def test_cleaner_is_idempotent_on_the_seed_articles(seed: Path) -> None:
    once = clean_text(seed.read_text(encoding="utf-8"))
    assert clean_text(once) == once


_ALPHABET = st.sampled_from(
    [
        "word ",
        "Anthropic ",
        ". ",
        "? ",
        "\n",
        "\n\n",
        "  • ",
        "    ",
        "“",
        "”",
        "—",
        "tmnox3v6sl",
        "advertisement",
        "Pro Tip:",
        "Leave a Comment",
        "Subscribe to our newsletter for updates. ",
        "Why is this happening?",
        "\u00a0",
        "\t",
        "A",
        "1",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_cleaner_is_idempotent(text: str) -> None:
    once = clean_text(text)
    assert clean_text(once) == once


def test_split_title_takes_headline_and_byline() -> None:
    title, author, body = split_title(clean_text(raw("US Urges Anthropic", "", "by Chief Editor", "", PARA)))
    assert (title, author, body) == ("US Urges Anthropic", "Chief Editor", PARA)


def test_article_from_raw_leaves_unknown_facts_null() -> None:
    article = article_from_raw(raw(HEADLINE, PARA), added=dt.date(2026, 11, 22))
    assert article.title == HEADLINE
    assert (article.publisher, article.url, article.published, article.author) == (None, None, None, None)


def test_article_from_raw_gives_unique_ids() -> None:
    taken = [slugify(HEADLINE)]
    assert article_from_raw(raw(HEADLINE, PARA), taken_ids=taken).id == slugify(HEADLINE) + "-2"


def test_render_then_parse_round_trips() -> None:
    article = Article(
        id="an-article",
        title="Title: with a colon",
        body="First.\n\nSecond “quoted” paragraph.",
        publisher="Pub",
        url="https://example.com/a",
        published=dt.date(2026, 11, 20),
        added=dt.date(2026, 11, 22),
        author=None,
        notes="note",
    )
    assert parse_article(article_file_text(article)) == article


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no front matter", ":1: missing front matter"),
        ("---\nid: a\ntitle: T\n", "not closed"),
        ("---\nid: a\ntitle: [unclosed\n---\nBody.", "not valid YAML"),
        ("---\ntitle: T\n---\nBody.", "missing required field 'id'"),
        ("---\nid: a\ntitle: T\ncolour: red\n---\nBody.", ":4: unknown field 'colour'"),
        ("---\nid: a\ntitle: T\n---\n\n   \n", "body is empty"),
        ("---\nid: ../etc/passwd\ntitle: T\n---\nBody.", "not valid"),
        ("---\nid: a\ntitle: T\npublished: yesterday\n---\nBody.", "not YYYY-MM-DD"),
    ],
)
def test_parse_article_errors_name_file_and_problem(text: str, message: str) -> None:
    with pytest.raises(KnowledgeError) as excinfo:
        parse_article(text, "knowledge/a.md")
    assert str(excinfo.value).startswith("knowledge/a.md")
    assert message in str(excinfo.value)


@pytest.mark.parametrize("bad", ["../x", "a/b", "A", "", "a" * 81, "-a", "a-", "a.b", None, 5])
def test_validate_id_refuses_anything_but_a_slug(bad: object) -> None:
    with pytest.raises(KnowledgeError):
        validate_id(bad)


def test_load_knowledge_refuses_an_id_that_does_not_match_its_file_name(tmp_path: Path) -> None:
    """Ids equal file names, which is also what makes duplicate ids impossible."""
    write_article(tmp_path, Article(id="a", title="T", body="Body."))
    (tmp_path / "b.md").write_text(article_file_text(Article(id="a", title="T", body="Body.")), encoding="utf-8")
    with pytest.raises(KnowledgeError, match=r"b\.md:2: id 'a' does not match"):
        load_knowledge(tmp_path)


def test_get_article_missing_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        get_article(tmp_path, "missing")


def test_bundled_knowledge_base_loads_and_has_no_boilerplate() -> None:
    articles = load_knowledge(KNOWLEDGE)
    assert len(articles) == 5
    for article in articles:
        assert article.title and article.body
        assert clean_text(article.body) == article.body
        for noise in ("tmnox3v6sl", "Leave a Comment", "newsletter", "Pro Tip"):
            assert noise not in article.body


@pytest.mark.skipif(not SEEDS.exists(), reason="the raw seed articles are not beside this checkout")
def test_kb_import_of_the_seeds_reproduces_the_bundled_knowledge_base(tmp_path: Path) -> None:
    from bot.config import load_settings
    from bot.kb import KnowledgeBase

    settings = load_settings(environ={}).with_paths(tmp_path / "knowledge")
    KnowledgeBase(settings).import_files(sorted(SEEDS.glob("*.txt")), actor="test")
    produced = {a.id: a for a in load_knowledge(tmp_path / "knowledge")}
    bundled = {a.id: a for a in load_knowledge(KNOWLEDGE)}
    assert produced.keys() == bundled.keys()
    for article_id, article in bundled.items():
        assert produced[article_id].body == article.body
        assert produced[article_id].title == article.title


def test_an_impossible_date_in_front_matter_is_a_knowledge_error() -> None:
    with pytest.raises(KnowledgeError, match="YAML cannot read"):
        parse_article("---\nid: x\ntitle: X\npublished: 2024-13-45\n---\nBody.\n", "x.md")
