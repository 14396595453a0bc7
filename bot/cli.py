"""The command line: parse, call the core, print. Domain errors become one line and a non-zero exit."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bot.config import Settings, load_settings, settings_to_dict
from bot.errors import DirectiveError, InvalidQuestion
from bot.i18n import ENGLISH, LANGUAGES, Frame, frame, language_of

if TYPE_CHECKING:
    from bot.db import Database
    from bot.evaluation import EvalSet
    from bot.kb import Preview
    from bot.pins import PinDraft, SentenceChoice
    from bot.records import Answer, Source
    from bot.service import KnowledgeService

EXIT_ERROR = 1
PROGRESS_DELAY_SECONDS = 3.0  # the bar appears only for builds that take longer than this
PASSAGES_LISTED = 25  # sentences a passage search prints by default

log = logging.getLogger(__name__)


# --- shared options -----------------------------------------------------------------------------


def _remember(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is not None:
            ctx.ensure_object(dict)[key] = value
        return value

    return callback


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--config``, ``--knowledge`` and ``--index`` on every command (before or after its name)."""
    options = [
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, path_type=Path),
            expose_value=False,
            callback=_remember("config"),
            help="YAML settings file (default: built-in settings, then DIRECTIVE_BOT__* variables).",
        ),
        click.option(
            "--knowledge",
            type=click.Path(file_okay=False, path_type=Path),
            expose_value=False,
            callback=_remember("knowledge"),
            help="Knowledge directory (default: ./knowledge of the project).",
        ),
        click.option(
            "--index",
            type=click.Path(file_okay=False, path_type=Path),
            expose_value=False,
            callback=_remember("index"),
            help="Index directory (default: ./index of the project).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def settings_from(ctx: click.Context) -> Settings:
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        obj["settings"] = load_settings(obj.get("config"), knowledge=obj.get("knowledge"), index=obj.get("index"))
        _apply_threads(obj["settings"])
    return obj["settings"]


def _apply_threads(settings: Settings) -> None:
    """torch's thread count is process-wide, so the edge sets it (``embedding.threads``), never the embedder."""
    if settings.embedding.threads:
        import torch

        torch.set_num_threads(settings.embedding.threads)


def say(message: str) -> None:
    """Status lines go to stderr so stdout stays clean for answers and JSON."""
    click.echo(message, err=True)


def open_service(ctx: click.Context, *, build_if_needed: bool = True, pins: bool = False) -> KnowledgeService:
    """The knowledge service; with ``pins``, serving the moderators' pins of the bot's database (if there is one)."""
    from bot.db import DB_FILENAME
    from bot.service import KnowledgeService

    settings = settings_from(ctx)
    service = KnowledgeService.open(settings, build_if_needed=build_if_needed, log=say)
    if pins and (settings.paths.data_dir / DB_FILENAME).exists():
        service.use_pins(_database(ctx))
    return service


def _database(ctx: click.Context) -> Database:
    """The bot's database, opened once per command and closed with it."""
    from bot.db import Database

    obj = ctx.ensure_object(dict)
    if "db" not in obj:
        obj["db"] = Database.open(settings_from(ctx))
        ctx.call_on_close(obj["db"].close)
    return obj["db"]


def progress_bar() -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A tqdm bar on a terminal, shown once a build has run a few seconds (quick builds stay quiet)."""
    if not sys.stderr.isatty():
        return (lambda _done, _total: None), (lambda: None)
    from tqdm import tqdm

    bar: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            if total == 0:
                return
            bar["bar"] = tqdm(
                total=total, unit="chunk", desc="embedding", file=sys.stderr, leave=False, delay=PROGRESS_DELAY_SECONDS
            )
        b = bar["bar"]
        b.update(done - b.n)

    def close() -> None:
        if "bar" in bar:
            bar["bar"].close()

    return update, close


class Group(click.Group):
    """Turns domain errors into one line on stderr and exit code 1, never a traceback.

    Anything unexpected also ends in one line (the traceback goes to the log with ``-v``), so a
    person never has to read a stack to learn that something failed.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DirectiveError as exc:
            click.echo(f"error: {one_line(exc)}", err=True)
            ctx.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            log.debug("unexpected error", exc_info=True)
            click.echo(
                f"error: unexpected {type(exc).__name__}: {one_line(exc)} (run with -v for the details)", err=True
            )
            ctx.exit(EXIT_ERROR)


def one_line(exc: BaseException) -> str:
    """The first line of an error's message, or its type when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.option("-v", "--verbose", is_flag=True, help="Log debug details to stderr.")
@click.version_option(package_name="directive-bot")
def cli(verbose: bool) -> None:
    """Answer questions about the Fable 5 / Mythos 5 directive by quoting a curated knowledge base."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    configure_process(verbose=verbose)


def configure_process(*, verbose: bool = False) -> None:
    """Process-wide settings of the libraries underneath, made once here at the edge, never by the core."""
    from bot.embedding import PROCESS_ENVIRONMENT

    for name, value in PROCESS_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if not verbose:
        # bm25s sets its own logger to DEBUG when it is imported (after this, as imports are lazy) and
        # reports every index it builds; a filter, unlike a level, survives that.
        logging.getLogger("bm25s").addFilter(_warnings_and_worse)


def _warnings_and_worse(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


# --- ask ----------------------------------------------------------------------------------------


def format_answer(answer: Answer, tr: Frame = ENGLISH) -> str:
    """Plain text for a terminal: each quote, then where it comes from; the text around them in ``tr``'s language."""
    lines = [tr.gettext("Q: {question}").format(question=answer.question), ""]
    if answer.declined:
        lines.append(tr.gettext("The knowledge base does not cover that, so there is nothing to quote."))
        if answer.covered_topics:
            lines.append(tr.gettext("It covers, for example:"))
            lines.extend(f"  - {t}" for t in answer.covered_topics)
        return "\n".join(lines)
    note = tr.sources_note()
    if note:
        lines += [note, ""]
    if answer.unknown_names:
        names = tr.gettext(", ").join(answer.unknown_names)
        lines += [
            tr.gettext("The articles never mention {names}; these are the closest passages found.").format(names=names),
            "",
        ]
    elif answer.tentative:
        lines += [tr.gettext("These are the closest passages found; they may not answer the question exactly."), ""]
    for n, ex in enumerate(answer.excerpts, start=1):
        quote = ex.quote.replace("\n\n", "\n   ")
        lines.append(f"{n}. “{quote}”")
        pinned = f" · {tr.pinned_mark()}" if ex.pinned else ""
        lines.append(f"   — {attribution(ex.source)}{pinned}")
        if ex.also_reported_by:
            names = "; ".join(s.publisher or s.title for s in ex.also_reported_by)
            count = len(ex.also_reported_by)
            also = tr.ngettext(
                "Also reported by {count} more: {names}", "Also reported by {count} more: {names}", count
            )
            lines.append("   " + also.format(count=count, names=names))
        lines.append("")
    lines.append(tr.gettext("(index {version})").format(version=answer.index_version))
    return "\n".join(lines)


def _frame_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Frame:
    """``--lang CODE`` as a frame, refused at once (before any model loads) when there is no catalogue."""
    if value is None:
        return ENGLISH
    if language_of(value) is None:
        raise click.BadParameter(f"no messages in {value!r}; use one of {', '.join(LANGUAGES)}.")
    return frame(value)


def attribution(source: Source) -> str:
    """Title, then publisher, date and link where known (nothing is guessed)."""
    return ", ".join(p for p in (source.title, source.publisher, source.published, source.url) if p)


@cli.command()
@common_options
@click.argument("question", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (one per line when reading stdin).")
@click.option("--excerpts", type=click.IntRange(1, 10), default=None, help="How many excerpts at most.")
@click.option(
    "--lang",
    "lang",
    metavar="CODE",
    default=None,
    callback=_frame_option,
    help="Language of the text around the quotes (de, fr, es, pt, hi, zh-CN, zh-TW, ja, ru; default English). "
    "Quotes stay as the articles print them.",
)
@click.pass_context
def ask(ctx: click.Context, question: str | None, as_json: bool, excerpts: int | None, lang: Frame) -> None:
    """Ask one QUESTION, or '-' to read one question per line from stdin (the model loads once)."""
    if question is None:
        raise click.UsageError('Give a question, e.g. directive-bot ask "Who is affected?", or - to read stdin.')
    if question != "-":
        from bot.retrieval import clean_question

        clean_question(question, settings_from(ctx).question)  # refuse bad input before loading models
    service = open_service(ctx, pins=True)
    if question != "-":
        answer = service.ask(question, max_excerpts=excerpts)
        click.echo(json.dumps(answer.to_json(), ensure_ascii=False) if as_json else format_answer(answer, lang))
        return
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = service.ask(line, max_excerpts=excerpts)
        except InvalidQuestion as exc:
            if as_json:
                click.echo(json.dumps({"question": line.strip()[:200], "error": str(exc)}, ensure_ascii=False))
            else:
                click.echo(f"error: {exc}\n")
            continue
        click.echo(json.dumps(answer.to_json(), ensure_ascii=False) if as_json else format_answer(answer, lang) + "\n")
        sys.stdout.flush()


# --- index --------------------------------------------------------------------------------------


@cli.group(cls=Group)
def index() -> None:
    """Build, check and inspect the search index (no Discord token needed)."""


@index.command("build")
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object.")
@click.option("--force", is_flag=True, help="Rebuild even when nothing changed.")
@click.pass_context
def index_build(ctx: click.Context, as_json: bool, force: bool) -> None:
    """Embed new or changed chunks and swap the new index in atomically."""
    from bot.service import KnowledgeService

    settings = settings_from(ctx)
    started = time.time()
    service = KnowledgeService.for_building(settings)
    update, close = progress_bar() if not as_json else ((lambda _d, _t: None), lambda: None)
    try:
        report, logged = service.build_for_others(started_by="cli", started=started, force=force, progress=update)
    finally:
        close()
    if report.repaired:
        say(f"The previous index was damaged ({report.repaired}); it has been rebuilt.")
    if not logged:
        say(
            "warning: the new index is live, but the rebuild log could not be written "
            "(the database stayed locked or unwritable); `/kb status` will not list this build."
        )
    if as_json:
        click.echo(json.dumps(report.to_json()))
        return
    if report.unchanged:
        click.echo(
            f"Index {report.index_version} is up to date: {report.articles} articles, "
            f"{report.chunks} chunks; embedded 0 chunks."
        )
        return
    changes = ", ".join(
        f"{len(ids)} {label}"
        for label, ids in (("added", report.added), ("changed", report.changed), ("removed", report.removed))
        if ids
    )
    click.echo(
        f"Built index {report.index_version}: {report.articles} articles, {report.chunks} chunks, "
        f"embedded {report.embedded} in {report.seconds:.1f}s" + (f" ({changes})." if changes else ".")
    )


@index.command("status")
@common_options
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def index_status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Compare the built index with the knowledge directory: fresh or stale, and what changed."""
    from bot.store import index_status

    status = index_status(settings_from(ctx))
    if status.damaged is not None and not as_json:
        raise DirectiveError(f"The index is damaged: {status.damaged}")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "built": status.built,
                    "fresh": status.fresh,
                    "index_version": status.index_version,
                    "built_at": status.built_at,
                    "articles": status.articles,
                    "chunks": status.chunks,
                    "added": list(status.added),
                    "changed": list(status.changed),
                    "removed": list(status.removed),
                    "settings_changed": list(status.settings_changed),
                    "damaged": status.damaged,
                }
            )
        )
        if status.damaged is not None:
            ctx.exit(EXIT_ERROR)
        return
    click.echo(f"Index: {status.summary}")
    if status.built_at:
        click.echo(f"Built at: {status.built_at}")
    for label, ids in (("added", status.added), ("changed", status.changed), ("removed", status.removed)):
        for article_id in ids:
            click.echo(f"  {label}: {article_id}")
    if not status.fresh:
        click.echo("Run `directive-bot index build` to bring it up to date.")


@index.command("verify")
@common_options
@click.pass_context
def index_verify(ctx: click.Context) -> None:
    """Check files, hashes, counts and vectors; exit non-zero with the reason on any mismatch."""
    from bot.store import verify_index

    settings = settings_from(ctx)
    index = verify_index(settings, expect_model=settings.embedding.model)
    counts = index.manifest["counts"]
    click.echo(
        f"OK: index {index.version}, {counts['articles']} articles, {counts['chunks']} chunks, all hashes match."
    )


@index.command("prune-cache")
@common_options
@click.pass_context
def index_prune_cache(ctx: click.Context) -> None:
    """Drop cached vectors no build on disk uses and give the space back (builds prune on their own too)."""
    from bot.store import BuildLock
    from bot.store.build import prune_cache

    index_dir = Path(settings_from(ctx).paths.index_dir)
    cache = index_dir / "cache" / "embeddings.sqlite3"
    before = cache.stat().st_size if cache.exists() else 0
    with BuildLock(index_dir, "index prune-cache"):  # a build running now would lose what it embeds
        removed, kept = prune_cache(index_dir)
    after = cache.stat().st_size if cache.exists() else 0
    click.echo(f"Removed {removed} cached vectors, kept {kept}; cache {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB.")


# --- knowledge base -----------------------------------------------------------------------------


@cli.group(cls=Group)
def kb() -> None:
    """Add, remove and inspect articles in the knowledge base."""


def _kb(ctx: click.Context):
    from bot.db import Database
    from bot.kb import KnowledgeBase

    settings = settings_from(ctx)
    db = Database.open(settings)
    ctx.call_on_close(db.close)
    return KnowledgeBase(settings, db)


def _actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def _parse_date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a YYYY-MM-DD date.") from None


def _show_preview(preview: Preview) -> None:
    a = preview.article
    click.echo(f"Title:     {a.title}")
    click.echo(f"Id:        {a.id}")
    click.echo(f"Publisher: {a.publisher or 'unknown'}")
    click.echo(f"Published: {a.published or 'unknown'}")
    click.echo(f"URL:       {a.url or 'none'}")
    click.echo(f"Words:     {preview.words}")
    first = preview.first_paragraph
    click.echo(f"First paragraph: {first[:400]}{'…' if len(first) > 400 else ''}")
    for d in preview.duplicates:
        click.echo(f"Duplicate? {d.article_id} ({d.title}): {d.reason}")


def _confirm(prompt: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise DirectiveError("Refusing to change the knowledge base without confirmation; add --yes.")
    if not click.confirm(prompt, default=False):
        raise DirectiveError("Cancelled; nothing was changed.")


@kb.command("import")
@common_options
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--publisher", default=None)
@click.option("--url", default=None)
@click.option("--published", default=None, help="YYYY-MM-DD")
@click.pass_context
def kb_import(
    ctx: click.Context, files: tuple[Path, ...], publisher: str | None, url: str | None, published: str | None
) -> None:
    """Clean raw article FILES into knowledge/ (title from the headline line; unknown facts left null)."""
    meta: dict[str, Any] = {}
    if publisher:
        meta["publisher"] = publisher
    if url:
        meta["url"] = url
    if published:
        meta["published"] = _parse_date(published)
    changes = _kb(ctx).import_files(files, actor=_actor(), **meta)
    for change in changes:
        click.echo(f"added {change.article.id}: {change.article.title}")
        _warn_if_pending(change)
    click.echo(f"{len(changes)} article(s) imported; run `directive-bot index build` to index them.")


@kb.command("add")
@common_options
@click.argument("source")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--no-rebuild", is_flag=True, help="Only write the article; build the index later.")
@click.pass_context
def kb_add(ctx: click.Context, source: str, yes: bool, no_rebuild: bool) -> None:
    """Add an article from a URL (fetched safely) or a FILE (.md with front matter, .txt, .html)."""
    base = _kb(ctx)
    path = Path(source)
    if "://" in source:  # any scheme goes to the fetcher, which refuses all but http(s) with a reason
        preview = base.prepare_url(source)
    elif path.exists() or path.is_symlink():
        preview = base.prepare_path(path)
    else:
        raise DirectiveError(f"{source} is neither an http(s) URL nor an existing file.")
    _show_preview(preview)
    _confirm("Add this article?", yes)
    change = base.add(preview, actor=_actor())
    click.echo(f"Added {change.article.id}.")
    _warn_if_pending(change)
    if not no_rebuild:
        _rebuild_after_change(ctx)


@kb.command("remove")
@common_options
@click.argument("article_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--no-rebuild", is_flag=True)
@click.pass_context
def kb_remove(ctx: click.Context, article_id: str, yes: bool, no_rebuild: bool) -> None:
    """Remove the article ARTICLE_ID."""
    base = _kb(ctx)
    article = base.get(article_id)
    click.echo(f"Remove {article.id}: {article.title} ({article.publisher or 'publisher unknown'})?")
    _confirm("Remove this article?", yes)
    change = base.remove(article_id, actor=_actor())
    click.echo(f"Removed {article_id}.")
    _warn_if_pending(change)
    if not no_rebuild:
        _rebuild_after_change(ctx)


def _warn_if_pending(change: object) -> None:
    if getattr(change, "audit_pending", False):
        say("warning: the change was made, but its audit entry could not be completed; `kb log` shows it as pending.")


def _rebuild_after_change(ctx: click.Context) -> None:
    """The same incremental build `index build` runs; a running bot picks it up by itself."""
    ctx.invoke(index_build, as_json=False, force=False)


@kb.command("list")
@common_options
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def kb_list(ctx: click.Context, as_json: bool) -> None:
    """The articles, newest first."""
    articles = _kb(ctx).list()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": a.id,
                        "title": a.title,
                        "publisher": a.publisher,
                        "published": a.published.isoformat() if a.published else None,
                        "url": a.url,
                    }
                    for a in articles
                ],
                ensure_ascii=False,
            )
        )
        return
    for a in articles:
        click.echo(f"{a.id}\n    {a.title} — {a.publisher or 'publisher unknown'}, {a.published or 'date unknown'}")
    click.echo(f"{len(articles)} article(s).")


@kb.command("show")
@common_options
@click.argument("article_id")
@click.pass_context
def kb_show(ctx: click.Context, article_id: str) -> None:
    """Metadata, size and history of one article."""
    base = _kb(ctx)
    a = base.get(article_id)
    for label, value in (
        ("Id", a.id),
        ("Title", a.title),
        ("Publisher", a.publisher),
        ("Author", a.author),
        ("Published", a.published),
        ("Added", a.added),
        ("URL", a.url),
        ("Notes", a.notes),
    ):
        click.echo(f"{label + ':':11}{value if value is not None else 'unknown'}")
    click.echo(f"{'Words:':11}{len(a.body.split())}")
    click.echo(f"{'Hash:':11}{a.content_hash[:16]}")
    history = base.db.audit_log(1000, article_id=a.id)
    for e in history:
        click.echo(f"  {e.at:%Y-%m-%d %H:%M} {e.action} by {e.actor}: {e.detail}")


@kb.command("log")
@common_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=50)
@click.pass_context
def kb_log(ctx: click.Context, limit: int) -> None:
    """The audit log of knowledge-base changes, newest first."""
    entries = _kb(ctx).db.audit_log(limit)
    if not entries:
        click.echo("No changes recorded yet.")
    for e in entries:
        before = (e.hash_before or "-")[:10]
        after = (e.hash_after or "-")[:10]
        state = "" if e.status == "done" else f" [{e.status}]"
        click.echo(
            f"{e.at:%Y-%m-%d %H:%M:%S} {e.actor:<20} {e.action:<7} {e.article_id or '-'} {before}→{after} "
            f"{e.detail}{state}"
        )


@kb.command("gaps")
@common_options
@click.option("--limit", type=click.IntRange(1, 500), default=20)
@click.option("--days", type=click.IntRange(1, 3650), default=30)
@click.pass_context
def kb_gaps(ctx: click.Context, limit: int, days: int) -> None:
    """Questions the bot declined recently, grouped and counted: what the knowledge base lacks."""
    gaps = _kb(ctx).db.recent_gaps(limit=limit, days=days)
    if not gaps:
        click.echo(f"No declined questions in the last {days} days.")
    for g in gaps:
        click.echo(f"{g.count:>4}× {g.example}   (last {g.last_asked:%Y-%m-%d %H:%M})")


# --- moderators' pins ----------------------------------------------------------------------------


def _pins_service(ctx: click.Context) -> KnowledgeService:
    service = open_service(ctx)
    service.use_pins(_database(ctx))
    return service


def _show_draft(draft: PinDraft) -> None:
    click.echo(f"Question: {draft.question}")
    for phrasing in draft.phrasings:
        click.echo(f"  also matches: {phrasing}")
    for n, quote in enumerate(draft.quotes, start=1):
        click.echo(f"{n}. “{quote.quote}”")
        click.echo(f"   — {quote.article_id} [{quote.start}:{quote.end}] · {ENGLISH.pinned_mark()}")


@kb.command("pin")
@common_options
@click.argument("question")
@click.option("--excerpt", "excerpts", type=click.IntRange(1, 10), multiple=True, help="The bot's own Nth excerpt.")
@click.option("--passage", "passages", multiple=True, metavar="REF", help="A sentence ref from `kb passages`.")
@click.option("--quote", "quotes", multiple=True, metavar="TEXT", help="Text found word for word in an article.")
@click.option("--phrasing", "phrasings", multiple=True, metavar="TEXT", help="Another way members ask it.")
@click.option(
    "--search",
    metavar="WORDS",
    help="Pin nothing: list the sentences containing every one of WORDS, with the REF for --passage.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def kb_pin(
    ctx: click.Context,
    question: str,
    excerpts: tuple[int, ...],
    passages: tuple[str, ...],
    quotes: tuple[str, ...],
    phrasings: tuple[str, ...],
    search: str | None,
    yes: bool,
) -> None:
    """Pin one to three passages as the answer to QUESTION (and questions that mean the same).

    Choose them with --excerpt N (the bot's own Nth excerpt for QUESTION), --passage REF (a sentence
    found with --search WORDS or `kb passages WORDS`) or --quote TEXT (found word for word in an article).
    """
    from bot.errors import PinError

    if search is not None:
        _print_passages(open_service(ctx).search_passages(search, PASSAGES_LISTED), question=question)
        return
    service = _pins_service(ctx)
    existing = service.pinned_for(question)
    if existing is not None:
        raise PinError(f"That question is already pinned (pin #{existing}); unpin it first to pin other passages.")
    chosen = []
    if excerpts:
        answer = service.ask(question, use_pins=False)
        for n in excerpts:
            if n > len(answer.excerpts):
                raise PinError(f"The bot quotes {len(answer.excerpts)} excerpt(s) for that question, not {n}.")
            e = answer.excerpts[n - 1]
            chosen.append(service.passage_of(e.source.article_id, e.start, e.end))
    chosen += [service.passage_at(ref) for ref in passages]
    chosen += [service.find_passage(text) for text in quotes]
    draft = service.draft_pin(question, chosen, phrasings)
    _show_draft(draft)
    _confirm("Pin these passages?", yes)
    pin = service.save_pin(draft, actor=_actor())
    click.echo(f"Pinned #{pin.id}: questions like “{pin.question}” now get these passages first.")


@kb.command("passages")
@common_options
@click.argument("words")
@click.option("--limit", type=click.IntRange(1, 100), default=PASSAGES_LISTED)
@click.pass_context
def kb_passages(ctx: click.Context, words: str, limit: int) -> None:
    """Sentences containing every one of WORDS, with the REF that `kb pin --passage` takes."""
    _print_passages(open_service(ctx).search_passages(words, limit))


def _print_passages(found: list[SentenceChoice], *, question: str | None = None) -> None:
    """Each sentence found under its REF; with ``question``, the command that pins the first of them."""
    if not found:
        click.echo("No sentence contains all of those words.")
        return
    for choice in found:
        click.echo(f"{choice.ref}\n   {choice.text}")
    if question is not None:
        click.echo(f"\nPin one with: directive-bot kb pin {shlex.quote(question)} --passage {found[0].ref}")


@kb.group("pins", cls=Group, invoke_without_command=True)
@common_options
@click.pass_context
def kb_pins(ctx: click.Context) -> None:
    """List pins: state, hits and votes since pinned (`kb pins export|import FILE` to move them)."""
    if ctx.invoked_subcommand is not None:
        return
    pins = _pins_service(ctx).pins()
    if not pins:
        click.echo("No pins yet; add one with `directive-bot kb pin QUESTION --quote TEXT`.")
    for pin in pins:
        state = "served" if pin.active else f"STALE, not served: {pin.stale_reason}"
        click.echo(f"#{pin.id} “{pin.question}” ({state})")
        click.echo(
            f"   {pin.hits} hit(s), 👍 {pin.votes_up} 👎 {pin.votes_down} since pinned by {pin.created_by} "
            f"on {pin.created_at:%Y-%m-%d}; {len(pin.quotes)} passage(s), {len(pin.phrasings)} more phrasing(s)"
        )


@kb_pins.command("export")
@common_options
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def kb_pins_export(ctx: click.Context, output: Path) -> None:
    """Write every pin to OUTPUT as YAML (passages with article ids, offsets and hashes)."""
    from bot.db import Database
    from bot.pins import export_yaml

    with Database.open(settings_from(ctx)) as db:
        count = export_yaml(db.pins(), output)
    click.echo(f"Wrote {count} pin(s) to {output}.")


@kb_pins.command("import")
@common_options
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def kb_pins_import(ctx: click.Context, source: Path) -> None:
    """Add the pins of an export; every passage must be found word for word in these articles first."""
    report = _pins_service(ctx).import_pins(source, actor=_actor())
    for pin in report.added:
        click.echo(f"pinned #{pin.id}: {pin.question}")
    for question in report.skipped:
        click.echo(f"skipped (already pinned here): {question}")
    click.echo(f"{len(report.added)} pin(s) imported, {len(report.skipped)} skipped.")


@kb.command("unpin")
@common_options
@click.argument("pin_id", type=int)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def kb_unpin(ctx: click.Context, pin_id: int, yes: bool) -> None:
    """Remove pin PIN_ID: its questions get the automatic answer again."""
    service = _pins_service(ctx)
    pin = _database(ctx).get_pin(pin_id)
    click.echo(f"#{pin.id} “{pin.question}”: {len(pin.quotes)} passage(s), {pin.hits} hit(s)")
    _confirm(f"Unpin #{pin.id}?", yes)
    service.unpin(pin_id, actor=_actor())
    click.echo(f"Unpinned #{pin_id}.")


@kb.command("phrasing")
@common_options
@click.argument("pin_id", type=int)
@click.argument("phrasings", nargs=-1, required=True)
@click.pass_context
def kb_phrasing(ctx: click.Context, pin_id: int, phrasings: tuple[str, ...]) -> None:
    """Add PHRASINGS (other ways members ask it) to pin PIN_ID."""
    pin = _pins_service(ctx).add_pin_phrasings(pin_id, phrasings, actor=_actor())
    click.echo(f"Pin #{pin.id} now matches {len(pin.questions)} phrasing(s).")


# --- evaluation, feedback, run, config ------------------------------------------------------


@cli.command("eval")
@common_options
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option(
    "--misses", "show_misses", is_flag=True, help="List missed questions with the rank of the gold per stage."
)
@click.option(
    "--cv", "folds", type=click.IntRange(2, 20), default=None, help="k-fold cross-validate the tuned settings."
)
@click.option(
    "--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, help="PNG of the decision score."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Fold assignment seed for --cv.")
@click.option(
    "--windows",
    type=click.IntRange(1, 64),
    multiple=True,
    help="With --cv: windows the cross-encoder may read, tried (repeatable). Default: retrieval.rerank_windows.",
)
@click.option("--with-pins", is_flag=True, help="Also score the full pipeline with the moderators' pins.")
@click.pass_context
def eval_cmd(
    ctx: click.Context,
    files: tuple[Path, ...],
    as_json: bool,
    show_misses: bool,
    folds: int | None,
    plot: Path | None,
    seed: int,
    windows: tuple[int, ...],
    with_pins: bool,
) -> None:
    """Score question files: hit@1, hit@3, MRR and decline rates, by mode, kind and language.

    With --cv K the expensive half runs once per question; the settings (windows read, prior weight,
    decline and "closest passages" thresholds) are chosen on K-1 folds and scored on the held-out one.
    The windows read stay at the configured budget (latency grows with them) unless --windows lists others.
    """
    from bot.evaluation import load_eval_set

    if with_pins and folds is not None:
        raise click.UsageError("--with-pins reports the table of modes; run it without --cv.")
    sets = [load_eval_set(f) for f in files]
    service = open_service(ctx)  # the automatic pipeline: no pins unless --with-pins
    if folds is None:
        db = _database(ctx) if with_pins else None
        _eval_modes(service, sets, files, as_json=as_json, show_misses=show_misses, plot=plot, pins_from=db)
    else:
        reads = windows or (service.settings.retrieval.rerank_windows,)
        _eval_cv(service, sets, folds, reads, seed=seed, as_json=as_json, show_misses=show_misses, plot=plot)


def _eval_modes(
    service,  # noqa: ANN001
    sets,  # noqa: ANN001
    files,  # noqa: ANN001
    *,
    as_json: bool,
    show_misses: bool,
    plot: Path | None,
    pins_from: Database | None = None,
) -> None:
    from bot.evaluation import MODES, Tuner, asked, evaluate, observe

    out: dict[str, object] = {}
    for path, eval_set in zip(files, sets, strict=True):
        results = [evaluate(service, eval_set, label=lb, mode=m, rerank=rr) for lb, (m, rr) in MODES.items()]
        if pins_from is not None:  # the same questions again, the moderators' pins served
            pinned = len(service.use_pins(pins_from))
            results.append(evaluate(service, eval_set, label=f"hybrid+rerank+{pinned}-pins"))
            service.use_pins(None)
        full = results[0]
        out[path.name] = {"modes": [r.row() for r in results], "kinds": [f.row() for f in full.by(_kind).values()]}
        if as_json:
            continue
        click.echo(f"\n{path.name}")
        print_table([r.row() for r in results])
        print_groups(full)
        if show_misses:
            print_misses(Tuner(service, observe(service, eval_set.on_topic)), _current_params(service))
    if as_json:
        click.echo(json.dumps(out))
    if plot is not None:
        from bot.evaluation import plot_scores

        # Each question's every signal, scored with the service's settings (the answers alone lack them).
        # English questions only: the thresholds drawn are the English ones (other languages: --cv).
        questions = [q for s in sets for q in s.questions if service.language_of(asked(service, q)).english]
        observations = observe(service, questions)
        params = _current_params(service)
        plot_scores(Tuner(service, observations).score(params, range(len(observations))), params, plot)
        say(f"Wrote {plot}.")


def _eval_cv(
    service: KnowledgeService,
    sets: list[EvalSet],
    folds: int,
    windows: tuple[int, ...],
    *,
    seed: int,
    as_json: bool,
    show_misses: bool,
    plot: Path | None,
) -> None:
    from bot.evaluation import EvalSet, Grid, Tuner, observe, plot_scores

    questions = EvalSet(tuple(q for s in sets for q in s.questions))
    other = EvalSet(tuple(q for q in questions.questions if not service.language_of(q.text).english))
    if other.questions:  # questions in other languages: their own path, scale and thresholds
        _eval_cv_multilingual(service, other, folds, seed=seed, as_json=as_json)
        questions = EvalSet(tuple(q for q in questions.questions if q not in set(other.questions)))
        if not questions.questions:
            return
    grid = Grid(rerank_windows=tuple(sorted(set(windows))))
    say(
        f"Running {len(questions.questions)} questions once (the cross-encoder reads up to {max(grid.rerank_windows)})."
    )
    tuner = Tuner(service, observe(service, questions.questions, read=max(grid.rerank_windows)), grid)
    everyone = list(range(len(tuner.observations)))
    current = _current_params(service)
    fitted = tuner.fit(everyone)
    held, chosen = tuner.cross_validate(folds, seed=seed)
    rows = [
        tuner.score(current, everyone, "current settings").row(),
        tuner.score(fitted, everyone, "fitted on all (in-sample)").row(),
        held.row(),
    ]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "rows": rows,
                    "by_file": {k: f.row() for k, f in held.by(lambda q: q.source).items()},
                    "by_kind": {k: f.row() for k, f in held.by(_kind).items()},
                    "by_language": {k: f.row() for k, f in held.by(lambda q: q.lang).items()},
                    "current": vars(current),
                    "fitted": vars(fitted),
                    "folds": [vars(p) for p in chosen],
                }
            )
        )
    else:
        print_table(rows)
        click.echo(f"\nSettings now:          {_params_line(current)}")
        click.echo(f"Fitted on all:         {_params_line(fitted)}")
        for n, p in enumerate(chosen, start=1):
            click.echo(f"Chosen without fold {n}: {_params_line(p)}")
        click.echo(f"\nHeld-out figures by file ({folds}-fold):")
        print_table([f.row() for f in held.by(lambda q: q.source).values()])
        print_groups(held)
        if show_misses:
            print_misses(tuner, fitted)
    if plot is not None:
        plot_scores(held, fitted, plot)
        say(f"Wrote {plot}.")


def _eval_cv_multilingual(service, questions, folds: int, *, seed: int, as_json: bool) -> None:  # noqa: ANN001
    """k-fold figures of the multilingual path, tuned on its own scale (bot.multilingual.tuning_grid)."""
    from bot.evaluation import Params, Tuner, observe
    from bot.multilingual import answer_settings, settings_from, tuning_grid

    grid = tuning_grid()
    say(f"Running {len(questions.questions)} questions in other languages once (multilingual path).")
    base = answer_settings(service.settings)
    tuner = Tuner(service, observe(service, questions.questions, read=max(grid.rerank_windows)), grid, base=base)
    everyone = list(range(len(tuner.observations)))
    fitted = tuner.fit(everyone)
    held, chosen = tuner.cross_validate(folds, seed=seed)
    held.label = f"multilingual: {folds}-fold held-out"
    current = Params.of(base)
    rows = [
        tuner.score(current, everyone, "multilingual: current settings").row(),
        tuner.score(fitted, everyone, "multilingual: fitted on all (in-sample)").row(),
        held.row(),
    ]
    by_language = {k: f.row() for k, f in held.by(lambda q: q.lang).items()}
    if as_json:
        click.echo(
            json.dumps(
                {
                    "multilingual": {
                        "rows": rows,
                        "by_language": by_language,
                        "fitted": settings_from(fitted, service.settings),
                        "folds": [settings_from(p, service.settings) for p in chosen],
                    }
                }
            )
        )
        return
    print_table(rows)
    click.echo(f"\nFitted on all (multilingual: keys): {settings_from(fitted, service.settings)}")
    for n, p in enumerate(chosen, start=1):
        click.echo(f"Chosen without fold {n}: {settings_from(p, service.settings)}")
    click.echo(f"\nHeld-out figures by language ({folds}-fold):")
    print_table(list(by_language.values()))
    click.echo("")


def _kind(q) -> str | None:  # noqa: ANN001
    return q.kind if q.cls == "on" else q.cls.replace("near", "near-miss").replace("off", "off-topic")


def _current_params(service):  # noqa: ANN001
    from bot.evaluation import Params

    return Params.of(service.settings.retrieval)


def _params_line(p) -> str:  # noqa: ANN001
    return " ".join(f"{k}={v}" for k, v in vars(p).items())


def print_table(rows: list[dict[str, object]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        click.echo("  ".join(str(r[c]).ljust(widths[c]) for c in columns))


def print_groups(figures) -> None:  # noqa: ANN001
    kinds = figures.by(_kind)
    if len(kinds) > 1:
        click.echo("\nBy kind:")
        print_table([f.row() for f in kinds.values()])
    langs = figures.by(lambda q: q.lang)
    if langs:
        click.echo("\nBy language:")
        print_table([f.row() for f in langs.values()])


def print_misses(tuner, params) -> None:  # noqa: ANN001
    """Each missed on-topic question with where its gold first appears: fused chunks, windows read, excerpts."""
    from bot.evaluation import asked, stage_ranks

    service = tuner.service
    bodies = {aid: a.body for aid, a in service.live.index.articles.items()}
    figures = tuner.score(params, list(range(len(tuner.observations))))
    lines = []
    for ob, o in zip(tuner.observations, figures.outcomes, strict=True):
        if ob.question.cls != "on" or (o.rank is not None and o.rank <= 3):
            continue
        retrieval = params.reweigh(ob.retrieval)
        answer = service.answer_from(
            asked(service, ob.question), retrieval, settings=params.apply(service.settings.retrieval)
        )
        st = stage_ranks(ob.question, retrieval, answer, bodies)
        why = "declined" if o.declined else f"chunks {st.first_stage} · read {st.read} · excerpts {st.final}"
        lines.append(f"  - [{ob.question.source}] {ob.question.text}  ({why})")
    click.echo(f"\nMissed ({len(lines)}): rank of the gold in fused chunks · windows read · excerpts")
    for line in lines:
        click.echo(line)


@cli.group(cls=Group)
def feedback() -> None:
    """Votes members gave answers in Discord."""


@feedback.command("export")
@common_options
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def feedback_export(ctx: click.Context, output: Path) -> None:
    """Write every vote (question, index version, excerpt ids, vote) as CSV to OUTPUT ('-' for stdout)."""
    from bot.db import Database

    with Database.open(settings_from(ctx)) as db:
        n = db.export_feedback_csv(sys.stdout if str(output) == "-" else output)
    say(f"{n} vote(s) exported.")


@cli.command()
@common_options
@click.pass_context
def run(ctx: click.Context) -> None:
    """Connect to Discord (token from the DISCORD_TOKEN environment variable)."""
    import asyncio

    from bot.discord.client import run_bot

    settings = settings_from(ctx)
    logging.getLogger().setLevel(logging.INFO)
    asyncio.run(run_bot(settings))


@cli.command()
@common_options
@click.pass_context
def sync(ctx: click.Context) -> None:
    """Publish the slash commands to Discord now (a start-up syncs only when they changed)."""
    import asyncio

    from bot.discord.client import sync_commands

    settings = settings_from(ctx)
    synced = asyncio.run(sync_commands(settings))
    where = f"guild {settings.discord.sync_guild}" if settings.discord.sync_guild else "all guilds"
    click.echo(f"Synced {len(synced or [])} commands to {where}.")


@cli.group(cls=Group)
def config() -> None:
    """Inspect settings."""


@config.command("show")
@common_options
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective settings as YAML (secrets are never part of them)."""
    import yaml

    click.echo(yaml.safe_dump(settings_to_dict(settings_from(ctx)), sort_keys=False))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="directive-bot")
