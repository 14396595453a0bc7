"""The reply frame's catalogues: complete, consistent with the English they translate, and resolved
from any locale spelling Discord or a terminal uses.

The frame's messages (``messages.po``) are what Babel's extractor finds in ``bot/`` (``gettext``,
``ngettext``, ``N_``): a new English message without translations, or a translation whose English
is gone, fails here. Command names and descriptions (``commands.po``) are checked against the
synced command tree in ``tests/discord/test_e2e_locale.py``.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

from bot.i18n import COMMAND_NAME, COMMANDS_DOMAIN, DOMAIN, ENGLISH, TRANSLATED, frame, language_of

BOT_DIR = Path(__file__).resolve().parents[1] / "bot"


@cache
def source_messages() -> frozenset[str | tuple[str, str]]:
    """Every message the code asks to translate: a msgid, or (singular, plural)."""
    found: set[str | tuple[str, str]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(str(BOT_DIR)):
        found.add(message if isinstance(message, str) else tuple(message))
    return frozenset(found)


@cache
def catalogue(language: str, domain: str = DOMAIN) -> Catalog:
    with (BOT_DIR / "locales" / language / "LC_MESSAGES" / f"{domain}.po").open("rb") as handle:
        return read_po(handle, locale=language)


def frame_entries(language: str) -> list:
    return [m for m in catalogue(language) if m.id]


def command_entries(language: str) -> list:
    return [m for m in catalogue(language, COMMANDS_DOMAIN) if m.id]


def entries(language: str) -> list:
    """Both catalogues of a language."""
    return frame_entries(language) + command_entries(language)


def fields(text: str) -> set[str]:
    """The ``{placeholder}`` names in a message."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def forms(message) -> tuple[str, ...]:
    return tuple(message.string) if isinstance(message.string, (tuple, list)) else (message.string,)


def english_forms(message) -> tuple[str, ...]:
    return tuple(message.id) if isinstance(message.id, (tuple, list)) else (message.id,)


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_in_the_code_is_translated(language: str) -> None:
    translated = {
        english_forms(m)[0] if len(english_forms(m)) == 1 else english_forms(m) for m in frame_entries(language)
    }
    translated = {m for m in translated if m}
    missing = source_messages() - translated
    assert not missing, f"{language}: untranslated {sorted(map(str, missing))}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_no_translation_is_left_over_from_a_message_the_code_no_longer_has(language: str) -> None:
    stale = [
        m.id
        for m in frame_entries(language)
        if (m.id if isinstance(m.id, str) else tuple(m.id)) not in source_messages()
    ]
    assert not stale, f"{language}: {stale}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_no_translation_is_empty_or_fuzzy(language: str) -> None:
    bad = [m.id for m in entries(language) if m.fuzzy or not all(f.strip() for f in forms(m))]
    assert not bad, f"{language}: {bad}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_placeholders_are_the_same_as_in_english(language: str) -> None:
    for message in entries(language):
        expected = set().union(*(fields(e) for e in english_forms(message)))
        for form in forms(message):
            assert fields(form) == expected, f"{language}: {message.id!r} -> {form!r}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_markdown_and_command_mentions_survive_translation(language: str) -> None:
    for message in entries(language):
        english = english_forms(message)[0]
        for form in forms(message):
            for mark in ("**", "`", "\n"):
                assert form.count(mark) == english.count(mark), f"{language}: {mark!r} in {form!r}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_plural_messages_have_every_form_the_language_needs(language: str) -> None:
    needed = get_plural(language).num_plurals
    assert catalogue(language).num_plurals == needed == catalogue(language, COMMANDS_DOMAIN).num_plurals
    for message in entries(language):
        if isinstance(message.id, (tuple, list)):
            assert len(forms(message)) == needed, f"{language}: {message.id!r}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_command_names_are_single_lowercase_words_discord_accepts(language: str) -> None:
    for message in command_entries(language):
        if message.context == COMMAND_NAME and message.id != "Find sources":  # a context menu may have spaces
            assert re.fullmatch(r"[-_\w\u0900-\u097f]{1,32}", message.string), message.string
            assert message.string == message.string.lower()


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ("de", "de"),
        ("pt-BR", "pt"),
        ("es-419", "es"),
        ("es-ES", "es"),
        ("zh-CN", "zh_CN"),
        ("zh-TW", "zh_TW"),
        ("zh_Hant_HK", "zh_TW"),
        ("zh", "zh_CN"),
        ("en-GB", "en"),
        ("HI", "hi"),
        ("ko", None),
        ("", None),
        (None, None),
    ],
)
def test_locale_codes_resolve_to_their_catalogue(code: str | None, language: str | None) -> None:
    assert language_of(code) == language


def test_a_locale_without_a_catalogue_falls_back_to_english() -> None:
    assert frame("ko") is frame("en-US")
    assert frame("ko").gettext("More sources") == "More sources"


def test_only_a_non_english_frame_says_the_quotes_are_english() -> None:
    assert ENGLISH.sources_note() is None
    assert frame("de").sources_note() == (
        "Die Zitate stammen aus englischsprachigen Artikeln und sind unverändert wiedergegeben."
    )


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_pinned_mark_is_translated_and_keeps_its_pin(language: str) -> None:
    mark = frame(language).pinned_mark()
    assert mark.startswith("📌 ")
    assert mark != ENGLISH.pinned_mark()


def test_the_english_pinned_mark_reads_chosen_by_the_moderators() -> None:
    assert ENGLISH.pinned_mark() == "📌 chosen by the moderators"


def test_russian_counts_use_its_three_plural_forms() -> None:
    ru = frame("ru")
    said = [ru.ngettext("{count} article", "{count} articles", n).format(count=n) for n in (1, 3, 5, 21)]
    assert said == ["1 статья", "3 статьи", "5 статей", "21 статья"]


def test_dates_are_written_the_readers_way() -> None:
    day = dt.date(2025, 3, 7)
    assert ENGLISH.format_date(day) == "7 March 2025"
    assert frame("de").format_date(day) == "7. März 2025"
    assert frame("ja").format_date(day) == "2025年3月7日"


def test_command_strings_come_from_the_command_catalogue_by_context() -> None:
    de = frame("de")
    assert de.command_text(COMMAND_NAME, "ask") == "fragen"
    assert de.gettext("ask") == "ask"  # a command name is not a frame message


def test_a_command_string_without_a_translation_gets_none() -> None:
    assert frame("de").command_text(COMMAND_NAME, "kb") is None
