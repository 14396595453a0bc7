"""Measure answer quality on question files, and choose settings by cross-validation.

A question counts as answered when one of its first three excerpts contains (case, quotes and
whitespace folded) a gold sentence, or a substring of at least 40 characters of one.

Evaluation runs the expensive half of answering (models, search, the cross-encoder over the widest
candidate list any setting reads) once per question, then scores every setting of the cheap half
(how many windows the cross-encoder reads, how much the prior counts, the decline and "closest
passages" thresholds) on those observations. ``cross_validate`` chooses the settings on k-1 folds
and reports the held-out fold, so a figure never comes from the questions it was tuned on.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import yaml

from bot.answer import decline_score, hedge_score, judged_best, uncovered
from bot.errors import ConfigError
from bot.query import in_context
from bot.records import Answer
from bot.retrieval import commonness

if TYPE_CHECKING:
    from bot.config import RetrievalSettings
    from bot.retrieval import Retrieval
    from bot.service import KnowledgeService

_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "„": '"', "‟": '"', "′": "'", "″": '"'})
MIN_SUBSTRING = 40
Kind = Literal["on", "off", "near"]


# --- question files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    text: str
    cls: Kind  # on-topic (answerable), off-topic (decline), near-miss (on the topic, not answered)
    gold: tuple[str, ...] = ()
    kind: str | None = None  # persona, casual, short, ... where the file says
    lang: str | None = None
    source: str = ""  # the file it came from
    context: str | None = None  # the question a thread message follows (conversation files)


@dataclass(frozen=True)
class EvalSet:
    questions: tuple[Question, ...]

    @property
    def on_topic(self) -> tuple[Question, ...]:
        return tuple(q for q in self.questions if q.cls == "on")

    @property
    def off_topic(self) -> tuple[Question, ...]:
        return tuple(q for q in self.questions if q.cls == "off")

    @property
    def near_miss(self) -> tuple[Question, ...]:
        return tuple(q for q in self.questions if q.cls == "near")

    def __add__(self, other: EvalSet) -> EvalSet:
        return EvalSet(self.questions + other.questions)


def _item(raw: object, cls: Kind, source: str) -> Question:
    if isinstance(raw, str):
        return Question(raw, cls, source=source)
    if isinstance(raw, dict) and "q" in raw:
        return Question(
            str(raw["q"]),
            cls,
            tuple(str(g) for g in raw.get("gold") or ()),
            str(raw["kind"]) if raw.get("kind") else None,
            str(raw["lang"]) if raw.get("lang") else None,
            source,
        )
    raise ConfigError(f"{source}: each question is a string or a mapping with 'q'.")


def _conversation(raw: object, source: str) -> Question:
    if isinstance(raw, dict) and "first" in raw and "then" in raw:
        kind = str(raw["kind"]) if raw.get("kind") else None
        gold = tuple(str(g) for g in raw.get("gold") or ())
        return Question(str(raw["then"]), "on", gold, kind, None, source, str(raw["first"]))
    raise ConfigError(f"{source}: each conversation is a mapping with 'first', 'then' and 'gold'.")


def load_eval_set(path: Path) -> EvalSet:
    """A question file: ``on_topic`` (``q``, ``gold``, optional ``kind``/``lang``), ``off_topic``, ``near_miss``;
    or ``conversations`` (``first``, ``then``, ``gold``): a thread message asked after the question it follows."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"Cannot read question file {path}: {type(exc).__name__}.") from None
    name = Path(path).name
    if isinstance(data, dict) and "conversations" in data and "on_topic" not in data:
        return EvalSet(tuple(_conversation(x, name) for x in data.get("conversations") or []))
    if not isinstance(data, dict) or "on_topic" not in data:
        raise ConfigError(f"{path}: expected keys on_topic, off_topic, near_miss (or conversations).")
    questions = [_item(x, "on", name) for x in data.get("on_topic") or []]
    questions += [_item(x, "off", name) for x in data.get("off_topic") or []]
    questions += [_item(x, "near", name) for x in data.get("near_miss") or []]
    return EvalSet(tuple(questions))


# --- scoring rule ------------------------------------------------------------------------------


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    return re.sub(r"\s+", " ", text).strip()


def _longest_common_substring(a: str, b: str) -> int:
    from difflib import SequenceMatcher

    m = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return m.size


def matches_gold(quote: str, gold: Sequence[str]) -> bool:
    q = fold(quote)
    for g in gold:
        fg = fold(g)
        if fg in q or _longest_common_substring(q, fg) >= min(MIN_SUBSTRING, len(fg)):
            return True
    return False


def first_hit_rank(answer: Answer, gold: Sequence[str]) -> int | None:
    for rank, excerpt in enumerate(answer.excerpts, start=1):
        if matches_gold(excerpt.quote, gold):
            return rank
    return None


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks; 0.0 for no values."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# --- outcomes and figures ----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One question answered under one setting."""

    question: Question
    rank: int | None  # of the first excerpt matching the gold (on-topic questions)
    declined: bool
    tentative: bool
    score: float  # the decline rule's score: the best passage's score
    wall_ms: float = 0.0
    judged: float | None = None  # the hedge's: the best passage's judged score (Passage.judged_score)
    unknown: int = 0  # question words no article uses (the decline rule counts every one)
    dense_top: float = 0.0  # best dense cosine of any chunk
    # How common in general English (bot.retrieval.commonness) each word no article uses is, and each
    # word the articles use but the best passage does not: the hedge counts those rarer than its cut.
    unknown_commonness: tuple[float, ...] = ()
    uncovered_commonness: tuple[float, ...] = ()

    @property
    def hedge_base(self) -> float:
        """The score the hedge reads: ``judged``, or ``score`` where the outcome has no judged score."""
        return self.score if self.judged is None else self.judged

    def hedge_counts(self, common: float) -> tuple[int, int]:
        """(unknown words, uncovered words) rarer than ``common``: what ``hedge_score`` weighs."""
        return (
            sum(c < common for c in self.unknown_commonness),
            sum(c < common for c in self.uncovered_commonness),
        )


@dataclass
class Figures:
    """hit@1, hit@3, MRR and decline rates of a list of outcomes."""

    label: str
    outcomes: list[Outcome] = field(default_factory=list)

    def _of(self, cls: Kind) -> list[Outcome]:
        return [o for o in self.outcomes if o.question.cls == cls]

    @property
    def n_on(self) -> int:
        return len(self._of("on"))

    @property
    def hit1(self) -> int:
        return sum(o.rank == 1 for o in self._of("on"))

    @property
    def hit3(self) -> int:
        return sum(o.rank is not None and o.rank <= 3 for o in self._of("on"))

    @property
    def rr(self) -> float:
        return sum(1.0 / o.rank for o in self._of("on") if o.rank)

    @property
    def false_declines(self) -> int:
        return sum(o.declined for o in self._of("on"))

    @property
    def on_hedged(self) -> int:
        """Answerable questions quoted as "closest passages" rather than as the answer."""
        return sum(o.tentative and not o.declined for o in self._of("on"))

    @property
    def n_off(self) -> int:
        return len(self._of("off"))

    @property
    def off_declined(self) -> int:
        return sum(o.declined for o in self._of("off"))

    @property
    def n_near(self) -> int:
        return len(self._of("near"))

    @property
    def near_declined(self) -> int:
        return sum(o.declined for o in self._of("near"))

    @property
    def near_flagged(self) -> int:
        """Near-miss questions declined or answered as "closest passages"."""
        return sum(o.declined or o.tentative for o in self._of("near"))

    @property
    def misses(self) -> list[str]:
        return [o.question.text for o in self._of("on") if o.rank is None or o.rank > 3]

    def row(self) -> dict[str, object]:
        def ratio(a: float, b: int) -> float:
            return round(a / b, 3) if b else 0.0

        latencies = [o.wall_ms for o in self.outcomes if o.wall_ms]
        return {
            "mode": self.label,
            "hit@1": ratio(self.hit1, self.n_on),
            "hit@3": ratio(self.hit3, self.n_on),
            "mrr": ratio(self.rr, self.n_on),
            "on_topic_declined": ratio(self.false_declines, self.n_on),
            "on_topic_hedged": ratio(self.on_hedged, self.n_on),
            "off_topic_declined": ratio(self.off_declined, self.n_off),
            "near_miss_declined_or_hedged": ratio(self.near_flagged, self.n_near),
            "on_topic": self.n_on,
            "p50_ms": round(percentile(latencies, 0.5), 1),
            "p95_ms": round(percentile(latencies, 0.95), 1),
        }

    def by(self, key: Callable[[Question], str | None]) -> dict[str, Figures]:
        groups: dict[str, Figures] = {}
        for o in self.outcomes:
            name = key(o.question)
            if name:
                groups.setdefault(name, Figures(name)).outcomes.append(o)
        return dict(sorted(groups.items()))


def outcome(question: Question, answer: Answer, wall_ms: float = 0.0) -> Outcome:
    rank = first_hit_rank(answer, question.gold) if question.cls == "on" and not answer.declined else None
    best = max((e.score for e in answer.excerpts), default=-math.inf)
    return Outcome(question, rank, answer.declined, answer.tentative, best, wall_ms)


def asked(service: KnowledgeService, q: Question) -> str:
    """What the bot is asked: the question, or a thread message read after the question it follows."""
    settings = service.settings.question
    return in_context(q.text, q.context, max_words=settings.follow_up_words, max_chars=settings.max_chars)


def evaluate(
    service: KnowledgeService,
    eval_set: EvalSet,
    *,
    label: str = "hybrid+rerank",
    mode: str = "hybrid",
    rerank: bool = True,
) -> Figures:
    """Ask every question with the service's own settings."""
    figures = Figures(label)
    for q in eval_set.questions:
        t = time.perf_counter()
        answer = service.ask(asked(service, q), mode=mode, rerank=rerank)  # type: ignore[arg-type]
        figures.outcomes.append(outcome(q, answer, (time.perf_counter() - t) * 1000))
    return figures


# Full pipeline vs each first stage alone (the cross-encoder still reads their windows) vs no cross-encoder.
MODES = {
    "hybrid+rerank": ("hybrid", True),
    "bm25-only": ("lexical", True),
    "dense-only": ("dense", True),
    "hybrid-no-rerank": ("hybrid", False),
}


# --- settings chosen by cross-validation ----------------------------------------------------------


@dataclass(frozen=True)
class Params:
    """The tuned settings of the cheap half of answering."""

    rerank_windows: int
    rerank_first: int
    rerank_decisive: float
    rerank_neighbours: int
    prior_weight: float
    relative_cutoff: float
    decline_threshold: float
    decline_unknown_weight: float
    decline_dense_weight: float
    tentative_below: float
    unknown_term_weight: float
    uncovered_term_weight: float
    hedge_common_zipf: float

    @classmethod
    def of(cls, settings: RetrievalSettings) -> Params:
        return cls(**{f: getattr(settings, f) for f in cls.__dataclass_fields__})

    def apply(self, settings: RetrievalSettings) -> RetrievalSettings:
        return replace(settings, **vars(self))

    def reweigh(self, retrieval: Retrieval) -> Retrieval:
        """An observation's retrieval as if answered with these settings (see ``Retrieval.reweighted``)."""
        return retrieval.reweighted(
            self.rerank_windows,
            self.prior_weight,
            first=self.rerank_first,
            decisive=self.rerank_decisive,
            neighbours=self.rerank_neighbours,
        )


@dataclass(frozen=True)
class Grid:
    rerank_windows: tuple[int, ...] = (6, 8, 10, 12, 16)
    # Early stop: read this many first; the rest only when none scores `rerank_decisive`. Among settings
    # within `cost_tolerance` of the best ranking value, the one reading the fewest windows on average wins.
    rerank_first: tuple[int, ...] = (6, 8)
    rerank_decisive: tuple[float, ...] = (4.0, 6.0, 8.0, math.inf)
    rerank_neighbours: tuple[int, ...] = (0, 1)  # the observation reads this many more per window read
    # A latency budget, not a fitted value: 0.02 chose the later stop (a score of 6) on the nine question
    # files, +0.004 hit@3 in sample for a median answer of 300 ms instead of 240, against a budget of 250.
    cost_tolerance: float = 0.03
    prior_weight: tuple[float, ...] = (0.0, 5.0, 10.0, 20.0, 40.0)
    relative_cutoff: tuple[float, ...] = (4.0, 6.0, 8.0, 12.0)
    unknown_term_weight: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0)
    uncovered_term_weight: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 4.0)
    # The hedge counts words rarer than this (Zipf; inf: every word).
    hedge_common_zipf: tuple[float, ...] = (5.0, 5.5, 6.0, math.inf)
    decline_unknown_weight: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    decline_dense_weight: tuple[float, ...] = (0.0, 10.0, 20.0, 30.0, 45.0, 60.0)
    # Costs of the decline rule, per question of each class: an answerable question declined is the
    # worse error, an off-topic question quoted the lesser.
    cost_on_declined: float = 4.0
    cost_off_answered: float = 2.0
    # Near-miss questions (on the topic, not answered) shown as declined or "closest passages".
    near_flagged_target: float = 0.85
    # Thresholds tried: every midpoint between neighbouring scores up to this many (quantiles beyond).
    # 160 quantiles of 859 scores passed over the one gap between an off-topic question and an
    # answerable one where the decline cost is least, and placed the threshold a gap higher.
    max_cuts: int = 4000


@dataclass(frozen=True)
class Observation:
    """A question's expensive half, done once: the retrieval with the widest candidate list."""

    question: Question
    retrieval: Retrieval
    wall_ms: float


def observe(service: KnowledgeService, questions: Iterable[Question], *, read: int | None = None) -> list[Observation]:
    """Each question's retrieval: ``read`` windows read by the cross-encoder, or as live answering reads them."""
    out = []
    for q in questions:
        t = time.perf_counter()
        out.append(Observation(q, service.retrieve(asked(service, q), read=read), (time.perf_counter() - t) * 1000))
    return out


@dataclass(frozen=True)
class _Ranked:
    """Outcomes of one ranking setting with no threshold, as arrays for the threshold search."""

    outcomes: list[Outcome]
    score: np.ndarray  # best passage score
    judged: np.ndarray  # best passage's judged score (the hedge reads it)
    unknown: np.ndarray  # question words no article uses
    dense: np.ndarray  # best dense cosine
    floor: np.ndarray  # declined whatever the thresholds (dense floor, nothing retrieved)
    named: np.ndarray  # hedged whatever the thresholds (names no article mentions)
    read: np.ndarray  # windows the cross-encoder read
    # (questions, words) commonness of unknown and of uncovered words, padded with inf (never counted)
    unknown_commonness: np.ndarray
    uncovered_commonness: np.ndarray

    def hedge_counts(self, common: float, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unknown and uncovered words rarer than ``common``, per question of ``members``."""
        return (
            (self.unknown_commonness[members] < common).sum(1).astype(np.float64),
            (self.uncovered_commonness[members] < common).sum(1).astype(np.float64),
        )


def _padded(rows: Sequence[tuple[float, ...]]) -> np.ndarray:
    """Rows of unequal length as one array, padded with inf."""
    out = np.full((len(rows), max((len(r) for r in rows), default=0)), np.inf)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


class Tuner:
    """Scores settings on observations; chooses them by grid search; reports them by k-fold cross-validation."""

    def __init__(
        self,
        service: KnowledgeService,
        observations: Sequence[Observation],
        grid: Grid | None = None,
        base: RetrievalSettings | None = None,
    ) -> None:
        """``base``: the answer rules the settings are tried on (the English ones unless given; the
        multilingual path passes its own, whose scores are on another scale)."""
        self.service = service
        self.base = base
        self.observations = list(observations)
        self.grid = grid or Grid()
        self._ranked: dict[tuple[int, int, float, float, float, int], _Ranked] = {}
        self.classes = np.array([ob.question.cls for ob in self.observations])

    def ranked(
        self, read: int, first: int, decisive: float, weight: float, cutoff: float, neighbours: int = 0
    ) -> _Ranked:
        """Outcomes with no threshold (nothing declined, nothing hedged but unknown names): the ranking half."""
        key = (read, first, decisive, weight, cutoff, neighbours)
        if key not in self._ranked:
            base = self.base or self.service.settings.retrieval
            open_settings = replace(
                base,
                decline_threshold=-math.inf,
                tentative_below=-math.inf,
                rerank_windows=read,
                prior_weight=weight,
                relative_cutoff=cutoff,
            )
            outs = []
            reads = []
            for ob in self.observations:
                r = ob.retrieval.reweighted(read, weight, first=first, decisive=decisive, neighbours=neighbours)
                reads.append(len(r.passages))
                answer = self.service.answer_from(asked(self.service, ob.question), r, settings=open_settings)
                best = max((p.score for p in r.passages), default=-math.inf)
                floor = r.dense_top < base.dense_floor or not r.passages
                outs.append(
                    replace(
                        outcome(ob.question, answer),
                        declined=floor,
                        score=best,
                        judged=judged_best(r.passages),
                        unknown=len(r.unknown_terms),
                        dense_top=r.dense_top,
                        unknown_commonness=tuple(map(commonness, r.unknown_terms)),
                        uncovered_commonness=tuple(map(commonness, uncovered(r, self.service.live.index))),
                    )
                )
            self._ranked[key] = _Ranked(
                outs,
                np.array([o.score for o in outs], dtype=np.float64),
                np.array([o.hedge_base for o in outs], dtype=np.float64),
                np.array([o.unknown for o in outs], dtype=np.float64),
                np.array([o.dense_top for o in outs], dtype=np.float64),
                np.array([o.declined for o in outs]),
                np.array([o.tentative for o in outs]),
                np.array(reads, dtype=np.float64),
                _padded([o.unknown_commonness for o in outs]),
                _padded([o.uncovered_commonness for o in outs]),
            )
        return self._ranked[key]

    @staticmethod
    def thresholded(ranked: _Ranked, p: Params) -> list[Outcome]:
        result = []
        for o in ranked.outcomes:
            declined = o.declined or decline_score(o.score, o.unknown, o.dense_top, p) < p.decline_threshold
            counts = o.hedge_counts(p.hedge_common_zipf)
            hedge = o.tentative or hedge_score(o.hedge_base, *counts, p) < p.tentative_below
            result.append(
                replace(o, declined=declined, rank=None if declined else o.rank, tentative=not declined and hedge)
            )
        return result

    def _ranking_value(self, ranked: _Ranked, members: Sequence[int]) -> float:
        on = [ranked.outcomes[i] for i in members if ranked.outcomes[i].question.cls == "on"]
        if not on:
            return 0.0
        hit3 = sum(o.rank is not None and o.rank <= 3 for o in on)
        rr = sum(1.0 / o.rank for o in on if o.rank)
        return (hit3 + rr) / len(on)

    def _thresholds(
        self, ranked: _Ranked, members: Sequence[int]
    ) -> tuple[float, float, float, float, float, float, float]:
        """(decline, its unknown-term and dense weights, tentative, its unknown- and uncovered-term
        weights, its commonness cut) for ``members``: :meth:`_decline_rule`, then :meth:`_hedge_rule`
        over the questions that rule answers."""
        m = np.asarray(members)
        decline, decline_weight, dense_weight, answered = self._decline_rule(ranked, m)
        return (decline, decline_weight, dense_weight, *self._hedge_rule(ranked, m, answered))

    def _decline_rule(self, ranked: _Ranked, m: np.ndarray) -> tuple[float, float, float, np.ndarray]:
        """The threshold on ``decline_score`` (the best score less a weight per question word no article
        uses, plus a weight times the best dense cosine) with the least class-weighted cost of answerable
        questions declined and off-topic questions quoted; its weights, and which questions it answers."""
        g = self.grid
        score, unknown, dense, floor, cls = (
            ranked.score[m],
            ranked.unknown[m],
            ranked.dense[m],
            ranked.floor[m],
            self.classes[m],
        )
        on, off = cls == "on", cls == "off"
        choice = (math.inf, 0.0, 0.0, 0.0, np.zeros(len(m), dtype=bool))  # (cost, threshold, weights, answered)
        for wd, wv in itertools.product(g.decline_unknown_weight, g.decline_dense_weight):
            adjusted = score - wd * unknown + wv * dense
            declines = _cuts(adjusted, g.max_cuts)
            declined = floor[None, :] | (adjusted[None, :] < declines[:, None])  # (D, N)
            cost = g.cost_on_declined * (declined & on).sum(1) / max(1, on.sum()) + g.cost_off_answered * (
                (~declined) & off
            ).sum(1) / max(1, off.sum())
            d, threshold = _widest_margin(cost, declines)
            if cost[d] < choice[0] - 1e-9:
                choice = (float(cost[d]), threshold, wd, wv, ~(floor | (adjusted < threshold)))
        return choice[1], choice[2], choice[3], choice[4]

    def _hedge_rule(self, ranked: _Ranked, m: np.ndarray, answered: np.ndarray) -> tuple[float, float, float, float]:
        """For each commonness cut and pair of unknown- and uncovered-term weights, the lowest threshold
        on ``hedge_score`` that shows at least ``near_flagged_target`` of near-miss questions as declined
        or "closest passages"; of those, the one hedging the fewest answerable questions.
        (tentative, unknown weight, uncovered weight, cut); no threshold when none reaches the target."""
        g = self.grid
        score, named, cls = ranked.judged[m], ranked.named[m], self.classes[m]
        on, near = cls == "on", cls == "near"
        best = (math.inf, math.inf, 0.0, 0.0, math.inf)  # (on hedged, tentative, weights, cut)
        for common in g.hedge_common_zipf:
            unknown, uncovered_ = ranked.hedge_counts(common, m)
            for w, wc in itertools.product(g.unknown_term_weight, g.uncovered_term_weight):
                adjusted = score - w * unknown - wc * uncovered_
                for t in _cuts(adjusted, g.max_cuts):
                    hedged = named | (adjusted < t)
                    flagged = (~answered | hedged)[near].mean() if near.any() else 1.0
                    if flagged + 1e-9 < g.near_flagged_target:
                        continue
                    on_hedged = float((answered & hedged & on).sum())
                    if (on_hedged, t) < best[:2]:
                        best = (on_hedged, float(t), w, wc, common)
                    break  # the lowest threshold meeting the target hedges the fewest
        if not math.isfinite(best[1]):
            return math.inf, 0.0, 0.0, math.inf
        return best[1], best[2], best[3], best[4]

    def fit(self, members: Sequence[int]) -> Params:
        """The best settings for these observations: ranking first (hit@3 + MRR, reading every window),
        then the cheapest early stop within ``cost_tolerance`` of that value, then the thresholds."""
        g = self.grid
        read, weight, cutoff, near = max(
            itertools.product(g.rerank_windows, g.prior_weight, g.relative_cutoff, g.rerank_neighbours),
            key=lambda k: (
                self._ranking_value(self.ranked(k[0], k[0], math.inf, k[1], k[2], k[3]), members),
                -k[0] - k[3],
            ),
        )
        full = self._ranking_value(self.ranked(read, read, math.inf, weight, cutoff, near), members)
        first, decisive = read, math.inf
        cheapest = float(np.mean(self.ranked(read, read, math.inf, weight, cutoff, near).read[np.asarray(members)]))
        for f, d in itertools.product(g.rerank_first, g.rerank_decisive):
            if f >= read:
                continue
            ranked = self.ranked(read, f, d, weight, cutoff, near)
            cost = float(np.mean(ranked.read[np.asarray(members)]))
            if self._ranking_value(ranked, members) >= full - g.cost_tolerance and cost < cheapest:
                first, decisive, cheapest = f, d, cost
        ranked = self.ranked(read, first, decisive, weight, cutoff, near)
        decline, decline_weight, dense_weight, tentative, unknown_weight, uncovered_weight, common = self._thresholds(
            ranked, members
        )
        return Params(
            read,
            first,
            decisive,
            near,
            weight,
            cutoff,
            _round(decline),
            decline_weight,
            dense_weight,
            _round(tentative),
            unknown_weight,
            uncovered_weight,
            common,
        )

    def score(self, params: Params, members: Sequence[int], label: str = "") -> Figures:
        p = params
        ranked = self.ranked(
            p.rerank_windows, p.rerank_first, p.rerank_decisive, p.prior_weight, p.relative_cutoff, p.rerank_neighbours
        )
        outs = self.thresholded(ranked, params)
        return Figures(label, [replace(outs[i], wall_ms=self.observations[i].wall_ms) for i in members])

    def cross_validate(self, k: int, *, seed: int = 0) -> tuple[Figures, list[Params]]:
        """Held-out figures of k-fold cross-validation (folds stratified by question class and file)."""
        folds = stratified_folds([ob.question for ob in self.observations], k, seed=seed)
        held = Figures(f"{k}-fold held-out")
        chosen = []
        everyone = range(len(self.observations))
        position: dict[int, int] = {}
        for fold_members in folds:
            test = set(fold_members)
            params = self.fit([i for i in everyone if i not in test])
            chosen.append(params)
            for i, o in zip(fold_members, self.score(params, fold_members).outcomes, strict=True):
                position[len(held.outcomes)] = i
                held.outcomes.append(o)
        order = sorted(range(len(held.outcomes)), key=lambda j: position[j])
        held.outcomes = [held.outcomes[j] for j in order]
        return held, chosen


def _widest_margin(cost: np.ndarray, thresholds: np.ndarray) -> tuple[int, float]:
    """The cheapest threshold, placed in the middle of the run of equally cheap ones around it.

    Every threshold between the highest declined and the lowest answered training question costs the
    same; taking the top of that run (or the bottom) leaves a question just weaker (or stronger) than
    the training ones on the wrong side. The middle keeps the widest margin on both sides, which is
    what generalises to questions nobody tuned on.
    """
    best = float(cost.min())
    d = int(np.argmin(cost))
    lo = hi = d
    while lo > 0 and cost[lo - 1] <= best + 1e-9:
        lo -= 1
    while hi + 1 < len(cost) and cost[hi + 1] <= best + 1e-9:
        hi += 1
    return d, float((thresholds[lo] + thresholds[hi]) / 2)


def _cuts(values: np.ndarray, limit: int) -> np.ndarray:
    """Candidate thresholds: below everything, midpoints between neighbouring values, above everything."""
    finite = np.unique(values[np.isfinite(values)])
    mids = (finite[1:] + finite[:-1]) / 2 if len(finite) > 1 else finite
    if len(mids) > limit:
        mids = np.quantile(mids, np.linspace(0, 1, limit))
    lo = finite[0] - 1 if len(finite) else 0.0
    hi = finite[-1] + 1 if len(finite) else 0.0
    return np.concatenate([[lo], mids, [hi]])


def _round(x: float) -> float:
    return x if not math.isfinite(x) else round(x, 2)


def stratified_folds(questions: Sequence[Question], k: int, *, seed: int = 0) -> list[list[int]]:
    """k folds with each (file, class) spread evenly, so every fold has off-topic and near-miss questions."""
    rng = random.Random(seed)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, q in enumerate(questions):
        groups.setdefault((q.source, q.cls), []).append(i)
    folds: list[list[int]] = [[] for _ in range(max(2, k))]
    offset = 0
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        for j, i in enumerate(members):
            folds[(j + offset) % len(folds)].append(i)
        offset += len(members)
    return [sorted(f) for f in folds]


# --- where a question is lost -------------------------------------------------------------------


@dataclass(frozen=True)
class StageRanks:
    """Rank (from 1) of the first candidate holding the gold at each stage; None where it never appears."""

    first_stage: int | None  # chunks, fused
    read: int | None  # windows the cross-encoder read, in prior order
    final: int | None  # excerpts


def stage_ranks(q: Question, retrieval: Retrieval, answer: Answer, bodies: Mapping[str, str]) -> StageRanks:
    """Where the gold first appears: in the fused chunks, among the windows read, among the excerpts.

    ``retrieval``: what the answer was made from (an observation reweighed to the settings scored)."""
    first = next((n for n, h in enumerate(retrieval.hits, start=1) if matches_gold(h.chunk.text, q.gold)), None)
    windows = sorted(retrieval.passages, key=lambda p: -p.prior)
    read_rank = next(
        (n for n, p in enumerate(windows, start=1) if matches_gold(bodies[p.article_id][p.start : p.end], q.gold)),
        None,
    )
    return StageRanks(first, read_rank, first_hit_rank(answer, q.gold))


# --- the score plot ---------------------------------------------------------------------------


def decision_scores(figures: Figures, params: Params) -> list[tuple[str, str, float, dict[str, list[float]]]]:
    """What ``--plot`` draws: for the decline score (best passage, dense cosine, unknown words) and the
    hedge score (best passage, judged with the ask too, less the unknown and uncovered words), its axis
    label, what lies below its threshold, the threshold and each class's finite scores. ``figures`` must come from
    :class:`Tuner` (outcomes that carry every signal); a question with no passage at all is left out."""
    p = params

    def decline(o: Outcome) -> float:
        return decline_score(o.score, o.unknown, o.dense_top, p)

    def hedge(o: Outcome) -> float:
        return hedge_score(o.hedge_base, *o.hedge_counts(p.hedge_common_zipf), p)

    panels = (
        (
            f"decline score: best + {p.decline_dense_weight:g} × cosine − {p.decline_unknown_weight:g} × unknown",
            "declined",
            p.decline_threshold,
            decline,
        ),
        (
            f"hedge score: best (or its ask's) − {p.unknown_term_weight:g} × unknown"
            f" − {p.uncovered_term_weight:g} × uncovered (words under Zipf {p.hedge_common_zipf:g})",
            "closest passages",
            p.tentative_below,
            hedge,
        ),
    )
    out = []
    for label, below, threshold, signal in panels:
        values = {
            cls: [v for o in figures.outcomes if o.question.cls == cls and math.isfinite(v := signal(o))]
            for cls in ("on", "near", "off")
        }
        out.append((label, below, threshold, values))
    return out


def plot_scores(figures: Figures, params: Params, path: Path) -> None:
    """Histograms of the two decision scores (:func:`decision_scores`) by question class, thresholds marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'directive-bot[eval]'.") from None
    fig, axes = plt.subplots(2, 1, figsize=(8, 8.5))
    for ax, (label, below, threshold, values) in zip(axes, decision_scores(figures, params), strict=True):
        every = [v for vs in values.values() for v in vs]
        lo, hi = (min(every), max(every)) if every else (-12.0, 12.0)
        bins = [lo + (hi - lo) * i / 40 for i in range(41)]
        for cls, name in (("on", "on-topic"), ("near", "near-miss"), ("off", "off-topic")):
            if values[cls]:
                ax.hist(values[cls], bins=bins, alpha=0.55, label=f"{name} ({len(values[cls])})")
        ax.axvline(threshold, color="black", linestyle="--", label=f"{below} < {threshold}")
        ax.set_xlabel(label)
        ax.set_ylabel("questions")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
