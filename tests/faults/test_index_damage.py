"""Every file of a real build damaged every way: reported in one line, never "fresh", the running
index keeps answering, and a plain ``index build`` (no ``--force``) repairs it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.errors import IndexDamaged
from bot.service import KnowledgeService
from bot.store import build_index, current_build_dir, index_status, verify_index
from tests.faults.conftest import answers_from, copy_index, one_line_error, run_cli

BUILD_FILES = [
    "manifest.json",
    "vectors.faiss",
    "chunks.jsonl",
    "sentences.jsonl",
    "articles.jsonl",
    "bm25/params.index.json",
    "bm25/vocab.index.json",
    "bm25/data.csc.index.npy",
    "late_vectors.npy",
    "late_spans.npy",
    "late_offsets.npy",
]
MODES = ["truncate", "garble", "undecodable", "delete", "wrong-json-type"]


def damage(path: Path, mode: str) -> None:
    data = path.read_bytes()
    middle = len(data) // 2
    if mode == "truncate":
        path.write_bytes(data[:middle])
    elif mode == "garble":
        path.write_bytes(data[:middle] + bytes(b ^ 0x5A for b in data[middle : middle + 16]) + data[middle + 16 :])
    elif mode == "undecodable":
        path.write_bytes(data[:middle] + b"\xff" * 16 + data[middle:])
    elif mode == "delete":
        path.unlink()
    elif mode == "wrong-json-type":
        path.write_bytes(b"[]\n")
    else:  # pragma: no cover
        raise ValueError(mode)


@pytest.fixture
def real_copy(tmp_path: Path, real_index_dir: Path, knowledge_copy: Path) -> Settings:
    """Settings over a private copy of the session's real build (late-interaction files included)."""
    from dataclasses import replace

    index = copy_index(real_index_dir, tmp_path / "index")
    settings = load_settings(environ={}).with_paths(knowledge_copy, index)
    return replace(settings, paths=replace(settings.paths, data_dir=tmp_path / "data"))


@pytest.fixture
def running(real_copy: Settings, real_service: KnowledgeService) -> KnowledgeService:
    """A service over the copy that loaded it before any damage, sharing the session's loaded models."""
    service = KnowledgeService(
        real_copy, real_service.embedder, real_service.reranker, real_service.count_tokens, real_service.late
    )
    service._load()
    return service


def repair(settings: Settings, real_service: KnowledgeService):
    return build_index(
        settings,
        real_service.embedder,
        count_tokens=real_service.count_tokens,
        late=real_service.late,
        multilingual=real_service.multilingual,
        started_by="test",
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("victim", BUILD_FILES)
def test_damaged_build_file_is_reported_served_around_and_repaired(
    real_copy: Settings, running: KnowledgeService, real_service: KnowledgeService, victim: str, mode: str
) -> None:
    old_version = running.live.index.version
    damage(current_build_dir(real_copy.paths.index_dir) / victim, mode)

    one_line_error(run_cli(real_copy, "index", "verify"), "directive-bot index build")
    one_line_error(run_cli(real_copy, "index", "status"), "damaged")
    status = index_status(real_copy)
    assert not status.fresh
    assert status.damaged

    assert running.reload_if_changed() is None
    answers_from(running, old_version)

    report = repair(real_copy, real_service)
    assert report.embedded == 0  # the cache outlives the damaged build
    assert verify_index(real_copy).version == report.index_version == old_version
    assert index_status(real_copy).fresh


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe", b"", b"no-such-build " + b"0" * 64 + b"\n", b"../../etc passwd\n", b"\x00" * 600],
    ids=["undecodable", "empty", "unknown-build", "traversal", "oversized"],
)
def test_damaged_current_pointer_is_reported_and_repaired(
    real_copy: Settings, running: KnowledgeService, real_service: KnowledgeService, content: bytes
) -> None:
    old_version = running.live.index.version
    (real_copy.paths.index_dir / "CURRENT").write_bytes(content)
    one_line_error(run_cli(real_copy, "index", "verify"), "directive-bot index build")
    assert index_status(real_copy).damaged
    assert running.reload_if_changed() is None
    answers_from(running, old_version)
    repair(real_copy, real_service)
    assert verify_index(real_copy).version == old_version


def test_an_edited_index_version_in_the_manifest_is_detected(real_copy: Settings) -> None:
    path = current_build_dir(real_copy.paths.index_dir) / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["index_version"] = "feedfeedfeed"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexDamaged, match="does not match its hash in CURRENT"):
        verify_index(real_copy)


@pytest.mark.parametrize("drop", ["counts", "model", "files", "articles"])
def test_a_manifest_missing_a_field_is_damage_even_with_a_matching_hash(real_copy: Settings, drop: str) -> None:
    index_dir = real_copy.paths.index_dir
    path = current_build_dir(index_dir) / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    del manifest[drop]
    data = json.dumps(manifest).encode()
    path.write_bytes(data)
    name = (index_dir / "CURRENT").read_text().split()[0]
    (index_dir / "CURRENT").write_text(f"{name} {hashlib.sha256(data).hexdigest()}\n")
    status = index_status(real_copy)
    assert not status.fresh
    assert f"no valid {drop!r}" in status.damaged


def test_the_cli_index_build_repairs_a_damaged_build_without_force(
    real_copy: Settings, real_service: KnowledgeService
) -> None:
    old_version = index_status(real_copy).index_version
    (current_build_dir(real_copy.paths.index_dir) / "late_offsets.npy").unlink()
    result = run_cli(real_copy, "index", "build")
    assert result.exit_code == 0, result.output
    assert "damaged" in result.stderr
    assert verify_index(real_copy).version == old_version


def test_an_index_from_before_the_manifest_hash_is_rebuilt_not_trusted(real_copy: Settings) -> None:
    index_dir = real_copy.paths.index_dir
    name = (index_dir / "CURRENT").read_text().split()[0]
    (index_dir / "CURRENT").write_text(name + "\n")
    assert "older version" in index_status(real_copy).damaged
