"""Measure answer quality on a question file (the format of the shared development set).

A question counts as answered when one of its first three excerpts contains (case, quotes and
whitespace folded) a gold sentence, or a substring of at least 40 characters of one.
"""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from bot.errors import ConfigError
from bot.models import Answer

if TYPE_CHECKING:
    from bot.service import KnowledgeService

_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "„": '"', "‟": '"', "′": "'", "″": '"'})
MIN_SUBSTRING = 40


@dataclass(frozen=True)
class EvalSet:
    on_topic: tuple[tuple[str, tuple[str, ...]], ...]
    off_topic: tuple[str, ...]
    near_miss: tuple[str, ...]


def load_eval_set(path: Path) -> EvalSet:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"Cannot read question file {path}: {type(exc).__name__}.") from None
    if not isinstance(data, dict) or "on_topic" not in data:
        raise ConfigError(f"{path}: expected keys on_topic, off_topic, near_miss.")
    on = tuple((str(item["q"]), tuple(str(g) for g in item.get("gold", []))) for item in data.get("on_topic") or [])
    return EvalSet(on, tuple(map(str, data.get("off_topic") or [])), tuple(map(str, data.get("near_miss") or [])))


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    return re.sub(r"\s+", " ", text).strip()


def _longest_common_substring(a: str, b: str) -> int:
    from difflib import SequenceMatcher

    m = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return m.size


def matches_gold(quote: str, gold: tuple[str, ...]) -> bool:
    q = fold(quote)
    for g in gold:
        fg = fold(g)
        if fg in q or _longest_common_substring(q, fg) >= min(MIN_SUBSTRING, len(fg)):
            return True
    return False


def first_hit_rank(answer: Answer, gold: tuple[str, ...]) -> int | None:
    for rank, excerpt in enumerate(answer.excerpts, start=1):
        if matches_gold(excerpt.quote, gold):
            return rank
    return None


@dataclass
class EvalResult:
    label: str
    n_on: int = 0
    hit1: int = 0
    hit3: int = 0
    rr: float = 0.0
    false_declines: int = 0
    off_declined: int = 0
    n_off: int = 0
    near_declined: int = 0
    n_near: int = 0
    seconds: float = 0.0
    misses: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)  # wall time of each ask()
    stages_ms: dict[str, list[float]] = field(default_factory=dict)  # Answer.timings, by stage

    def record(self, answer: Answer, wall_ms: float) -> None:
        self.latencies_ms.append(wall_ms)
        t = answer.timings
        for stage, value in (("embed", t.embed_ms), ("search", t.search_ms), ("select", t.select_ms)):
            self.stages_ms.setdefault(stage, []).append(value)
        self.stages_ms.setdefault("compose", []).append(t.compose_ms)

    def row(self) -> dict[str, object]:
        def ratio(a: int, b: int) -> float:
            return round(a / b, 3) if b else 0.0

        return {
            "mode": self.label,
            "hit@1": ratio(self.hit1, self.n_on),
            "hit@3": ratio(self.hit3, self.n_on),
            "mrr": round(self.rr / self.n_on, 3) if self.n_on else 0.0,
            "off_topic_declined": ratio(self.off_declined, self.n_off),
            "near_miss_declined": ratio(self.near_declined, self.n_near),
            "on_topic_false_declines": self.false_declines,
            "on_topic": self.n_on,
            "ms_per_question": round(1000 * self.seconds / max(1, self.n_on + self.n_off + self.n_near), 1),
            "p50_ms": round(percentile(self.latencies_ms, 0.5), 1),
            "p95_ms": round(percentile(self.latencies_ms, 0.95), 1),
        }

    def stage_row(self) -> dict[str, float]:
        """Median milliseconds per stage (embed, search, select, compose)."""
        return {stage: round(percentile(v, 0.5), 1) for stage, v in self.stages_ms.items()}


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks; 0.0 for no values."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# Full pipeline vs each first stage alone (the cross-encoder still reads their windows) vs no cross-encoder.
MODES = {
    "hybrid+rerank": ("hybrid", True),
    "bm25-only": ("lexical", True),
    "dense-only": ("dense", True),
    "hybrid-no-rerank": ("hybrid", False),
}


def evaluate(
    service: KnowledgeService,
    eval_set: EvalSet,
    *,
    label: str = "hybrid+rerank",
    mode: str = "hybrid",
    rerank: bool = True,
) -> EvalResult:
    result = EvalResult(label)
    t0 = time.perf_counter()

    def ask(question: str) -> Answer:
        t = time.perf_counter()
        answer = service.ask(question, mode=mode, rerank=rerank)
        result.record(answer, (time.perf_counter() - t) * 1000)
        return answer

    for question, gold in eval_set.on_topic:
        answer = ask(question)
        result.n_on += 1
        if answer.abstained:
            result.false_declines += 1
        rank = first_hit_rank(answer, gold)
        if rank is not None:
            result.rr += 1.0 / rank
            result.hit1 += rank == 1
            result.hit3 += rank <= 3
        if rank is None or rank > 3:
            result.misses.append(question)
    for question in eval_set.off_topic:
        result.n_off += 1
        result.off_declined += ask(question).abstained
    for question in eval_set.near_miss:
        result.n_near += 1
        result.near_declined += ask(question).abstained
    result.seconds = time.perf_counter() - t0
    return result
