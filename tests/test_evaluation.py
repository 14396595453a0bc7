from dataclasses import replace
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.evaluation import (
    Figures,
    Grid,
    Outcome,
    Params,
    Question,
    Tuner,
    _cuts,
    _Ranked,
    _widest_margin,
    decision_scores,
    first_hit_rank,
    fold,
    load_eval_set,
    matches_gold,
    plot_scores,
    stratified_folds,
)
from bot.records import Answer, Excerpt, Source

GOLD = ("The restriction specifically applies to Anthropic’s Fable 5 and Mythos 5 models.",)


def excerpt(quote: str) -> Excerpt:
    return Excerpt(quote, 0, len(quote), 1.0, Source("a", "T", None, None, None), "a:0")


def test_fold_ignores_case_curly_quotes_and_whitespace() -> None:
    assert fold("Anthropic’s  “Fable”\n5") == fold('anthropic\'s "fable" 5')


@pytest.mark.parametrize(
    ("quote", "hit"),
    [
        ("Q? The restriction specifically applies to Anthropic's Fable 5 and Mythos 5 models. More.", True),
        ("It said the restriction specifically applies to Anthropic’s Fable 5 and", True),  # >= 40 shared characters
        ("The restriction specifically applies.", False),  # shorter than 40 and not the whole sentence
        ("Something else entirely about Opus 4.8.", False),
    ],
)
def test_matches_gold_whole_sentence_or_40_characters(quote: str, hit: bool) -> None:
    assert matches_gold(quote, GOLD) is hit


def test_first_hit_rank_counts_from_one() -> None:
    answer = Answer("q", False, (excerpt("Nothing here."), excerpt(GOLD[0])), "v")
    assert first_hit_rank(answer, GOLD) == 2
    assert first_hit_rank(Answer("q", True, (), "v"), GOLD) is None


def test_load_eval_set_reads_the_shared_format(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text("on_topic:\n- q: Who?\n  gold:\n  - A sentence.\noff_topic:\n- Weather?\nnear_miss: []\n")
    es = load_eval_set(path)
    assert [(q.text, q.gold, q.cls) for q in es.on_topic] == [("Who?", ("A sentence.",), "on")]
    assert [q.text for q in es.off_topic] == ["Weather?"]


def test_load_eval_set_refuses_another_format(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="on_topic"):
        load_eval_set(path)


def test_load_eval_set_keeps_kind_and_language(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text("on_topic:\n- q: Wer?\n  gold: [A.]\n  kind: persona\n  lang: de\nnear_miss:\n- q: Wann?\n")
    es = load_eval_set(path)
    assert (es.on_topic[0].kind, es.on_topic[0].lang, es.on_topic[0].source) == ("persona", "de", "q.yaml")
    assert [q.text for q in es.near_miss] == ["Wann?"]


def test_folds_spread_every_file_and_class_over_every_fold() -> None:
    questions = [
        Question(f"q{i}", cls, source=src)
        for i, (cls, src) in enumerate([("on", "a")] * 10 + [("off", "a")] * 5 + [("near", "b")] * 5)
    ]
    folds = stratified_folds(questions, 5, seed=1)
    assert sorted(i for f in folds for i in f) == list(range(20))
    for f in folds:
        assert {questions[i].cls for i in f} == {"on", "off", "near"}


RARE = 3.0  # a word as common as "jailbreak" (Zipf): the hedge counts it at every cut it tries
EVERYDAY = 6.1  # as common as "good"


def outcome_of(cls: str, score: float, rank: int | None = 1, unknown: int = 0, uncovered: int = 0) -> Outcome:
    return Outcome(
        Question("q", cls, ("g",)),
        rank,
        False,
        False,
        score,
        unknown=unknown,
        unknown_commonness=(RARE,) * unknown,
        uncovered_commonness=(RARE,) * uncovered,
    )


def test_figures_count_hits_declines_and_hedged_near_misses() -> None:
    f = Figures(
        "x",
        [outcome_of("on", 5.0, 1), outcome_of("on", 5.0, 4), replace(outcome_of("near", 0.0, None), tentative=True)],
    )
    row = f.row()
    assert (row["hit@1"], row["hit@3"], row["mrr"]) == (0.5, 0.5, round((1 + 0.25) / 2, 3))
    assert row["near_miss_declined_or_hedged"] == 1.0
    assert row["on_topic_hedged"] == 0.0


def test_figures_count_answerable_questions_quoted_as_closest_passages() -> None:
    f = Figures("x", [replace(outcome_of("on", 1.0), tentative=True), outcome_of("on", 5.0)])
    assert f.row()["on_topic_hedged"] == 0.5


def test_decline_threshold_sits_mid_way_across_equally_cheap_thresholds() -> None:
    import numpy as np

    thresholds = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    cost = np.array([0.5, 0.2, 0.1, 0.1, 0.1, 0.4])
    d, threshold = _widest_margin(cost, thresholds)
    assert cost[d] == 0.1
    assert threshold == 3.0  # between 2.0 and 4.0, not at either edge of the cheap run


def test_a_threshold_is_tried_in_every_gap_between_the_scores_of_a_question_pool() -> None:
    import numpy as np

    scores = np.random.default_rng(0).normal(size=900)  # the size of the English question pool
    cuts = _cuts(scores, Grid().max_cuts)
    ordered = np.sort(scores)
    inside = np.searchsorted(cuts, ordered[:-1], side="right") < np.searchsorted(cuts, ordered[1:], side="left")
    assert inside.all()  # a cut strictly between every two neighbouring scores


def test_decline_threshold_of_a_single_cheapest_cut_is_that_cut() -> None:
    import numpy as np

    assert _widest_margin(np.array([0.3, 0.1, 0.2]), np.array([-1.0, 0.5, 2.0])) == (1, 0.5)


def test_a_conversation_file_asks_each_message_after_the_question_it_follows(tmp_path: Path) -> None:
    path = tmp_path / "followups.yaml"
    path.write_text(
        "conversations:\n  - first: Are foreigners cut off?\n    then: how long?\n    kind: follow-up\n"
        "    gold: [A sentence.]\n",
        encoding="utf-8",
    )
    [q] = load_eval_set(path).questions
    assert (q.text, q.context, q.cls, q.gold, q.kind) == (
        "how long?",
        "Are foreigners cut off?",
        "on",
        ("A sentence.",),
        "follow-up",
    )


def ranked_of(rows: list[tuple[str, float, tuple[float, ...]]]) -> tuple[Tuner, _Ranked]:
    """A tuner over (class, best score, commonness of each uncovered word) rows, with no models behind it."""
    import numpy as np

    from bot.evaluation import _padded

    outcomes = [replace(outcome_of(c, s), uncovered_commonness=u) for c, s, u in rows]
    ranked = _Ranked(
        outcomes,
        score=np.array([s for _, s, _ in rows]),
        judged=np.array([s for _, s, _ in rows]),
        unknown=np.zeros(len(rows)),
        dense=np.zeros(len(rows)),
        floor=np.zeros(len(rows), dtype=bool),
        named=np.zeros(len(rows), dtype=bool),
        read=np.ones(len(rows)),
        unknown_commonness=_padded([() for _ in rows]),
        uncovered_commonness=_padded([u for _, _, u in rows]),
    )
    tuner = Tuner.__new__(Tuner)
    tuner.grid, tuner.classes = Grid(), np.array([c for c, _, _ in rows])
    return tuner, ranked


def test_the_hedge_rule_weighs_question_words_the_best_passage_leaves_out_when_they_tell_near_misses_apart() -> None:
    # Near misses score as well as answerable questions, but their best passage leaves three words out.
    rows = [("on", 5.0, ())] * 10 + [("near", 5.0, (RARE,) * 3)] * 10 + [("off", -10.0, ())] * 2
    tuner, ranked = ranked_of(rows)
    *_, tentative, _, uncovered_weight, _ = tuner._thresholds(ranked, range(len(rows)))
    assert uncovered_weight > 0
    assert 5.0 - 3 * uncovered_weight < tentative <= 5.0  # hedges every near miss and no answerable question


def test_the_hedge_rule_leaves_everyday_words_out_when_only_rarer_ones_tell_near_misses_apart() -> None:
    # Both leave three words out, but an answerable question's are everyday words ("still", "good").
    rows = [("on", 5.0, (EVERYDAY,) * 3)] * 10 + [("near", 5.0, (RARE,) * 3)] * 10 + [("off", -10.0, ())] * 2
    tuner, ranked = ranked_of(rows)
    *_, tentative, _, uncovered_weight, common = tuner._thresholds(ranked, range(len(rows)))
    assert RARE < common <= EVERYDAY
    assert 5.0 - 3 * uncovered_weight < tentative <= 5.0  # hedges every near miss and no answerable question


def test_an_outcome_counts_for_the_hedge_only_words_rarer_than_the_cut() -> None:
    o = replace(outcome_of("on", 1.0), unknown_commonness=(2.0, 6.1), uncovered_commonness=(5.9, 4.0, 0.0))
    assert o.hedge_counts(5.5) == (1, 2)
    assert o.hedge_counts(float("inf")) == (2, 3)


def plotted_outcomes() -> list[Outcome]:
    return [
        replace(outcome_of("on", 5.0, uncovered=1), dense_top=0.6),
        replace(outcome_of("near", 2.0, uncovered=3), dense_top=0.5),
        replace(outcome_of("off", -9.0, None, unknown=2), dense_top=0.1),
        replace(outcome_of("on", float("-inf")), dense_top=0.0),  # nothing retrieved: left out
    ]


PLOTTED = Params(10, 6, 4.0, 1, 10.0, 8.0, -0.75, 2.0, 30.0, -2.78, 3.0, 3.0, 5.5)


def test_the_plot_shows_the_decline_score_and_the_hedge_score_with_their_thresholds() -> None:
    (_, _, decline, declined), (_, _, hedge, hedged) = decision_scores(Figures("x", plotted_outcomes()), PLOTTED)
    assert (decline, hedge) == (-0.75, -2.78)
    assert declined == {"on": [5.0 + 18.0], "near": [2.0 + 15.0], "off": [-9.0 + 3.0 - 4.0]}
    assert hedged == {"on": [5.0 - 3.0], "near": [2.0 - 9.0], "off": [-9.0 - 6.0]}


def test_the_plot_is_written_as_a_png(tmp_path: Path) -> None:
    path = tmp_path / "scores.png"
    plot_scores(Figures("x", plotted_outcomes()), PLOTTED, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
