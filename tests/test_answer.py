"""Unit tests of answer composition: span rules, merging and collapsing quotes, declines, verbatim quotes."""

from dataclasses import replace

import pytest

from bot.answer import compose, expand_span, similar
from bot.errors import IndexDamaged
from bot.knowledge import read_article, write_article
from bot.query import Query
from bot.records import Article, SentenceSpan
from bot.retrieval import Passage, Retrieval, commonness, rarer_than, uncovered_terms
from bot.store import build_index, load_index
from tests.conftest import FakeEmbedder, word_count


def article(*paragraphs: list[str]) -> tuple[str, list[SentenceSpan]]:
    """A body of paragraphs (lists of sentences) and its sentence spans."""
    body, spans = "", []
    for number, sentences in enumerate(paragraphs):
        if body:
            body += "\n\n"
        for i, sentence in enumerate(sentences):
            if i:
                body += " "
            spans.append(SentenceSpan("a", number, len(body), len(body) + len(sentence)))
            body += sentence
    return body, spans


@pytest.mark.parametrize(
    ("paragraphs", "first", "expected"),
    [
        ([["The order came from Commerce.", "Other news followed."]], 0, (0, 0)),
        ([["Is this a permanent ban?", "Anthropic said it hopes to restore access.", "More."]], 0, (0, 1)),
        ([["Are employees affected?", "Yes.", "The directive covers staff too.", "More."]], 0, (0, 2)),
        ([["Anthropic released Fable this week.", "It was pulled on Friday."]], 1, (0, 1)),
        ([["Anthropic took both models offline.", "For everyone."]], 1, (0, 1)),
        ([["“We apologize,” the company said.", "“We believe this is a misunderstanding.”"]], 1, (0, 1)),
        ([["“We apologize,” the company said.", "“We believe this is a misunderstanding.”", "Next."]], 0, (0, 1)),
        ([["Which models are affected?", "Only these two."], ["Unrelated."]], 1, (0, 1)),
        ([["Are employees affected?", "Yes.", "The directive covers staff too."]], 1, (0, 2)),
        ([["Anthropic released Fable."], ["It was pulled on Friday."]], 1, (1, 1)),
        ([["Anthropic spoke.", "It said one thing.", "It said another.", "It said a third."]], 3, (1, 3)),
    ],
    ids=[
        "plain-sentence-alone",
        "question-with-answer",
        "bare-yes-with-explanation",
        "anaphora-takes-predecessor",
        "elliptical-takes-predecessor",
        "unattributed-quote-takes-attribution",
        "quotation-continues",
        "answer-takes-its-question",
        "bare-yes-takes-question-and-explanation",
        "never-across-paragraphs",
        "at-most-three-sentences",
    ],
)
def test_span_rules(paragraphs, first: int, expected: tuple[int, int]) -> None:
    body, spans = article(*paragraphs)
    assert expand_span(spans, body, first, first) == expected


def test_a_window_already_three_sentences_long_is_not_grown() -> None:
    body, spans = article(["Anthropic spoke.", "It said one thing.", "It said another.", "It said a third."])
    assert expand_span(spans, body, 1, 3) == (1, 3)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("The restriction applies to Fable 5.", "the restriction applies to fable 5", True),
        ("The restriction applies to Fable 5.", "Officials said the restriction applies to Fable 5 today.", True),
        ("The restriction applies to Fable 5.", "Opus 4.8 was not affected by the order.", False),
        ("", "anything", False),
        ("No.", "It is not a ban, no matter what officials said.", False),
        ("For everyone.", "Anthropic shut both models down for everyone who used them.", False),
    ],
    ids=["case-and-punctuation", "one-inside-the-other", "different", "empty", "short-inside-word", "short-phrase"],
)
def test_similar_means_near_identical_wording(a: str, b: str, expected: bool) -> None:
    assert similar(a, b, 0.85) is expected


# --- composing answers from scored windows ------------------------------------------------------

COPIED = "The restriction specifically applies to the Zephyr 5 model."
ARTICLES = [
    Article(
        id="alpha",
        title="Regulators halt Zephyr",
        body=(
            f"The Commerce Department ordered Zephyr offline. {COPIED} Access ends today.\n\n"
            "Engineers abroad lost access. The company said it disagreed. Analysts were surprised."
        ),
    ),
    Article(
        id="beta",
        title="Zephyr shutdown hits customers",
        body=f"Customers were affected. {COPIED}\n\nBanks paused their pilots.",
    ),
]


@pytest.fixture
def knowledge(tmp_path):
    return tmp_path / "answer-knowledge"


@pytest.fixture
def index(tmp_settings, tmp_path, knowledge):
    knowledge.mkdir()
    for a in ARTICLES:
        write_article(knowledge, a)
    settings = tmp_settings.with_paths(knowledge, tmp_path / "answer-index")
    build_index(settings, FakeEmbedder(), count_tokens=word_count)
    return load_index(settings.paths.index_dir)


@pytest.fixture
def settings(tmp_settings):
    return replace(
        tmp_settings.retrieval,
        decline_threshold=-4.0,
        decline_dense_weight=0.0,
        decline_unknown_weight=0.0,
        tentative_below=-100.0,
        dense_floor=0.05,
        relative_cutoff=6.0,
    )


def passage(index, article_id: str, first: int, last: int, score: float | None) -> Passage:
    spans = index.sentences[article_id]
    return Passage(article_id, first, last, spans[first].start, spans[last].end, 0.01, f"{article_id}:0", score)


def retrieval(passages, *, dense_top: float = 0.5, reranked: bool = True) -> Retrieval:
    return Retrieval(
        hits=(),
        passages=tuple(passages),
        dense_top=dense_top,
        embed_ms=1.0,
        search_ms=2.0,
        rerank_ms=3.0,
        reranked=reranked,
    )


def answer(index, settings, passages, **kwargs):
    return compose("question?", index, retrieval(passages, **kwargs), settings)


def test_every_quote_is_the_article_file_body_between_its_offsets(index, settings, knowledge) -> None:
    result = answer(index, settings, [passage(index, "alpha", 3, 4, 5.0), passage(index, "beta", 2, 2, 4.0)])
    assert not result.declined
    for e in result.excerpts:
        body = read_article(knowledge / f"{e.source.article_id}.md").body
        assert body[e.start : e.end] == e.quote


def test_an_article_that_is_not_the_one_the_index_was_built_from_is_never_quoted(index, settings) -> None:
    alpha = index.articles["alpha"]
    index.articles["alpha"] = replace(alpha, body=alpha.body.replace("ordered", "begged"))
    with pytest.raises(IndexDamaged, match="alpha"):
        answer(index, settings, [passage(index, "alpha", 0, 0, 5.0)])


def test_the_same_passage_reached_twice_is_quoted_once(index, settings) -> None:
    result = answer(index, settings, [passage(index, "alpha", 3, 4, 5.0), passage(index, "alpha", 4, 5, 4.0)])
    assert len(result.excerpts) == 1


def test_neighbouring_windows_of_one_paragraph_merge_into_one_quote(index, settings) -> None:
    result = answer(index, settings, [passage(index, "alpha", 0, 0, 5.0), passage(index, "alpha", 1, 2, 4.0)])
    [excerpt] = result.excerpts
    assert excerpt.quote == ARTICLES[0].body.split("\n\n")[0]


def test_a_copy_in_another_article_collapses_into_also_reported_by(index, settings) -> None:
    result = answer(index, settings, [passage(index, "alpha", 1, 1, 5.0), passage(index, "beta", 1, 1, 4.5)])
    [excerpt] = result.excerpts
    assert excerpt.quote == COPIED
    assert [s.article_id for s in excerpt.also_reported_by] == ["beta"]


def test_excerpts_are_best_first_and_at_most_max_excerpts(index, settings) -> None:
    passages = [
        passage(index, "alpha", 3, 3, 6.0),
        passage(index, "beta", 2, 2, 5.0),
        passage(index, "alpha", 0, 0, 4.0),
    ]
    result = compose("q?", index, retrieval(passages), settings, max_excerpts=2)
    assert [e.score for e in result.excerpts] == [6.0, 5.0]


def test_excerpts_far_below_the_best_are_dropped(index, settings) -> None:
    result = answer(index, settings, [passage(index, "alpha", 3, 3, 6.0), passage(index, "beta", 2, 2, -1.0)])
    assert [e.score for e in result.excerpts] == [6.0]


@pytest.mark.parametrize(
    ("passages", "dense_top", "reason"),
    [
        ([], 0.5, "nothing in the knowledge base matches"),
        ([("alpha", 3, 3, 6.0)], 0.01, "not about the directive"),
        ([("alpha", 3, 3, -4.5)], 0.5, "does not answer this"),
    ],
    ids=["no-candidates", "below-the-dense-floor", "below-the-decline-threshold"],
)
def test_declines(index, settings, passages, dense_top: float, reason: str) -> None:
    result = answer(index, settings, [passage(index, *p) for p in passages], dense_top=dense_top)
    assert result.declined and not result.excerpts
    assert reason in result.reason


def test_a_decline_still_reports_the_index_version_and_covered_topics(index, settings) -> None:
    result = compose("q?", index, retrieval([]), settings, covered_topics=("Topic",))
    assert result.index_version == index.version and result.covered_topics == ("Topic",)


def test_without_the_cross_encoder_only_the_dense_floor_declines(index, settings) -> None:
    result = answer(index, settings, [passage(index, "alpha", 3, 3, None)], reranked=False)
    assert not result.declined


def test_confidence_is_the_sigmoid_of_the_best_logit(index, settings) -> None:
    result = answer(index, settings, [passage(index, "alpha", 3, 3, 0.0)])
    assert result.confidence == pytest.approx(0.5)


def test_timings_give_the_cross_encoder_its_own_figure(index, settings) -> None:
    result = answer(index, settings, [passage(index, "alpha", 3, 3, 2.0)])
    timings = result.timings
    assert (timings.embed_ms, timings.search_ms, timings.rerank_ms) == (1.0, 2.0, 3.0)
    assert timings.select_ms < 3.0


def test_timings_json_keeps_the_cross_encoder_inside_select(index, settings) -> None:
    timings = answer(index, settings, [passage(index, "alpha", 3, 3, 2.0)]).to_json()["timings_ms"]
    assert timings["rerank"] == 3.0
    assert timings["select"] >= 3.0


def test_the_ask_read_alone_lifts_a_passage_the_whole_question_scored_low() -> None:
    judged = Passage("alpha", 0, 0, 0, 10, 0.1, "alpha:0", rerank_score=-8.0, prior_weight=10.0, ask_score=-5.0)
    assert judged.score == pytest.approx(-7.0)
    assert judged.judged_score == pytest.approx(-4.0)  # the better logit, the same prior


def test_an_ask_scored_lower_than_the_whole_question_changes_nothing() -> None:
    judged = Passage("alpha", 0, 0, 0, 10, 0.1, "alpha:0", rerank_score=-2.0, prior_weight=10.0, ask_score=-5.0)
    assert judged.judged_score == judged.score


def test_the_decline_reads_the_whole_question_only(index, settings) -> None:
    low = replace(passage(index, "alpha", 3, 3, -4.5), ask_score=-1.0)  # below the decline threshold of -4
    assert answer(index, settings, [low]).declined


def test_the_hedge_reads_the_better_of_the_question_and_the_ask(index, settings) -> None:
    hedging = replace(settings, tentative_below=-2.0)
    low = passage(index, "alpha", 3, 3, -3.0)
    assert answer(index, hedging, [low]).tentative
    assert not answer(index, hedging, [replace(low, ask_score=1.0)]).tentative


def test_a_low_dense_cosine_declines_a_question_the_cross_encoder_half_likes(index, settings) -> None:
    weighted = replace(settings, decline_threshold=5.0, decline_dense_weight=20.0)
    close = answer(index, weighted, [passage(index, "alpha", 3, 3, 1.0)], dense_top=0.5)  # 1 + 10 = 11
    far = answer(index, weighted, [passage(index, "alpha", 3, 3, 1.0)], dense_top=0.1)  # 1 + 2 = 3
    assert not close.declined and far.declined


def test_question_words_no_article_uses_push_an_answer_to_closest_passages(index, settings) -> None:
    hedging = replace(settings, tentative_below=2.0, unknown_term_weight=3.0)
    r = replace(retrieval([passage(index, "alpha", 3, 3, 4.0)]), unknown_terms=("refund",))
    assert compose("q?", index, r, hedging).tentative  # 4 - 3 < 2
    assert not compose("q?", index, replace(r, unknown_terms=()), hedging).tentative


def test_an_everyday_word_no_article_uses_does_not_push_an_answer_to_closest_passages(index, settings) -> None:
    hedging = replace(settings, tentative_below=2.0, unknown_term_weight=3.0, hedge_common_zipf=5.5)
    r = replace(retrieval([passage(index, "alpha", 3, 3, 4.0)]), unknown_terms=("good",))  # Zipf 6.1
    assert not compose("q?", index, r, hedging).tentative
    assert compose("q?", index, r, replace(hedging, hedge_common_zipf=float("inf"))).tentative  # 4 - 3 < 2


def test_everyday_words_are_more_common_than_the_words_a_subject_is_named_by() -> None:
    assert commonness("good") > commonness("still") > 5.5 > commonness("european") > commonness("jailbreak")
    assert rarer_than(("good", "ipo", "still", "refund"), 5.5) == ("ipo", "refund")


def test_uncovered_terms_are_question_words_the_articles_use_but_the_passage_does_not(index) -> None:
    passage_text = "The Commerce Department ordered Zephyr offline."
    assert uncovered_terms("did banks pause the zephyr pilots?", passage_text, index) == ("banks", "pause", "pilots")


def test_words_no_article_uses_function_words_and_understood_words_are_not_uncovered(index) -> None:
    passage_text = "The Commerce Department ordered Zephyr offline."
    assert uncovered_terms("what about a refund for zephyr?", passage_text, index) == ()
    assert uncovered_terms("banks and pilots?", passage_text, index, understood={"banks"}) == ("pilots",)


def test_a_word_the_passage_uses_in_another_form_is_covered(index) -> None:
    assert uncovered_terms("when do banks pause?", "Banks paused their pilots.", index) == ()


def asking(question: str, passages) -> Retrieval:
    return replace(retrieval(passages), query=Query(question, question, (), (), ()))


def test_question_words_the_best_passage_does_not_use_push_an_answer_to_closest_passages(index, settings) -> None:
    hedging = replace(settings, tentative_below=2.0, unknown_term_weight=0.0, uncovered_term_weight=1.0)
    question = "did banks pause their pilots?"
    elsewhere = asking(question, [passage(index, "alpha", 0, 0, 4.0)])  # banks, pause, pilots: 4 - 3 < 2
    saying_it = asking(question, [passage(index, "beta", 2, 2, 4.0)])
    assert compose(question, index, elsewhere, hedging).tentative
    assert not compose(question, index, saying_it, hedging).tentative
