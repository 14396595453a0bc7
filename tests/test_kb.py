"""``bot.kb``: prepare, then apply; every change audited; nothing written when preparing fails."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Settings
from bot.db import Database
from bot.errors import DirectiveError, FetchRefused, KnowledgeError, NotFound
from bot.fetch import FetchedPage
from bot.kb import MAX_UPLOAD_BYTES, KnowledgeBase, Preview, find_duplicates
from bot.knowledge import article_file_text, load_knowledge
from bot.records import Article

SEED_ID = "anthropic-suspends-mythos-model-access-following-us"

ARTICLE_TEXT = """Commerce gives Anthropic 72 hours to file a compliance plan

The Commerce Department gave Anthropic 72 hours to file a written compliance plan for Mythos 5.

Advertisement

The plan must name an officer responsible for access controls.
"""

ARTICLE_MD = """---
id: commerce-compliance-letter
title: Commerce letter sets a compliance deadline
publisher: Capitol Ledger
url: https://ledger.example/letter
published: 2026-11-20
---
The Commerce Department letter gave Anthropic 72 hours to file a plan.
"""

ARTICLE_HTML = """<html><head><title>Commerce sets a deadline for Anthropic</title>
<meta property="og:site_name" content="Capitol Ledger"></head><body><article>
<h1>Commerce sets a deadline for Anthropic</h1>
<p>The Commerce Department gave Anthropic 72 hours to file a written compliance plan describing how it will
keep foreign nationals away from Mythos 5 and Fable 5, a department spokesperson said on Tuesday.</p>
<p>The spokesperson said the plan must name an officer responsible for access controls and list every
cloud region where the models were served before the order took effect.</p>
</article></body></html>"""


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with Database(tmp_path / "kb.sqlite3") as database:
        yield database


@pytest.fixture
def base(tmp_settings: Settings, db: Database) -> KnowledgeBase:
    return KnowledgeBase(tmp_settings, db)


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (and its parent, to catch writes that escaped it)."""
    return {
        str(p.relative_to(directory.parent)): p.read_bytes() for p in sorted(directory.parent.rglob("*")) if p.is_file()
    }


# -- reading ----------------------------------------------------------------------------------


def test_list_is_newest_first_and_get_reads_one(base: KnowledgeBase) -> None:
    listed = base.list()
    assert len(listed) == 5
    keys = [(a.published or a.added or dt.date.min, a.title) for a in listed]
    assert keys == sorted(keys, reverse=True)
    assert base.get(SEED_ID).title == "Anthropic Suspends Mythos Model Access Following US Government Ban"


def test_search_matches_ids_and_titles_ignoring_case(base: KnowledgeBase) -> None:
    assert [a.id for a in base.matching_articles("SUSPENDS MYTHOS")] == [SEED_ID]
    assert [a.id for a in base.matching_articles("access-following")] == [SEED_ID]
    assert len(base.matching_articles("")) == 5 and len(base.matching_articles("", limit=2)) == 2


def test_unknown_id_is_not_found(base: KnowledgeBase) -> None:
    with pytest.raises(NotFound):
        base.get("no-such-article")


# -- preparing: nothing is written ------------------------------------------------------------


def test_prepare_text_cleans_and_previews_without_writing(base: KnowledgeBase, db: Database) -> None:
    before = snapshot(base.dir)
    preview = base.prepare_text(ARTICLE_TEXT, publisher="Capitol Ledger", published=dt.date(2026, 11, 20))
    article = preview.article
    assert article.id == "commerce-gives-anthropic-72-hours-to-file-a-compliance-plan"
    assert article.title == "Commerce gives Anthropic 72 hours to file a compliance plan"
    assert "Advertisement" not in article.body
    assert preview.first_paragraph.startswith("The Commerce Department gave Anthropic 72 hours")
    assert preview.words == 26 and preview.duplicates == ()
    assert snapshot(base.dir) == before and db.audit_log() == []


def test_prepare_gives_a_fresh_id_when_the_slug_is_taken(base: KnowledgeBase) -> None:
    seed = base.get(SEED_ID)
    preview = base.prepare_text("Some other text about the order.", title=seed.title)
    assert preview.article.id == f"{SEED_ID}-2"


def test_prepare_text_without_a_body_is_refused(base: KnowledgeBase) -> None:
    with pytest.raises(KnowledgeError, match="no body text"):
        base.prepare_text("Advertisement", title="A headline")


def test_prepare_file_reads_markdown_front_matter(base: KnowledgeBase) -> None:
    article = base.prepare_file("letter.md", ARTICLE_MD.encode()).article
    assert article.id == "commerce-compliance-letter"
    assert (article.publisher, article.url, article.published) == (
        "Capitol Ledger",
        "https://ledger.example/letter",
        dt.date(2026, 11, 20),
    )
    assert article.added == dt.date.today()


def test_prepare_file_renames_a_markdown_id_that_is_taken(base: KnowledgeBase) -> None:
    text = ARTICLE_MD.replace("commerce-compliance-letter", SEED_ID)
    assert base.prepare_file("x.md", text.encode()).article.id == f"{SEED_ID}-2"


def test_prepare_file_takes_the_first_line_of_a_text_file_as_the_title(base: KnowledgeBase) -> None:
    article = base.prepare_file("notes.txt", ARTICLE_TEXT.encode()).article
    assert article.title == "Commerce gives Anthropic 72 hours to file a compliance plan"
    assert article.publisher is None and article.published is None


def test_prepare_file_extracts_an_html_page(base: KnowledgeBase) -> None:
    article = base.prepare_file("page.html", ARTICLE_HTML.encode()).article
    assert article.title == "Commerce sets a deadline for Anthropic"
    assert article.publisher == "Capitol Ledger"
    assert article.body.startswith("The Commerce Department gave Anthropic 72 hours")


BAD_FILES = [
    ("scan.pdf", b"%PDF-1.7", "only .md, .txt, .html, .htm files"),
    ("empty.txt", b"", "is empty"),
    ("blank.txt", b"  \n\t\n", "is empty"),
    ("big.txt", b"x" * (MAX_UPLOAD_BYTES + 1), "the limit is 2 MB"),
    ("nul.txt", b"title\n\x00body", "binary file"),
    ("latin1.txt", "Caf\xe9\n\nbody".encode("latin-1"), "not UTF-8"),
    ("bad.md", b"---\ntitle: [oops\n---\nbody\n", "not valid YAML"),
    ("unclosed.md", b"---\nid: a\ntitle: b\nbody\n", "not closed"),
    ("no-title.md", b"---\nid: a\n---\nbody\n", "missing required field 'title'"),
    ("traversal.md", b"---\nid: ../../evil\ntitle: b\n---\nbody\n", "is not valid"),
    ("no-headline.html", b"<html><body><p>Only a short line.</p></body></html>", "No headline found"),
]


@pytest.mark.parametrize(("name", "data", "reason"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_file_is_refused_with_a_reason_and_nothing_written(
    base: KnowledgeBase, db: Database, name: str, data: bytes, reason: str
) -> None:
    before = snapshot(base.dir)
    with pytest.raises(DirectiveError) as caught:
        base.prepare_file(name, data)
    assert reason in str(caught.value) and "\n" not in str(caught.value)
    assert snapshot(base.dir) == before and db.audit_log() == []


def test_prepare_page_extracts_html_and_plain_text(base: KnowledgeBase) -> None:
    html = FetchedPage("https://ledger.example/a", 200, "text/html", ARTICLE_HTML, ())
    plain = FetchedPage("https://ledger.example/b.txt", 200, "text/plain", ARTICLE_TEXT, ())
    from_html = base.prepare_page(html)
    from_text = base.prepare_page(plain)
    assert from_html.article.title == "Commerce sets a deadline for Anthropic"
    assert from_html.origin == "https://ledger.example/a" and from_html.article.url == "https://ledger.example/a"
    assert from_text.article.url == "https://ledger.example/b.txt"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/a", "http://10.0.0.1/a", "http://169.254.169.254/", "file:///etc/passwd"]
)
def test_prepare_url_refuses_non_public_links_before_connecting(
    base: KnowledgeBase, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    def no_connect(self: socket.socket, address: object) -> None:
        raise AssertionError(f"connected to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    before = snapshot(base.dir)
    with pytest.raises(FetchRefused, match=r"^Refused: "):
        base.prepare_url(url)
    assert snapshot(base.dir) == before


# -- duplicates -------------------------------------------------------------------------------


def make(article_id: str, body: str, url: str | None = None) -> Article:
    return Article(id=article_id, title=article_id.title(), body=body, url=url)


LONG = " ".join(f"word{i}" for i in range(200))


def test_same_url_is_a_duplicate_even_with_a_trailing_slash() -> None:
    [dup] = find_duplicates(
        make("new", "fresh text here", "https://a.example/x/"), [make("old", LONG, "https://a.example/x")]
    )
    assert (dup.article_id, dup.reason, dup.exact) == ("old", "same URL", True)


def test_mostly_the_same_wording_is_a_near_duplicate_with_its_share() -> None:
    candidate = make("new", LONG + " plus a new closing sentence that was not there")
    [dup] = find_duplicates(candidate, [make("old", LONG), make("other", "entirely unrelated words about nothing")])
    assert dup.article_id == "old" and dup.similarity == 1.0 and dup.reason == "100% of the wording matches"


def test_duplicates_are_sorted_most_similar_first() -> None:
    half = " ".join(f"word{i}" for i in range(100)) + " " + " ".join(f"other{i}" for i in range(100))
    found = find_duplicates(make("new", LONG), [make("half", half), make("same", LONG)])
    assert [d.article_id for d in found] == ["same", "half"]
    assert not found[1].exact


def test_preview_lists_an_existing_article_it_copies(base: KnowledgeBase) -> None:
    seed = base.get(SEED_ID)
    preview = base.prepare_text(seed.body, title="A copied story")
    assert preview.duplicates[0].article_id == SEED_ID and preview.duplicates[0].exact


# -- applying: written atomically and audited -------------------------------------------------


def test_add_writes_the_file_and_an_audit_row(base: KnowledgeBase, db: Database) -> None:
    preview = base.prepare_file("letter.md", ARTICLE_MD.encode())
    change = base.add(preview, actor="discord:mod (1)")
    path = base.dir / "commerce-compliance-letter.md"
    assert path.read_text(encoding="utf-8") == article_file_text(preview.article)
    assert (change.action, change.hash_before, change.hash_after) == ("add", None, preview.article.content_hash)
    [entry] = db.audit_log()
    assert (entry.actor, entry.action, entry.article_id) == ("discord:mod (1)", "add", "commerce-compliance-letter")
    assert (entry.hash_before, entry.hash_after) == (None, preview.article.content_hash)
    assert entry.detail == "added from letter.md: Commerce letter sets a compliance deadline"
    assert [p.name for p in base.dir.iterdir() if p.name.startswith(".")] == []


def test_add_over_an_existing_id_is_refused_and_nothing_changes(base: KnowledgeBase, db: Database) -> None:
    preview = base.prepare_file("letter.md", ARTICLE_MD.encode())
    base.add(preview, actor="a")
    before = snapshot(base.dir)
    with pytest.raises(KnowledgeError, match="already exists"):
        base.add(preview, actor="b")
    assert snapshot(base.dir) == before and len(db.audit_log()) == 1


@pytest.mark.parametrize("bad_id", ["../escaped", "a/b", "..", "Upper", "", "x" * 81, "-x", "a\x00b"])
def test_ids_that_are_not_slugs_are_refused_everywhere(base: KnowledgeBase, db: Database, bad_id: str) -> None:
    before = snapshot(base.dir)
    forged = Preview(Article(id=bad_id, title="T", body="Body."), "forged")
    for attempt in (
        lambda: base.get(bad_id),
        lambda: base.remove(bad_id, actor="x"),
        lambda: base.edit(bad_id, actor="x", title="New"),
        lambda: base.add(forged, actor="x"),
    ):
        with pytest.raises(KnowledgeError, match="is not valid"):
            attempt()
    assert snapshot(base.dir) == before and db.audit_log() == []


def test_remove_deletes_the_file_and_audits_the_hash_it_had(base: KnowledgeBase, db: Database) -> None:
    seed = base.get(SEED_ID)
    change = base.remove(SEED_ID, actor="cli:ops")
    assert not (base.dir / f"{SEED_ID}.md").exists()
    assert (change.hash_before, change.hash_after) == (seed.content_hash, None)
    [entry] = db.audit_log()
    assert (entry.action, entry.hash_before, entry.hash_after, entry.detail) == (
        "remove",
        seed.content_hash,
        None,
        f"removed: {seed.title}",
    )


def test_remove_of_an_unknown_id_changes_nothing(base: KnowledgeBase, db: Database) -> None:
    before = snapshot(base.dir)
    with pytest.raises(NotFound):
        base.remove("no-such-article", actor="x")
    assert snapshot(base.dir) == before and db.audit_log() == []


def test_edit_changes_front_matter_only_and_audits_both_hashes(base: KnowledgeBase, db: Database) -> None:
    before = base.get(SEED_ID)
    change = base.edit(SEED_ID, actor="discord:mod (1)", publisher="Capitol Ledger", published=dt.date(2026, 11, 21))
    after = base.get(SEED_ID)
    assert (after.publisher, after.published, after.body, after.title) == (
        "Capitol Ledger",
        dt.date(2026, 11, 21),
        before.body,
        before.title,
    )
    assert (change.hash_before, change.hash_after) == (before.content_hash, after.content_hash)
    [entry] = db.audit_log()
    assert entry.action == "edit" and entry.detail == "edited published, publisher"


def test_edit_that_changes_nothing_writes_and_audits_nothing(base: KnowledgeBase, db: Database) -> None:
    path = base.dir / f"{SEED_ID}.md"
    stamp = path.stat().st_mtime_ns
    seed = base.get(SEED_ID)
    change = base.edit(SEED_ID, actor="x", title=seed.title)
    assert change.hash_before == change.hash_after and path.stat().st_mtime_ns == stamp and db.audit_log() == []


@pytest.mark.parametrize("field", ["id", "body", "colour"])
def test_edit_refuses_to_change_the_id_or_body(base: KnowledgeBase, db: Database, field: str) -> None:
    before = snapshot(base.dir)
    with pytest.raises(KnowledgeError, match="Cannot change"):
        base.edit(SEED_ID, actor="x", **{field: "new"})
    assert snapshot(base.dir) == before and db.audit_log() == []


def test_import_prepares_every_file_before_writing_any(base: KnowledgeBase, db: Database, tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text(ARTICLE_TEXT, encoding="utf-8")
    bad = tmp_path / "bad.md"
    bad.write_text("---\ntitle: [oops\n---\nbody\n", encoding="utf-8")
    before = snapshot(base.dir)
    with pytest.raises(KnowledgeError):
        base.import_files([good, bad], actor="cli:ops")
    assert snapshot(base.dir) == before and db.audit_log() == []


def test_import_gives_same_titled_files_distinct_ids_and_applies_metadata(
    base: KnowledgeBase, db: Database, tmp_path: Path
) -> None:
    paths = []
    for n in range(2):
        path = tmp_path / f"copy{n}.txt"
        path.write_text(f"Same headline\n\nBody number {n} about the Mythos 5 order.", encoding="utf-8")
        paths.append(path)
    changes = base.import_files(paths, actor="cli:ops", publisher="Wire")
    assert [c.article.id for c in changes] == ["same-headline", "same-headline-2"]
    assert all(c.article.publisher == "Wire" for c in changes)
    assert {a.id for a in load_knowledge(base.dir)} >= {"same-headline", "same-headline-2"}
    assert [e.action for e in db.audit_log()] == ["add", "add"]


def test_without_a_database_changes_are_still_made(tmp_settings: Settings) -> None:
    base = KnowledgeBase(tmp_settings)
    base.add(base.prepare_file("letter.md", ARTICLE_MD.encode()), actor="x")
    assert base.get("commerce-compliance-letter").publisher == "Capitol Ledger"
