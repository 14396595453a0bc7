"""End to end: the reply frame in the member's language, the quotes untouched, translated commands.

Discord sends each interaction's ``locale`` (the member's client language) and each server's
``preferred_locale``; the fake Discord sends the ``locale`` of the ``FakeUser`` who acts. Real
discord.py over loopback, the real knowledge service over the repo's ``knowledge/``.
"""

from __future__ import annotations

import pytest
import pytest_asyncio

from .e2e_support import (
    Env,
    assert_quotes_verbatim,
    final_message,
    plain_text,
    start_bot,
    start_env,
)

pytestmark = pytest.mark.slow

ON_TOPIC = "What did the US order restrict?"
OFF_TOPIC = "What is the weather in Paris tomorrow?"
# Every Discord locale with a catalogue, and English.
LOCALES = ("en-US", "de", "fr", "es-ES", "es-419", "pt-BR", "hi", "zh-CN", "zh-TW", "ja", "ru")
TRANSLATED_LOCALES = frozenset(LOCALES) - {"en-US"}


@pytest_asyncio.fixture
async def env(discord_harness, knowledge_service, tmp_path) -> Env:
    return await start_env(discord_harness, knowledge_service, tmp_path)


async def ask_as(env: Env, locale: str, question: str = ON_TOPIC) -> dict:
    """``/ask`` from a new member whose Discord client is set to ``locale``; the final reply."""
    user = await env.fake.create_user(f"member-{locale}", locale=locale)
    await env.fake.add_member(env.sg.guild, user)
    message = await final_message(await env.ask(question, user=user))
    return {"embeds": message.embeds, "components": message.components, "content": message.content}


def quote_lines(embed: dict) -> list[str]:
    """The block-quote lines of an answer embed exactly as sent (escaped, not yet displayed)."""
    return [line for line in embed["description"].split("\n") if line.startswith("> ")]


def button_labels(reply: dict) -> list[str]:
    return [c["label"] for row in reply["components"] for c in row["components"] if c.get("label")]


def synced(env: Env, name: str, ctype: int = 1) -> dict:
    [command] = [c for c in env.fake.global_commands.values() if c["name"] == name and c.get("type", 1) == ctype]
    return command


# -- the frame --------------------------------------------------------------------------------------


async def test_a_german_member_gets_the_frame_in_german_around_english_quotes(env: Env) -> None:
    reply = await ask_as(env, "de")
    [embed] = reply["embeds"]
    assert embed["title"] == ON_TOPIC  # the member's own question, as asked
    assert embed["description"].startswith(
        "*Die Zitate stammen aus englischsprachigen Artikeln und sind unverändert wiedergegeben.*\n\n> "
    )
    assert embed["footer"]["text"].startswith("Wörtliche Zitate aus den genannten Artikeln; keine Rechtsberatung")
    assert "Thread öffnen" in button_labels(reply)
    assert_quotes_verbatim(embed["description"], env.service.articles())


async def test_a_hindi_member_gets_the_frame_in_hindi_around_english_quotes(env: Env) -> None:
    reply = await ask_as(env, "hi")
    [embed] = reply["embeds"]
    assert embed["title"] == ON_TOPIC
    assert embed["description"].startswith("*ये उद्धरण अंग्रेज़ी लेखों से हैं")
    assert embed["footer"]["text"].startswith("बताए गए लेखों से शब्दशः उद्धरण; यह कानूनी सलाह नहीं है")
    assert "थ्रेड खोलें" in button_labels(reply)
    assert_quotes_verbatim(embed["description"], env.service.articles())


async def test_a_locale_without_a_catalogue_gets_exactly_the_english_reply(env: Env) -> None:
    english = await ask_as(env, "en-US")
    korean = await ask_as(env, "ko")
    assert korean["embeds"] == english["embeds"]
    assert button_labels(korean) == button_labels(english)
    assert "English-language" not in english["embeds"][0]["description"]


async def test_quotes_are_byte_identical_in_every_locale(env: Env) -> None:
    replies = {locale: await ask_as(env, locale) for locale in LOCALES}
    english = quote_lines(replies["en-US"]["embeds"][0])
    assert english
    for locale, reply in replies.items():
        assert quote_lines(reply["embeds"][0]) == english, locale
        assert_quotes_verbatim(reply["embeds"][0]["description"], env.service.articles())


async def test_a_declined_question_is_declined_in_the_members_language(env: Env) -> None:
    reply = await ask_as(env, "de", OFF_TOPIC)
    [embed] = reply["embeds"]
    assert embed["title"] == f"Nicht abgedeckt: {OFF_TOPIC}"
    assert embed["description"].startswith("In meinen Artikeln habe ich nichts gefunden, was das beantwortet.")
    assert "**Meine Artikel behandeln:**" in embed["description"]


async def test_the_rate_limit_reply_is_in_the_members_language(discord_harness, knowledge_service, tmp_path) -> None:
    env = await start_env(discord_harness, knowledge_service, tmp_path, cooldown_questions=1, cooldown_seconds=60.0)
    env.member.locale = "ru"
    await final_message(await env.ask(ON_TOPIC))
    second = await env.ask("Who is affected by the ban?")
    await second.wait_response()
    response = second.response
    assert response is not None and response.ephemeral
    assert (response.content or "").startswith("Вы спрашиваете слишком часто; подождите ")


async def test_a_mention_is_answered_in_the_servers_preferred_locale(
    discord_harness, knowledge_service, tmp_path
) -> None:
    sg = await discord_harness.fake.create_standard_guild()
    sg.guild.locale = "fr"  # set before the bot connects, so its guild carries preferred_locale "fr"
    bot = await start_bot(discord_harness, knowledge_service, tmp_path)
    env = Env(discord_harness, discord_harness.fake, sg, bot, knowledge_service, tmp_path)
    reply = await env.reply_to(await env.mention(ON_TOPIC))
    [embed] = reply.embeds
    assert embed["description"].startswith("*Les citations proviennent d’articles en anglais")
    assert "Ouvrir un fil" in plain_text(reply)
    assert_quotes_verbatim(embed["description"], env.service.articles())


# -- commands ---------------------------------------------------------------------------------------


async def test_synced_commands_carry_their_translated_names(env: Env) -> None:
    ask = synced(env, "ask")
    assert ask["name_localizations"]["de"] == "fragen"
    assert ask["name_localizations"]["hi"] == "पूछें"
    assert ask["description_localizations"]["de"].startswith("Frag, was die Nachrichtenartikel")
    question = next(o for o in ask["options"] if o["name"] == "question")
    assert question["name_localizations"]["ja"] == "内容"
    assert synced(env, "Find sources", ctype=3)["name_localizations"]["zh-TW"] == "查找來源"


@pytest.mark.parametrize(("name", "ctype"), [("ask", 1), ("about", 1), ("sources", 1), ("Find sources", 3)])
async def test_member_commands_are_translated_for_every_catalogue_locale(env: Env, name: str, ctype: int) -> None:
    command = synced(env, name, ctype)
    assert set(command["name_localizations"]) == TRANSLATED_LOCALES
    if ctype == 1:
        assert set(command["description_localizations"]) == TRANSLATED_LOCALES
    for option in command.get("options") or []:
        assert set(option["name_localizations"]) == TRANSLATED_LOCALES, option["name"]
        assert set(option["description_localizations"]) == TRANSLATED_LOCALES, option["name"]
