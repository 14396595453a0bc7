"""Command names and descriptions in the member's language, from the reply frame's catalogues.

discord.py asks an ``app_commands.Translator`` for every string of every command, once per Discord
locale, when it builds the payload it syncs; Discord then shows ``/ask`` as ``/fragen`` to a member
whose client is in German. Names and descriptions live beside the frame's catalogue, in
``bot/locales/<language>/LC_MESSAGES/commands.po``, under two message contexts (a command name must
be one lowercase word, so it is a different message from the same word in a description). A string
with no translation gets none, and Discord shows the English one: the moderators' ``/kb`` commands
stay English on purpose.
"""

from __future__ import annotations

from discord import Locale, app_commands

from bot.i18n import COMMAND_DESCRIPTION, COMMAND_NAME, ENGLISH_CODE, frame, language_of

_NAME_LOCATIONS = frozenset(
    {
        app_commands.TranslationContextLocation.command_name,
        app_commands.TranslationContextLocation.group_name,
        app_commands.TranslationContextLocation.parameter_name,
        app_commands.TranslationContextLocation.choice_name,
    }
)


def message_context(location: app_commands.TranslationContextLocation) -> str:
    """The catalogue context of a command string: a name, or a description."""
    return COMMAND_NAME if location in _NAME_LOCATIONS else COMMAND_DESCRIPTION


class CatalogueTranslator(app_commands.Translator):
    """Translate command strings the catalogue knows; leave the rest to Discord's English."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        language = language_of(locale.value)
        if language is None or language == ENGLISH_CODE:
            return None
        return frame(language).command_text(message_context(context.location), string.message)
