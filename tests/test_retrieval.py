"""Unit tests of retrieval: rank fusion, typo correction, question cleaning, windows and their scores.

Fast: a tiny hand-written knowledge base, the deterministic fake embedder and, where token vectors
matter, a fake late-interaction model; the real models are exercised in test_quality.py.
"""

import copy
import hashlib
import re
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import QuestionSettings
from bot.errors import InvalidQuestion
from bot.knowledge import write_article
from bot.late import TokenMatrix, maxsim
from bot.records import Article
from bot.retrieval import (
    Passage,
    Retriever,
    TypoCorrector,
    _rank_array,
    _top_k,
    clean_question,
    edit_distance,
    model_query,
    reading_order,
    rrf,
    unread_neighbours,
)
from bot.store import build_index, load_index
from bot.store.layout import word_counts
from tests.conftest import FakeEmbedder, word_count

ARTICLES = [
    Article(
        id="alpha",
        title="Regulators halt the Zephyr model",
        body=(
            "The Commerce Department ordered the Zephyr model offline on Friday. "
            "It cited national security concerns.\n\n"
            "Engineers abroad lost access. The company said it disagreed.\n\n"
            "Nobody knows when access returns."
        ),
    ),
    Article(
        id="beta",
        title="Zephyr shutdown hits customers",
        body=(
            "Customers using the cloud platform were affected too. Banks paused their pilots.\n\n"
            "A spokesperson declined to comment. Analysts expect a long dispute."
        ),
    ),
]


class FakeLate:
    """Hashed one-hot token vectors (one token per word): MaxSim then counts shared words."""

    name = "fake-late"
    dim = 32

    def _vectors(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        words = list(re.finditer(r"\w+", text.lower()))
        vecs = np.zeros((len(words), self.dim), dtype=np.float32)
        for row, m in enumerate(words):
            vecs[row, int(hashlib.md5(m.group().encode()).hexdigest(), 16) % self.dim] = 1.0
        spans = np.array([m.span() for m in words], dtype=np.int32).reshape(-1, 2)
        return vecs, spans

    def encode_documents(self, texts: list[str]) -> list[TokenMatrix]:
        out = []
        for text in texts:
            vecs, spans = self._vectors(text)
            out.append(TokenMatrix(vecs.astype(np.float16), spans))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self._vectors(text)[0]


class FakeReranker:
    """Logit = number of question words in the passage minus 5: deterministic and order-revealing."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def score(self, question: str, passages: list[str]) -> np.ndarray:
        self.calls.append(list(passages))
        words = set(re.findall(r"\w+", question.lower()))
        return np.array([len(words & set(re.findall(r"\w+", p.lower()))) - 5.0 for p in passages], dtype=np.float32)


@pytest.fixture
def tiny_settings(tmp_settings, tmp_path):
    knowledge = tmp_path / "tiny-knowledge"
    knowledge.mkdir()
    for article in ARTICLES:
        write_article(knowledge, article)
    settings = tmp_settings.with_paths(knowledge, tmp_path / "tiny-index")
    return replace(settings, chunking=replace(settings.chunking, target_tokens=12, overlap_sentences=1))


@pytest.fixture
def tiny_index(tiny_settings):
    build_index(tiny_settings, FakeEmbedder(), count_tokens=word_count)
    return load_index(tiny_settings.paths.index_dir)


@pytest.fixture
def late_index(tiny_settings):
    build_index(tiny_settings, FakeEmbedder(), count_tokens=word_count, late=FakeLate())
    return load_index(tiny_settings.paths.index_dir)


def retriever(index, settings, **kwargs) -> Retriever:
    return Retriever(index, FakeEmbedder(), settings.retrieval, **kwargs)


# --- rank fusion -------------------------------------------------------------------------------


def test_rrf_adds_one_over_k_plus_rank_for_each_ranking() -> None:
    fused = rrf([[7, 8, 9], [9, 7]], k=60)
    assert fused[7] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[9] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[8] == pytest.approx(1 / 62)


def test_rrf_ranks_an_item_found_by_two_rankings_above_one_found_by_one() -> None:
    fused = rrf([[1, 2], [2, 3]], k=60)
    assert max(fused, key=fused.get) == 2


def test_rrf_of_no_rankings_is_empty() -> None:
    assert rrf([], k=60) == {}


# --- typo correction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("models", "models", 0), ("models", "modles", 1), ("governments", "goverments", 1), ("jailbreak", "jailbrake", 2)],
)
def test_edit_distance_counts_a_swap_of_neighbours_as_one_edit(a: str, b: str, distance: int) -> None:
    assert edit_distance(a, b, limit=3) == distance


def test_edit_distance_stops_at_the_limit() -> None:
    assert edit_distance("anthropic", "zzzzzzzzz", limit=2) == 3


@pytest.fixture
def corrector() -> TypoCorrector:
    texts = ["Local governments run old software.", "A jailbreak bypasses the models."]
    return TypoCorrector(word_counts(texts), known={"pizza", "local"})


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("local goverments", "local governments"),
        ("what is a jailbrake", "what is a jailbreak"),
        ("are the modles affected", "are the models affected"),
    ],
)
def test_misspelt_words_are_corrected_towards_the_knowledge_base(corrector, question: str, expected: str) -> None:
    assert corrector(question) == expected


@pytest.mark.parametrize(
    "question",
    ["best pizza recipe", "devs and brits", "zyxwvutsr"],
    ids=["known-word", "short-words", "nothing-close"],
)
def test_known_short_or_unmatched_words_are_left_alone(corrector, question: str) -> None:
    assert corrector(question) == question


def test_the_retriever_corrects_nothing_without_a_vocabulary_of_real_words(tiny_index, tiny_settings) -> None:
    assert retriever(tiny_index, tiny_settings).corrector is None  # no model tokenizer to tell typos apart


# --- question text -----------------------------------------------------------------------------


@pytest.mark.parametrize("question", ["", "   \n\t ", "\x00\x01\x7f", "?!", None, 42], ids=repr)
def test_questions_without_words_are_refused(question) -> None:
    with pytest.raises(InvalidQuestion):
        clean_question(question, QuestionSettings())


def test_a_question_over_the_limit_is_refused_and_says_the_limit() -> None:
    with pytest.raises(InvalidQuestion, match="limit is 20"):
        clean_question("x" * 21, QuestionSettings(max_chars=20))


def test_a_question_at_the_limit_is_accepted() -> None:
    assert clean_question("x" * 20, QuestionSettings(max_chars=20)) == "x" * 20


def test_control_characters_and_runs_of_whitespace_become_single_spaces() -> None:
    assert clean_question("  who\x00issued\u200bthe\n\n order? ", QuestionSettings()) == "who issued the order?"


@pytest.mark.parametrize("question", ["**Who** issued the _order_?", "<@123456> who issued it?", "`opus` affected?"])
def test_markdown_and_mentions_are_kept_as_text(question: str) -> None:
    assert clean_question(question, QuestionSettings()) == question


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("<@123456> **opus** affected?", "opus affected?"),
        ("<@!42> <#99> who issued it?", "who issued it?"),
        ("<@123456>", "<@123456>"),
    ],
    ids=["mention-and-bold", "user-and-channel", "mention-only"],
)
def test_models_read_the_question_without_mentions_or_markup_but_never_empty(question: str, expected: str) -> None:
    assert model_query(question) == expected


# --- windows -----------------------------------------------------------------------------------


def test_windows_are_one_or_two_sentences_of_one_paragraph(tiny_index, tiny_settings) -> None:
    passages = retriever(tiny_index, tiny_settings).search("Zephyr model offline", rerank=False).passages
    assert passages
    for p in passages:
        spans = tiny_index.sentences[p.article_id]
        assert 0 <= p.last - p.first <= 1
        assert spans[p.first].paragraph == spans[p.last].paragraph
        assert (p.start, p.end) == (spans[p.first].start, spans[p.last].end)


def test_every_sentence_of_a_candidate_chunk_is_in_some_window(tiny_index, tiny_settings) -> None:
    settings = replace(tiny_settings.retrieval, dense_candidates=100)
    passages = Retriever(tiny_index, FakeEmbedder(), settings).search("anything", rerank=False).passages
    covered = {s for p in passages for s in p.sentences}
    assert covered == {(aid, i) for aid, spans in tiny_index.sentences.items() for i in range(len(spans))}


# Mostly zeros, some ties, as BM25 over every window and late interaction above the full-scan size give.
_SCORES = st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.5, 1.25, 3.0]) | st.floats(0, 10), max_size=60)


@given(_SCORES, st.booleans())
def test_ranks_are_those_of_a_full_stable_sort_with_or_without_negative_scores(values, negative) -> None:
    scores = np.array(values + ([-1.0] if negative else []), dtype=np.float32)
    expected = np.empty(len(scores), dtype=np.int64)
    expected[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    assert _rank_array(scores).tolist() == expected.tolist()


@given(_SCORES, st.integers(0, 70))
def test_the_top_k_are_the_best_positive_scores_best_first_ties_in_index_order(values, k) -> None:
    scores = np.array(values, dtype=np.float32)
    expected = sorted((i for i, v in enumerate(values) if scores[i] > 0), key=lambda i: (-scores[i], i))[:k]
    assert [i for i, _ in _top_k(scores, k)] == expected


def test_a_window_scores_its_best_sentence(tiny_index, tiny_settings) -> None:
    layout = retriever(tiny_index, tiny_settings).layout
    per_sentence = np.random.default_rng(0).random(len(layout.sentences))
    padded = np.append(per_sentence, -np.inf)
    assert layout.window_max(per_sentence).tolist() == padded[layout.window_grid].max(axis=1).tolist()


def test_a_sentence_takes_the_best_rank_of_the_chunks_holding_it(tiny_index, tiny_settings) -> None:
    layout = retriever(tiny_index, tiny_settings).layout
    order = [int(c) for c in np.random.default_rng(1).permutation(len(tiny_index.chunks))[:3]]
    ranks = layout.best_chunk_rank(order)
    for g in range(len(layout.sentences)):
        holders = [order.index(int(c)) + 1 for c in layout.sentence_chunks[g] if int(c) in order]
        assert ranks[g] == (min(holders) if holders else np.inf)


def test_the_window_bm25_is_read_from_the_build_not_rebuilt_at_start(tiny_index, tiny_settings) -> None:
    layout = retriever(tiny_index, tiny_settings).layout
    assert tiny_index.window_bm25 is not None
    assert layout.window_bm25 is tiny_index.window_bm25
    assert tiny_index.manifest["window_bm25"]["windows"] == len(layout.windows)


def test_the_stored_window_bm25_scores_as_one_built_at_start(tiny_index, tiny_settings) -> None:
    stored = retriever(tiny_index, tiny_settings)
    rebuilt = retriever(replace(tiny_index, window_bm25=None), tiny_settings)
    assert rebuilt.layout.window_bm25 is not tiny_index.window_bm25
    for question in ("spokesperson", "Banks paused pilots on the cloud platform", "Zephyr model offline"):
        a = [(p.article_id, p.first, p.last, p.prior) for p in stored.search(question, rerank=False).passages]
        b = [(p.article_id, p.first, p.last, p.prior) for p in rebuilt.search(question, rerank=False).passages]
        assert a == b


def test_a_server_with_another_window_size_indexes_its_own_windows(tiny_index, tiny_settings) -> None:
    settings = replace(tiny_settings, retrieval=replace(tiny_settings.retrieval, window_sentences=1))
    layout = retriever(tiny_index, settings).layout
    assert layout.window_bm25 is not tiny_index.window_bm25
    assert len(layout.windows) == sum(len(spans) for spans in tiny_index.sentences.values())


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_every_mode_returns_passages_and_the_dense_top_score(tiny_index, tiny_settings, mode: str) -> None:
    result = retriever(tiny_index, tiny_settings).search("Banks paused pilots on the cloud platform", mode=mode)
    assert result.passages
    assert result.dense_top == pytest.approx(max(h.dense_score for h in result.hits))


def test_lexical_mode_finds_the_chunk_holding_a_rare_word(tiny_index, tiny_settings) -> None:
    result = retriever(tiny_index, tiny_settings).search("spokesperson", mode="lexical")
    assert result.hits[0].lexical_rank == 1
    assert "spokesperson" in result.hits[0].chunk.text


def test_the_cross_encoder_reads_only_the_best_windows_and_orders_them(tiny_index, tiny_settings) -> None:
    reranker = FakeReranker()
    settings = replace(tiny_settings.retrieval, rerank_windows=3)
    result = Retriever(tiny_index, FakeEmbedder(), settings, reranker=reranker).search("Banks paused their pilots")
    assert len(reranker.calls) == 1 and len(reranker.calls[0]) == 3
    assert result.reranked and len(result.passages) == 3
    scores = [p.score for p in result.passages]
    assert scores == sorted(scores, reverse=True)


def test_the_cross_encoder_reads_the_headline_as_context(tiny_index, tiny_settings) -> None:
    reranker = FakeReranker()
    Retriever(tiny_index, FakeEmbedder(), tiny_settings.retrieval, reranker=reranker).search("Banks paused")
    titles = {a.title for a in ARTICLES}
    assert all(text.split("\n", 1)[0].split(" — ")[0] in titles for text in reranker.calls[0])


def test_without_rerank_the_cross_encoder_is_not_called(tiny_index, tiny_settings) -> None:
    reranker = FakeReranker()
    result = retriever(tiny_index, tiny_settings, reranker=reranker).search("Banks", rerank=False)
    assert reranker.calls == [] and not result.reranked
    assert all(p.rerank_score is None for p in result.passages)


def test_sentence_scores_are_maxsim_over_the_sentence_tokens_in_their_chunk(late_index, tiny_settings) -> None:
    late = FakeLate()
    r = retriever(late_index, tiny_settings, late=late)
    query = late.encode_query("engineers lost access abroad")
    _, sentence = r._late_scores(query)
    for g, (aid, _pos, span) in enumerate(r.layout.sentences):
        best = 0.0
        for ci, chunk in enumerate(late_index.chunks):
            if chunk.article_id == aid and chunk.start <= span.start and span.end <= chunk.end:
                shift = len(chunk.embed_text) - len(chunk.text) - chunk.start
                mat = late_index.late[ci]
                inside = (mat.spans[:, 0] >= span.start + shift) & (mat.spans[:, 1] <= span.end + shift)
                best = max(best, maxsim(query, mat.vectors[inside]))
        assert sentence[g] == pytest.approx(best, abs=1e-3)


def test_chunk_scores_are_maxsim_over_each_chunk(late_index, tiny_settings) -> None:
    late = FakeLate()
    r = retriever(late_index, tiny_settings, late=late)
    query = late.encode_query("Commerce Department security")
    chunk, _ = r._late_scores(query)
    expected = [maxsim(query, m.vectors) for m in late_index.late]
    assert chunk == pytest.approx(np.array(expected), abs=1e-3)


def test_late_interaction_ranks_the_window_sharing_the_question_words_first(late_index, tiny_settings) -> None:
    result = retriever(late_index, tiny_settings, late=FakeLate()).search("engineers abroad lost access", rerank=False)
    top = result.passages[0]
    assert "Engineers abroad lost access." in late_index.articles[top.article_id].body[top.start : top.end]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What did the European Union say about the US ban?", ("European", "Union")),
        ("How many Fable 5 users are there in Japan?", ("Japan",)),
        ("Why were the models turned off for non-Americans?", ()),  # "american" is in the articles
        ("What did Dean Ball say about the decision?", ()),
        ("Which models did Anthropic pull?", ()),  # the first word is capitalised by grammar only
        ("Is Opus affected? Zebra asks.", ()),  # so is a word after a question mark
    ],
)
def test_unknown_names_lists_capitalised_words_no_article_uses(real_service, question: str, expected) -> None:
    from bot.retrieval import unknown_names

    assert unknown_names(question, real_service.live.index) == expected


def test_a_question_about_a_name_the_articles_never_use_is_tentative_and_says_why(real_service) -> None:
    answer = real_service.ask("What did the European Union say about the US ban on Anthropic models?")
    assert answer.declined or (answer.tentative and answer.unknown_names == ("European", "Union"))


def test_a_question_that_introduces_the_member_has_its_ask_read_against_the_best_passage(real_service) -> None:
    question = "korean grad student, my deadline is in 3 weeks and i need fable, will it be back by then"
    result = real_service.retrieve(question)
    best = result.passages[0]
    assert best.ask_score is not None and all(p.ask_score is None for p in result.passages[1:])


def test_a_question_without_an_introduction_has_no_ask_read_apart(real_service) -> None:
    assert all(p.ask_score is None for p in real_service.retrieve("will fable be back soon?").passages)


def test_a_name_the_member_introduces_themself_with_is_not_called_unknown(real_service) -> None:
    answer = real_service.ask("I'm Kenyan and I work at Anthropic. Am I still allowed to work on Mythos?")
    assert not answer.declined and answer.unknown_names == ()


def test_a_name_in_what_the_member_asks_is_still_called_unknown(real_service) -> None:
    answer = real_service.ask("What did the Kenyan government say about the order?")
    assert answer.declined or answer.unknown_names == ("Kenyan",)


class ScriptedReranker:
    """Scores each window by a fixed rule and records how many it was asked to read."""

    def __init__(self, high: float) -> None:
        self.high = high
        self.read: list[int] = []

    def score(self, question: str, passages: list[str]):
        import numpy as np

        self.read.append(len(passages))
        return np.full(len(passages), self.high, dtype=np.float32)


@pytest.mark.parametrize(("logit", "reads"), [(20.0, [2]), (-5.0, [2, 3])], ids=["decisive", "not-decisive"])
def test_the_cross_encoder_reads_the_rest_only_when_the_first_windows_are_not_decisive(
    tiny_index, tiny_settings, logit: float, reads: list[int]
) -> None:
    settings = replace(tiny_settings.retrieval, rerank_windows=5, rerank_first=2, rerank_decisive=10.0)
    reranker = ScriptedReranker(logit)
    result = Retriever(tiny_index, FakeEmbedder(), settings, reranker=reranker).search("Banks paused their pilots")
    assert reranker.read == reads
    assert len(result.passages) == sum(reads)


def test_reweighting_a_retrieval_is_the_same_as_reading_fewer_windows(tiny_index, tiny_settings) -> None:
    settings = replace(tiny_settings.retrieval, rerank_windows=6, rerank_first=6)
    wide = Retriever(tiny_index, FakeEmbedder(), settings, reranker=FakeReranker()).search("Banks paused")
    narrow = Retriever(
        tiny_index, FakeEmbedder(), replace(settings, rerank_windows=3, rerank_first=3), reranker=FakeReranker()
    ).search("Banks paused")
    assert wide.reweighted(3, settings.prior_weight).passages == narrow.passages


def _window(article: str, first: int, last: int, prior: float) -> Passage:
    return Passage(article, first, last, first * 10, last * 10 + 9, prior, f"{article}:0")


def test_windows_sharing_a_sentence_with_a_better_one_are_read_after_every_disjoint_window() -> None:
    strong = _window("a", 4, 4, 0.9)
    around = [_window("a", 3, 4, 0.8), _window("a", 4, 5, 0.7)]
    elsewhere = [_window("a", 9, 9, 0.5), _window("b", 4, 4, 0.4)]
    order = reading_order([*around, strong, *elsewhere])
    assert order == [strong, *elsewhere, *around]


def test_unread_neighbours_are_the_best_unread_windows_sharing_a_sentence_with_the_best() -> None:
    best = _window("a", 4, 5, 0.9)
    read = [best, _window("a", 5, 6, 0.8)]
    before, single, far, other = (
        _window("a", 3, 4, 0.6),
        _window("a", 5, 5, 0.7),
        _window("a", 8, 8, 0.95),
        _window("b", 4, 5, 0.99),
    )
    candidates = [*read, before, single, far, other]
    assert unread_neighbours(best, candidates, read, 1) == [single]
    assert unread_neighbours(best, candidates, read, 5) == [single, before]
    assert unread_neighbours(best, candidates, read, 0) == []


def _reading(real_service, **settings) -> Retriever:
    """The real service's retriever with other reading settings."""
    retriever = copy.copy(real_service.live.retriever)
    retriever.settings = replace(retriever.settings, **settings)
    return retriever


def _keys(passages) -> list[tuple[str, int, int]]:
    return [p.key for p in passages]


DIFFERENCE = "what is the difference between fable 5 and mythos 5"


def test_the_best_windows_unread_neighbour_is_read_after_the_reading_order(real_service) -> None:
    alone = _reading(real_service, rerank_windows=6, rerank_first=6, rerank_neighbours=0).search(DIFFERENCE)
    more = _reading(real_service, rerank_windows=6, rerank_first=6, rerank_neighbours=1).search(DIFFERENCE)
    extra = set(_keys(more.passages)) - set(_keys(alone.passages))
    assert len(more.passages) == 7 and len(extra) == 1
    (neighbour,) = (p for p in more.passages if _keys([p])[0] in extra)
    assert neighbour.sentences & alone.passages[0].sentences


def test_reweighting_with_neighbours_is_the_same_as_reading_fewer_windows_then_the_best_ones_neighbour(
    real_service,
) -> None:
    observed = _reading(real_service, rerank_windows=10).search(DIFFERENCE, read=10)
    live = _reading(real_service, rerank_windows=4, rerank_first=4, rerank_neighbours=1).search(DIFFERENCE)
    weight = real_service.settings.retrieval.prior_weight
    assert _keys(observed.reweighted(4, weight, neighbours=1).passages) == _keys(live.passages)


def test_the_cross_encoder_reads_no_two_windows_with_a_sentence_in_common_while_others_remain(real_service) -> None:
    observed = real_service.retrieve("are foreign nationals living in the US affected?", read=10)
    result = observed.reweighted(10, real_service.settings.retrieval.prior_weight)  # without the neighbours
    read = [p.sentences for p in result.passages]
    assert len(read) == 10
    assert all(not (a & b) for n, a in enumerate(read) for b in read[n + 1 :])


def test_a_nationality_or_glossary_cue_no_article_uses_is_not_an_unknown_word(real_service) -> None:
    result = real_service.retrieve("kenyan here, claude app glitchy for me?")
    assert "glitchy" in result.unknown_terms
    assert not {"kenyan", "app"} & set(result.unknown_terms)


def test_words_of_the_members_introduction_are_not_unknown_words(real_service) -> None:
    result = real_service.retrieve("filipino nurse on a work visa, is the claude app glitchy for me?")
    assert "glitchy" in result.unknown_terms
    assert "nurse" not in result.unknown_terms


def test_the_reading_order_stops_once_enough_disjoint_windows_are_taken() -> None:
    windows = [_window("a", i, i, 1.0 - i / 100) for i in range(50)]
    assert reading_order(windows, limit=3) == windows[:3]


def test_the_first_stage_also_reads_the_members_ask_without_their_introduction(tiny_index, tiny_settings) -> None:
    r = retriever(tiny_index, tiny_settings)
    question = "im a german engineer, when does access return"
    assert r.understand(question).ask == "when does access return"
    both = {(p.article_id, p.first, p.last): p.prior for p in r.search(question, rerank=False).passages}
    ask = r.search("when does access return", rerank=False).passages
    assert ask and all(both[(p.article_id, p.first, p.last)] >= p.prior for p in ask)


def test_a_question_without_an_introduction_is_read_once(tiny_index, tiny_settings, monkeypatch) -> None:
    r = retriever(tiny_index, tiny_settings)
    calls = []
    real = r._candidates
    monkeypatch.setattr(r, "_candidates", lambda text, mode: calls.append(text) or real(text, mode))
    r.search("when does access return", rerank=False)
    r.search("im a german engineer, when does access return", rerank=False)
    assert len(calls) == 3
