"""Hostile files in knowledge/ or given to kb add / kb import: refused by name, bounded, never hung."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from bot.chunking import MAX_SENTENCE_CHARS, chunk_article, split_sentences
from bot.config import Settings
from bot.db import Database
from bot.errors import KnowledgeError
from bot.knowledge import load_knowledge, read_bounded
from bot.records import Article
from bot.service import KnowledgeService
from bot.store import index_status, load_index
from tests.conftest import FakeEmbedder, word_count
from tests.faults.conftest import answers_from, build, disk_index_is, one_line_error, run_cli


def audit_rows(settings: Settings) -> int:
    with Database.open(settings) as db:
        return len(db.audit_log())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside.md"
    secret.write_text("---\nid: outside\ntitle: Outside\n---\nSecret text from outside the folder.\n")
    return secret


def test_a_symlink_out_of_the_folder_is_refused_by_name(
    settings: Settings, built, live: KnowledgeService, outside: Path
) -> None:
    (settings.paths.knowledge_dir / "outside.md").symlink_to(outside)
    with pytest.raises(KnowledgeError, match=r"knowledge/outside\.md is a symbolic link to a file outside"):
        build(settings)
    disk_index_is(settings, built.index_version)
    answers_from(live, built.index_version)


def test_index_status_refuses_a_symlink_to_dev_zero_at_once(settings: Settings, built) -> None:
    (settings.paths.knowledge_dir / "zero.md").symlink_to("/dev/zero")
    one_line_error(run_cli(settings, "index", "status"), "knowledge/zero.md")


def test_a_fifo_in_the_folder_is_refused_without_hanging(settings: Settings, built) -> None:
    os.mkfifo(settings.paths.knowledge_dir / "pipe.md")
    with pytest.raises(KnowledgeError, match=r"knowledge/pipe\.md is a device, FIFO or socket"):
        index_status(settings)


def test_a_symlink_inside_the_folder_is_read(settings: Settings) -> None:
    kdir = settings.paths.knowledge_dir
    original = next(kdir.glob("us-urges*.md"))
    (kdir / "drafts").mkdir()
    moved = kdir / "drafts" / original.name
    original.rename(moved)
    original.symlink_to(moved)
    assert original.stem in {a.id for a in load_knowledge(kdir)}


def test_an_oversized_article_in_the_folder_is_refused_before_reading(settings: Settings, built) -> None:
    big = settings.paths.knowledge_dir / "big.md"
    with big.open("wb") as fh:
        fh.truncate(50_000_000)  # sparse: 50 MB that costs nothing to make, and would cost a lot to read
    limited = replace(settings, knowledge=replace(settings.knowledge, max_article_bytes=1_000_000))
    with pytest.raises(KnowledgeError, match=r"knowledge/big\.md is 50\.0 MB; the limit is 1 MB"):
        build(limited)
    disk_index_is(settings, built.index_version)


def test_a_file_that_grows_past_the_limit_is_read_only_up_to_it(tmp_path: Path) -> None:
    path = tmp_path / "grows.md"
    path.write_bytes(b"x" * 100)
    with pytest.raises(KnowledgeError, match="the limit"):
        read_bounded(path, 99)


def test_kb_add_of_a_huge_file_is_refused_without_reading_it(settings: Settings, tmp_path: Path) -> None:
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as fh:
        fh.truncate(1 << 30)  # 1 GiB, sparse
    one_line_error(run_cli(settings, "kb", "add", str(huge), "--yes", "--no-rebuild"), "huge.txt is 1073.7 MB")
    assert audit_rows(settings) == 0


def test_kb_add_of_a_fifo_is_refused_without_hanging(settings: Settings, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    one_line_error(run_cli(settings, "kb", "add", str(fifo), "--yes", "--no-rebuild"), "not a regular file")


def test_kb_import_applies_the_same_limit(settings: Settings, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"Headline\n\n" + b"word " * 1000)
    result = run_cli(settings, "kb", "import", str(big))
    assert result.exit_code == 0, result.output
    limited_env_result = run_cli_limited(settings, 1000, "kb", "import", str(big))
    one_line_error(limited_env_result, "the limit is 0 MB")


def run_cli_limited(settings: Settings, limit: int, *args: str):
    from click.testing import CliRunner

    from bot.cli import cli

    env = {
        "DISCORD_TOKEN": "",
        "DIRECTIVE_BOT__PATHS__DATA_DIR": str(settings.paths.data_dir),
        "DIRECTIVE_BOT__KNOWLEDGE__MAX_ARTICLE_BYTES": str(limit),
    }
    paths = ["--knowledge", str(settings.paths.knowledge_dir), "--index", str(settings.paths.index_dir)]
    return CliRunner().invoke(cli, [*args, *paths], env=env, catch_exceptions=False)


def test_every_part_of_a_100000_character_sentence_can_be_found(settings: Settings) -> None:
    words = [f"marker{n:05d}" for n in range(9000)]
    body = "Opening line of the piece. " + ", ".join(" ".join(words[i : i + 6]) for i in range(0, 9000, 6)) + "."
    assert len(body) > 100_000
    article = Article(id="run-on", title="Run on", body=body)
    chunks = chunk_article(article, target_tokens=96, count_tokens=word_count)
    assert all(article.body[c.start : c.end] == c.text for c in chunks)
    assert max(len(s.text) for s in split_sentences(body)) <= MAX_SENTENCE_CHARS
    found = {w.strip(",.") for c in chunks for w in c.text.split()}
    assert set(words) <= found


def test_a_late_word_of_a_huge_sentence_is_answered_with_a_verbatim_part(settings: Settings) -> None:
    words = [f"filler{n:05d}" for n in range(9000)]
    words[8500] = "zanzibarquokka"
    body = "The run-on paragraph follows. " + " ".join(words) + "."
    kdir = settings.paths.knowledge_dir
    (kdir / "run-on.md").write_text(f"---\nid: run-on\ntitle: Run on\n---\n{body}\n", encoding="utf-8")
    build(settings)
    service = KnowledgeService(settings, FakeEmbedder(), None, word_count, None)  # type: ignore[arg-type]
    service._load()
    answer = service.ask("zanzibarquokka")
    quotes = [e for e in answer.excerpts if e.source.article_id == "run-on"]
    assert quotes and "zanzibarquokka" in quotes[0].quote
    assert body[quotes[0].start : quotes[0].end] == quotes[0].quote
    assert len(quotes[0].quote) < 2_000
    assert load_index(settings.paths.index_dir).articles["run-on"].body == body
