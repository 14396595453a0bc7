"""Turn a fetched page (or a plain-text file) into article text plus metadata.

trafilatura does the boilerplate removal and metadata discovery; this module
pins its options, keeps paragraph breaks as blank lines, and refuses to guess:
a fact the page does not declare (date, publisher, canonical URL) stays None.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import lxml.etree
import lxml.html
import trafilatura
from trafilatura.xml import xmltotxt

from bot.errors import ExtractionFailed

__all__ = ["ExtractedArticle", "extract_article", "extract_text_file"]


@dataclass(frozen=True)
class ExtractedArticle:
    """Article text and the metadata the source actually declared."""

    title: str | None
    publisher: str | None
    author: str | None
    published: datetime.date | None
    url: str | None
    text: str


# Site chrome survives trafilatura's fallback extractors on thin pages (an app
# shell would yield its logo and cookie banner as "text"), so prune it before
# extraction. Metadata is read before pruning, so bylines in headers still count.
_CLASS_OR_ID = "concat(' ', translate(@class, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', "
_CLASS_OR_ID += "'abcdefghijklmnopqrstuvwxyz'), ' ', translate(@id, "
_CLASS_OR_ID += "'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'))"
_PRUNE_XPATH = [
    "//nav",
    "//footer",
    "//noscript",
    "//header[not(ancestor::article)]",
    "//*[@role='navigation' or @role='contentinfo']",
    (
        f"//*[contains({_CLASS_OR_ID}, 'cookie') or contains({_CLASS_OR_ID}, 'consent')"
        f" or contains({_CLASS_OR_ID}, 'gdpr')]"
    ),
]

# What trafilatura substitutes for a missing site name (the URL's host): not declared.
_HOST_AS_SITENAME = re.compile(r"https?://(?:www\.|w[0-9]+\.)?([^/]+)")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def _no_text(url: str | None) -> ExtractionFailed:
    where = f"the page at {url}" if url else "the page"
    return ExtractionFailed(f"No article text found on {where}; link the article itself, or add it as a text file.")


def _clean(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    return value or None


def _web_url(candidate: str | None, base: str | None) -> str | None:
    """An absolute http(s) URL from a declared link, or None if it is anything else."""
    if not candidate:
        return None
    candidate = candidate.strip()
    try:
        absolute = urljoin(base, candidate) if base else candidate
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in absolute):
        return None
    return absolute


def _parse_tree(html: str) -> lxml.html.HtmlElement | None:
    try:
        return lxml.html.document_fromstring(html)
    except (lxml.etree.LxmlError, ValueError):
        return None


def _declared_canonical(tree: lxml.html.HtmlElement | None, base: str | None) -> str | None:
    """The page's own canonical URL (<link rel=canonical>, else og:url), if http(s)."""
    if tree is None:
        return None
    for link in tree.iter("link"):
        if "canonical" in (link.get("rel") or "").lower().split():
            found = _web_url(link.get("href"), base)
            if found:
                return found
    for meta in tree.iter("meta"):
        if (meta.get("property") or meta.get("name") or "").lower() == "og:url":
            found = _web_url(meta.get("content"), base)
            if found:
                return found
    return None


def _og_site_name(tree: lxml.html.HtmlElement | None) -> str | None:
    if tree is None:
        return None
    for meta in tree.iter("meta"):
        if (meta.get("property") or meta.get("name") or "").lower() == "og:site_name":
            return _clean(meta.get("content"))
    return None


def _publisher(sitename: object, doc_url: object, tree: lxml.html.HtmlElement | None) -> str | None:
    """trafilatura's site name unless it just echoes the URL host; else og:site_name."""
    declared = _og_site_name(tree)
    name = _clean(sitename)
    if name and isinstance(doc_url, str):
        host = _HOST_AS_SITENAME.match(doc_url)
        if host and host[1] == name and name != declared:
            name = None
    return name or declared


_DATE_META = ("article:published_time", "og:published_time", "datepublished", "pubdate", "publishdate", "date")


def _declared_date(tree: lxml.html.HtmlElement | None) -> datetime.date | None:
    """The publication date the page states itself (meta tags, then <time datetime>), if any.

    Preferred over trafilatura's guess, which is capped at today's date and can substitute another
    date it found on the page.
    """
    if tree is None:
        return None
    metas = {}
    for meta in tree.iter("meta"):
        key = (meta.get("property") or meta.get("name") or meta.get("itemprop") or "").lower()
        if key in _DATE_META and key not in metas:
            metas[key] = meta.get("content")
    for key in _DATE_META:
        found = _parse_date(metas.get(key))
        if found:
            return found
    for node in tree.iter("time"):
        if (node.get("itemprop") or "").lower() == "datepublished" or node.get("pubdate") is not None:
            found = _parse_date(node.get("datetime"))
            if found:
                return found
    return None


def _parse_date(value: object) -> datetime.date | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _body_text(body: lxml.etree._Element | None, title: str | None) -> str:
    """Render trafilatura's body tree one block per paragraph, blank lines between."""
    if body is None:
        return ""
    blocks: list[str] = []
    for child in body:
        rendered = xmltotxt(child, False).strip()
        if rendered:
            blocks.append(rendered)
    # The headline is already in ``title``; do not repeat it as the first paragraph.
    if blocks and title and body[0].tag == "head" and _clean(blocks[0]) == title:
        blocks.pop(0)
    return "\n\n".join(blocks)


def _run_trafilatura(html: str, url: str | None, *, precision: bool) -> object | None:
    try:
        return trafilatura.bare_extraction(
            html,
            url=url,
            favor_precision=precision,
            include_comments=False,
            include_tables=True,
            include_images=False,
            include_links=False,
            with_metadata=True,
            prune_xpath=_PRUNE_XPATH,
            date_extraction_params={
                "original_date": True,
                # Extensive search guesses from free text (copyright lines...).
                "extensive_search": False,
                "max_date": datetime.date.today().isoformat(),
            },
        )
    except (ValueError, TypeError, lxml.etree.LxmlError):
        return None


def extract_article(html: str, url: str | None = None) -> ExtractedArticle:
    """Extract the main article text and declared metadata from an HTML page.

    ``url`` is where the page was fetched from; it is the fallback for
    ``ExtractedArticle.url`` and resolves relative canonical links.
    Raises ExtractionFailed when the page holds no article text.
    """
    if not isinstance(html, str) or not html.strip():
        raise _no_text(url)

    doc = _run_trafilatura(html, url, precision=True)
    title = _clean(getattr(doc, "title", None))
    text = _body_text(getattr(doc, "body", None), title)
    if not text:
        # Precision mode can drop short but genuine articles; retry once, balanced.
        doc = _run_trafilatura(html, url, precision=False)
        title = _clean(getattr(doc, "title", None))
        text = _body_text(getattr(doc, "body", None), title)
    if doc is None or not text:
        raise _no_text(url)

    tree = _parse_tree(html)
    return ExtractedArticle(
        title=title,
        publisher=_publisher(getattr(doc, "sitename", None), getattr(doc, "url", None), tree),
        author=_clean(getattr(doc, "author", None)),
        published=_declared_date(tree) or _parse_date(getattr(doc, "date", None)),
        url=_declared_canonical(tree, url) or _web_url(url, None),
        text=text,
    )


def extract_text_file(text: str) -> ExtractedArticle:
    """Treat a plain-text upload as an article: first non-empty line is the title.

    Nothing else can be known from a bare text file, so all metadata is None.
    Raises ExtractionFailed when there is no text after the title.
    """
    normalised = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in normalised.split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise ExtractionFailed("The text file is empty; put the title on the first line and the article below it.")
    title = " ".join(lines[0].split())
    body = _BLANK_LINES.sub("\n\n", "\n".join(lines[1:])).strip()
    if not body:
        raise ExtractionFailed("The text file only has a title; put the article text below the first line.")
    return ExtractedArticle(
        title=title,
        publisher=None,
        author=None,
        published=None,
        url=None,
        text=body,
    )
