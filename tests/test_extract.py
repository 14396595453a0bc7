"""Tests for bot.extract: article text and declared metadata, nothing invented."""

from __future__ import annotations

import datetime

import pytest

from bot.errors import DirectiveError, ExtractionFailed
from bot.extract import ExtractedArticle, extract_article, extract_text_file

FETCHED_URL = "https://gazette.example.org/news/riverside-park?utm_source=feed"
CANONICAL_URL = "https://gazette.example.org/news/riverside-park"

PARAGRAPHS = [
    (
        "The city council voted seven to two on Wednesday evening to turn the "
        "disused freight yard on the east bank into a public riverside park, "
        "ending a planning dispute that has lasted almost a decade."
    ),
    (
        "The plan sets aside four hectares for meadow planting, a playground and "
        "a cycle path that links the old harbour bridge with the railway station. "
        "Construction is expected to begin next spring."
    ),
    (
        "Councillor Ahmed Rahman, who chairs the planning committee, said the "
        "decision showed that residents had been heard. Opponents argued the site "
        "should have been used for affordable housing."
    ),
    (
        "The project is budgeted at 12 million euros, most of which will come "
        "from a regional regeneration fund rather than local taxes."
    ),
]

NAV_TEXT = "Subscribe to our weekend edition"
FOOTER_TEXT = "Harbour Media Group. All rights reserved"
COMMENT_TEXTS = [
    "Finally! I have been waiting years for this park to happen in our neighbourhood.",
    "What a waste of money, we need houses not meadows for the people of this town.",
]
COOKIE_TEXT = "We use cookies to improve your experience"


def news_page(
    *,
    time_tag: str = '<time datetime="2024-03-14T09:30:00Z">14 March 2024</time>',
    canonical: str = f'<link rel="canonical" href="{CANONICAL_URL}">',
    paragraphs: list[str] = PARAGRAPHS,
) -> str:
    """A realistic news article page with all the usual boilerplate around it."""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    comments = "\n".join(
        f'<div class="comment"><p class="comment-author">reader{i}</p><p>{text}</p></div>'
        for i, text in enumerate(COMMENT_TEXTS)
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Council approves new riverside park | The Harbour Gazette</title>
  <meta property="og:site_name" content="The Harbour Gazette">
  <meta property="og:title" content="Council approves new riverside park">
  <meta property="og:type" content="article">
  {canonical}
  <script>window.dataLayer = [];</script>
  <style>body {{ font-family: serif; }}</style>
</head>
<body>
  <div class="cookie-banner" id="cookie-consent">
    <p>{COOKIE_TEXT}. By continuing to browse you accept our cookie policy.</p>
    <button>Accept all</button>
  </div>
  <header class="site-header">
    <a class="logo" href="/">The Harbour Gazette</a>
    <nav>
      <ul>
        <li><a href="/news">News</a></li>
        <li><a href="/sport">Sport</a></li>
        <li><a href="/weather">Weather</a></li>
        <li><a href="/subscribe">{NAV_TEXT}</a></li>
      </ul>
    </nav>
  </header>
  <main>
    <article>
      <h1>Council approves new riverside park</h1>
      <p class="byline">By
        <a rel="author" class="author" href="/staff/maria-lopez">Maria Lopez</a>
        · {time_tag}</p>
      {body}
    </article>
    <section id="comments" class="comments">
      <h2>Comments</h2>
      {comments}
    </section>
  </main>
  <footer class="site-footer">
    <p>Copyright 2019 {FOOTER_TEXT}.</p>
    <a href="/privacy">Privacy policy</a> <a href="/contact">Contact us</a>
  </footer>
</body>
</html>"""


@pytest.fixture(scope="module")
def article() -> ExtractedArticle:
    return extract_article(news_page(), FETCHED_URL)


# --------------------------------------------------------------------------- #
# Metadata
# --------------------------------------------------------------------------- #


def test_title_is_the_headline(article: ExtractedArticle) -> None:
    assert article.title == "Council approves new riverside park"


def test_publisher_is_the_declared_site_name(article: ExtractedArticle) -> None:
    assert article.publisher == "The Harbour Gazette"


def test_author_comes_from_the_byline(article: ExtractedArticle) -> None:
    assert article.author == "Maria Lopez"


def test_published_date_comes_from_the_time_element(article: ExtractedArticle) -> None:
    assert article.published == datetime.date(2024, 3, 14)


def test_url_is_the_declared_canonical_url(article: ExtractedArticle) -> None:
    assert article.url == CANONICAL_URL


# --------------------------------------------------------------------------- #
# Text
# --------------------------------------------------------------------------- #


def test_text_is_the_paragraphs_separated_by_blank_lines(
    article: ExtractedArticle,
) -> None:
    assert article.text == "\n\n".join(PARAGRAPHS)


@pytest.mark.parametrize(
    "boilerplate",
    [NAV_TEXT, FOOTER_TEXT, COOKIE_TEXT, "Privacy policy", "Comments", *COMMENT_TEXTS],
    ids=[
        "nav",
        "footer",
        "cookie-banner",
        "footer-link",
        "comments-heading",
        "comment-1",
        "comment-2",
    ],
)
def test_text_leaves_out_boilerplate(article: ExtractedArticle, boilerplate: str) -> None:
    assert boilerplate not in article.text


@pytest.mark.parametrize("code", ["dataLayer", "font-family"])
def test_text_leaves_out_scripts_and_styles(article: ExtractedArticle, code: str) -> None:
    assert code not in article.text


# --------------------------------------------------------------------------- #
# Unknowns stay unknown
# --------------------------------------------------------------------------- #


def test_missing_date_stays_none_despite_a_copyright_year() -> None:
    page = news_page(time_tag="")

    assert extract_article(page, FETCHED_URL).published is None


@pytest.mark.parametrize(
    "canonical",
    [
        '<link rel="canonical" href="javascript:alert(document.cookie)">',
        '<link rel="canonical" href="data:text/html,hi">',
        '<link rel="canonical" href="ftp://gazette.example.org/park">',
        '<link rel="canonical" href="">',
    ],
    ids=["javascript", "data", "ftp", "empty"],
)
def test_non_web_canonical_link_is_ignored_for_the_fetched_url(canonical: str) -> None:
    page = news_page(canonical=canonical)

    assert extract_article(page, FETCHED_URL).url == FETCHED_URL


def test_relative_canonical_link_is_resolved_against_the_fetched_url() -> None:
    page = news_page(canonical='<link rel="canonical" href="/news/riverside-park">')

    assert extract_article(page, FETCHED_URL).url == CANONICAL_URL


def test_url_is_none_without_canonical_link_or_fetched_url() -> None:
    page = news_page(canonical="")

    assert extract_article(page).url is None


def test_publisher_is_not_invented_from_the_host_name() -> None:
    page = (
        "<html><head><title>Park approved</title></head><body><article>"
        + "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
        + "</article></body></html>"
    )

    article = extract_article(page, FETCHED_URL)

    assert (article.publisher, article.author, article.published) == (None, None, None)


# --------------------------------------------------------------------------- #
# Failures
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "html",
    [
        # A JavaScript app shell: chrome and a cookie banner, no article.
        f"""<html><head><title>The Harbour Gazette</title></head><body>
        <div class="cookie-banner"><p>{COOKIE_TEXT}.</p><button>Accept</button></div>
        <header><a href="/">The Harbour Gazette</a>
          <nav><a href="/news">News</a> <a href="/sport">Sport</a></nav></header>
        <div id="app"></div><noscript>Please enable JavaScript.</noscript>
        <footer><p>Copyright 2019 {FOOTER_TEXT}.</p></footer></body></html>""",
        "<html><head><title>Empty</title></head><body></body></html>",
        "",
        "   \n  ",
    ],
    ids=["app-shell", "empty-body", "empty-string", "whitespace"],
)
def test_page_without_article_text_raises_extraction_failed(html: str) -> None:
    with pytest.raises(ExtractionFailed, match="No article text found"):
        extract_article(html, FETCHED_URL)


def test_extraction_failure_is_a_one_line_directive_error_naming_the_page() -> None:
    with pytest.raises(DirectiveError) as caught:
        extract_article("<html><body></body></html>", FETCHED_URL)

    assert FETCHED_URL in str(caught.value)
    assert "\n" not in str(caught.value)


# --------------------------------------------------------------------------- #
# Plain-text files
# --------------------------------------------------------------------------- #


def test_text_file_first_non_empty_line_is_the_title_and_the_rest_is_text() -> None:
    article = extract_text_file("\n\n  Park approved  \n\nFirst paragraph.\n\nSecond one.\n")

    assert article == ExtractedArticle(
        title="Park approved",
        publisher=None,
        author=None,
        published=None,
        url=None,
        text="First paragraph.\n\nSecond one.",
    )


@pytest.mark.parametrize(
    ("raw", "expected_text"),
    [
        ("Title\r\nLine one\r\n\r\n\r\n\r\nLine two", "Line one\n\nLine two"),
        ("\ufeffTitle\nBody", "Body"),
        ("Title\nBody line\ncontinues here", "Body line\ncontinues here"),
        ("Title\n\n   \n\t\nBody", "Body"),
    ],
    ids=["crlf-and-blank-runs", "bom", "single-newlines-kept", "whitespace-lines"],
)
def test_text_file_normalises_line_endings_and_blank_runs(raw: str, expected_text: str) -> None:
    assert extract_text_file(raw).text == expected_text


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("", "empty"), ("\n \n\t", "empty"), ("Only a title\n\n", "only has a title")],
)
def test_text_file_without_article_text_raises_extraction_failed(raw: str, reason: str) -> None:
    with pytest.raises(ExtractionFailed, match=reason):
        extract_text_file(raw)


def test_a_declared_publication_date_is_taken_as_written_even_after_today() -> None:
    html = (
        "<html><head><title>Future story</title>"
        '<meta property="article:published_time" content="2099-03-04T10:00:00Z"></head>'
        "<body><article><h1>Future story</h1>"
        + "".join(f"<p>Paragraph {n} of a story long enough to count as an article body text.</p>" for n in range(6))
        + "</article></body></html>"
    )
    assert extract_article(html, "https://news.example.com/future").published == datetime.date(2099, 3, 4)
