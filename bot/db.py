"""The bot's own small SQLite store: answers, votes, declined questions, audit and rebuild logs.

The knowledge base lives in ``knowledge/`` and the index in ``index/``; this file only holds what
the bot learns while it runs, so it can be deleted without losing any article. It is used from
worker threads (never on the event loop), so one connection is shared behind a lock, in WAL mode
so the CLI can read it while the bot writes. The schema is a numbered list of migrations
(``MIGRATIONS``) recorded in ``user_version``; add a migration, never edit an old one.

Every SQLite failure leaves as :class:`bot.errors.StorageError` with one line saying what to do.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import secrets
import sqlite3
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, Self

from bot.errors import NotFound, PinError
from bot.pins import Pin, PinDraft, PinnedQuote
from bot.records import Answer, Excerpt, Source
from bot.sqlite import Migration, connect, statements, storage_error

if TYPE_CHECKING:
    from bot.config import Settings

DB_FILENAME = "directive-bot.sqlite3"

VoteOutcome = Literal["recorded", "changed", "unchanged"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id            TEXT PRIMARY KEY,
    created_at    TEXT NOT NULL,
    guild_id      INTEGER,
    channel_id    INTEGER,
    user_id       INTEGER,
    question      TEXT NOT NULL,
    index_version TEXT NOT NULL,
    abstained     INTEGER NOT NULL,
    shown         INTEGER NOT NULL,
    excerpts      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_created ON answers (created_at);

CREATE TABLE IF NOT EXISTS votes (
    answer_id     TEXT NOT NULL,
    user_id       INTEGER NOT NULL,
    vote          INTEGER NOT NULL CHECK (vote IN (-1, 1)),
    voted_at      TEXT NOT NULL,
    question      TEXT NOT NULL,
    index_version TEXT NOT NULL,
    excerpt_ids   TEXT NOT NULL,
    PRIMARY KEY (answer_id, user_id)
);

CREATE TABLE IF NOT EXISTS declined (
    id         INTEGER PRIMARY KEY,
    question   TEXT NOT NULL,
    normalised TEXT NOT NULL,
    guild_id   INTEGER,
    asked_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS declined_normalised ON declined (normalised, asked_at);

CREATE TABLE IF NOT EXISTS audit (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    article_id  TEXT,
    hash_before TEXT,
    hash_after  TEXT,
    detail      TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS rebuilds (
    id         INTEGER PRIMARY KEY,
    started_by TEXT NOT NULL,
    started_at TEXT NOT NULL,
    seconds    REAL NOT NULL,
    ok         INTEGER NOT NULL,
    detail     TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS bot_threads (
    thread_id  INTEGER PRIMARY KEY,
    answer_id  TEXT,
    guild_id   INTEGER,
    created_at TEXT NOT NULL
);
"""

# Audit rows are written before the change they describe ('pending') and completed after it
# ('done', or 'failed' when the change could not be made), so a crash in between leaves evidence.
_AUDIT_STATUS = """
ALTER TABLE audit ADD COLUMN status TEXT NOT NULL DEFAULT 'done';
CREATE INDEX IF NOT EXISTS audit_article ON audit (article_id, at)
"""

# Moderators' pins (bot.pins). pin_questions holds the pinned question (n = 0) and its phrasings
# under their normalised form, whose uniqueness is what refuses a duplicate pin. Answers and votes
# remember the pin that led them, for hit counts and the votes a pin earned since it was made.
_PINS = """
CREATE TABLE IF NOT EXISTS pins (
    id           INTEGER PRIMARY KEY,
    question     TEXT NOT NULL,
    quotes       TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    stale_reason TEXT,
    checked_at   TEXT,
    hits         INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pin_questions (
    normalised TEXT PRIMARY KEY,
    pin_id     INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    text       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pin_questions_pin ON pin_questions (pin_id, n);
ALTER TABLE answers ADD COLUMN pin_id INTEGER;
ALTER TABLE votes ADD COLUMN pin_id INTEGER;
CREATE INDEX IF NOT EXISTS votes_pin ON votes (pin_id)
"""

MIGRATIONS: tuple[Migration, ...] = (
    statements(_SCHEMA),  # 1: answers, votes, declined, audit, rebuilds, bot_threads
    statements(_AUDIT_STATUS),  # 2: audit.status
    statements(_PINS),  # 3: pins, pin_questions, answers.pin_id, votes.pin_id
)
SCHEMA_VERSION = len(MIGRATIONS)

AuditStatus = Literal["pending", "done", "failed"]


class AnswerExpired(NotFound):
    """A button refers to an answer the store no longer holds (pruned or a fresh database)."""

    def __init__(self, message: str = "This answer has expired; ask again.") -> None:
        super().__init__(message)


@dataclass(frozen=True)
class StoredAnswer:
    """What is kept of a posted answer: enough to page through its excerpts after a restart."""

    id: str
    created_at: dt.datetime
    guild_id: int | None
    channel_id: int | None
    user_id: int | None
    question: str
    index_version: str
    declined: bool
    shown: int
    excerpts: tuple[Excerpt, ...]


@dataclass(frozen=True)
class Gap:
    """A question the knowledge base could not answer, grouped with its near-identical repeats."""

    question_normalised: str
    count: int
    last_asked: dt.datetime
    example: str


@dataclass(frozen=True)
class FeedbackGroup:
    """Answers members voted 👎, grouped by question (normalised as for gaps)."""

    question_normalised: str
    downvotes: int
    last_voted: dt.datetime
    example: str
    pinned: int | None = None  # the pin that led the latest of these answers, if any


@dataclass(frozen=True)
class AuditEntry:
    """One change to the knowledge base, with content hashes so it can be verified later."""

    id: int
    at: dt.datetime
    actor: str
    action: str
    article_id: str | None
    hash_before: str | None
    hash_after: str | None
    detail: str
    status: str = "done"  # 'pending' while the change is being made; 'failed' when it was not made


@dataclass(frozen=True)
class RebuildEntry:
    """One index build: who started it, how long it took, whether it worked."""

    id: int
    started_by: str
    started_at: dt.datetime
    seconds: float
    ok: bool
    detail: str


_PUNCT_CATEGORIES = ("P", "S")
_SPACES = re.compile(r"\s+")


def normalise_question(question: str) -> str:
    """Fold case, drop punctuation and symbols, collapse whitespace: so repeats group together."""
    folded = unicodedata.normalize("NFKC", question).casefold()
    kept = "".join(" " if unicodedata.category(ch)[0] in _PUNCT_CATEGORIES else ch for ch in folded)
    return _SPACES.sub(" ", kept).strip()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _to_text(when: dt.datetime) -> str:
    """Store instants as UTC ISO text so they sort as strings; naive values are taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _from_text(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _source_from_json(data: dict[str, object]) -> Source:
    def opt(key: str) -> str | None:
        value = data.get(key)
        return None if value is None else str(value)

    return Source(
        article_id=str(data["article_id"]),
        title=str(data.get("title") or ""),
        publisher=opt("publisher"),
        url=opt("url"),
        published=opt("published"),
    )


def excerpt_to_json(excerpt: Excerpt) -> dict[str, object]:
    """Everything needed to rebuild the ``Excerpt`` exactly (unlike ``Excerpt.to_json``, no rounding)."""
    return {
        "quote": excerpt.quote,
        "start": excerpt.start,
        "end": excerpt.end,
        "score": excerpt.score,
        "source": excerpt.source.to_json(),
        "chunk_id": excerpt.chunk_id,
        "also_reported_by": [s.to_json() for s in excerpt.also_reported_by],
        "pinned": excerpt.pinned,
    }


def excerpt_from_json(data: dict[str, object]) -> Excerpt:
    """Inverse of :func:`excerpt_to_json`."""
    also = data.get("also_reported_by") or []
    assert isinstance(also, list)
    source = data["source"]
    assert isinstance(source, dict)
    return Excerpt(
        quote=str(data["quote"]),
        start=int(data["start"]),  # type: ignore[call-overload]
        end=int(data["end"]),  # type: ignore[call-overload]
        score=float(data["score"]),  # type: ignore[arg-type]
        source=_source_from_json(source),
        chunk_id=str(data["chunk_id"]),
        also_reported_by=tuple(_source_from_json(s) for s in also),
        pinned=bool(data.get("pinned", False)),
    )


class Database:
    """Thread-safe access to the bot's SQLite file; every method is blocking and short."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, "the bot's database", self.path) from exc
        self._lock = threading.RLock()
        self._conn = connect(path, MIGRATIONS, what="the bot's database")
        self._conn.row_factory = sqlite3.Row

    @classmethod
    def open(cls, settings: Settings) -> Database:
        """The store the bot and the CLI share: ``data_dir/directive-bot.sqlite3``."""
        return cls(settings.paths.data_dir / DB_FILENAME)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction under the lock; rolled back on any error."""
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")  # waits up to the busy timeout for other writers
            except sqlite3.Error as exc:
                cur.close()
                raise storage_error(exc, "the bot's database", self.path) from exc
            try:
                yield cur
            except BaseException as exc:
                if self._conn.in_transaction:
                    cur.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):
                    raise storage_error(exc, "the bot's database", self.path) from exc
                raise
            else:
                try:
                    cur.execute("COMMIT")
                except sqlite3.Error as exc:
                    if self._conn.in_transaction:
                        cur.execute("ROLLBACK")
                    raise storage_error(exc, "the bot's database", self.path) from exc
            finally:
                cur.close()

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise storage_error(exc, "the bot's database", self.path) from exc

    # -- answers -------------------------------------------------------------------------------

    def save_answer(
        self,
        answer: Answer,
        *,
        guild_id: int | None,
        channel_id: int | None,
        user_id: int | None,
        shown: int | None = None,
        when: dt.datetime | None = None,
    ) -> str:
        """Keep a posted answer so its buttons work after a restart; returns a short random id.

        ``shown`` is how many excerpts the message displayed ("More sources" continues from there).
        An answer led by a pin counts as one hit of that pin.
        """
        payload = json.dumps([excerpt_to_json(e) for e in answer.excerpts], ensure_ascii=False)
        shown_count = len(answer.excerpts) if shown is None else max(0, min(shown, len(answer.excerpts)))
        created = _to_text(when or _utcnow())
        while True:
            answer_id = secrets.token_hex(6)
            try:
                with self._transaction() as cur:
                    cur.execute(
                        "INSERT INTO answers (id, created_at, guild_id, channel_id, user_id, question,"
                        " index_version, abstained, shown, excerpts, pin_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            answer_id,
                            created,
                            guild_id,
                            channel_id,
                            user_id,
                            answer.question,
                            answer.index_version,
                            int(answer.declined),
                            shown_count,
                            payload,
                            answer.pin_id,
                        ),
                    )
                    if answer.pin_id is not None:  # a pin's hit count: answers it led that were posted
                        cur.execute("UPDATE pins SET hits = hits + 1 WHERE id = ?", (answer.pin_id,))
            except sqlite3.IntegrityError:
                continue  # a 48-bit id collided; draw another
            return answer_id

    def load_answer(self, answer_id: str) -> StoredAnswer | None:
        """The stored answer, or None when it was pruned or never existed."""
        rows = self._query("SELECT * FROM answers WHERE id = ?", (answer_id,))
        if not rows:
            return None
        row = rows[0]
        return StoredAnswer(
            id=row["id"],
            created_at=_from_text(row["created_at"]),
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            user_id=row["user_id"],
            question=row["question"],
            index_version=row["index_version"],
            declined=bool(row["abstained"]),
            shown=row["shown"],
            excerpts=tuple(excerpt_from_json(e) for e in json.loads(row["excerpts"])),
        )

    def prune_answers(self, *, older_than: dt.timedelta, now: dt.datetime | None = None) -> int:
        """Forget old answers (their votes stay, they carry their own copy); returns how many."""
        cutoff = _to_text((now or _utcnow()) - older_than)
        with self._transaction() as cur:
            cur.execute("DELETE FROM answers WHERE created_at < ?", (cutoff,))
            return cur.rowcount

    # -- feedback ------------------------------------------------------------------------------

    def record_vote(
        self,
        answer_id: str,
        user_id: int,
        vote: int,
        *,
        when: dt.datetime | None = None,
    ) -> VoteOutcome:
        """One vote per user per answer; voting again replaces it. Raises AnswerExpired."""
        if vote not in (1, -1):
            raise ValueError(f"vote must be +1 or -1, not {vote!r}")
        with self._transaction() as cur:
            answer = cur.execute(
                "SELECT question, index_version, excerpts, pin_id FROM answers WHERE id = ?",
                (answer_id,),
            ).fetchone()
            if answer is None:
                raise AnswerExpired()
            previous = cur.execute(
                "SELECT vote FROM votes WHERE answer_id = ? AND user_id = ?",
                (answer_id, user_id),
            ).fetchone()
            if previous is not None and previous["vote"] == vote:
                return "unchanged"
            excerpt_ids = [excerpt_from_json(e).id for e in json.loads(answer["excerpts"])]
            cur.execute(
                "INSERT INTO votes (answer_id, user_id, vote, voted_at, question, index_version, excerpt_ids, pin_id)"
                " VALUES (?,?,?,?,?,?,?,?)"
                " ON CONFLICT (answer_id, user_id) DO UPDATE SET vote = excluded.vote, voted_at = excluded.voted_at",
                (
                    answer_id,
                    user_id,
                    vote,
                    _to_text(when or _utcnow()),
                    answer["question"],
                    answer["index_version"],
                    json.dumps(excerpt_ids),
                    answer["pin_id"],
                ),
            )
            return "recorded" if previous is None else "changed"

    def export_feedback_csv(self, target: Path | str | IO[str]) -> int:
        """Write every vote as CSV (no user ids); returns the number of rows written."""
        rows = self._query(
            "SELECT voted_at, answer_id, vote, question, index_version, excerpt_ids FROM votes"
            " ORDER BY voted_at, answer_id"
        )
        header = [
            "voted_at",
            "answer_id",
            "vote",
            "question",
            "index_version",
            "excerpt_ids",
        ]

        def write(handle: IO[str]) -> None:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row in rows:
                ids = " ".join(json.loads(row["excerpt_ids"]))
                writer.writerow(
                    [
                        row["voted_at"],
                        row["answer_id"],
                        row["vote"],
                        row["question"],
                        row["index_version"],
                        ids,
                    ]
                )

        if isinstance(target, (str, Path)):
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="utf-8", newline="") as handle:
                write(handle)
        else:
            write(target)
        return len(rows)

    def feedback_csv(self) -> str:
        """The CSV export as text (handy for an attachment)."""
        buffer = io.StringIO()
        self.export_feedback_csv(buffer)
        return buffer.getvalue()

    # -- declined questions --------------------------------------------------------------------

    def record_declined(self, question: str, guild_id: int | None, when: dt.datetime | None = None) -> None:
        """Remember a question the knowledge base could not answer, to show curators the gaps."""
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO declined (question, normalised, guild_id, asked_at) VALUES (?,?,?,?)",
                (
                    question,
                    normalise_question(question),
                    guild_id,
                    _to_text(when or _utcnow()),
                ),
            )

    def recent_gaps(self, limit: int = 20, days: int = 30, *, now: dt.datetime | None = None) -> list[Gap]:
        """Declined questions of the last ``days``, grouped by normalised form, newest first."""
        cutoff = _to_text((now or _utcnow()) - dt.timedelta(days=days))
        rows = self._query(
            "SELECT normalised, COUNT(*) AS n, MAX(asked_at) AS last,"
            " (SELECT d2.question FROM declined d2 WHERE d2.normalised = d.normalised AND d2.asked_at >= ?"
            "  ORDER BY d2.asked_at DESC, d2.id DESC LIMIT 1) AS example"
            " FROM declined d WHERE asked_at >= ? GROUP BY normalised"
            " ORDER BY last DESC, normalised LIMIT ?",
            (cutoff, cutoff, limit),
        )
        return [
            Gap(
                question_normalised=row["normalised"],
                count=row["n"],
                last_asked=_from_text(row["last"]),
                example=row["example"],
            )
            for row in rows
        ]

    def recent_feedback(
        self, limit: int = 25, days: int = 30, *, now: dt.datetime | None = None
    ) -> list[FeedbackGroup]:
        """Answers voted 👎 in the last ``days``, grouped by normalised question, newest first."""
        cutoff = _to_text((now or _utcnow()) - dt.timedelta(days=days))
        rows = self._query(
            "SELECT question, voted_at, pin_id FROM votes WHERE vote = -1 AND voted_at >= ? ORDER BY voted_at DESC",
            (cutoff,),
        )
        groups: dict[str, FeedbackGroup] = {}
        for row in rows:  # newest first: the first row of a group names it
            key = normalise_question(row["question"])
            seen = groups.get(key)
            if seen is None:
                groups[key] = FeedbackGroup(key, 1, _from_text(row["voted_at"]), row["question"], row["pin_id"])
            else:
                groups[key] = FeedbackGroup(key, seen.downvotes + 1, seen.last_voted, seen.example, seen.pinned)
        return list(groups.values())[:limit]

    # -- pins ----------------------------------------------------------------------------------

    def add_pin(self, draft: PinDraft, *, actor: str, when: dt.datetime | None = None, action: str = "pin") -> Pin:
        """Save a pin and its audit row in one transaction; a question already pinned is refused."""
        at = _to_text(when or _utcnow())
        quotes = json.dumps([q.to_json() for q in draft.quotes], ensure_ascii=False)
        with self._transaction() as cur:
            self._refuse_taken(cur, draft.questions)
            cur.execute(
                "INSERT INTO pins (question, quotes, created_by, created_at, checked_at) VALUES (?,?,?,?,?)",
                (draft.question, quotes, actor, at, at),
            )
            pin_id = int(cur.lastrowid or 0)
            for n, text in enumerate(draft.questions):
                cur.execute(
                    "INSERT INTO pin_questions (normalised, pin_id, n, text) VALUES (?,?,?,?)",
                    (normalise_question(text), pin_id, n, text),
                )
            pin = self._pin(cur, pin_id)
            self._audit_pin(
                cur, at, actor, action, None, pin, f"pinned #{pin_id} “{_clip(draft.question)}”: {_refs(pin)}"
            )
        return pin

    def _refuse_taken(
        self, cur: sqlite3.Cursor, questions: tuple[str, ...] | list[str], *, own: int | None = None
    ) -> None:
        for text in questions:
            row = cur.execute(
                "SELECT pin_id FROM pin_questions WHERE normalised = ?", (normalise_question(text),)
            ).fetchone()
            if row is not None and row["pin_id"] != own:
                raise PinError(
                    f"“{_clip(text)}” is already pinned (pin #{row['pin_id']}); "
                    "see `/kb pins`, or unpin it first to pin other passages."
                )

    def add_phrasings(self, pin_id: int, phrasings: list[str] | tuple[str, ...], *, actor: str) -> Pin:
        """More example phrasings for a pin (audited); one already pinned anywhere is refused."""
        at = _to_text(_utcnow())
        with self._transaction() as cur:
            before = self._pin(cur, pin_id)
            self._refuse_taken(cur, phrasings, own=pin_id)
            fresh = [
                p for p in phrasings if normalise_question(p) not in {normalise_question(q) for q in before.questions}
            ]
            if not fresh:
                raise PinError(f"Pin #{pin_id} already has that phrasing; nothing was changed.")
            start = len(before.questions)
            for n, text in enumerate(fresh, start=start):
                cur.execute(
                    "INSERT INTO pin_questions (normalised, pin_id, n, text) VALUES (?,?,?,?)",
                    (normalise_question(text), pin_id, n, text),
                )
            after = self._pin(cur, pin_id)
            detail = f"pin #{pin_id}: added phrasing " + "; ".join(f"“{_clip(t)}”" for t in fresh)
            self._audit_pin(cur, at, actor, "pin phrasing", before, after, detail)
        return after

    def remove_pin(self, pin_id: int, *, actor: str) -> Pin:
        """Delete a pin (its audit rows, hits and votes stay as history)."""
        at = _to_text(_utcnow())
        with self._transaction() as cur:
            before = self._pin(cur, pin_id)
            cur.execute("DELETE FROM pin_questions WHERE pin_id = ?", (pin_id,))
            cur.execute("DELETE FROM pins WHERE id = ?", (pin_id,))
            self._audit_pin(cur, at, actor, "unpin", before, None, f"unpinned #{pin_id} “{_clip(before.question)}”")
        return before

    def save_pin_check(self, checked: Pin, *, actor: str = "index check") -> Pin | None:
        """Store a pin as re-checked against the articles; a change of state (stale or fresh again) is audited.

        Returns the stored pin, or None when it was unpinned meanwhile.
        """
        at = _to_text(_utcnow())
        quotes = json.dumps([q.to_json() for q in checked.quotes], ensure_ascii=False)
        with self._transaction() as cur:
            try:
                before = self._pin(cur, checked.id)
            except PinError:
                return None
            if before.quotes == checked.quotes and before.stale_reason == checked.stale_reason:
                cur.execute("UPDATE pins SET checked_at = ? WHERE id = ?", (at, checked.id))
                return before
            cur.execute(
                "UPDATE pins SET quotes = ?, stale_reason = ?, checked_at = ? WHERE id = ?",
                (quotes, checked.stale_reason, at, checked.id),
            )
            after = self._pin(cur, checked.id)
            if checked.stale_reason is not None and before.stale_reason is None:
                action, detail = "pin stale", f"pin #{checked.id} not served: {checked.stale_reason}"
            elif checked.stale_reason is None and before.stale_reason is not None:
                action, detail = "pin fresh", f"pin #{checked.id} served again: every passage found word for word"
            elif checked.stale_reason is not None:
                action, detail = "pin stale", f"pin #{checked.id} still not served: {checked.stale_reason}"
            else:
                action, detail = "pin moved", f"pin #{checked.id}: passages found at new offsets: {_refs(after)}"
            self._audit_pin(cur, at, actor, action, before, after, detail)
        return after

    def get_pin(self, pin_id: int) -> Pin:
        with self._lock:
            cur = self._conn.cursor()
            try:
                return self._pin(cur, pin_id)
            except sqlite3.Error as exc:
                raise storage_error(exc, "the bot's database", self.path) from exc
            finally:
                cur.close()

    def pins(self) -> list[Pin]:
        """Every pin, oldest first, with its phrasings, hits and the 👍/👎 of answers it led."""
        rows = self._query("SELECT id FROM pins ORDER BY id")
        with self._lock:
            cur = self._conn.cursor()
            try:
                return [self._pin(cur, row["id"]) for row in rows]
            except sqlite3.Error as exc:
                raise storage_error(exc, "the bot's database", self.path) from exc
            finally:
                cur.close()

    def _pin(self, cur: sqlite3.Cursor, pin_id: int) -> Pin:
        row = cur.execute("SELECT * FROM pins WHERE id = ?", (pin_id,)).fetchone()
        if row is None:
            raise PinError(f"There is no pin #{pin_id}; see `/kb pins` for the pins there are.")
        texts = [
            r["text"]
            for r in cur.execute("SELECT text FROM pin_questions WHERE pin_id = ? ORDER BY n", (pin_id,)).fetchall()
        ]
        votes = cur.execute(
            "SELECT SUM(vote = 1) AS up, SUM(vote = -1) AS down FROM votes WHERE pin_id = ?", (pin_id,)
        ).fetchone()
        return Pin(
            id=row["id"],
            question=row["question"],
            quotes=tuple(PinnedQuote.from_json(q) for q in json.loads(row["quotes"])),
            phrasings=tuple(texts[1:]),
            created_by=row["created_by"],
            created_at=_from_text(row["created_at"]),
            stale_reason=row["stale_reason"],
            hits=row["hits"],
            votes_up=int(votes["up"] or 0),
            votes_down=int(votes["down"] or 0),
        )

    @staticmethod
    def _audit_pin(
        cur: sqlite3.Cursor, at: str, actor: str, action: str, before: Pin | None, after: Pin | None, detail: str
    ) -> None:
        cur.execute(
            "INSERT INTO audit (at, actor, action, article_id, hash_before, hash_after, detail, status)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (
                at,
                actor,
                action,
                None,
                before.content_hash if before else None,
                after.content_hash if after else None,
                detail,
                "done",
            ),
        )

    # -- audit log -----------------------------------------------------------------------------

    def record_change(
        self,
        actor: str,
        action: str,
        article_id: str | None,
        hash_before: str | None,
        hash_after: str | None,
        detail: str = "",
        *,
        when: dt.datetime | None = None,
        status: AuditStatus = "done",
    ) -> int:
        """Append one knowledge-base change to the audit log; returns its id.

        A change to a file is recorded with ``status='pending'`` before it is made and completed
        with :meth:`complete_change` after, so a crash between the two leaves a pending row.
        """
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO audit (at, actor, action, article_id, hash_before, hash_after, detail, status)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (
                    _to_text(when or _utcnow()),
                    actor,
                    action,
                    article_id,
                    hash_before,
                    hash_after,
                    detail,
                    status,
                ),
            )
            return int(cur.lastrowid or 0)

    def complete_change(self, entry_id: int, status: AuditStatus = "done", detail: str | None = None) -> None:
        """Mark a pending audit row as done (the change was made) or failed (it was not)."""
        with self._transaction() as cur:
            if detail is None:
                cur.execute("UPDATE audit SET status = ? WHERE id = ?", (status, entry_id))
            else:
                cur.execute("UPDATE audit SET status = ?, detail = ? WHERE id = ?", (status, detail, entry_id))

    def audit_log(self, limit: int = 50, *, article_id: str | None = None) -> list[AuditEntry]:
        """The newest ``limit`` changes, newest first; only one article's when ``article_id`` is given."""
        if article_id is None:
            rows = self._query("SELECT * FROM audit ORDER BY at DESC, id DESC LIMIT ?", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM audit WHERE article_id = ? ORDER BY at DESC, id DESC LIMIT ?", (article_id, limit)
            )
        return [
            AuditEntry(
                id=row["id"],
                at=_from_text(row["at"]),
                actor=row["actor"],
                action=row["action"],
                article_id=row["article_id"],
                hash_before=row["hash_before"],
                hash_after=row["hash_after"],
                detail=row["detail"],
                status=row["status"],
            )
            for row in rows
        ]

    # -- rebuild log ---------------------------------------------------------------------------

    def record_rebuild(
        self,
        started_by: str,
        started_at: dt.datetime,
        seconds: float,
        ok: bool,
        detail: str = "",
    ) -> int:
        """Append one index build to the log; returns its id."""
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO rebuilds (started_by, started_at, seconds, ok, detail) VALUES (?,?,?,?,?)",
                (started_by, _to_text(started_at), float(seconds), int(ok), detail),
            )
            return int(cur.lastrowid or 0)

    def last_rebuild(self) -> RebuildEntry | None:
        """The most recent build, successful or not."""
        rows = self._query("SELECT * FROM rebuilds ORDER BY started_at DESC, id DESC LIMIT 1")
        if not rows:
            return None
        row = rows[0]
        return RebuildEntry(
            id=row["id"],
            started_by=row["started_by"],
            started_at=_from_text(row["started_at"]),
            seconds=row["seconds"],
            ok=bool(row["ok"]),
            detail=row["detail"],
        )

    # -- threads the bot opened ----------------------------------------------------------------

    def add_bot_thread(
        self,
        thread_id: int,
        *,
        answer_id: str | None,
        guild_id: int | None,
        when: dt.datetime | None = None,
    ) -> None:
        """Remember a thread the bot opened: questions there need no mention, even after a restart."""
        with self._transaction() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO bot_threads (thread_id, answer_id, guild_id, created_at) VALUES (?,?,?,?)",
                (thread_id, answer_id, guild_id, _to_text(when or _utcnow())),
            )

    def remove_bot_thread(self, thread_id: int) -> None:
        with self._transaction() as cur:
            cur.execute("DELETE FROM bot_threads WHERE thread_id = ?", (thread_id,))

    def bot_threads(self) -> set[int]:
        """Ids of every thread the bot opened."""
        return {row["thread_id"] for row in self._query("SELECT thread_id FROM bot_threads")}

    def thread_question(self, thread_id: int) -> str | None:
        """The question whose answer a bot thread was opened from: what short messages there follow.
        None when the thread is not the bot's or its answer has been pruned."""
        rows = self._query(
            "SELECT a.question FROM bot_threads t JOIN answers a ON a.id = t.answer_id WHERE t.thread_id = ?",
            (thread_id,),
        )
        return str(rows[0]["question"]) if rows else None


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _refs(pin: Pin) -> str:
    return ", ".join(q.ref for q in pin.quotes)
