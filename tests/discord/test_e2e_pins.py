"""Pins end to end: real discord.py against the fake Discord, the real models, a private index and SQLite.

A moderator pins passages (from /kb gaps, /kb feedback or /kb pin) and members' questions that mean
the same are answered with them first; nobody else can take a single step of it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from bot.db import Database
from bot.knowledge import get_article, write_article
from bot.service import KnowledgeService

from .fake_discord import FakeMessage
from .test_e2e_kb import TIMEOUT, KbEnv, private_service, start_kb_env

pytestmark = pytest.mark.slow

ARTICLE = "the-us-prevents-foreigners-from-using-anthropics-most"
PASSAGE = (
    "Most of the queries it considers risky would instead be transferred to an older AI system called Opus 4.8, "
    "according to Antropic."
)
DECLINED = "what happens to my chats"
PARAPHRASE = "what will happen to my chat history"
MARK = "📌 chosen by the moderators"


@pytest.fixture
def service(knowledge_service: KnowledgeService, tmp_path: Path) -> KnowledgeService:
    return private_service(knowledge_service, tmp_path)


@pytest.fixture
async def env(discord_harness: Any, service: KnowledgeService, tmp_path: Path) -> KbEnv:
    return await start_kb_env(discord_harness, service, tmp_path / "data")


def select_id(message: FakeMessage) -> str:
    for row in message.components or []:
        for component in row.get("components") or []:
            if component.get("type") == 3:
                return component["custom_id"]
    raise AssertionError("no select menu on the message")


def select_values(message: FakeMessage) -> list[str]:
    for row in message.components or []:
        for component in row.get("components") or []:
            if component.get("type") == 3:
                return [o["value"] for o in component["options"]]
    raise AssertionError("no select menu on the message")


async def answer_text(env: KbEnv, question: str, user: Any = None) -> str:
    rec = await env.ask(question, user=user)
    message = await rec.wait_original(lambda m: not m.loading and bool(m.embeds), timeout=TIMEOUT)
    return message.embeds[0].get("description") or ""


async def passage_ref(env: KbEnv, words: str) -> str:
    rec = await env.fake.autocomplete("kb pin", {"question": "x", "passage": words}, "passage", user=env.moderator)
    [choice] = (await rec.wait_response()).choices
    return choice["value"]


async def preview_by_slash(env: KbEnv, question: str, words: str = "older AI system") -> FakeMessage:
    ref = await passage_ref(env, words)
    rec = await env.kb("pin", {"question": question, "passage": ref})
    return await env.reply(rec)


async def pin_by_slash(env: KbEnv, question: str = DECLINED) -> FakeMessage:
    preview = await preview_by_slash(env, question)
    press = await env.press(preview, "Pin")
    return await env.report_after(press)


# -- a moderator pins, a member is answered ------------------------------------------------------


async def test_a_declined_question_pinned_from_gaps_answers_a_members_paraphrase_with_the_passage_first(
    env: KbEnv,
) -> None:
    assert (await answer_text(env, DECLINED)).startswith("I couldn't find anything")
    gaps = await env.reply(await env.kb("gaps"))
    assert select_values(gaps) == ["0"]
    picker_rec = await env.fake.select_menu(gaps, select_id(gaps), ["0"], user=env.moderator)
    picker = await picker_rec.wait_original(lambda m: not m.loading, timeout=TIMEOUT)
    assert picker.ephemeral and picker.embeds[0]["title"] == f"Pin an answer for “{DECLINED}”"
    paste = await env.press(picker, "Paste passages")
    await paste.wait_response()
    submit = await env.fake.submit_modal(paste, values={"pin:passage1": PASSAGE})
    await submit.wait_response()
    preview = env.fake.get_message(picker.id)
    assert preview.embeds[0]["title"] == f"Pin these passages for “{DECLINED}”?"
    assert MARK in preview.embeds[0]["description"]
    report = await env.report_after(await env.press(preview, "Pin"))
    assert report.embeds[0]["title"] == f"Pinned #1: “{DECLINED}”"
    text = await answer_text(env, PARAPHRASE)
    first_block = text.split("\n\n")[0]
    assert "Most of the queries it considers risky" in first_block and MARK in first_block


async def test_the_bots_own_excerpts_can_be_chosen_for_a_pin(env: KbEnv) -> None:
    question = "Is Opus 4.8 affected?"
    picker = await env.reply(await env.kb("pin", {"question": question}))
    values = select_values(picker)
    assert len(values) >= 2
    chosen = await env.fake.select_menu(picker, select_id(picker), values[:2], user=env.moderator)
    await chosen.wait_response()
    preview = env.fake.get_message(picker.id)
    assert preview.embeds[0]["description"].count(MARK) == 2
    await env.report_after(await env.press(preview, "Pin"))
    assert (await answer_text(env, question)).count(MARK) == 2


async def test_phrasings_added_in_the_preview_are_shown_and_saved(env: KbEnv) -> None:
    preview = await preview_by_slash(env, DECLINED)
    opened = await env.press(preview, "Add phrasings")
    await opened.wait_response()
    submit = await env.fake.submit_modal(opened, values={"pin:phrasings": "Will my chats be deleted?\n\n"})
    await submit.wait_response()
    shown = env.fake.get_message(preview.id)
    assert "• Will my chats be deleted?" in shown.embeds[0]["fields"][0]["value"]
    await env.report_after(await env.press(shown, "Pin"))
    with env.database() as db:
        assert db.pins()[0].phrasings == ("Will my chats be deleted?",)


async def test_pins_lists_hits_and_votes_since_pinned(env: KbEnv) -> None:
    await pin_by_slash(env)
    rec = await env.ask(PARAPHRASE)
    answer = await rec.wait_original(lambda m: not m.loading and bool(m.embeds), timeout=TIMEOUT)
    vote = await env.fake.click_button(answer, button_id_by_emoji(answer, "👎"), user=env.member)
    await vote.wait_response()
    listing = await env.reply(await env.kb("pins"))
    [field] = listing.embeds[0]["fields"]
    assert field["name"] == f"#1 · served · {DECLINED}"
    assert field["value"].startswith("1 hit · 👍 0 👎 1 since pinned")


def button_id_by_emoji(message: FakeMessage, emoji: str) -> str:
    for row in message.components or []:
        for component in row.get("components") or []:
            if (component.get("emoji") or {}).get("name") == emoji:
                return component["custom_id"]
    raise AssertionError(f"no {emoji} button")


async def test_feedback_groups_downvoted_answers_and_offers_to_pin_one(env: KbEnv) -> None:
    rec = await env.ask("Is Opus 4.8 affected?")
    answer = await rec.wait_original(lambda m: not m.loading and bool(m.embeds), timeout=TIMEOUT)
    await (await env.fake.click_button(answer, button_id_by_emoji(answer, "👎"), user=env.member)).wait_response()
    listing = await env.reply(await env.kb("feedback"))
    assert "**1× 👎** Is Opus 4.8 affected?" in listing.embeds[0]["description"]
    picker_rec = await env.fake.select_menu(listing, select_id(listing), ["0"], user=env.moderator)
    picker = await picker_rec.wait_original(lambda m: not m.loading, timeout=TIMEOUT)
    assert picker.embeds[0]["title"] == "Pin an answer for “Is Opus 4.8 affected?”"


async def test_unpin_asks_first_then_the_automatic_answer_returns(env: KbEnv) -> None:
    await pin_by_slash(env)
    prompt = await env.reply(await env.kb("unpin", {"pin": 1}))
    assert prompt.embeds[0]["title"] == f"Unpin #1: “{DECLINED}”?"
    await env.report_after(await env.press(prompt, "Unpin"))
    assert MARK not in await answer_text(env, PARAPHRASE)
    assert [e.action for e in env.audit()][:2] == ["unpin", "pin"]


# -- bad input: one private line, nothing pinned ------------------------------------------------

BAD_PINS = [
    ({"question": DECLINED, "passage": "not a suggestion"}, "Choose a passage from the suggestions"),
    ({"question": "why " * 200, "passage": f"{ARTICLE}@0-10"}, "the limit is 500"),
]


@pytest.mark.parametrize(("options", "reason"), BAD_PINS, ids=["free-text-passage", "over-long-question"])
async def test_a_bad_pin_is_refused_in_one_private_line(env: KbEnv, options: dict[str, Any], reason: str) -> None:
    response = await (await env.kb("pin", options)).wait_response()
    assert response.ephemeral and reason in response.content and "\n" not in response.content
    with env.database() as db:
        assert db.pins() == []


async def test_a_pasted_passage_not_in_any_article_is_refused_and_the_picker_stays(env: KbEnv) -> None:
    picker = await env.reply(await env.kb("pin", {"question": DECLINED}))
    paste = await env.press(picker, "Paste passages")
    await paste.wait_response()
    submit = await env.fake.submit_modal(paste, values={"pin:passage1": "Anthropic will refund every subscriber."})
    response = await submit.wait_response()
    assert response.ephemeral and "is not in any article word for word" in response.content
    assert env.fake.get_message(picker.id).embeds[0]["title"].startswith("Pin an answer for")
    with env.database() as db:
        assert db.pins() == []


async def test_a_sentence_found_by_searching_the_articles_can_be_pinned_from_the_picker(env: KbEnv) -> None:
    picker = await env.reply(await env.kb("pin", {"question": DECLINED}))
    search = await env.press(picker, "Search the articles")
    await search.wait_response()
    submit = await env.fake.submit_modal(search, values={"pin:search": "queries risky older system"})
    await submit.wait_response()
    found = env.fake.get_message(picker.id)
    assert "Sentences containing “queries risky older system”" in found.embeds[0]["description"]
    assert "Most of the queries it considers risky" in found.embeds[0]["description"]
    chosen = await env.fake.select_menu(found, select_id(found), [select_values(found)[0]], user=env.moderator)
    await chosen.wait_response()
    preview = env.fake.get_message(picker.id)
    assert preview.embeds[0]["title"] == f"Pin these passages for “{DECLINED}”?"
    await env.report_after(await env.press(preview, "Pin"))
    first_block = (await answer_text(env, PARAPHRASE)).split("\n\n")[0]
    assert "Most of the queries it considers risky" in first_block and MARK in first_block


async def test_a_search_that_finds_no_sentence_says_so_and_the_picker_stays(env: KbEnv) -> None:
    picker = await env.reply(await env.kb("pin", {"question": DECLINED}))
    search = await env.press(picker, "Search the articles")
    await search.wait_response()
    submit = await env.fake.submit_modal(search, values={"pin:search": "refund every subscriber"})
    response = await submit.wait_response()
    assert response.ephemeral and response.content.startswith("No sentence contains all of")
    assert env.fake.get_message(picker.id).embeds[0]["title"].startswith("Pin an answer for")
    with env.database() as db:
        assert db.pins() == []


async def test_a_question_already_pinned_is_refused(env: KbEnv) -> None:
    await pin_by_slash(env)
    response = await (await env.kb("pin", {"question": "What happens to my chats?"})).wait_response()
    assert response.ephemeral and response.content.startswith("That question is already pinned (pin #1)")


# -- moderators only, at every step -------------------------------------------------------------

PIN_COMMANDS = [
    ("pin", {"question": DECLINED}),
    ("pins", {}),
    ("unpin", {"pin": 1}),
    ("phrasing", {"pin": 1, "phrasing": "x"}),
    ("feedback", {}),
]


@pytest.mark.parametrize(("sub", "options"), PIN_COMMANDS, ids=[c[0] for c in PIN_COMMANDS])
async def test_a_member_is_refused_every_pin_command(env: KbEnv, sub: str, options: dict[str, Any]) -> None:
    rec = await env.kb(sub, options, user=env.member, enforce_permissions=False)
    response = await rec.wait_response()
    assert response.ephemeral and response.content.startswith("Only moderators")


async def test_a_member_gets_no_passage_suggestions(env: KbEnv) -> None:
    rec = await env.fake.autocomplete(
        "kb pin", {"question": "x", "passage": "older"}, "passage", user=env.member, enforce_permissions=False
    )
    assert (await rec.wait_response()).choices == []


async def demote(env: KbEnv) -> None:
    await env.fake.set_member_roles(env.sg.guild, env.moderator, [])


async def test_a_demoted_moderator_cannot_choose_excerpts(env: KbEnv) -> None:
    picker = await env.reply(await env.kb("pin", {"question": "Is Opus 4.8 affected?"}))
    await demote(env)
    rec = await env.fake.select_menu(picker, select_id(picker), select_values(picker)[:1], user=env.moderator)
    assert (await rec.wait_response()).content == "You are no longer a moderator here."


async def test_a_demoted_moderator_cannot_open_the_paste_form(env: KbEnv) -> None:
    picker = await env.reply(await env.kb("pin", {"question": DECLINED}))
    await demote(env)
    response = await (await env.press(picker, "Paste passages")).wait_response()
    assert response.modal is None and response.content == "You are no longer a moderator here."


async def test_a_demoted_moderator_cannot_submit_the_paste_form(env: KbEnv) -> None:
    picker = await env.reply(await env.kb("pin", {"question": DECLINED}))
    paste = await env.press(picker, "Paste passages")
    await paste.wait_response()
    await demote(env)
    submit = await env.fake.submit_modal(paste, values={"pin:passage1": PASSAGE})
    assert (await submit.wait_response()).content.startswith("Only moderators")


async def test_a_demoted_moderator_cannot_confirm_a_pin(env: KbEnv) -> None:
    preview = await preview_by_slash(env, DECLINED)
    await demote(env)
    response = await (await env.press(preview, "Pin")).wait_response()
    assert response.content == "You are no longer a moderator here."
    with env.database() as db:
        assert db.pins() == []


async def test_a_demoted_moderator_cannot_pin_from_gaps(env: KbEnv) -> None:
    with env.database() as db:
        db.record_declined(DECLINED, None)
    gaps = await env.reply(await env.kb("gaps"))
    await demote(env)
    rec = await env.fake.select_menu(gaps, select_id(gaps), ["0"], user=env.moderator)
    assert (await rec.wait_response()).content == "You are no longer a moderator here."


# -- staleness and moving pins between deployments ----------------------------------------------


async def test_an_article_edit_removing_the_pinned_sentence_marks_the_pin_stale_and_stops_serving_it(
    env: KbEnv,
) -> None:
    await pin_by_slash(env)
    article = get_article(env.knowledge_dir, ARTICLE)
    write_article(env.knowledge_dir, dataclasses.replace(article, body=article.body.replace(PASSAGE, "")))
    await env.reply(await env.kb("rebuild"))
    listing = await env.reply(await env.kb("pins"))
    [field] = listing.embeds[0]["fields"]
    assert field["name"] == f"#1 · ⚠️ stale, not served · {DECLINED}"
    assert "no longer in" in field["value"]
    assert MARK not in await answer_text(env, PARAPHRASE)


async def test_export_then_import_on_a_fresh_database_gives_the_same_answers(
    discord_harness: Any, service: KnowledgeService, tmp_path: Path
) -> None:
    first = await start_kb_env(discord_harness, service, tmp_path / "first")
    await pin_by_slash(first)
    before = [await answer_text(first, q) for q in (DECLINED, PARAPHRASE)]
    service.export_pins(tmp_path / "pins.yaml")
    await discord_harness.stop_client(first.bot)
    second = await start_kb_env(discord_harness, service, tmp_path / "second")
    assert MARK not in await answer_text(second, PARAPHRASE)
    service.import_pins(tmp_path / "pins.yaml", actor="cli:operator")
    assert [await answer_text(second, q) for q in (DECLINED, PARAPHRASE)] == before
    with Database(tmp_path / "second" / "directive-bot.sqlite3") as db:
        assert [p.question for p in db.pins()] == [DECLINED]
