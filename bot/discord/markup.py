"""Discord's message markup: the ``<…>`` forms naming a user, role, channel, moment, command or emoji.

One definition for both uses: the ask cog takes them out of a question (``without_discord_markup``)
and ``render`` escapes them so that quoted text shows as typed (``MARKUP_START``).
"""

from __future__ import annotations

import re

# What follows "<" in each form (the closing ">" is added where the pattern is used).
_USER_ROLE_CHANNEL = r"(?:@[!&]?|#)\d+"  # <@1>, <@!1>, <@&1> (a role), <#1> (a channel)
_TIMESTAMP = r"t:-?\d+(?::[tTdDfFsSR])?"  # <t:1700000000:R>
_EMOJI = r"a?:\w+:\d+"  # <:name:1>, <a:name:1>

# A user, role, channel or moment named by id: the articles know nothing of these ids.
ID_MARKUP = re.compile(rf"<(?:{_USER_ROLE_CHANNEL}|{_TIMESTAMP})>")
# A slash-command mention </ask:1>; the name is group 1.
COMMAND_MARKUP = re.compile(r"</([^<>\n:]+):\d+>")
# A custom emoji <:name:1>; the name is group 1.
EMOJI_MARKUP = re.compile(r"<a?:(\w+):\d+>")
# The "<" that opens any of these forms (a backslash before it makes the form show as typed).
MARKUP_START = re.compile(rf"<(?={_USER_ROLE_CHANNEL}>|/[^<>\n]+:\d+>|{_TIMESTAMP}>|{_EMOJI}>)")


def _mention_of(user_id: int) -> re.Pattern[str]:
    return re.compile(rf"<@!?{user_id}>")


def mentions_user(content: str, user_id: int) -> bool:
    """An explicit mention in the text (a reply ping alone does not count as asking)."""
    return _mention_of(user_id).search(content) is not None


def strip_mentions_of(content: str, user_id: int) -> str:
    """Remove ``<@id>`` / ``<@!id>`` mentions of the bot so only the question remains."""
    return " ".join(_mention_of(user_id).sub(" ", content).split())


def without_discord_markup(content: str) -> str:
    """The words of a question: mentions and timestamps removed, ``</ask:1>`` -> ``/ask``, whitespace collapsed.

    A question full of ids reads to the retriever as noise and is declined; commands and custom
    emoji keep their names.
    """
    text = EMOJI_MARKUP.sub(r":\1:", COMMAND_MARKUP.sub(r"/\1", content))
    return " ".join(ID_MARKUP.sub(" ", text).split())
