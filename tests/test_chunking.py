import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.chunking import article_sentences, chunk_article, paragraphs, split_sentences
from bot.knowledge import load_knowledge
from bot.records import Article
from tests.conftest import KNOWLEDGE, word_count

WORDS = st.sampled_from(
    ["Anthropic", "said", "the", "order", "Mr.", "U.S.", "5:21", "p.m.", "“quoted”", "—", "models", "e.g."]
)
SENTENCE = st.builds(
    lambda words, end: " ".join(words) + end, st.lists(WORDS, min_size=1, max_size=12), st.sampled_from([".", "?", "!"])
)
PARAGRAPH = st.lists(SENTENCE, min_size=1, max_size=5).map(" ".join)
HEADING = st.sampled_from(["Why did it happen?", "What comes next", "Background"])
BODY = st.lists(st.one_of(PARAGRAPH, PARAGRAPH, HEADING), min_size=1, max_size=8).map("\n\n".join)


def article(body: str, article_id: str = "a") -> Article:
    return Article(id=article_id, title="A title", body=body)


@settings(max_examples=200, deadline=None)
@given(BODY, st.integers(min_value=5, max_value=80), st.integers(min_value=0, max_value=2))
def test_every_chunk_is_an_exact_slice_of_the_body(body: str, target: int, overlap: int) -> None:
    art = article(body)
    for chunk in chunk_article(art, target_tokens=target, overlap_sentences=overlap, count_tokens=word_count):
        assert art.body[chunk.start : chunk.end] == chunk.text


@settings(max_examples=200, deadline=None)
@given(BODY, st.integers(min_value=5, max_value=80))
def test_chunks_start_and_end_on_sentence_boundaries(body: str, target: int) -> None:
    art = article(body)
    sentences = [s for _, s in article_sentences(art)]
    starts = {s.start for s in sentences}
    ends = {s.end for s in sentences}
    for chunk in chunk_article(art, target_tokens=target, count_tokens=word_count):
        assert chunk.start in starts
        assert chunk.end in ends


@settings(max_examples=200, deadline=None)
@given(BODY, st.integers(min_value=5, max_value=80))
def test_every_sentence_outside_headings_is_in_some_chunk(body: str, target: int) -> None:
    art = article(body)
    chunks = chunk_article(art, target_tokens=target, count_tokens=word_count)
    for _, s in article_sentences(art):
        assert any(c.start <= s.start and s.end <= c.end for c in chunks)


def test_chunk_ids_are_stable_and_numbered_in_order() -> None:
    art = article("One two three. Four five six.\n\nSeven eight nine. Ten eleven twelve.", "the-id")
    chunks = chunk_article(art, target_tokens=4, count_tokens=word_count)
    assert [c.id for c in chunks] == [f"the-id:{n}" for n in range(len(chunks))]
    assert chunks == chunk_article(art, target_tokens=4, count_tokens=word_count)


def test_consecutive_chunks_overlap_by_one_sentence() -> None:
    art = article("Alpha one two. Beta three four. Gamma five six. Delta seven eight.")
    first, second, *_ = chunk_article(art, target_tokens=6, overlap_sentences=1, count_tokens=word_count)
    assert first.text == "Alpha one two. Beta three four."
    assert second.text.startswith("Beta three four.")


def test_a_sentence_longer_than_the_target_becomes_its_own_chunk() -> None:
    long = "This sentence has very many words in it and keeps going well past the target size."
    chunks = chunk_article(article(long), target_tokens=3, count_tokens=word_count)
    assert [c.text for c in chunks] == [long]


def test_headings_are_context_not_chunk_text() -> None:
    art = article("Why did it happen?\n\nBecause of the order. It said so.")
    (chunk,) = chunk_article(art, target_tokens=50, count_tokens=word_count)
    assert chunk.heading == "Why did it happen?"
    assert "Why did it happen?" not in chunk.text
    assert chunk.embed_text.startswith("A title — Why did it happen?\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("He advised Mr. Trump. Then he left.", ["He advised Mr. Trump.", "Then he left."]),
        (
            "It arrived at 5:21 p.m. informing it of the decision.",
            ["It arrived at 5:21 p.m. informing it of the decision."],
        ),
        ("“I’m speechless,” he said. He added more.", ["“I’m speechless,” he said.", "He added more."]),
    ],
)
def test_split_sentences_respects_abbreviations_and_quotes(text: str, expected: list[str]) -> None:
    assert [s.text for s in split_sentences(text)] == expected


def test_paragraph_offsets_point_into_the_body() -> None:
    body = "First para.\n\nSecond para.\n\n\nThird."
    assert [body[p.start : p.end] for p in paragraphs(body)] == ["First para.", "Second para.", "Third."]


def test_bundled_articles_chunk_with_exact_offsets() -> None:
    for art in load_knowledge(KNOWLEDGE):
        chunks = chunk_article(art, target_tokens=96, count_tokens=word_count)
        assert chunks
        assert all(art.body[c.start : c.end] == c.text for c in chunks)
