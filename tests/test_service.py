import threading
import time
from dataclasses import replace

import pytest

from bot.db import Database
from bot.errors import IndexMissing, InvalidQuestion, KnowledgeError, RebuildInProgress
from bot.knowledge import read_article, write_article
from bot.records import Article
from bot.service import KnowledgeService
from bot.store import build_index
from tests.conftest import FakeEmbedder, word_count


@pytest.fixture
def settings(tmp_settings):
    retrieval = replace(
        tmp_settings.retrieval, late_interaction=False, rerank=False, dense_floor=-1.0, decline_threshold=-100.0
    )
    return replace(tmp_settings, retrieval=retrieval)


@pytest.fixture
def service(settings) -> KnowledgeService:
    return KnowledgeService.open(settings, embedder=FakeEmbedder())


def test_open_builds_a_missing_index_and_says_so_once(settings) -> None:
    lines: list[str] = []
    KnowledgeService.open(settings, embedder=FakeEmbedder(), log=lines.append)
    assert len(lines) == 1
    assert "yet; building it now" in lines[0]


def test_open_without_building_refuses_a_missing_index(settings) -> None:
    with pytest.raises(IndexMissing):
        KnowledgeService.open(settings, embedder=FakeEmbedder(), build_if_needed=False)


def test_answers_quote_the_article_files_exactly(service, settings) -> None:
    answer = service.ask("Which models did the Commerce Department order restrict?")
    assert answer.excerpts
    for excerpt in answer.excerpts:
        body = read_article(settings.paths.knowledge_dir / f"{excerpt.source.article_id}.md").body
        assert body[excerpt.start : excerpt.end] == excerpt.quote


@pytest.mark.parametrize("question", ["", "   ", "\x00\x01", "x" * 501])
def test_bad_questions_raise_invalid_question(service, question: str) -> None:
    with pytest.raises(InvalidQuestion):
        service.ask(question)


def test_rebuild_swaps_in_the_new_index(service, settings) -> None:
    before = service.info().index_version
    write_article(
        settings.paths.knowledge_dir, Article(id="late-news", title="Late news", body="Zebras now use Mythos.")
    )
    report = service.rebuild(started_by="test")
    assert report.added == ("late-news",)
    assert service.info().index_version == report.index_version != before
    assert any(e.source.article_id == "late-news" for e in service.ask("zebras mythos").excerpts)


def test_info_reports_stale_when_knowledge_changes(service, settings) -> None:
    assert not service.info().stale
    write_article(settings.paths.knowledge_dir, Article(id="late-news", title="Late news", body="Something new."))
    assert service.info().stale


def test_the_live_version_and_an_articles_chunks_come_from_the_service(service) -> None:
    assert service.live_version == service.info().index_version
    article_id = service.articles()[0].id
    assert (
        service.indexed_chunks(article_id)
        == sum(1 for c in service.live.index.chunks if c.article_id == article_id)
        > 0
    )
    assert service.indexed_chunks("not-an-article") == 0


def test_a_build_for_the_serving_processes_is_recorded_in_the_rebuild_log(settings) -> None:
    service = KnowledgeService(settings, FakeEmbedder(), None, word_count)
    report, logged = service.build_for_others(started_by="cli", started=time.time())
    with Database.open(settings) as db:
        last = db.last_rebuild()
    assert logged and last.ok and last.started_by == "cli" and report.index_version in last.detail


def test_a_failed_build_for_the_serving_processes_is_recorded_and_raised(settings) -> None:
    (settings.paths.knowledge_dir / "broken.md").write_text("no front matter here\n", encoding="utf-8")
    service = KnowledgeService(settings, FakeEmbedder(), None, word_count)
    with pytest.raises(KnowledgeError):
        service.build_for_others(started_by="cli", started=time.time())
    with Database.open(settings) as db:
        last = db.last_rebuild()
    assert not last.ok and "broken.md" in last.detail


def test_info_reports_stale_when_a_knowledge_file_is_broken(service, settings) -> None:
    (settings.paths.knowledge_dir / "broken.md").write_text("no front matter here\n", encoding="utf-8")
    assert service.info().stale


def test_info_does_not_hide_an_unexpected_error_as_stale(service, monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("bot.service.index_status", fail)
    with pytest.raises(RuntimeError, match="a bug"):
        service.info()


def test_a_second_rebuild_in_the_same_process_is_refused(service) -> None:
    started = threading.Event()
    release = threading.Event()
    original = service.embedder.encode

    def slow_encode(texts, *, progress=None):
        started.set()
        release.wait(10)
        return original(texts, progress=progress)

    service.embedder.encode = slow_encode
    write_article(service.settings.paths.knowledge_dir, Article(id="x-news", title="X", body="Brand new text."))
    worker = threading.Thread(target=service.rebuild, kwargs={"started_by": "alice"})
    worker.start()
    try:
        assert started.wait(10)
        with pytest.raises(RebuildInProgress, match="alice"):
            service.rebuild(started_by="bob")
    finally:
        release.set()
        worker.join(10)


def test_the_running_rebuild_names_who_started_it_and_is_gone_when_it_ends(service) -> None:
    seen = []
    original = service.embedder.encode

    def watching_encode(texts, *, progress=None):
        seen.append(service.running_rebuild)
        return original(texts, progress=progress)

    service.embedder.encode = watching_encode
    write_article(service.settings.paths.knowledge_dir, Article(id="x-news", title="X", body="Brand new text."))
    service.rebuild(started_by="discord:alice (1)", name="alice")
    assert (seen[0].started_by, seen[0].name) == ("discord:alice (1)", "alice")
    assert service.running_rebuild is None


def test_a_logged_rebuild_swaps_in_and_records_the_difference(service, settings) -> None:
    before = service.live_version
    write_article(settings.paths.knowledge_dir, Article(id="x-news", title="X", body="Brand new text."))
    outcome = service.rebuild_logged(started_by="discord:alice (1)")
    assert outcome.ok and outcome.logged and service.live_version == outcome.report.index_version
    with Database.open(settings) as db:
        last = db.last_rebuild()
    assert last.ok and last.started_by == "discord:alice (1)"
    assert last.detail == f"{before} -> {outcome.report.index_version}: +1 ~0 -0, {outcome.report.embedded} embedded"


def test_a_failed_logged_rebuild_is_returned_with_the_file_named_as_people_know_it(service, settings) -> None:
    before = service.live_version
    (settings.paths.knowledge_dir / "broken.md").write_text("no front matter here\n", encoding="utf-8")
    outcome = service.rebuild_logged(started_by="discord:alice (1)")
    assert not outcome.ok and outcome.serving_version == before == service.live_version
    assert outcome.error.startswith("knowledge/broken.md") and str(settings.paths.knowledge_dir) not in outcome.error
    with Database.open(settings) as db:
        last = db.last_rebuild()
    assert not last.ok and last.detail == outcome.error


def test_a_logged_rebuild_failing_with_a_bug_says_it_was_logged(service, monkeypatch, caplog) -> None:
    def bug(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("bot.service.build_index", bug)
    outcome = service.rebuild_logged(started_by="discord:alice (1)")
    assert outcome.error == "an unexpected error (it was logged)"
    assert "ZeroDivisionError" in caplog.text


def test_a_logged_rebuild_refused_by_another_process_is_raised_and_not_logged(service, settings, monkeypatch) -> None:
    def held(*args, **kwargs):
        raise RebuildInProgress("A rebuild is already running (started by cli at 12:00:00 UTC); wait for it.")

    monkeypatch.setattr("bot.service.build_index", held)
    with pytest.raises(RebuildInProgress, match="started by cli"):
        service.rebuild_logged(started_by="discord:alice (1)")
    with Database.open(settings) as db:
        assert db.last_rebuild() is None


def test_questions_are_answered_from_the_old_index_during_a_rebuild(service) -> None:
    started = threading.Event()
    release = threading.Event()
    original = service.embedder.encode
    old_version = service.info().index_version

    def slow_encode(texts, *, progress=None):
        if threading.current_thread().name == "rebuilder":  # the build, not a question
            started.set()
            release.wait(10)
        return original(texts, progress=progress)

    service.embedder.encode = slow_encode
    write_article(service.settings.paths.knowledge_dir, Article(id="y-news", title="Y", body="Another new text."))
    worker = threading.Thread(target=service.rebuild, name="rebuilder")
    worker.start()
    try:
        assert started.wait(10)
        answer = service.ask("Who issued the order?")
        assert answer.index_version == old_version
    finally:
        release.set()
        worker.join(10)
    assert service.info().index_version != old_version


def test_reload_if_changed_takes_up_a_build_made_elsewhere(service, settings) -> None:
    assert service.reload_if_changed() is None
    old = service.info().index_version
    write_article(settings.paths.knowledge_dir, Article(id="offline", title="Offline", body="Built by an operator."))
    build_index(settings, FakeEmbedder(), count_tokens=word_count)
    swapped = service.reload_if_changed()
    assert swapped is not None
    assert swapped[0] == old
    assert service.info().index_version == swapped[1] != old
