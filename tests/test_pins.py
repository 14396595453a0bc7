"""Pins with the real models, a real index and real SQLite: calibration, verbatim checks, matching, staleness."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path

import pytest
import yaml

from bot.db import Database
from bot.errors import PinError
from bot.knowledge import get_article, write_article
from bot.pins import (
    MATCH_THRESHOLD,
    PinnedQuote,
    calibrate_threshold,
    find_verbatim,
    make_draft,
    relocate,
    score_threshold,
)
from bot.records import Answer
from bot.service import KnowledgeService

PAIRS = Path(__file__).parent / "fixtures" / "pin_paraphrases.yaml"

ARTICLE = "the-us-prevents-foreigners-from-using-anthropics-most"
PASSAGE = (
    "Most of the queries it considers risky would instead be transferred to an older AI system called Opus 4.8, "
    "according to Antropic."
)
DECLINED = "what happens to my chats"
PARAPHRASE = "what will happen to my chat history"
UNRELATED = "Can I appeal?"


@pytest.fixture
def service(real_service: KnowledgeService, tmp_path: Path) -> KnowledgeService:
    """A service over copies of the shared knowledge and index (the models shared), with its own database."""
    paths = real_service.settings.paths
    shutil.copytree(paths.knowledge_dir, tmp_path / "knowledge")
    shutil.copytree(paths.index_dir, tmp_path / "index", ignore=shutil.ignore_patterns(".build.lock", ".tmp-*"))
    settings = real_service.settings.with_paths(tmp_path / "knowledge", tmp_path / "index")
    settings = dataclasses.replace(settings, paths=dataclasses.replace(settings.paths, data_dir=tmp_path / "data"))
    svc = KnowledgeService(
        settings, real_service.embedder, real_service.reranker, real_service.count_tokens, real_service.late
    )
    assert svc.reload_if_changed() is not None
    svc.use_pins(Database(tmp_path / "data" / "bot.sqlite3"))
    return svc


def pin_passage(service: KnowledgeService, question: str = DECLINED, *, phrasings: tuple[str, ...] = ()) -> int:
    draft = service.draft_pin(question, [service.find_passage(PASSAGE)], phrasings)
    return service.save_pin(draft, actor="test:moderator").id


def similarities(service: KnowledgeService, pairs: list[list[str]]) -> list[float]:
    left = service.embedder.encode([a for a, _ in pairs])
    right = service.embedder.encode([b for _, b in pairs])
    return [float(v) for v in (left * right).sum(axis=1)]


# -- calibration -----------------------------------------------------------------------------------


def test_the_match_threshold_is_the_one_calibrated_on_the_paraphrase_pairs(real_service: KnowledgeService) -> None:
    pairs = yaml.safe_load(PAIRS.read_text(encoding="utf-8"))["calibration"]
    calibration = calibrate_threshold(
        similarities(real_service, pairs["same"]), similarities(real_service, pairs["different"])
    )
    assert calibration.threshold == MATCH_THRESHOLD
    assert (calibration.same_matched, calibration.different_matched) == (14, 2)


def test_held_out_pairs_keep_false_matches_at_two_in_ten(real_service: KnowledgeService) -> None:
    pairs = yaml.safe_load(PAIRS.read_text(encoding="utf-8"))["held_out"]
    held = score_threshold(
        MATCH_THRESHOLD, similarities(real_service, pairs["same"]), similarities(real_service, pairs["different"])
    )
    assert (held.same_matched, held.same_total) == (6, 10)
    assert (held.different_matched, held.different_total) == (2, 10)


def test_calibration_prefers_missing_a_paraphrase_to_a_false_match() -> None:
    # Two paraphrases (0.6, 0.9) and one different question at 0.7: catching the 0.6 one would cost a false match.
    assert calibrate_threshold([0.6, 0.9], [0.7]).threshold == 0.8


# -- verbatim checks -------------------------------------------------------------------------------


def test_pasted_text_wrapped_differently_is_stored_as_the_articles_own_slice(service: KnowledgeService) -> None:
    wrapped = PASSAGE.replace(" an older ", "\nan older  ")
    quote = service.find_passage(wrapped)
    body = service.live.index.articles[ARTICLE].body
    assert quote.article_id == ARTICLE and body[quote.start : quote.end] == quote.quote == PASSAGE


def test_pasted_text_that_no_article_contains_is_refused_in_one_line(service: KnowledgeService) -> None:
    with pytest.raises(PinError, match="is not in any article word for word") as refused:
        service.find_passage("Anthropic will refund every subscriber.")
    assert "\n" not in str(refused.value)


def test_a_passage_moved_by_an_edit_above_it_is_found_at_its_new_offsets(service: KnowledgeService) -> None:
    article = service.live.index.articles[ARTICLE]
    quote = find_verbatim(PASSAGE, [article])
    edited = dataclasses.replace(article, body="A new opening paragraph.\n\n" + article.body)
    moved = relocate(quote, edited)
    assert moved is not None and moved.start == quote.start + len("A new opening paragraph.\n\n")
    assert edited.body[moved.start : moved.end] == PASSAGE


def test_a_passage_whose_words_changed_is_not_found(service: KnowledgeService) -> None:
    article = service.live.index.articles[ARTICLE]
    quote = find_verbatim(PASSAGE, [article])
    edited = dataclasses.replace(article, body=article.body.replace("Opus 4.8", "Opus 4.9"))
    assert relocate(quote, edited) is None


def test_a_draft_without_a_passage_is_refused() -> None:
    with pytest.raises(PinError, match="Choose at least one passage"):
        make_draft("Who is affected?", [])


def test_a_draft_with_four_passages_is_refused() -> None:
    quotes = [PinnedQuote("a", n * 10, n * 10 + 5, "x" * 5, "h") for n in range(4)]
    with pytest.raises(PinError, match="at most 3 passages"):
        make_draft("Who is affected?", quotes)


def test_the_same_passage_chosen_twice_is_pinned_once(service: KnowledgeService) -> None:
    quote = service.find_passage(PASSAGE)
    assert make_draft("Who is affected?", [quote, quote]).quotes == (quote,)


def test_an_over_long_question_is_refused_like_any_question(service: KnowledgeService) -> None:
    from bot.errors import InvalidQuestion

    with pytest.raises(InvalidQuestion, match="the limit is 500"):
        service.draft_pin("why " * 200, [service.find_passage(PASSAGE)])


# -- serving ---------------------------------------------------------------------------------------


def test_a_declined_question_once_pinned_is_answered_with_the_pinned_passage(service: KnowledgeService) -> None:
    assert service.ask(DECLINED).declined
    pin_id = pin_passage(service)
    answer = service.ask(DECLINED)
    assert not answer.declined and answer.pin_id == pin_id
    first = answer.excerpts[0]
    assert first.pinned and first.quote == PASSAGE
    assert service.live.index.articles[ARTICLE].body[first.start : first.end] == PASSAGE


def test_a_paraphrase_of_a_pinned_question_gets_the_pinned_passage_first(service: KnowledgeService) -> None:
    pin_passage(service)
    answer = service.ask(PARAPHRASE)
    assert answer.excerpts[0].pinned and answer.excerpts[0].quote == PASSAGE


def test_the_usual_excerpts_follow_the_pinned_ones_without_repeating_them(service: KnowledgeService) -> None:
    question = "Is Opus 4.8 affected?"
    automatic = service.ask(question)
    draft = service.draft_pin(question, [service.find_passage(PASSAGE)])
    service.save_pin(draft, actor="test")
    answer = service.ask(question)
    assert [e.pinned for e in answer.excerpts][:1] == [True]
    rest = answer.excerpts[1:]
    assert rest and not any(e.pinned for e in rest)
    assert all(e.quote != PASSAGE for e in rest)
    assert {e.id for e in rest} <= {e.id for e in automatic.excerpts}


def test_an_unrelated_question_gets_the_automatic_answer(service: KnowledgeService) -> None:
    pin_passage(service)
    answer = service.ask(UNRELATED)
    assert answer.pin_id is None and not any(e.pinned for e in answer.excerpts)


def test_asking_without_pins_gives_the_automatic_answer(service: KnowledgeService) -> None:
    pin_passage(service)
    assert service.ask(DECLINED, use_pins=False).declined


def test_a_cached_answer_is_replaced_when_a_pin_is_made(service: KnowledgeService) -> None:
    assert service.ask_cached(DECLINED).declined  # type: ignore[union-attr]
    pin_passage(service)
    answer = service.ask_cached(DECLINED)
    assert isinstance(answer, Answer) and answer.excerpts[0].pinned


def test_an_unpinned_question_is_answered_automatically_again(service: KnowledgeService) -> None:
    pin_id = pin_passage(service)
    service.unpin(pin_id, actor="test")
    assert service.ask(DECLINED).declined


def test_a_phrasing_added_later_is_matched(service: KnowledgeService) -> None:
    pin_id = pin_passage(service)
    phrasing = "are my old fable conversations kept"
    assert service.ask(phrasing).pin_id is None
    service.add_pin_phrasings(pin_id, [phrasing], actor="test")
    assert service.ask(phrasing).pin_id == pin_id


# -- staleness -------------------------------------------------------------------------------------


def remove_passage(service: KnowledgeService) -> None:
    knowledge = service.settings.paths.knowledge_dir
    article = get_article(knowledge, ARTICLE)
    write_article(knowledge, dataclasses.replace(article, body=article.body.replace(PASSAGE, "")))
    service.rebuild(started_by="test")


def test_a_rebuild_that_removes_the_pinned_passage_marks_the_pin_stale(service: KnowledgeService) -> None:
    pin_id = pin_passage(service)
    remove_passage(service)
    [pin] = service.pins()
    assert pin.id == pin_id and not pin.active
    assert "no longer in" in (pin.stale_reason or "")


def test_a_stale_pin_is_not_served(service: KnowledgeService) -> None:
    pin_passage(service)
    remove_passage(service)
    answer = service.ask(DECLINED)
    assert answer.pin_id is None and not any(e.pinned for e in answer.excerpts)


def test_a_pin_going_stale_is_in_the_audit_log(service: KnowledgeService) -> None:
    pin_passage(service)
    remove_passage(service)
    actions = [e.action for e in service.pin_db.audit_log()]  # type: ignore[union-attr]
    assert actions[:2] == ["pin stale", "pin"]


def test_a_pin_is_checked_again_when_the_index_is_loaded(service: KnowledgeService, tmp_path: Path) -> None:
    pin_passage(service)
    db = service.pin_db
    service.use_pins(None)
    remove_passage(service)  # built while nobody served the pins
    assert db is not None and db.pins()[0].active
    service.use_pins(db)
    assert not db.pins()[0].active


# -- storage ---------------------------------------------------------------------------------------


def test_a_question_already_pinned_is_refused_and_nothing_is_added(service: KnowledgeService) -> None:
    pin_passage(service, phrasings=("What happens to my conversations?",))
    draft = service.draft_pin("what happens to my conversations", [service.find_passage(PASSAGE)])
    with pytest.raises(PinError, match=r"already pinned \(pin #1\)"):
        service.save_pin(draft, actor="test")
    assert len(service.pins()) == 1


def test_every_pin_change_is_audited_with_the_pins_hash(service: KnowledgeService) -> None:
    pin_id = pin_passage(service)
    service.add_pin_phrasings(pin_id, ["Will my chats be deleted?"], actor="test:b")
    service.unpin(pin_id, actor="test:c")
    log = service.pin_db.audit_log()  # type: ignore[union-attr]
    assert [(e.action, e.actor) for e in log] == [
        ("unpin", "test:c"),
        ("pin phrasing", "test:b"),
        ("pin", "test:moderator"),
    ]
    assert log[0].hash_after is None and log[0].hash_before == log[1].hash_after
    assert log[2].hash_before is None and log[2].hash_after == log[1].hash_before


def test_hits_and_votes_are_counted_per_pin(service: KnowledgeService) -> None:
    pin_passage(service)
    db = service.pin_db
    assert db is not None
    answer = service.ask(PARAPHRASE)
    first = db.save_answer(answer, guild_id=1, channel_id=2, user_id=3)
    second = db.save_answer(answer, guild_id=1, channel_id=2, user_id=4)
    db.record_vote(first, 3, 1)
    db.record_vote(second, 4, -1)
    db.record_vote(second, 5, -1)
    [pin] = service.pins()
    assert (pin.hits, pin.votes_up, pin.votes_down) == (2, 1, 2)


def test_a_stored_answer_keeps_which_excerpts_were_pinned(service: KnowledgeService) -> None:
    pin_passage(service)
    db = service.pin_db
    assert db is not None
    stored = db.load_answer(db.save_answer(service.ask(DECLINED), guild_id=None, channel_id=None, user_id=None))
    assert stored is not None and stored.excerpts[0].pinned


def test_downvoted_answers_are_grouped_by_question_newest_first(tmp_path: Path, service: KnowledgeService) -> None:
    db = Database(tmp_path / "feedback.sqlite3")
    now = dt.datetime.now(dt.UTC)
    for n, question in enumerate(["Who is affected?", "who is affected", "Is Opus 4.8 affected?"]):
        answer_id = db.save_answer(service.ask(question), guild_id=1, channel_id=2, user_id=3)
        db.record_vote(answer_id, 10 + n, -1, when=now - dt.timedelta(hours=3 - n))
    groups = db.recent_feedback()
    assert [(g.example, g.downvotes) for g in groups] == [("Is Opus 4.8 affected?", 1), ("who is affected", 2)]


# -- export and import -----------------------------------------------------------------------------


def test_export_then_import_on_a_fresh_database_gives_the_same_answers(
    service: KnowledgeService, tmp_path: Path
) -> None:
    pin_passage(service, phrasings=("Will my chats be deleted?",))
    before = [service.ask(q) for q in (DECLINED, PARAPHRASE, UNRELATED)]
    service.export_pins(tmp_path / "pins.yaml")
    service.use_pins(Database(tmp_path / "fresh.sqlite3"))
    assert service.ask(DECLINED).declined
    report = service.import_pins(tmp_path / "pins.yaml", actor="test:import")
    assert len(report.added) == 1 and report.skipped == ()
    after = [service.ask(q) for q in (DECLINED, PARAPHRASE, UNRELATED)]
    assert [[(e.quote, e.pinned) for e in a.excerpts] for a in after] == [
        [(e.quote, e.pinned) for e in a.excerpts] for a in before
    ]


def test_import_refuses_a_passage_not_found_verbatim_and_adds_nothing(
    service: KnowledgeService, tmp_path: Path
) -> None:
    pin_passage(service)
    service.export_pins(tmp_path / "pins.yaml")
    text = (tmp_path / "pins.yaml").read_text(encoding="utf-8").replace("Opus 4.8", "Opus 9")
    (tmp_path / "pins.yaml").write_text(text, encoding="utf-8")
    service.use_pins(Database(tmp_path / "fresh.sqlite3"))
    with pytest.raises(PinError, match=r"not in it word for word.*Nothing was imported"):
        service.import_pins(tmp_path / "pins.yaml", actor="test")
    assert service.pins() == []


def test_importing_the_same_file_twice_adds_nothing_the_second_time(service: KnowledgeService, tmp_path: Path) -> None:
    pin_passage(service)
    service.export_pins(tmp_path / "pins.yaml")
    report = service.import_pins(tmp_path / "pins.yaml", actor="test")
    assert report.added == () and report.skipped == (DECLINED,)


def test_a_file_that_is_not_an_export_is_refused_in_one_line(service: KnowledgeService, tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("- just a list\n", encoding="utf-8")
    with pytest.raises(PinError, match="is not a pins export"):
        service.import_pins(tmp_path / "x.yaml", actor="test")
