"""The bot's SQLite store: answers, votes, gaps, audit and rebuild logs, bot-opened threads."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import sqlite3
import threading
from pathlib import Path

import pytest

from bot.config import PathSettings, Settings
from bot.db import (
    DB_FILENAME,
    AnswerExpired,
    Database,
    excerpt_from_json,
    excerpt_to_json,
    normalise_question,
)
from bot.errors import DirectiveError
from bot.records import Answer, Excerpt, Source

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


def make_source(n: int) -> Source:
    return Source(
        article_id=f"article-{n}",
        title=f"Title {n}",
        publisher=f"Publisher {n}",
        url=f"https://example.com/{n}",
        published="2025-03-07",
    )


def make_excerpt(n: int, *, also: int = 0) -> Excerpt:
    return Excerpt(
        quote=f"Quote number {n}, with “curly” quotes and **stars**.",
        start=10 * n,
        end=10 * n + 40,
        score=0.123456789 * n,
        source=make_source(n),
        chunk_id=f"article-{n}:0",
        also_reported_by=tuple(make_source(100 + k) for k in range(also)),
    )


def make_answer(question: str = "What does the order restrict?", excerpts: int = 3) -> Answer:
    return Answer(
        question=question,
        declined=excerpts == 0,
        excerpts=tuple(make_excerpt(n, also=n % 3) for n in range(1, excerpts + 1)),
        index_version="v-test-1",
    )


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(tmp_path / "data" / DB_FILENAME)
    yield database
    database.close()


def save(db: Database, answer: Answer | None = None, **kwargs: object) -> str:
    return db.save_answer(answer or make_answer(), guild_id=1, channel_id=2, user_id=3, **kwargs)


# -- opening --------------------------------------------------------------------------------


def test_open_creates_the_data_dir_and_file_in_wal_mode(tmp_path: Path) -> None:
    settings = Settings(paths=PathSettings(data_dir=tmp_path / "nested" / "data"))
    with Database.open(settings) as db:
        mode = db._query("PRAGMA journal_mode")[0][0]
    assert (tmp_path / "nested" / "data" / DB_FILENAME).is_file()
    assert mode == "wal"


def test_reopening_keeps_what_was_stored(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    with Database(path) as first:
        answer_id = save(first)
    with Database(path) as second:
        assert second.load_answer(answer_id) is not None


# -- answers --------------------------------------------------------------------------------


def test_saved_answer_loads_back_with_identical_excerpts(db: Database) -> None:
    answer = make_answer(excerpts=4)
    answer_id = save(db, answer, shown=2)
    stored = db.load_answer(answer_id)
    assert stored is not None
    assert stored.excerpts == answer.excerpts
    assert (stored.question, stored.index_version, stored.shown) == (
        answer.question,
        "v-test-1",
        2,
    )
    assert (stored.guild_id, stored.channel_id, stored.user_id) == (1, 2, 3)


def test_shown_defaults_to_every_excerpt(db: Database) -> None:
    stored = db.load_answer(save(db, make_answer(excerpts=3)))
    assert stored is not None and stored.shown == 3


def test_answer_ids_are_short_word_characters_and_unique(db: Database) -> None:
    ids = {save(db) for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"\w{6,16}", answer_id) for answer_id in ids)


def test_unknown_answer_loads_as_none(db: Database) -> None:
    assert db.load_answer("doesnotexist") is None


def test_excerpt_json_round_trip_keeps_exact_score() -> None:
    excerpt = make_excerpt(7, also=2)
    assert excerpt_from_json(excerpt_to_json(excerpt)) == excerpt


def test_prune_forgets_old_answers_only(db: Database) -> None:
    old = save(db, when=NOW - dt.timedelta(days=100))
    new = save(db, when=NOW - dt.timedelta(days=1))
    removed = db.prune_answers(older_than=dt.timedelta(days=90), now=NOW)
    assert removed == 1
    assert db.load_answer(old) is None
    assert db.load_answer(new) is not None


def test_concurrent_saves_from_threads_all_land(db: Database) -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            answer_id = save(db)
            with lock:
                ids.append(answer_id)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 160
    assert all(db.load_answer(answer_id) is not None for answer_id in ids)


# -- votes ----------------------------------------------------------------------------------


def test_first_vote_is_recorded(db: Database) -> None:
    assert db.record_vote(save(db), user_id=9, vote=1) == "recorded"


def test_second_click_on_the_other_button_changes_the_vote(db: Database) -> None:
    answer_id = save(db)
    db.record_vote(answer_id, user_id=9, vote=1)
    assert db.record_vote(answer_id, user_id=9, vote=-1) == "changed"


def test_same_vote_twice_is_unchanged(db: Database) -> None:
    answer_id = save(db)
    db.record_vote(answer_id, user_id=9, vote=-1)
    assert db.record_vote(answer_id, user_id=9, vote=-1) == "unchanged"


def test_each_user_has_one_vote_per_answer(db: Database) -> None:
    answer_id = save(db)
    db.record_vote(answer_id, user_id=1, vote=1)
    db.record_vote(answer_id, user_id=1, vote=-1)
    db.record_vote(answer_id, user_id=2, vote=1)
    rows = list(csv.DictReader(io.StringIO(db.feedback_csv())))
    assert sorted(row["vote"] for row in rows) == ["-1", "1"]


@pytest.mark.parametrize("vote", [0, 2, -2])
def test_vote_must_be_plus_or_minus_one(db: Database, vote: int) -> None:
    with pytest.raises(ValueError):
        db.record_vote(save(db), user_id=9, vote=vote)


def test_vote_on_a_missing_answer_raises_expired_with_a_user_message(
    db: Database,
) -> None:
    with pytest.raises(AnswerExpired) as caught:
        db.record_vote("gone", user_id=9, vote=1)
    assert isinstance(caught.value, DirectiveError)
    assert str(caught.value) == "This answer has expired; ask again."


def test_feedback_export_carries_question_version_and_excerpt_ids(db: Database, tmp_path: Path) -> None:
    answer = make_answer(excerpts=2)
    answer_id = save(db, answer)
    db.record_vote(answer_id, user_id=9, vote=1)
    target = tmp_path / "out" / "feedback.csv"
    assert db.export_feedback_csv(target) == 1
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert rows[0]["question"] == answer.question
    assert rows[0]["index_version"] == "v-test-1"
    assert rows[0]["excerpt_ids"].split() == [e.id for e in answer.excerpts]
    assert "user_id" not in rows[0]


def test_feedback_export_writes_to_an_open_file(db: Database) -> None:
    db.record_vote(save(db), user_id=9, vote=-1)
    buffer = io.StringIO()
    assert db.export_feedback_csv(buffer) == 1
    assert buffer.getvalue().startswith("voted_at,answer_id,vote,question,index_version,excerpt_ids")


def test_votes_survive_pruning_their_answer(db: Database) -> None:
    answer_id = save(db, when=NOW - dt.timedelta(days=100))
    db.record_vote(answer_id, user_id=9, vote=1)
    db.prune_answers(older_than=dt.timedelta(days=90), now=NOW)
    rows = list(csv.DictReader(io.StringIO(db.feedback_csv())))
    assert [row["answer_id"] for row in rows] == [answer_id]


# -- declined questions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What is Mythos 5?", "what is mythos 5"),
        ("  what   IS mythos-5 ?? ", "what is mythos 5"),
        ("Who’s affected…", "who s affected"),
        ("ÉTÉ", "été"),
    ],
)
def test_normalise_question_folds_case_punctuation_and_spaces(question: str, expected: str) -> None:
    assert normalise_question(question) == expected


def test_recent_gaps_group_repeats_and_count_them(db: Database) -> None:
    db.record_declined("What is Mythos 5?", 1, NOW - dt.timedelta(hours=3))
    db.record_declined("what is mythos 5", 1, NOW - dt.timedelta(hours=2))
    db.record_declined("WHAT IS MYTHOS-5??", 2, NOW - dt.timedelta(hours=1))
    (gap,) = db.recent_gaps(now=NOW)
    assert gap.question_normalised == "what is mythos 5"
    assert gap.count == 3
    assert gap.example == "WHAT IS MYTHOS-5??"
    assert gap.last_asked == NOW - dt.timedelta(hours=1)


def test_recent_gaps_are_newest_first(db: Database) -> None:
    db.record_declined("older question", 1, NOW - dt.timedelta(days=2))
    db.record_declined("newer question", 1, NOW - dt.timedelta(days=1))
    assert [g.question_normalised for g in db.recent_gaps(now=NOW)] == [
        "newer question",
        "older question",
    ]


def test_recent_gaps_ignore_questions_older_than_the_window(db: Database) -> None:
    db.record_declined("ancient", 1, NOW - dt.timedelta(days=40))
    db.record_declined("recent", 1, NOW - dt.timedelta(days=5))
    assert [g.example for g in db.recent_gaps(days=30, now=NOW)] == ["recent"]


def test_recent_gaps_respect_the_limit(db: Database) -> None:
    for n in range(5):
        db.record_declined(f"question {n}", 1, NOW - dt.timedelta(minutes=n))
    assert len(db.recent_gaps(limit=2, now=NOW)) == 2


def test_recorded_declined_question_defaults_to_now(db: Database) -> None:
    db.record_declined("when is it?", None)
    (gap,) = db.recent_gaps()
    assert abs(dt.datetime.now(dt.UTC) - gap.last_asked) < dt.timedelta(minutes=1)


# -- audit and rebuild logs -----------------------------------------------------------------


def test_audit_log_lists_changes_newest_first(db: Database) -> None:
    db.record_change("mod#1", "add", "a-1", None, "h1", "added", when=NOW - dt.timedelta(hours=2))
    db.record_change(
        "mod#2",
        "edit",
        "a-1",
        "h1",
        "h2",
        "fixed title",
        when=NOW - dt.timedelta(hours=1),
    )
    entries = db.audit_log(10)
    assert [(e.action, e.hash_before, e.hash_after) for e in entries] == [
        ("edit", "h1", "h2"),
        ("add", None, "h1"),
    ]
    assert entries[0].actor == "mod#2" and entries[0].detail == "fixed title"


def test_audit_log_respects_the_limit(db: Database) -> None:
    for n in range(5):
        db.record_change("cli", "remove", f"a-{n}", f"h{n}", None, "")
    assert len(db.audit_log(3)) == 3


def test_last_rebuild_is_none_before_any_build(db: Database) -> None:
    assert db.last_rebuild() is None


def test_last_rebuild_is_the_most_recent_one(db: Database) -> None:
    db.record_rebuild("startup", NOW - dt.timedelta(hours=1), 12.5, True, "ok")
    db.record_rebuild("mod#1", NOW, 3.25, False, "bad front matter")
    last = db.last_rebuild()
    assert last is not None
    assert (last.started_by, last.started_at, last.seconds, last.ok, last.detail) == (
        "mod#1",
        NOW,
        3.25,
        False,
        "bad front matter",
    )


# -- bot-opened threads ---------------------------------------------------------------------


def test_bot_threads_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    with Database(path) as first:
        first.add_bot_thread(111, answer_id="abc", guild_id=1)
        first.add_bot_thread(111, answer_id="abc", guild_id=1)  # a repeat is harmless
        first.add_bot_thread(222, answer_id=None, guild_id=1)
    with Database(path) as second:
        assert second.bot_threads() == {111, 222}


def test_a_bot_thread_knows_the_question_it_was_opened_from(db: Database) -> None:
    answer_id = db.save_answer(make_answer("Are foreigners cut off?"), guild_id=1, channel_id=2, user_id=3)
    db.add_bot_thread(111, answer_id=answer_id, guild_id=1)
    assert db.thread_question(111) == "Are foreigners cut off?"


def test_a_thread_whose_answer_is_gone_has_no_question(db: Database) -> None:
    db.add_bot_thread(111, answer_id="pruned", guild_id=1)
    assert db.thread_question(111) is None
    assert db.thread_question(999) is None


def test_removed_thread_is_forgotten(db: Database) -> None:
    db.add_bot_thread(111, answer_id="abc", guild_id=1)
    db.remove_bot_thread(111)
    assert db.bot_threads() == set()


def test_failed_write_rolls_back(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError), db._transaction() as cur:
        cur.execute("INSERT INTO bot_threads (thread_id, created_at) VALUES (1, 'x')")
        cur.execute("INSERT INTO bot_threads (thread_id, created_at) VALUES (1, 'x')")
    assert db.bot_threads() == set()


def test_audit_log_for_one_article_returns_only_its_changes_newest_first(tmp_path) -> None:
    from bot.db import Database

    with Database(tmp_path / "db.sqlite3") as db:
        for n, article_id in enumerate(["a", "b", "a", "b", "a"]):
            db.record_change(
                actor=f"mod{n}", action="edit", article_id=article_id, hash_before=None, hash_after=None, detail=str(n)
            )
        entries = db.audit_log(10, article_id="a")
    assert [e.detail for e in entries] == ["4", "2", "0"]
    assert all(e.article_id == "a" for e in entries)


def test_a_database_of_the_previous_schema_is_upgraded_in_place(tmp_path: Path) -> None:
    from bot.db import MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](old)  # what version 1 created
    old.execute("PRAGMA user_version=1")
    old.execute(
        "INSERT INTO audit (at, actor, action, article_id, hash_before, hash_after, detail)"
        " VALUES ('2026-01-01T00:00:00+00:00', 'cli:old', 'add', 'a-1', NULL, 'h1', 'added')"
    )
    old.close()
    with Database(path) as db:
        (entry,) = db.audit_log()
    assert (entry.actor, entry.status) == ("cli:old", "done")
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_database_from_a_newer_version_is_refused_in_one_line(tmp_path: Path) -> None:
    from bot.errors import StorageError

    path = tmp_path / "new.sqlite3"
    sqlite3.connect(path).execute("PRAGMA user_version=99")
    with pytest.raises(StorageError, match="newer than this program knows"):
        Database(path)


def test_a_change_recorded_as_pending_is_completed_in_place(db: Database) -> None:
    entry = db.record_change("cli", "add", "a-1", None, "h1", "added", status="pending")
    assert db.audit_log()[0].status == "pending"
    db.complete_change(entry, "done")
    assert db.audit_log()[0].status == "done"
