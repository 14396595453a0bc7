"""The cleaner: boilerplate out, the article's own words kept, idempotent."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.cleaner import clean_text, split_title
from tests.conftest import SEEDS

HEADLINE = "Anthropic Suspends Mythos Model Access"
PARA = "The order came from the Commerce Department, a person said. It was unclear how long it would last."


def raw(*lines: str) -> str:
    return "\n".join(lines)


@pytest.mark.parametrize(
    "noise",
    [
        "tmnox3v6sl",
        "advertisement",
        "Advertisement",
        "Leave a Comment",
        "Your email address will not be published. Required fields are marked *",
        "You may also like",
        "Please provide the content that you want to be rewritten.",
        "Anthropic News | Anthropic Suspends Fable 5, Mythos 5 AI Models After US Security Order",
        "Key takeaways on Anthropic's concerning new Mythos AI model",
    ],
)
def test_cleaner_removes_boilerplate_line(noise: str) -> None:
    cleaned = clean_text(raw(HEADLINE, noise, PARA, noise))
    assert noise not in cleaned
    assert PARA in cleaned


@pytest.mark.parametrize(
    "bait",
    [
        "For more information on the impact of this withdrawal, you can read about the US government’s order.",
        "For more on how Anthropic is impacting business automation, "
        "check out this comparison of business automation solutions.",
        "Subscribe to our newsletter for weekly updates on how government regulations are reshaping the tech industry.",
    ],
)
def test_cleaner_removes_link_bait_sentence_but_keeps_the_rest_of_the_paragraph(bait: str) -> None:
    cleaned = clean_text(raw(HEADLINE, f"{PARA} {bait}"))
    assert bait not in cleaned
    assert PARA in cleaned


def test_cleaner_removes_pro_tip_call_to_action_with_its_paragraph() -> None:
    tip = "For companies relying on the API, ensure your compliance team reviews the guidelines."
    cleaned = clean_text(raw(HEADLINE, PARA, "Pro Tip:", tip, "Another paragraph of the article follows here."))
    assert "Pro Tip" not in cleaned and tip not in cleaned
    assert "Another paragraph of the article follows here." in cleaned


def test_cleaner_drops_a_heading_repeated_later() -> None:
    heading = "Why is the US government restricting AI access?"
    cleaned = clean_text(raw(HEADLINE, heading, PARA, heading, "Did you know?", "More text about it, as reported."))
    assert cleaned.count(heading) == 1


def test_cleaner_keeps_curly_quotes_and_dashes() -> None:
    text = "“We believe this is a misunderstanding,” Anthropic said — and it’s working to restore access."
    assert text in clean_text(raw(HEADLINE, text))


def test_cleaner_normalises_whitespace_and_separates_paragraphs_with_blank_lines() -> None:
    cleaned = clean_text("Title here\n\n\n  First   paragraph\u00a0text.  \nSecond paragraph.\r\n")
    assert cleaned == "Title here\n\nFirst paragraph text.\n\nSecond paragraph."


def test_cleaner_joins_bullet_continuation_lines() -> None:
    cleaned = clean_text(raw(HEADLINE, "  • Is this a permanent ban?", "    Anthropic has said it is working on it."))
    assert "Is this a permanent ban? Anthropic has said it is working on it." in cleaned
    assert "•" not in cleaned


@pytest.mark.parametrize("seed", sorted(SEEDS.glob("*.txt")) if SEEDS.exists() else [], ids=lambda p: p.name[:3])
def test_cleaner_is_idempotent_on_the_seed_articles(seed: Path) -> None:
    once = clean_text(seed.read_text(encoding="utf-8"))
    assert clean_text(once) == once


_ALPHABET = st.sampled_from(
    [
        "word ",
        "Anthropic ",
        ". ",
        "? ",
        "\n",
        "\n\n",
        "  • ",
        "    ",
        "“",
        "”",
        "—",
        "tmnox3v6sl",
        "advertisement",
        "Pro Tip:",
        "Leave a Comment",
        "Subscribe to our newsletter for updates. ",
        "Why is this happening?",
        "\u00a0",
        "\t",
        "A",
        "1",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_cleaner_is_idempotent(text: str) -> None:
    once = clean_text(text)
    assert clean_text(once) == once


def test_split_title_takes_headline_and_byline() -> None:
    title, author, body = split_title(clean_text(raw("US Urges Anthropic", "", "by Chief Editor", "", PARA)))
    assert (title, author, body) == ("US Urges Anthropic", "Chief Editor", PARA)
