"""The knowledge base on disk: one ``knowledge/<id>.md`` per article, YAML front matter then the body.

A raw scraped article becomes that body through ``bot.cleaner``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import yaml

from bot.cleaner import clean_text, split_title
from bot.config import KnowledgeSettings
from bot.errors import KnowledgeError, NotFound
from bot.records import Article

DEFAULT_MAX_ARTICLE_BYTES = KnowledgeSettings().max_article_bytes

# libyaml's safe loader where PyYAML was built with it (its wheels are): the same rules as SafeLoader,
# about ten times faster, which a knowledge base of thousands of front matters feels at every build.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FIELDS = ("id", "title", "publisher", "url", "published", "added", "author", "notes")
REQUIRED = ("id", "title")
ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$")

# --- ids --------------------------------------------------------------------------------------


def slugify(text: str, max_len: int = 60) -> str:
    """A readable, path-safe id from a title."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    ascii_text = ascii_text.replace("'", "")
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > max_len:
            break
        slug = candidate
    return slug or "article"


def validate_id(article_id: object) -> str:
    """Ids become file names: refuse anything that is not a plain slug (no traversal)."""
    if not isinstance(article_id, str) or not ID_RE.match(article_id):
        raise KnowledgeError(
            f"Article id {article_id!r} is not valid: use lowercase letters, digits and hyphens (at most 80)."
        )
    return article_id


def unique_id(base: str, taken: Iterable[str]) -> str:
    taken_set = set(taken)
    if base not in taken_set:
        return base
    n = 2
    while f"{base}-{n}" in taken_set:
        n += 1
    return f"{base}-{n}"


# --- files ------------------------------------------------------------------------------------


def _parse_date(value: object, where: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise KnowledgeError(f"{where}: date {value!r} is not YYYY-MM-DD.")


def _optional_str(value: object, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, int, float)):
        text = str(value).strip()
        return text or None
    raise KnowledgeError(f"{where}: expected text, got {type(value).__name__}.")


def parse_article(text: str, where: str = "<article>") -> Article:
    """Parse one article file's text; errors name the file and line."""
    text = text.replace("\r\n", "\n")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise KnowledgeError(f"{where}:1: missing front matter (the file must start with a '---' line).")
    try:
        close = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise KnowledgeError(f"{where}: front matter is not closed by a '---' line.") from None
    header = "\n".join(lines[1:close])
    try:
        meta = yaml.load(header, Loader=_SAFE_LOADER) if header.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark else 1
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise KnowledgeError(f"{where}:{line}: front matter is not valid YAML ({problem}).") from None
    except (ValueError, TypeError, OverflowError, RecursionError):  # e.g. "published: 2024-13-45"
        raise KnowledgeError(f"{where}:2: front matter holds a value YAML cannot read (an impossible date?).") from None
    if not isinstance(meta, dict):
        raise KnowledgeError(f"{where}:2: front matter must be a mapping of fields.")

    def line_of(key: str) -> int:
        for i in range(1, close):
            if lines[i].split(":", 1)[0].strip() == key:
                return i + 1
        return 2

    unknown = [k for k in meta if k not in FIELDS]
    if unknown:
        key = str(unknown[0])
        raise KnowledgeError(f"{where}:{line_of(key)}: unknown field {key!r}; allowed: {', '.join(FIELDS)}.")
    for key in REQUIRED:
        if not meta.get(key):
            raise KnowledgeError(f"{where}:2: missing required field {key!r}.")
    article_id = meta["id"]
    try:
        validate_id(article_id)
    except KnowledgeError as exc:
        raise KnowledgeError(f"{where}:{line_of('id')}: {exc}") from None
    body = "\n".join(lines[close + 1 :]).rstrip()
    if not body.strip():
        raise KnowledgeError(f"{where}:{close + 2}: the article body is empty.")
    loc = lambda k: f"{where}:{line_of(k)}"  # noqa: E731
    return Article(
        id=article_id,
        title=_optional_str(meta.get("title"), loc("title")) or "",
        body=body,
        publisher=_optional_str(meta.get("publisher"), loc("publisher")),
        url=_optional_str(meta.get("url"), loc("url")),
        published=_parse_date(meta.get("published"), loc("published")),
        added=_parse_date(meta.get("added"), loc("added")),
        author=_optional_str(meta.get("author"), loc("author")),
        notes=_optional_str(meta.get("notes"), loc("notes")),
    )


def article_file_text(article: Article) -> str:
    """The file text for an article; ``parse_article(article_file_text(a)) == a``."""
    meta = {
        "id": article.id,
        "title": article.title,
        "publisher": article.publisher,
        "url": article.url,
        "published": article.published,
        "added": article.added,
        "author": article.author,
        "notes": article.notes,
    }
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=10_000)
    return f"---\n{header}---\n{article.body}\n"


def article_path(knowledge_dir: Path, article_id: str) -> Path:
    return Path(knowledge_dir) / f"{validate_id(article_id)}.md"


def too_big(name: str, size: int, limit: int) -> KnowledgeError:
    """The one message for an article over ``knowledge.max_article_bytes``, wherever it was read."""
    return KnowledgeError(
        f"{name} is {size / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB (knowledge.max_article_bytes)."
    )


def read_bounded(path: Path, limit: int, *, inside: Path | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or one line saying why not.

    Refuses, naming the file: a symbolic link leading out of ``inside``, a broken link, a device,
    a FIFO, a directory, a file over the limit. The size is checked with ``stat`` before reading
    and enforced by reading at most ``limit + 1`` bytes (a file may grow meanwhile); the file is
    opened non-blocking so a FIFO swapped in after the check cannot hang the reader.
    """
    path = Path(path)
    shown = f"knowledge/{path.name}" if inside is not None else str(path)
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        if path.is_symlink():
            raise KnowledgeError(f"{shown} is a broken symbolic link; remove it.") from None
        raise NotFound(f"{shown} does not exist.") from None
    except (OSError, RuntimeError) as exc:
        raise KnowledgeError(f"{shown} cannot be read ({exc}); remove or fix it.") from None
    if inside is not None and not real.is_relative_to(Path(inside).resolve()):
        raise KnowledgeError(
            f"{shown} is a symbolic link to a file outside the knowledge directory; "
            "copy the article into it instead, or remove the link."
        )
    try:
        info = os.stat(real)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a device, FIFO or socket"
            raise KnowledgeError(f"{shown} is {kind}, not a regular file; only article files can be read.")
        if info.st_size > limit:
            raise too_big(shown, info.st_size, limit)
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise KnowledgeError(f"{shown} is not a regular file; only article files can be read.")
            with os.fdopen(fd, "rb", closefd=False) as fh:
                data = fh.read(limit + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        raise KnowledgeError(f"{shown} cannot be read ({exc.strerror or exc}).") from None
    if len(data) > limit:
        raise too_big(shown, len(data), limit)
    return data


def read_article(path: Path, *, max_bytes: int = DEFAULT_MAX_ARTICLE_BYTES) -> Article:
    """One article file of ``knowledge/``: bounded, regular, UTF-8, valid front matter, id = file name."""
    path = Path(path)
    data = read_bounded(path, max_bytes, inside=path.parent)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KnowledgeError(f"{path}: not UTF-8 text.") from None
    article = parse_article(text, str(path))
    if article.id != path.stem:
        raise KnowledgeError(f"{path}:2: id {article.id!r} does not match the file name {path.stem!r}.")
    return article


def article_paths(directory: Path) -> list[Path]:
    """The article files of a knowledge directory, in name order (``README.md`` is not one)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []  # as a glob finds nothing there; load_knowledge says the directory is missing
    try:
        # Names sorted as strings: sorting 10,000 globbed paths took 0.3 s of every start.
        with os.scandir(directory) as entries:
            names = sorted(e.name for e in entries if e.name.endswith(".md") and not e.name.startswith("."))
    except OSError as exc:
        raise KnowledgeError(f"Knowledge directory {directory} cannot be read ({exc.strerror or exc}).") from None
    return [directory / name for name in names if name.lower() != "readme.md"]


def source_stamps(knowledge_dir: Path) -> dict[str, list[int]]:
    """Each article file's name, size and modification time (ns): what a build records, so a start can
    tell the knowledge base is unchanged by ``stat`` alone (parsing 10,000 front matters took 13 s)."""
    stamps: dict[str, list[int]] = {}
    for path in article_paths(knowledge_dir):
        try:
            st = path.stat()
        except OSError:
            continue  # vanished or unreadable: the stamps differ, so the articles are read and it is reported
        stamps[path.name] = [st.st_size, st.st_mtime_ns]
    return stamps


def load_knowledge(knowledge_dir: Path, *, max_bytes: int = DEFAULT_MAX_ARTICLE_BYTES) -> list[Article]:
    """Every article, validated; the first problem stops the load with a message naming the file."""
    directory = Path(knowledge_dir)
    if not directory.is_dir():
        raise KnowledgeError(f"Knowledge directory {directory} does not exist; pass --knowledge DIR.")
    articles: list[Article] = []
    seen: dict[str, Path] = {}
    for path in article_paths(directory):
        article = read_article(path, max_bytes=max_bytes)
        if article.id in seen:
            raise KnowledgeError(f"{path}:2: duplicate id {article.id!r} (also in {seen[article.id]}).")
        seen[article.id] = path
        articles.append(article)
    return articles


def get_article(knowledge_dir: Path, article_id: str, *, max_bytes: int = DEFAULT_MAX_ARTICLE_BYTES) -> Article:
    path = article_path(knowledge_dir, article_id)
    if not path.exists() and not path.is_symlink():
        raise NotFound(f"No article with id {article_id!r}; `directive-bot kb list` shows the ids.")
    return read_article(path, max_bytes=max_bytes)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file and ``os.replace`` so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_article(knowledge_dir: Path, article: Article) -> Path:
    path = article_path(knowledge_dir, article.id)
    text = article_file_text(article)
    parse_article(text, str(path))  # never write what we could not read back
    atomic_write_text(path, text)
    return path


def article_from_raw(
    raw: str,
    *,
    article_id: str | None = None,
    taken_ids: Iterable[str] = (),
    title: str | None = None,
    publisher: str | None = None,
    url: str | None = None,
    published: dt.date | None = None,
    added: dt.date | None = None,
    author: str | None = None,
    notes: str | None = None,
) -> Article:
    """Clean raw text into an Article; facts not given and not in the text stay ``None``."""
    cleaned = clean_text(raw)
    found_title, found_author, body = split_title(cleaned) if title is None else (None, None, cleaned)
    if title is not None:
        # The caller knows the headline; drop it from the body when the text repeats it.
        _, found_author, body = split_title(cleaned)
        if cleaned.split("\n\n", 1)[0].strip().casefold() != title.strip().casefold():
            body = cleaned
            found_author = None
    final_title = (title or found_title or "").strip()
    if not final_title:
        raise KnowledgeError("The article has no headline; give a title.")
    if not body.strip():
        raise KnowledgeError(f"The article {final_title!r} has no body text after cleaning.")
    base = article_id or slugify(final_title)
    article = Article(
        id=validate_id(article_id) if article_id else unique_id(base, taken_ids),
        title=final_title,
        body=body,
        publisher=publisher,
        url=url,
        published=published,
        added=added or dt.date.today(),
        author=author or found_author,
        notes=notes,
    )
    return article


def with_metadata(article: Article, **changes: object) -> Article:
    """A copy with changed front matter; the body and id never change here."""
    allowed = set(FIELDS) - {"id"}
    bad = set(changes) - allowed
    if bad:
        raise KnowledgeError(f"Cannot change {', '.join(sorted(bad))}.")
    return replace(article, **changes)  # type: ignore[arg-type]
