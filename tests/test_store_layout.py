"""The retriever's tables stored with the build (bot.store.layout) and the stores read on demand
(bot.store.lazy): the same answers as tables made at start from stores parsed whole.

Tiny corpora and the fake models of tests/test_retrieval.py; real FAISS, real BM25, real files.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bot import retrieval
from bot.errors import IndexDamaged
from bot.store.layout import compute_layout
from bot.store.lazy import ChunkStore, SentenceStore
from bot.store.load import _read_chunks, _read_sentences, check_article_text
from tests import test_retrieval
from tests.test_retrieval import FakeLate, retriever

tiny_settings = test_retrieval.tiny_settings  # the fixtures of tests/test_retrieval.py, shared
late_index = test_retrieval.late_index

QUESTIONS = ("spokesperson", "Banks paused pilots on the cloud platform", "Zephyr model offline")


def _parsed_whole(index):
    """The index as a build made before the layout file loads: stores parsed whole, tables made at start."""
    return replace(index, layout=None, chunks=_read_chunks(index.path), sentences=_read_sentences(index.path))


def _ranked(passages) -> list[tuple]:
    return [(p.article_id, p.first, p.last, p.prior, p.chunk_id) for p in passages]


def test_the_build_stores_the_tables_the_start_would_compute(late_index) -> None:
    old = _parsed_whole(late_index)
    texts = [a.title for a in old.articles.values()] + [a.body for a in old.articles.values()]
    spans = np.load(late_index.path / "late_spans.npy"), late_index.late_packed[1]
    computed = compute_layout(old.sentences, old.chunks, 2, spans, texts)
    assert set(computed) == set(late_index.layout)
    for name, array in computed.items():
        assert np.array_equal(array, late_index.layout[name]), name


def test_a_build_without_stored_tables_ranks_the_same_windows(late_index, tiny_settings) -> None:
    stored = retriever(late_index, tiny_settings, late=FakeLate())
    computed = retriever(_parsed_whole(late_index), tiny_settings, late=FakeLate())
    for question in QUESTIONS:
        a = _ranked(stored.search(question, rerank=False).passages)
        b = _ranked(computed.search(question, rerank=False).passages)
        assert a and a == b


def test_the_chunk_store_reads_each_chunk_the_build_wrote(late_index) -> None:
    parsed = _read_chunks(late_index.path)
    store = ChunkStore(late_index.path / "chunks.jsonl", map_above=0)  # memory-mapped
    assert len(store) == len(parsed)
    assert list(store) == parsed
    assert store[-1] == parsed[-1]
    assert store[1:3] == parsed[1:3]
    with pytest.raises(IndexError):
        store[len(parsed)]


def test_the_sentence_store_gives_each_articles_spans_as_the_jsonl_does(late_index) -> None:
    assert isinstance(late_index.sentences, SentenceStore)
    assert dict(late_index.sentences) == _read_sentences(late_index.path)
    with pytest.raises(KeyError):
        late_index.sentences["no-such-article"]


def test_sentences_outside_their_article_are_refused(late_index) -> None:
    tables = dict(late_index.layout)
    tables["sentence_end"] = tables["sentence_end"].copy()
    tables["sentence_end"][-1] = len(late_index.articles[str(tables["article_ids"][-1])].body) + 1
    with pytest.raises(IndexDamaged, match="outside"):
        check_article_text(late_index.manifest, late_index.articles, SentenceStore(tables))


def test_only_the_best_windows_by_prior_become_candidates(late_index, tiny_settings, monkeypatch) -> None:
    every = retriever(late_index, tiny_settings, late=FakeLate()).search(QUESTIONS[1], rerank=False).passages
    monkeypatch.setattr(retrieval, "MAX_CANDIDATE_WINDOWS", 3)
    capped = retriever(late_index, tiny_settings, late=FakeLate()).search(QUESTIONS[1], rerank=False).passages
    assert len(every) > 3
    assert capped == every[:3]


def test_an_articles_chunks_are_found_from_the_table_as_by_walking_every_chunk(late_index) -> None:
    for article_id in [*late_index.articles, "no-such-article"]:
        walked = [c for c in late_index.chunks if c.article_id == article_id]
        assert late_index.chunks_of(article_id) == walked
        assert _parsed_whole(late_index).chunks_of(article_id) == walked
    assert late_index.chunks_of(next(iter(late_index.articles)))
