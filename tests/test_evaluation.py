from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.evaluation import first_hit_rank, fold, load_eval_set, matches_gold
from bot.models import Answer, Excerpt, Source

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
    assert es.on_topic == (("Who?", ("A sentence.",)),)
    assert es.off_topic == ("Weather?",)


def test_load_eval_set_refuses_another_format(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="on_topic"):
        load_eval_set(path)
