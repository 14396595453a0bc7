"""Shared fixtures: a deterministic fake embedder for fast tests, and the real models built once."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bot.cli import configure_process
from bot.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
ONNX_DIR_VARIABLE = "DIRECTIVE_BOT__EMBEDDING__ONNX_DIR"
KNOWLEDGE = REPO / "knowledge"
SEEDS = REPO.parent / "shared" / "seeds"

configure_process()  # what the command line does before anything runs: model libraries offline and quiet


class FakeEmbedder:
    """Bag-of-words hashed into 64 dimensions: deterministic, instant, good enough for plumbing tests."""

    name = "fake-embedder"
    dimension = 64

    def __init__(self) -> None:
        self.calls = 0
        self.texts_encoded = 0

    def encode(self, texts, *, progress=None):
        self.calls += 1
        self.texts_encoded += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                out[row, h % self.dimension] += 1.0 if (h >> 8) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else np.eye(self.dimension, dtype=np.float32)[0]
        if progress:
            progress(len(texts))
        return out


def word_count(text: str) -> int:
    return len(text.split())


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def knowledge_copy(tmp_path: Path) -> Path:
    """A private copy of the bundled articles that a test may change."""
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, target)
    return target


@pytest.fixture
def tmp_settings(tmp_path: Path, knowledge_copy: Path) -> Settings:
    settings = load_settings(environ={}).with_paths(knowledge_copy, tmp_path / "index")
    from dataclasses import replace

    return replace(settings, paths=replace(settings.paths, data_dir=tmp_path / "data"))


@pytest.fixture(scope="session", autouse=True)
def shared_onnx_copy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One ONNX copy of the embedding model for every command the tests run, as the processes on one
    index share theirs: each fresh test index would otherwise export its own (about 3 s each)."""
    path = tmp_path_factory.mktemp("encoders")
    os.environ[ONNX_DIR_VARIABLE] = str(path)
    yield path
    os.environ.pop(ONNX_DIR_VARIABLE, None)


@pytest.fixture(scope="session")
def real_service(tmp_path_factory: pytest.TempPathFactory, shared_onnx_copy: Path):
    """One real KnowledgeService (MiniLM, late interaction, cross-encoder) for the whole session.

    It builds the bundled knowledge base into a session temp index the first time it is asked for.
    """
    from dataclasses import replace

    from bot.service import KnowledgeService

    index_dir = tmp_path_factory.mktemp("real-index")
    settings = load_settings(environ={}).with_paths(KNOWLEDGE, index_dir)
    settings = replace(settings, embedding=replace(settings.embedding, onnx_dir=shared_onnx_copy))
    return KnowledgeService.open(settings, build_if_needed=True)


@pytest.fixture(scope="session")
def real_index_dir(real_service) -> Path:
    """The real build of the bundled articles; copy it before changing it."""
    return real_service.settings.paths.index_dir
