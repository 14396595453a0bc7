"""The answer cache: conservative normalisation, LRU bound, one index version at a time, single flight."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.answer_cache import AnswerCache, normalise_question
from bot.errors import InvalidQuestion


@pytest.mark.parametrize(
    "asked",
    [
        "Which models are banned?",
        "which models are banned",
        "  WHICH  models are\tbanned?! ",
        "Which models are banned…",
    ],
)
def test_case_whitespace_and_trailing_punctuation_do_not_change_the_key(asked: str) -> None:
    assert normalise_question(asked) == "which models are banned"


@pytest.mark.parametrize(
    "first, second",
    [
        ("which models are banned?", "what models got banned?"),
        ("is opus 4.8 affected?", "is opus 48 affected?"),
        ("who is affected?", "who isn't affected?"),
        ("Are U.S. citizens affected?", "Are US citizens affected?"),
    ],
)
def test_questions_that_read_differently_keep_different_keys(first: str, second: str) -> None:
    assert normalise_question(first) != normalise_question(second)


def test_a_question_of_only_punctuation_keeps_its_punctuation() -> None:
    assert normalise_question("?!") == "?!"


def test_a_cached_value_is_returned_without_computing_again() -> None:
    cache: AnswerCache[str] = AnswerCache(4)
    calls: list[str] = []
    assert cache.get_or_compute("v1", "q", lambda: calls.append("q") or "answer") == "answer"
    assert cache.get_or_compute("v1", "q", lambda: calls.append("again") or "other") == "answer"
    assert calls == ["q"]


def test_a_new_index_version_drops_every_cached_value() -> None:
    cache: AnswerCache[str] = AnswerCache(4)
    cache.get_or_compute("v1", "q", lambda: "old answer")
    assert cache.get("v2", "q") is None
    assert cache.get("v1", "q") is None  # dropped, not kept aside for the old version
    assert cache.get_or_compute("v2", "q", lambda: "new answer") == "new answer"


def test_the_least_recently_used_value_goes_first_when_full() -> None:
    cache: AnswerCache[str] = AnswerCache(2)
    cache.get_or_compute("v", "a", lambda: "A")
    cache.get_or_compute("v", "b", lambda: "B")
    assert cache.get("v", "a") == "A"  # "a" is now the most recently used
    cache.get_or_compute("v", "c", lambda: "C")
    assert cache.get("v", "b") is None
    assert (cache.get("v", "a"), cache.get("v", "c")) == ("A", "C")
    assert len(cache) == 2


def test_capacity_zero_caches_nothing() -> None:
    cache: AnswerCache[str] = AnswerCache(0)
    cache.get_or_compute("v", "q", lambda: "A")
    assert cache.get("v", "q") is None


def test_a_value_refused_as_uncacheable_is_returned_but_not_kept() -> None:
    cache: AnswerCache[str] = AnswerCache(4)
    assert cache.get_or_compute("v1", "q", lambda: "from v2", cacheable=lambda v: v.endswith("v1")) == "from v2"
    assert cache.get("v1", "q") is None


def test_a_failure_is_not_cached() -> None:
    cache: AnswerCache[str] = AnswerCache(4)

    def fail() -> str:
        raise InvalidQuestion("bad")

    with pytest.raises(InvalidQuestion):
        cache.get_or_compute("v", "q", fail)
    assert cache.get_or_compute("v", "q", lambda: "fine") == "fine"


def test_identical_questions_in_flight_are_computed_once_for_every_thread() -> None:
    cache: AnswerCache[str] = AnswerCache(4)
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow() -> str:
        calls.append(1)
        started.set()
        release.wait()
        return "shared"

    with ThreadPoolExecutor(8) as pool:
        leader = pool.submit(cache.get_or_compute, "v", "q", slow)
        started.wait()
        followers = [pool.submit(cache.get_or_compute, "v", "q", slow) for _ in range(7)]
        while cache.stats().coalesced < 7:  # every follower is waiting on the leader's flight
            threading.Event().wait(0.01)
        release.set()
        results = [leader.result(), *(f.result() for f in followers)]
    assert results == ["shared"] * 8
    assert calls == [1]


def test_threads_waiting_on_a_failed_flight_get_its_error() -> None:
    cache: AnswerCache[str] = AnswerCache(4)
    started, release = threading.Event(), threading.Event()

    def failing() -> str:
        started.set()
        release.wait()
        raise InvalidQuestion("the question is empty")

    with ThreadPoolExecutor(2) as pool:
        leader = pool.submit(cache.get_or_compute, "v", "q", failing)
        started.wait()
        follower = pool.submit(cache.get_or_compute, "v", "q", lambda: "never")
        while cache.stats().coalesced < 1:
            threading.Event().wait(0.01)
        release.set()
        for future in (leader, follower):
            with pytest.raises(InvalidQuestion, match="empty"):
                future.result()


# -- through the real service ---------------------------------------------------------------------


def test_the_service_answers_a_repeat_from_the_cache_in_the_askers_own_words(real_service) -> None:
    first = real_service.ask_cached("Who is affected by the ban?")
    again = real_service.ask_cached("who is affected by the ban")
    assert again is not None and first is not None
    assert again.question == "who is affected by the ban"
    assert again.excerpts == first.excerpts and again.index_version == first.index_version


def test_a_cached_answer_equals_a_freshly_computed_one(real_service) -> None:
    question = "Are foreign nationals living in the US affected?"
    cached = real_service.ask_cached(question)
    fresh = real_service.ask(question)
    assert cached is not None
    assert (cached.question, cached.declined, cached.excerpts) == (fresh.question, fresh.declined, fresh.excerpts)


def test_looking_without_computing_misses_a_question_never_asked(real_service) -> None:
    assert real_service.ask_cached("What did the Commerce Department letter demand, exactly?", compute=False) is None


def test_looking_without_computing_finds_a_question_asked_before(real_service) -> None:
    real_service.ask_cached("Is this a permanent ban?")
    found = real_service.ask_cached("IS THIS A PERMANENT BAN", compute=False)
    assert found is not None and found.question == "IS THIS A PERMANENT BAN"


def test_the_services_cache_is_emptied_when_another_index_version_is_seen(real_service) -> None:
    question = "Did Anthropic disagree with the decision?"
    answer = real_service.ask_cached(question)
    assert answer is not None
    real_service.answer_cache.get("another-version", "anything")  # the live index moved on
    assert real_service.ask_cached(question, compute=False) is None
