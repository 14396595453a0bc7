import hashlib
import json
import os
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bot.errors import IndexDamaged, IndexMismatch, IndexMissing, RebuildInProgress
from bot.knowledge import article_file_text, read_article, write_article
from bot.records import Article
from bot.store import BuildLock, build_index, current_build_dir, index_status, load_index, verify_index
from bot.store import build as store_build
from bot.store import manifest as store_manifest
from bot.store import status as store_status
from tests.conftest import FakeEmbedder, word_count


@pytest.fixture
def settings(tmp_settings):
    """Plumbing tests: the fake embedder, no late-interaction model."""
    return replace(tmp_settings, retrieval=replace(tmp_settings.retrieval, late_interaction=False))


def build(settings, embedder=None, **kwargs):
    return build_index(settings, embedder or FakeEmbedder(), count_tokens=word_count, **kwargs)


def test_build_writes_a_loadable_index_with_a_complete_manifest(settings) -> None:
    report = build(settings)
    index = load_index(settings.paths.index_dir)
    manifest = index.manifest
    assert manifest["index_version"] == report.index_version
    assert manifest["model"] == {"name": "fake-embedder", "dimension": 64}
    assert manifest["counts"] == {
        "articles": 5,
        "chunks": len(index.chunks),
        "sentences": sum(len(v) for v in index.sentences.values()),
    }
    assert set(manifest["articles"]) == set(index.articles)
    assert manifest["chunker"]["target_tokens"] == settings.chunking.target_tokens
    assert {"built_at", "build_seconds", "files", "format_version"} <= set(manifest)
    assert index.faiss_index.ntotal == len(index.chunks) == report.chunks


def test_stored_vectors_are_unit_length_so_inner_product_is_cosine(settings) -> None:
    build(settings)
    index = load_index(settings.paths.index_dir)
    vectors = index.faiss_index.reconstruct_n(0, index.faiss_index.ntotal)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_chunk_ids_are_article_id_and_number(settings) -> None:
    build(settings)
    for chunk in load_index(settings.paths.index_dir).chunks:
        assert chunk.id == f"{chunk.article_id}:{chunk.n}"


def test_rebuild_with_nothing_changed_embeds_nothing(settings) -> None:
    first = build(settings)
    embedder = FakeEmbedder()
    second = build(settings, embedder)
    assert second.embedded == 0
    assert second.unchanged
    assert second.index_version == first.index_version
    assert embedder.texts_encoded == 0


def test_editing_one_article_embeds_only_its_new_chunks(settings) -> None:
    first = build(settings)
    path = next(settings.paths.knowledge_dir.glob("anthropic-shuts-down*.md"))
    article = read_article(path)
    write_article(
        settings.paths.knowledge_dir, replace(article, body=article.body + "\n\nA new closing paragraph was added.")
    )
    embedder = FakeEmbedder()
    second = build(settings, embedder)
    assert second.changed == (article.id,)
    assert 0 < second.embedded <= 3
    assert embedder.texts_encoded == second.embedded
    assert second.index_version != first.index_version


def test_removing_an_article_is_reported_and_leaves_no_chunks_of_it(settings) -> None:
    build(settings)
    path = next(settings.paths.knowledge_dir.glob("us-urges*.md"))
    path.unlink()
    report = build(settings)
    assert report.removed == (path.stem,)
    assert all(c.article_id != path.stem for c in load_index(settings.paths.index_dir).chunks)


def test_a_crash_mid_build_leaves_the_previous_index_loadable(settings) -> None:
    first = build(settings)
    write_article(settings.paths.knowledge_dir, Article(id="new-one", title="New", body="A brand new article body."))

    class Exploding(FakeEmbedder):
        def encode(self, texts, *, progress=None):
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        build(settings, Exploding())
    index = load_index(settings.paths.index_dir)
    assert index.version == first.index_version
    assert not list((settings.paths.index_dir / "builds").glob(".tmp-*"))


def test_status_reports_added_changed_and_removed_articles(settings) -> None:
    build(settings)
    kdir = settings.paths.knowledge_dir
    write_article(kdir, Article(id="fresh-article", title="Fresh", body="Body text."))
    changed = next(kdir.glob("the-us-prevents*.md"))
    art = read_article(changed)
    write_article(kdir, replace(art, title=art.title + " (updated)"))
    removed = next(kdir.glob("us-urges*.md"))
    removed.unlink()
    status = index_status(settings, model_name="fake-embedder")
    assert not status.fresh
    assert status.added == ("fresh-article",)
    assert status.changed == (art.id,)
    assert status.removed == (removed.stem,)


def test_status_is_fresh_right_after_a_build(settings) -> None:
    build(settings)
    assert index_status(settings, model_name="fake-embedder").fresh


def test_status_is_stale_when_chunking_settings_change(settings) -> None:
    build(settings)
    other = replace(settings, chunking=replace(settings.chunking, target_tokens=40))
    status = index_status(other, model_name="fake-embedder")
    assert status.settings_changed == ("chunking",)


def test_load_without_a_build_says_how_to_make_one(settings) -> None:
    with pytest.raises(IndexMissing, match="directive-bot index build"):
        load_index(settings.paths.index_dir)


def test_load_refuses_an_index_built_with_another_model(settings) -> None:
    build(settings)
    with pytest.raises(IndexMismatch, match="built with model 'fake-embedder'"):
        load_index(settings.paths.index_dir, expect_model="sentence-transformers/all-MiniLM-L6-v2")


def test_load_refuses_an_index_of_another_dimension(settings) -> None:
    build(settings)
    with pytest.raises(IndexMismatch, match="dimension 64"):
        load_index(settings.paths.index_dir, expect_dim=384)


@pytest.mark.parametrize("victim", ["chunks.jsonl", "vectors.faiss", "articles.jsonl"])
def test_verify_detects_a_corrupted_file(settings, victim: str) -> None:
    build(settings)
    path = current_build_dir(settings.paths.index_dir) / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexMismatch, match="does not match its manifest"):
        verify_index(settings)


@pytest.fixture
def sampled(monkeypatch):
    """Files over 1 KB are checked at start by four 16-byte blocks (the real sizes: 64 MB, 256 x 64 KB)."""
    monkeypatch.setattr(store_manifest, "SAMPLE_ABOVE_BYTES", 1024)
    monkeypatch.setattr(store_manifest, "SAMPLE_BLOCKS", 4)
    monkeypatch.setattr(store_manifest, "SAMPLE_BLOCK_BYTES", 16)


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_large_file_is_checked_at_start_by_its_sampled_blocks(settings, sampled) -> None:
    build(settings)
    path = current_build_dir(settings.paths.index_dir) / "chunks.jsonl"
    assert "chunks.jsonl" in load_index(settings.paths.index_dir).manifest["samples"]
    _flip(path, 3)  # inside the first block
    with pytest.raises(IndexMismatch, match="does not match its manifest"):
        load_index(settings.paths.index_dir)


def test_a_large_file_that_changed_size_is_refused_at_start(settings, sampled) -> None:
    build(settings)
    path = current_build_dir(settings.paths.index_dir) / "chunks.jsonl"
    with path.open("ab") as fh:
        fh.write(b"\n")
    with pytest.raises(IndexMismatch, match="does not match its manifest"):
        load_index(settings.paths.index_dir)


def test_damage_between_sampled_blocks_is_found_by_verify(settings, sampled) -> None:
    build(settings)
    path = current_build_dir(settings.paths.index_dir) / "chunks.jsonl"
    _flip(path, 100)  # past the first block, before the second (a third of the file on)
    assert path.stat().st_size > 400
    load_index(settings.paths.index_dir)  # the start's sampled check does not read this byte
    with pytest.raises(IndexMismatch, match="does not match its manifest"):
        verify_index(settings)


def test_verify_detects_a_missing_file(settings) -> None:
    build(settings)
    (current_build_dir(settings.paths.index_dir) / "sentences.jsonl").unlink()
    with pytest.raises(IndexMismatch, match=r"missing sentences\.jsonl"):
        verify_index(settings)


def test_verify_detects_an_edited_manifest_by_its_hash_in_current(settings) -> None:
    build(settings)
    manifest_path = current_build_dir(settings.paths.index_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["index_version"] = "000000000000"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexDamaged, match="does not match its hash in CURRENT"):
        verify_index(settings)


def test_verify_detects_a_manifest_count_that_disagrees_with_the_files(settings) -> None:
    build(settings)
    index_dir = settings.paths.index_dir
    manifest_path = current_build_dir(index_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["counts"]["chunks"] += 1
    data = json.dumps(manifest).encode()
    manifest_path.write_bytes(data)
    name = (index_dir / "CURRENT").read_text().split()[0]
    (index_dir / "CURRENT").write_text(f"{name} {hashlib.sha256(data).hexdigest()}\n")
    with pytest.raises(IndexDamaged, match="counts disagree"):
        verify_index(settings)


def test_load_refuses_an_article_that_is_not_the_one_its_manifest_hashed(settings) -> None:
    build(settings)
    index_dir = settings.paths.index_dir
    build_dir = current_build_dir(index_dir)
    articles_path = build_dir / "articles.jsonl"
    lines = articles_path.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["body"] = first["body"].replace("the", "no", 1)
    lines[0] = json.dumps(first, ensure_ascii=False)
    articles_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest_path = build_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["articles.jsonl"] = hashlib.sha256(articles_path.read_bytes()).hexdigest()
    data = json.dumps(manifest).encode()
    manifest_path.write_bytes(data)
    (index_dir / "CURRENT").write_text(f"{build_dir.name} {hashlib.sha256(data).hexdigest()}\n")
    with pytest.raises(IndexDamaged, match=f"Article {first['id']} .* does not match its manifest hash"):
        load_index(index_dir)


def test_verify_passes_on_a_fresh_build(settings) -> None:
    build(settings)
    assert verify_index(settings, expect_model="fake-embedder").version


def test_a_second_build_while_one_runs_is_refused_with_who_started_it(settings) -> None:
    settings.paths.index_dir.mkdir(parents=True)
    with BuildLock(settings.paths.index_dir, "moderator alice"), pytest.raises(RebuildInProgress, match="alice"):
        build(settings)


def test_old_builds_are_pruned_to_the_live_one_and_its_predecessor(settings) -> None:
    kdir = settings.paths.knowledge_dir
    for n in range(4):
        write_article(kdir, Article(id=f"extra-{n}", title="Extra", body=f"Extra article number {n}."))
        build(settings)
    builds = [p for p in (settings.paths.index_dir / "builds").iterdir() if not p.name.startswith(".")]
    assert len(builds) == 2


def test_readers_never_see_a_half_written_index_during_builds(settings, monkeypatch) -> None:
    build(settings)
    kdir = settings.paths.knowledge_dir
    errors: list[Exception] = []
    stop = threading.Event()
    loaded = threading.Event()
    overlapped: list[str] = []
    swap = store_build.swap

    def swap_once_a_reader_loaded(index_dir, name, manifest_sha) -> None:
        # The new build directory is complete but not live: hold the swap until a load finishes meanwhile.
        loaded.clear()
        if loaded.wait(timeout=30):
            overlapped.append(name)
        swap(index_dir, name, manifest_sha)

    monkeypatch.setattr(store_build, "swap", swap_once_a_reader_loaded)

    def reader() -> None:
        while not stop.is_set():
            try:
                load_index(settings.paths.index_dir)
            except Exception as exc:
                errors.append(exc)
            else:
                loaded.set()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(3):
            write_article(kdir, Article(id=f"live-{n}", title="Live", body=f"Live article {n} body."))
            build(settings)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert len(overlapped) == 3  # the reader loaded while each build was under way


def test_article_files_round_trip_through_the_index_unchanged(settings) -> None:
    build(settings)
    index = load_index(settings.paths.index_dir)
    for path in Path(settings.paths.knowledge_dir).glob("*.md"):
        article = read_article(path)
        assert index.articles[article.id] == article
        assert article_file_text(index.articles[article.id]) == path.read_text(encoding="utf-8")


# --- freshness by stat ---------------------------------------------------------------------------


def test_an_unchanged_knowledge_base_is_fresh_without_reading_its_articles(settings, monkeypatch) -> None:
    build(settings)

    def unread(*_args, **_kwargs):
        raise AssertionError("the articles were read")

    monkeypatch.setattr(store_status, "load_knowledge", unread)
    assert index_status(settings, model_name=FakeEmbedder.name).fresh


def test_a_touched_article_is_read_again_and_an_edited_one_is_stale(settings) -> None:
    build(settings)
    path = sorted(Path(settings.paths.knowledge_dir).glob("*.md"))[0]
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert index_status(settings, model_name=FakeEmbedder.name).fresh  # same words: read, hashed and found unchanged
    article = read_article(path)
    write_article(Path(settings.paths.knowledge_dir), replace(article, body=article.body + "\n\nA new paragraph."))
    status = index_status(settings, model_name=FakeEmbedder.name)
    assert not status.fresh
    assert status.changed == (article.id,)
