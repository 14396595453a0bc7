"""Random bytes at the knowledge loader and the question cleaner: a domain error or a result, never a traceback."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import QuestionSettings
from bot.errors import InvalidQuestion, KnowledgeError
from bot.knowledge import load_knowledge, parse_article
from bot.retrieval import clean_question

FRONT = b"---\nid: fuzzed\ntitle: Fuzzed\n---\n"
# Random bytes, and random bytes inside a plausible file, so the parser's later stages are reached too.
file_bytes = st.one_of(
    st.binary(max_size=2000),
    st.builds(lambda b: FRONT + b, st.binary(max_size=500)),
    st.builds(lambda b: b"---\n" + b + b"\n---\nBody.\n", st.binary(max_size=300)),
    st.builds(lambda t: b"---\n" + t.encode("utf-8", "surrogatepass") + b"\n---\nBody.\n", st.text(max_size=200)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=file_bytes)
def test_the_knowledge_loader_never_raises_anything_but_a_knowledge_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "fuzzed.md").write_bytes(data)
        try:
            articles = load_knowledge(Path(tmp))
        except KnowledgeError as exc:
            assert "\n" not in str(exc).strip()
        else:
            assert [a.id for a in articles] == ["fuzzed"]


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=1000))
def test_parsing_any_text_never_raises_anything_but_a_knowledge_error(text: str) -> None:
    with contextlib.suppress(KnowledgeError):
        parse_article("---\n" + text + "\n---\nBody.\n", "fuzzed.md")


@settings(max_examples=500, deadline=None)
@given(raw=st.binary(max_size=2000))
def test_the_question_cleaner_never_raises_anything_but_invalid_question(raw: bytes) -> None:
    question = raw.decode("utf-8", "replace")
    try:
        cleaned = clean_question(question, QuestionSettings())
    except InvalidQuestion as exc:
        assert "\n" not in str(exc)
    else:
        assert cleaned and len(cleaned) <= QuestionSettings().max_chars
        assert not any(ord(c) < 32 for c in cleaned)


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.integers()), st.text()))
def test_the_question_cleaner_refuses_non_text_in_one_line(value: object) -> None:
    with contextlib.suppress(InvalidQuestion):
        clean_question(value, QuestionSettings())
