import datetime as dt
from pathlib import Path

import pytest

from bot.cleaner import clean_text
from bot.errors import KnowledgeError, NotFound
from bot.knowledge import (
    article_file_text,
    article_from_raw,
    article_paths,
    get_article,
    load_knowledge,
    parse_article,
    slugify,
    validate_id,
    write_article,
)
from bot.records import Article
from tests.conftest import KNOWLEDGE, SEEDS

HEADLINE = "Anthropic Suspends Mythos Model Access"
PARA = "The order came from the Commerce Department, a person said. It was unclear how long it would last."


def raw(*lines: str) -> str:
    return "\n".join(lines)


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


def test_article_files_are_listed_in_name_order_without_readme_or_hidden_files(tmp_path) -> None:
    for name in ("b.md", "A.md", "a-2.md", "README.md", ".hidden.md", "notes.txt"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    assert [p.name for p in article_paths(tmp_path)] == ["A.md", "a-2.md", "b.md"]
    assert article_paths(tmp_path / "missing") == []
