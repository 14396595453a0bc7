"""End to end: the biggest answer the bot can be asked to send stays inside every Discord limit.

A hand-made ten-excerpt ``Answer`` quoting very long paragraphs (markdown that doubles when
escaped, one sentence with no boundary at all, titles and outlet names past every limit) goes
through the bot's real send paths: ``/ask``, a mention, and "More sources" page after page. The
fake answers 50035 for anything over a limit, so ``fake.errors == []`` is the check, and every
quote shown must still be a verbatim slice of its article file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot.knowledge import load_knowledge
from bot.records import Answer, Article, Excerpt

from .e2e_support import (
    Env,
    ScriptedService,
    assert_no_pings,
    excerpt_blocks,
    final_message,
    source_article,
    start_env,
    without_ellipsis,
    write_article,
)
from .fake_discord import CallbackType

pytestmark = pytest.mark.slow

QUESTION = (
    "Walk me through *everything* the long-form coverage says about the order, the letter, the "
    "__jailbreak__ claim, the effect on foreign nationals and employees, the reaction of ~~critics~~ "
    "and lawmakers, the | cloud providers |, and what happens next for Mythos 5 and Fable 5 users "
    "in Europe, Asia and everywhere else, quoting as much as you can?"
)

SENTENCES = [
    "The letter arrived at 5:21 p.m. and told the company that *every* foreign national, inside the "
    "United States or abroad, had to lose access to Mythos 5 and Fable 5 at once.",
    "Officials cited a __narrow__ bypass of the model's safeguards, described in a report the company "
    "says it reviewed line by line, with markers like `**`, `__`, `~~` and `||` copied verbatim.",
    "Critics wrote that the order > any earlier export rule because it reached a model already deployed "
    "to hundreds of millions of people, and that #1 on their list was the lack of notice.",
    "Cloud providers paused endpoints region by region: us-east | eu-west | ap-south, each with its own "
    "_timeline_ and its own *exceptions* for customers who could prove citizenship.",
    "Lawmakers split on the question, with some praising caution and others calling the move a "
    "precedent that would chill every frontier release for years.",
]
# One sentence of more than 2,000 characters with no boundary: only a word cut can shorten it.
RUN_ON = "Employees who are foreign nationals " + ", ".join(
    f"including engineer number {n} on the *safety* team in office {n % 7}" for n in range(40)
)


def long_paragraph(seed: int, sentences: int) -> str:
    picked = [SENTENCES[(seed + i) % len(SENTENCES)] for i in range(sentences)]
    return " ".join(f"{s[:-1]} (part {seed}.{i})." for i, s in enumerate(picked))


def long_articles(knowledge_dir: Path) -> list[Article]:
    """Three long articles whose paragraphs run to thousands of characters, written as files."""
    articles = []
    for n in range(3):
        paragraphs = [long_paragraph(n * 10 + p, 12 + p * 6) for p in range(3)]
        if n == 1:
            paragraphs.insert(1, RUN_ON)
        article = Article(
            id=f"long-read-{n}",
            title=(f"The *long* read, part {n}: " + "inside the order that took [Mythos 5] offline, " * 8).strip(),
            body="\n\n".join(paragraphs),
            publisher=("The " + "Extremely Long-Winded _Weekly_ Review of Technology Policy " * 3).strip(),
            url=f"https://news.example/{'very-long-path/' * 20}{n}",
            published=dt.date(2026, 11, 20 + n),
        )
        write_article(knowledge_dir, article)
        articles.append(article)
    return articles


def ten_excerpts(articles: list[Article]) -> tuple[Excerpt, ...]:
    """Every paragraph of the three articles (ten in all), best first, each credited to many outlets."""
    outlets = tuple(
        Article(
            id=f"outlet-{k}",
            title=f"Syndicated copy {k}",
            body="x",
            publisher=f"Regional *Outlet* Number {k} of the Syndication Network",
        ).source
        for k in range(9)
    )
    excerpts = []
    for article in articles:
        start = 0
        for paragraph in article.body.split("\n\n"):
            start = article.body.index(paragraph, start)
            excerpts.append(
                Excerpt(
                    quote=paragraph,
                    start=start,
                    end=start + len(paragraph),
                    score=10.0 - len(excerpts),
                    source=article.source,
                    chunk_id=f"{article.id}:{len(excerpts)}",
                    also_reported_by=outlets,
                )
            )
            start += len(paragraph)
    assert len(excerpts) == 10
    assert all(len(e.quote) > 1500 for e in excerpts)
    return tuple(excerpts)


@pytest.fixture
def long_answer_service(knowledge_service, tmp_path):
    files = tmp_path / "long-knowledge"
    written = long_articles(files)
    articles = load_knowledge(files)  # quote the files as read back, as the bot would
    assert [a.id for a in articles] == [a.id for a in written] and articles[1].body == written[1].body
    answer = Answer(QUESTION, False, ten_excerpts(articles), knowledge_service.info().index_version)
    return ScriptedService(knowledge_service, {QUESTION: answer}), answer, articles


def within_limits(data: dict) -> None:
    """Discord's limits, checked here as well as by the fake (which would have answered 50035)."""
    assert len(data.get("content") or "") <= 2000
    for embed in data.get("embeds") or []:
        title, description = embed.get("title") or "", embed.get("description") or ""
        footer = (embed.get("footer") or {}).get("text") or ""
        assert len(title) <= 256 and len(description) <= 4096 and len(footer) <= 2048
        assert len(title) + len(description) + len(footer) <= 6000


def shown_excerpts(description: str, articles: list[Article]) -> list[str]:
    """The quotes of one message, each checked to be a verbatim prefix of a paragraph of its article."""
    shown = []
    for quote, attribution in excerpt_blocks(description):
        article = source_article(attribution, articles)
        assert "also reported by 9 outlets" in attribution
        text = without_ellipsis(quote)
        assert text in article.body and len(text) >= 100, text[:80]
        shown.append(text)
    return shown


async def test_a_ten_excerpt_answer_of_long_paragraphs_stays_within_every_discord_limit(
    discord_harness, long_answer_service, tmp_path
) -> None:
    service, answer, articles = long_answer_service
    env: Env = await start_env(discord_harness, service, tmp_path, excerpts_per_answer=10)
    message = await final_message(await env.ask(QUESTION))
    within_limits({"content": message.content, "embeds": message.embeds})
    shown = shown_excerpts(message.embeds[0]["description"], articles)
    assert 1 <= len(shown) < 10  # not all fit: the rest are under More sources

    # Page through "More sources" until every excerpt has been shown, best first.
    pages = [message]
    source = message
    while len(shown) < 10:
        [more_id] = [i for i in source.all_custom_ids() if i.startswith("dbot:more:")]
        rec = await env.fake.click_button(source, more_id, user=env.member)
        resp = await rec.wait_response()
        assert resp.type == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE and resp.ephemeral
        within_limits(resp.data)
        page = shown_excerpts(resp.embeds[0]["description"], articles)
        assert page, "a More sources page showed nothing"
        shown += page
        source = rec.original
        pages.append(source)
        assert len(pages) <= 10
    assert not any(i.startswith("dbot:more:") for i in source.all_custom_ids())  # the last page ends it
    for text, excerpt in zip(shown, answer.excerpts, strict=True):
        assert excerpt.quote.startswith(text)
    assert any(len(text) < len(e.quote) for text, e in zip(shown, answer.excerpts, strict=True))  # some were cut

    # The same answer as a reply to a mention (a channel message, not an interaction).
    asked = await env.mention(QUESTION)
    reply = await env.reply_to(asked)
    within_limits({"content": reply.content, "embeds": reply.embeds})
    assert shown_excerpts(reply.embeds[0]["description"], articles)

    assert_no_pings([*pages, reply])
    assert env.fake.errors == [], [(e.path, e.code, e.error_paths()) for e in env.fake.errors]
