"""The reply frame in the reader's language: gettext catalogues, plural rules and dates.

Only the text *around* the quotes is translated (lead lines, labels, notices, button labels,
command names). Quotes are never passed through here: they are shown exactly as the English
articles print them, which is the bot's verbatim promise.

The catalogues are the ``.po`` files under ``bot/locales/<language>/LC_MESSAGES/``, shipped as
package data: ``messages.po`` for the frame (extracted from the code by ``pybabel extract``) and
``commands.po`` for the slash commands' names and descriptions (kept apart because the extractor
cannot see the command tree, so ``pybabel update`` would mark them obsolete). Babel compiles them
in memory the first time a language is used (a few milliseconds), so installing needs no compile
step and the repository holds no binaries.
gettext gives each language its own plural rules (Russian has three forms, Japanese and Chinese
one) and Babel's CLDR data gives dates in the reader's form ("7. März 2025", "2025年3月7日").
The English text in the source is the message id and the fallback, so an unknown language, or a
message not yet translated, reads as English rather than failing.

No Discord or click imports: the Discord edge and the command line both use this module.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from importlib import resources
from typing import Final

from babel import Locale
from babel.dates import format_date as babel_format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

DOMAIN: Final = "messages"
COMMANDS_DOMAIN: Final = "commands"
ENGLISH_CODE: Final = "en"
# Catalogue languages besides English (directory names under bot/locales). Chinese comes in
# the two scripts Discord distinguishes; Portuguese is Brazilian, the one Discord offers.
TRANSLATED: Final = ("de", "fr", "es", "pt", "hi", "zh_CN", "zh_TW", "ja", "ru")
LANGUAGES: Final = (ENGLISH_CODE, *TRANSLATED)

# CLDR locale used for dates: English keeps the day-month-year form the bot has always shown.
_DATE_LOCALES: Final = {"en": "en_GB", "pt": "pt_BR", "zh_CN": "zh_Hans_CN", "zh_TW": "zh_Hant_TW"}
# Chinese variants that are written in traditional characters.
_TRADITIONAL: Final = frozenset({"tw", "hk", "mo", "hant"})

# Message contexts of command names and descriptions (discord.py's Translator asks for these).
COMMAND_NAME: Final = "command name"
COMMAND_DESCRIPTION: Final = "command description"


def N_(message: str) -> str:
    """Mark a module-level English message for the catalogue; it is translated where it is shown."""
    return message


def language_of(code: str | None) -> str | None:
    """The catalogue language for a locale code (``de``, ``pt-BR``, ``zh-TW``, ``en-US``), or None.

    Accepts Discord's locale values and BCP 47 / POSIX spellings alike; None means no catalogue
    exists for it (the caller falls back to English).
    """
    if not code:
        return None
    parts = code.strip().replace("_", "-").lower().split("-")
    primary = parts[0]
    if primary == "zh":
        return "zh_TW" if _TRADITIONAL.intersection(parts[1:]) else "zh_CN"
    if primary in LANGUAGES:
        return primary
    return None


class Frame:
    """The frame's messages in one language: gettext lookups, plural forms and dates.

    Build with :func:`frame`; instances are shared and immutable.
    """

    def __init__(self, language: str, translations: NullTranslations, commands: NullTranslations) -> None:
        self.language = language
        self._translations = translations
        self._commands = commands
        self._date_locale = Locale.parse(_DATE_LOCALES.get(language, language))

    def __repr__(self) -> str:
        return f"Frame({self.language!r})"

    @property
    def is_english(self) -> bool:
        """English needs no translation and no note about the articles' language."""
        return self.language == ENGLISH_CODE

    def gettext(self, message: str) -> str:
        """``message`` in this language, or ``message`` itself when untranslated."""
        return self._translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        """The form of a message for the count ``n`` under this language's plural rule."""
        return self._translations.ngettext(singular, plural, n)

    def command_text(self, context: str, message: str) -> str | None:
        """A command's name or description (``context``) in this language; None when untranslated."""
        catalog: dict[object, object] = getattr(self._commands, "_catalog", {})
        if f"{context}\x04{message}" not in catalog:
            return None
        return self._commands.pgettext(context, message)

    def format_date(self, day: dt.date) -> str:
        """A date the way this language writes it in full (``7 March 2025``, ``7. März 2025``)."""
        return babel_format_date(day, format="long", locale=self._date_locale)

    def sources_note(self) -> str | None:
        """The line telling a non-English reader the quotes are English and untranslated; None in English."""
        if self.is_english:
            return None
        return self.gettext("The quotes are from English-language articles and are shown exactly as published.")

    def pinned_mark(self) -> str:
        """The label on a quote a moderator pinned for the question: "📌 chosen by the moderators".

        The pin emoji stays outside the message so no translation can lose it.
        """
        return "📌 " + self.gettext("chosen by the moderators")


def _load(language: str, domain: str) -> NullTranslations:
    """Read and compile the shipped ``.po`` file of ``domain`` for ``language`` (no catalogue for English)."""
    if language == ENGLISH_CODE:
        return NullTranslations()
    po = resources.files("bot").joinpath("locales", language, "LC_MESSAGES", f"{domain}.po")
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=domain)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=domain)


@functools.cache
def _frame(language: str) -> Frame:
    return Frame(language, _load(language, DOMAIN), _load(language, COMMANDS_DOMAIN))


def frame(code: str | None = None) -> Frame:
    """The frame for a locale code; English for None, English for a language without a catalogue."""
    return _frame(language_of(code) or ENGLISH_CODE)


ENGLISH: Final = Frame(ENGLISH_CODE, NullTranslations(), NullTranslations())
