"""Scale: late interaction over first-stage candidates only, a memory-mapped index, an approximate
dense index for large builds, and an embedding cache that keeps killed builds' work and prunes itself.

Small corpora and the fake models of tests/test_retrieval.py; real FAISS and real SQLite. Speed is
measured by bench/scale.py, never asserted here.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.knowledge import write_article
from bot.records import Article
from bot.store import build as build_module
from bot.store import build_index, load_index, verify_index
from bot.store import load as load_module
from bot.store.build import dense_index
from bot.store.cache import EmbeddingCache
from tests import test_retrieval
from tests.conftest import FakeEmbedder, word_count
from tests.test_retrieval import FakeLate, retriever

tiny_settings = test_retrieval.tiny_settings  # the fixtures of tests/test_retrieval.py, shared
late_index = test_retrieval.late_index

# --- late interaction over candidates ------------------------------------------------------------


def test_candidate_scores_equal_the_full_scan_on_the_candidates_and_are_zero_elsewhere(
    late_index,
    tiny_settings,
) -> None:
    late = FakeLate()
    r = retriever(late_index, tiny_settings, late=late)
    query = late.encode_query("engineers lost access abroad banks")
    full_chunk, full_sentence = r._late_scores(query)
    picked = np.array([0, 2])
    chunk, sentence = r.layout.segments.candidates(query, picked, len(full_sentence))
    assert chunk[picked] == pytest.approx(full_chunk[picked], abs=1e-6)
    assert not np.delete(chunk, picked).any()
    own = {g for c in picked for g in r.layout.chunk_sentences[c]}
    assert all(sentence[g] <= full_sentence[g] + 1e-6 for g in own)
    assert not np.delete(sentence, sorted(own)).any()


def test_candidates_cover_every_chunk_gives_the_full_scan(late_index, tiny_settings) -> None:
    late = FakeLate()
    r = retriever(late_index, tiny_settings, late=late)
    query = late.encode_query("Commerce Department security customers")
    full = r._late_scores(query)
    every = r.layout.segments.candidates(query, np.arange(len(late_index.chunks)), len(full[1]))
    assert every[0] == pytest.approx(full[0], abs=1e-6)
    assert every[1] == pytest.approx(full[1], abs=1e-6)


def test_above_the_full_scan_size_an_article_found_twice_is_scored_whole(late_index, tiny_settings) -> None:
    settings = replace(tiny_settings.retrieval, late_full_scan_chunks=0)
    late = FakeLate()
    r = retriever(late_index, replace(tiny_settings, retrieval=settings), late=late)
    owner = np.array([c.article_id for c in late_index.chunks])
    twice = [int(c) for c in np.flatnonzero(owner == owner[0])[:2]]
    [once] = [int(c) for c in np.flatnonzero(owner != owner[0])[:1]]
    query = late.encode_query("Banks paused their pilots")
    chunk, _ = r._late_scores(query, [*twice, once])
    full = r.layout.segments.full(query, len(r.layout.sentences))[0]
    whole = owner == owner[0]
    assert whole.sum() > 2 and np.count_nonzero(full[whole]) > 2
    assert chunk[whole] == pytest.approx(full[whole], abs=1e-6)  # read whole: more than its two candidates
    rest = ~whole
    rest[once] = False
    assert chunk[once] == pytest.approx(full[once], abs=1e-6)
    assert full[rest].any() and not chunk[rest].any()  # an article found once: only its candidate


def test_at_or_below_the_full_scan_size_every_chunk_is_scored(late_index, tiny_settings) -> None:
    late = FakeLate()
    r = retriever(late_index, tiny_settings, late=late)
    text = "Banks paused their pilots"
    query = late.encode_query(text)
    with_candidates = r._late_scores(query, [0])
    assert with_candidates[0] == pytest.approx(r._late_scores(query)[0])
    assert np.count_nonzero(with_candidates[0]) > 1


class _CountingIndex:
    """A dense index that counts its searches (everything else is the real FAISS index's)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.searches = 0

    def search(self, *args, **kwargs):
        self.searches += 1
        return self.inner.search(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


@pytest.mark.parametrize("full_scan_chunks", [0, 2000])
def test_a_question_searches_the_dense_index_once(late_index, tiny_settings, full_scan_chunks) -> None:
    settings = replace(tiny_settings.retrieval, late_full_scan_chunks=full_scan_chunks)
    counting = _CountingIndex(late_index.faiss_index)
    r = retriever(
        replace(late_index, faiss_index=counting), replace(tiny_settings, retrieval=settings), late=FakeLate()
    )
    r.search("engineers abroad lost access", rerank=False)
    assert counting.searches == 1


def test_search_answers_above_the_full_scan_size(late_index, tiny_settings) -> None:
    settings = replace(tiny_settings.retrieval, late_full_scan_chunks=0)
    r = retriever(late_index, replace(tiny_settings, retrieval=settings), late=FakeLate())
    top = r.search("engineers abroad lost access", rerank=False).passages[0]
    assert "Engineers abroad lost access." in late_index.articles[top.article_id].body[top.start : top.end]


# --- the index on disk ---------------------------------------------------------------------------


def test_large_token_vectors_are_memory_mapped_float16_not_copied(
    tiny_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(load_module, "MAP_ABOVE_BYTES", 0)
    build_index(tiny_settings, FakeEmbedder(), count_tokens=word_count, late=FakeLate())
    vectors, _offsets = load_index(tiny_settings.paths.index_dir).late_packed
    assert isinstance(vectors, np.memmap) and vectors.dtype == np.float16
    assert not vectors.flags.writeable


def test_small_token_vectors_are_read_into_memory_so_damage_on_disk_cannot_reach_them(late_index) -> None:
    vectors, _offsets = late_index.late_packed
    assert not isinstance(vectors, np.memmap) and vectors.dtype == np.float16


def test_a_mapped_index_answers_like_one_in_memory(tiny_settings, monkeypatch: pytest.MonkeyPatch) -> None:
    build_index(tiny_settings, FakeEmbedder(), count_tokens=word_count, late=FakeLate())
    question = "engineers abroad lost access"
    in_memory = retriever(load_index(tiny_settings.paths.index_dir), tiny_settings, late=FakeLate()).search(question)
    monkeypatch.setattr(load_module, "MAP_ABOVE_BYTES", 0)
    mapped = retriever(load_index(tiny_settings.paths.index_dir), tiny_settings, late=FakeLate()).search(question)
    assert mapped.passages == in_memory.passages


# --- approximate dense index ---------------------------------------------------------------------


def _with(settings, **retrieval):
    return replace(settings, retrieval=replace(settings.retrieval, **retrieval))


def test_below_ann_min_chunks_the_dense_index_is_exact(tiny_settings) -> None:
    build_index(tiny_settings, FakeEmbedder(), count_tokens=word_count)
    index = load_index(tiny_settings.paths.index_dir)
    assert index.manifest["dense_index"] == {"type": "flat"}
    assert type(index.faiss_index).__name__ == "IndexFlatIP"


def test_at_ann_min_chunks_the_build_gets_an_hnsw_index_that_verifies_and_searches(tiny_settings) -> None:
    settings = _with(tiny_settings, ann_min_chunks=1, ann_ef_search=64)
    build_index(settings, FakeEmbedder(), count_tokens=word_count)
    index = verify_index(settings)
    assert index.manifest["dense_index"]["type"] == "hnsw"
    assert index.faiss_index.hnsw.efSearch == 64  # saved in the file, not set again at load
    vectors = index.faiss_index.reconstruct_n(0, index.faiss_index.ntotal)
    _, ids = index.faiss_index.search(vectors[:1], 3)
    assert ids[0][0] == 0


def test_hnsw_recall_at_50_against_the_exact_search_is_high() -> None:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((3000, 48)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries = data[:20] + 0.3 * rng.standard_normal((20, 48)).astype(np.float32)
    exact, _ = dense_index(data, ann_min_chunks=10**9, ef_search=128)
    approx, info = dense_index(data, ann_min_chunks=1000, ef_search=128)
    assert info["type"] == "hnsw"
    _, truth = exact.search(queries, 50)
    _, found = approx.search(queries, 50)
    recall = np.mean([len(set(t) & set(f)) / 50 for t, f in zip(truth, found, strict=True)])
    assert recall >= 0.95


# --- the embedding cache -------------------------------------------------------------------------


def _cache_rows(settings, table: str) -> list[tuple]:
    db = sqlite3.connect(settings.paths.index_dir / "cache" / "embeddings.sqlite3")
    try:
        return db.execute(f"SELECT * FROM {table}").fetchall()
    finally:
        db.close()


def test_the_cache_stores_dense_vectors_as_float16(tiny_settings) -> None:
    build_index(tiny_settings, FakeEmbedder(), count_tokens=word_count)
    rows = _cache_rows(tiny_settings, "vectors")
    assert rows and all(len(blob) == dim * 2 for _m, _h, dim, blob in rows)


def test_a_build_from_the_cache_equals_a_build_from_scratch(tiny_settings) -> None:
    build_index(tiny_settings, FakeEmbedder(), count_tokens=word_count)
    first = load_index(tiny_settings.paths.index_dir).faiss_index.reconstruct_n(0, 3)
    embedder = FakeEmbedder()
    assert build_index(tiny_settings, embedder, count_tokens=word_count, force=True).embedded == 0
    again = load_index(tiny_settings.paths.index_dir).faiss_index.reconstruct_n(0, 3)
    assert np.array_equal(first, again)


def test_float32_rows_of_an_older_cache_are_still_read(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    vec = np.linspace(-1, 1, 8, dtype=np.float32)
    vec /= np.linalg.norm(vec)
    cache.db.execute("INSERT INTO vectors VALUES ('m', 'h', 8, ?)", (vec.tobytes(),))
    cache.db.commit()
    assert cache.get_many("m", ["h"])["h"] == pytest.approx(vec, abs=1e-3)
    cache.close()


def test_a_cached_vector_keeps_its_length(tmp_path: Path) -> None:
    # The multilingual model's window vectors have norms near 0.99; its thresholds were fitted on them.
    # (The dense index makes its own rows unit length: test_store's unit-length test, from cache or not.)
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    vec = np.linspace(-1, 1, 8, dtype=np.float32)
    vec *= 0.99 / np.linalg.norm(vec)
    cache.put_many("m", {"h": vec})
    assert np.linalg.norm(cache.get_many("m", ["h"])["h"]) == pytest.approx(0.99, abs=1e-3)
    cache.close()


class DiesAfter(FakeEmbedder):
    """Encodes ``calls`` batches, then fails like a killed process would stop."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.allowed = calls

    def encode(self, texts, *, progress=None):
        if self.calls >= self.allowed:
            raise KeyboardInterrupt
        return super().encode(texts, progress=progress)


def test_a_killed_build_keeps_its_finished_batches(tiny_settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module, "EMBED_BATCH", 2)
    with pytest.raises(KeyboardInterrupt):
        build_index(tiny_settings, DiesAfter(2), count_tokens=word_count)
    assert len(_cache_rows(tiny_settings, "vectors")) == 4
    resumed = FakeEmbedder()
    report = build_index(tiny_settings, resumed, count_tokens=word_count)
    assert resumed.texts_encoded == report.chunks - 4


def _drop_article(settings, article_id: str) -> None:
    (settings.paths.knowledge_dir / f"{article_id}.md").unlink()


def test_builds_drop_cached_vectors_no_kept_build_uses(tiny_settings) -> None:
    build_index(tiny_settings, FakeEmbedder(), count_tokens=word_count)
    everything = len(_cache_rows(tiny_settings, "vectors"))
    _drop_article(tiny_settings, "beta")
    build_index(tiny_settings, FakeEmbedder(), count_tokens=word_count)
    assert len(_cache_rows(tiny_settings, "vectors")) == everything  # the previous build is kept, and uses them
    write_article(tiny_settings.paths.knowledge_dir, Article(id="gamma", title="Another", body="A new article."))
    build_index(tiny_settings, FakeEmbedder(), count_tokens=word_count)  # the build with beta is pruned now
    used = {c.text_hash for c in load_index(tiny_settings.paths.index_dir).chunks}
    left = {h for _m, h, _d, _b in _cache_rows(tiny_settings, "vectors")}
    assert used <= left and len(left) < everything + 1


def test_prune_cache_command_reports_and_keeps_what_the_live_build_uses(tiny_settings) -> None:
    build_index(tiny_settings, FakeEmbedder(), count_tokens=word_count)
    cache = EmbeddingCache(tiny_settings.paths.index_dir / "cache" / "embeddings.sqlite3")
    cache.put_many("fake-embedder|64", {"orphan": np.ones(64, dtype=np.float32) / 8})
    cache.close()
    index = tiny_settings.paths.index_dir
    result = CliRunner().invoke(
        cli, ["index", "prune-cache", "--index", str(index)], env={"DISCORD_TOKEN": ""}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "Removed 1 cached vectors" in result.output
    left = {h for _m, h, _d, _b in _cache_rows(tiny_settings, "vectors")}
    assert "orphan" not in left
    assert {c.text_hash for c in load_index(index).chunks} <= left


@pytest.mark.parametrize(("configured", "expected"), [(1, 1), (0, 3)])
def test_dense_search_runs_on_the_configured_number_of_threads(late_index, tiny_settings, configured, expected) -> None:
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(3)
    try:
        settings = replace(tiny_settings.retrieval, dense_search_threads=configured)
        retriever(late_index, replace(tiny_settings, retrieval=settings), late=FakeLate())
        assert faiss.omp_get_max_threads() == expected
    finally:
        faiss.omp_set_num_threads(before)
