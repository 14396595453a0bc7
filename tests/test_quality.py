"""Answer quality with the real models, on the bundled knowledge base and on another story.

The settings were chosen by cross-validation over every question file (``directive-bot eval --cv``);
these tests hold the figures those settings reach, so a change that loses quality fails here:
hit@3 >= 0.90 and MRR >= 0.80 on the development sets, every off-topic question declined, at most
one answerable question declined per set, and every quote the cited article's own words.

The other story (tests/fixtures/other_story: five made-up articles about a ferry grounding, with
their own questions) checks that nothing in the pipeline knows the bundled articles: it must work
as well there with no change.
"""

from pathlib import Path

import pytest

from bot.config import load_settings
from bot.evaluation import Figures, evaluate, load_eval_set
from bot.knowledge import read_article

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "eval"
OTHER = REPO / "tests" / "fixtures" / "other_story"
SETS = {
    "dev": SHARED / "dev.yaml",
    "own": REPO / "tests" / "eval" / "own.yaml",
    "other-story": OTHER / "questions.yaml",
}
KNOWLEDGE = {"dev": REPO / "knowledge", "own": REPO / "knowledge", "other-story": OTHER / "knowledge"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def other_service(real_service, tmp_path_factory):
    """The same models over the other story's articles."""
    from bot.service import KnowledgeService

    settings = load_settings(environ={}).with_paths(OTHER / "knowledge", tmp_path_factory.mktemp("other-index"))
    return KnowledgeService.open(
        settings, embedder=real_service.embedder, reranker=real_service.reranker, late=real_service.late
    )


@pytest.fixture(scope="module")
def results(real_service, other_service) -> dict[str, Figures]:
    out = {}
    for name, path in SETS.items():
        if path.is_file():
            service = other_service if name == "other-story" else real_service
            out[name] = evaluate(service, load_eval_set(path))
    return out


def result_for(results: dict[str, Figures], name: str) -> Figures:
    if name not in results:
        pytest.skip(f"{SETS[name]} is absent (the shared development set lives beside the clone)")
    return results[name]


@pytest.mark.parametrize("name", list(SETS))
def test_the_gold_is_in_the_first_three_excerpts_for_90_percent_of_questions(results, name: str) -> None:
    r = result_for(results, name)
    assert r.hit3 / r.n_on >= 0.90, f"hit@3 {r.hit3}/{r.n_on}; missed: {r.misses}"


@pytest.mark.parametrize("name", list(SETS))
def test_mean_reciprocal_rank_is_at_least_0_80(results, name: str) -> None:
    r = result_for(results, name)
    assert r.rr / r.n_on >= 0.80, r.row()


@pytest.mark.parametrize("name", ["dev", "own"])
def test_every_off_topic_question_is_declined(results, name: str) -> None:
    r = result_for(results, name)
    assert r.off_declined == r.n_off, r.row()


def test_off_topic_questions_about_another_story_are_declined_but_for_one_naming_its_places(results) -> None:
    # Known miss: "What's the weather going to be like in Oslo this weekend?" is shown as closest passages
    # (the articles are about Norwegian ferries); the decline rule was fitted on this story's questions only.
    r = result_for(results, "other-story")
    assert r.off_declined >= r.n_off - 1, r.row()


@pytest.mark.parametrize("name", list(SETS))
def test_at_most_one_on_topic_question_is_declined(results, name: str) -> None:
    r = result_for(results, name)
    assert r.false_declines <= 1, r.row()


@pytest.mark.parametrize(
    ("name", "share"),
    # Near-miss detection is the weak spot (see README): on the other story, whose questions the decision
    # rule was never fitted on, 2 of 5 near misses are declined or hedged.
    [("dev", 0.6), ("own", 0.6), ("other-story", 0.4)],
)
def test_most_near_miss_questions_are_declined_or_shown_as_closest_passages(results, name: str, share: float) -> None:
    r = result_for(results, name)
    assert r.near_flagged >= share * r.n_near, r.row()


@pytest.mark.parametrize("name", list(SETS))
def test_every_excerpt_is_the_cited_article_file_between_its_offsets(real_service, other_service, name: str) -> None:
    path = SETS[name]
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    service = other_service if name == "other-story" else real_service
    bodies = {p.stem: read_article(p).body for p in KNOWLEDGE[name].glob("*.md")}
    for q in load_eval_set(path).on_topic[:15]:
        for e in service.ask(q.text).excerpts:
            assert bodies[e.source.article_id][e.start : e.end] == e.quote, (q.text, e.quote)


def test_excerpts_are_one_to_three_whole_sentences(real_service) -> None:
    index = real_service.live.index
    for q in load_eval_set(SETS["own"]).on_topic:
        for e in real_service.ask(q.text).excerpts:
            spans = index.sentences[e.source.article_id]
            starts = [i for i, s in enumerate(spans) if s.start == e.start]
            ends = [i for i, s in enumerate(spans) if s.end == e.end]
            assert starts and ends, (q.text, e.quote)
            assert 1 <= ends[0] - starts[0] + 1 <= 3, (q.text, e.quote)


@pytest.mark.parametrize(
    ("question", "plain"),
    [("<@123456> **opus** affected?", "opus affected?"), ("OPUS   AFFECTED???", "opus affected?")],
    ids=["mention-and-markdown", "shouting"],
)
def test_decoration_does_not_change_the_answer(real_service, question: str, plain: str) -> None:
    assert real_service.ask(question).excerpts[0].quote == real_service.ask(plain).excerpts[0].quote


@pytest.mark.parametrize(
    ("question", "gold"),
    [
        ("are canadians affected?", "foreign national"),
        ("im brazilian, can i still use fable?", "foreign national"),
        ("r argentinians cut off 2", "foreign national"),
        pytest.param(
            "is claude sonnet still available",
            "older",
            marks=pytest.mark.xfail(
                strict=True, reason="known miss: the cross-encoder does not know Sonnet is an older model"
            ),
        ),
        ("r ppl in india cut off rn", "foreign national"),
    ],
)
def test_does_this_affect_me_questions_are_answered_about_who_the_order_covers(real_service, question, gold) -> None:
    answer = real_service.ask(question)
    assert not answer.declined
    assert any(gold in e.quote.casefold() for e in answer.excerpts[:3]), [e.quote for e in answer.excerpts[:3]]


def test_the_other_story_is_answered_from_its_own_articles(other_service) -> None:
    ids = {p.stem for p in (OTHER / "knowledge").glob("*.md")}
    answer = other_service.ask("which ferries got grounded?")
    assert not answer.declined and {e.source.article_id for e in answer.excerpts} <= ids
