"""SIGKILL a build process at random moments: the previous index always serves, and the next
build removes what the killed one left behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from bot.config import Settings
from bot.store import build_index, load_index, verify_index
from tests.conftest import REPO, FakeEmbedder, word_count
from tests.faults.conftest import build, disk_index_is

BUILDER = """
import sys
from dataclasses import replace
from pathlib import Path
from bot.config import load_settings
from bot.store import build_index
from tests.conftest import FakeEmbedder, word_count
settings = load_settings(environ={}).with_paths(Path(sys.argv[1]), Path(sys.argv[2]))
settings = replace(settings, retrieval=replace(settings.retrieval, late_interaction=False, rerank=False))
print("ready", flush=True)
while True:
    build_index(settings, FakeEmbedder(), count_tokens=word_count, force=True, started_by="killed")
"""


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_build_killed_at_a_random_moment_leaves_an_index_that_serves(settings: Settings, built, seed: int) -> None:
    index_dir = settings.paths.index_dir
    proc = subprocess.Popen(
        [sys.executable, "-c", BUILDER, str(settings.paths.knowledge_dir), str(index_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read().decode()
        time.sleep(random.Random(seed).uniform(0.0, 1.5))  # where in the build loop it lands is the point
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    disk_index_is(settings, built.index_version)  # every build of the same articles has this version
    verify_index(settings)
    report = build(settings, force=True)
    assert report.index_version == built.index_version
    assert list(index_dir.glob("builds/.tmp-*")) == []
    assert list(index_dir.glob(".CURRENT.*.tmp")) == []


def test_the_next_build_removes_what_a_killed_build_left(settings: Settings, built) -> None:
    index_dir = settings.paths.index_dir
    stale_dir = index_dir / "builds" / ".tmp-killed"
    stale_dir.mkdir()
    (stale_dir / "vectors.faiss").write_bytes(b"half")
    stale_pointer = index_dir / ".CURRENT.abc123.tmp"
    stale_pointer.write_text("half a pointer")
    build_index(settings, FakeEmbedder(), count_tokens=word_count)  # nothing changed: still cleans up
    assert not stale_dir.exists()
    assert not stale_pointer.exists()
    assert load_index(index_dir).version == built.index_version
