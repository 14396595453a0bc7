"""Fixtures for the fault-injection tests: a small real index, a live service on it, and checks
that every failure ends in one line, the old index keeps answering and no audit row is lost.

Plumbing tests use the deterministic fake embedder (real FAISS, BM25, SQLite, files and
processes); the corruption matrix uses a copy of the real build, late-interaction files included.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.cli import cli
from bot.config import Settings
from bot.service import KnowledgeService
from bot.store import BuildReport, build_index, load_index
from tests.conftest import FakeEmbedder, word_count

QUESTION = "Are foreign nationals living in the US affected?"


@pytest.fixture
def settings(tmp_settings: Settings) -> Settings:
    """The bundled articles in a temp copy, the fake embedder's world: no late interaction, no reranker."""
    return replace(tmp_settings, retrieval=replace(tmp_settings.retrieval, late_interaction=False, rerank=False))


def build(settings: Settings, **kwargs: object) -> BuildReport:
    return build_index(settings, FakeEmbedder(), count_tokens=word_count, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def built(settings: Settings) -> BuildReport:
    """A first build of the bundled articles."""
    return build(settings)


@pytest.fixture
def live(settings: Settings, built: BuildReport) -> KnowledgeService:
    """A service that loaded the first build, as a running bot would have."""
    service = KnowledgeService(settings, FakeEmbedder(), None, word_count, None)  # type: ignore[arg-type]
    service._load()
    return service


def answers_from(service: KnowledgeService, version: str) -> None:
    """The service still answers, from ``version``, with excerpts."""
    answer = service.ask(QUESTION)
    assert answer.index_version == version
    assert answer.excerpts


def disk_index_is(settings: Settings, version: str) -> None:
    """What a freshly started reader would load is ``version``, and it answers."""
    index = load_index(settings.paths.index_dir)
    assert index.version == version
    fresh = KnowledgeService(settings, FakeEmbedder(), None, word_count, None)  # type: ignore[arg-type]
    fresh._load()
    answers_from(fresh, version)


def run_cli(settings: Settings, *args: str, input: str | None = None) -> Result:
    """The CLI in-process against these settings' directories (no traceback catching by the runner)."""
    env = {
        "DISCORD_TOKEN": "",
        "DIRECTIVE_BOT__PATHS__DATA_DIR": str(settings.paths.data_dir),
        "DIRECTIVE_BOT__RETRIEVAL__LATE_INTERACTION": str(settings.retrieval.late_interaction).lower(),
    }
    paths = ["--knowledge", str(settings.paths.knowledge_dir), "--index", str(settings.paths.index_dir)]
    return CliRunner().invoke(cli, [*args, *paths], input=input, env=env, catch_exceptions=False)


def one_line_error(result: Result, *needles: str) -> str:
    """A failed command: exit 1, exactly one line on stderr starting with 'error:', no traceback."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def copy_index(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
