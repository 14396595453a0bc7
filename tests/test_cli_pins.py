"""The moderators' pins from the command line: `kb pin`, `kb passages`, `kb pins`, `kb phrasing`, `kb unpin`,
`kb pins export|import`, and `ask` serving the pins.

Every command runs through click as a person would run it, over a copy of the real index, with the
real models and a real SQLite database in a temporary data directory. The models are loaded once for
the session and handed to each command's `KnowledgeService.open` (loading them again per command
would only make the tests slower; everything after loading is the command's own path).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from bot.cli import cli
from bot.knowledge import get_article, write_article
from bot.service import KnowledgeService
from tests.conftest import KNOWLEDGE
from tests.test_pins import ARTICLE, DECLINED, PARAPHRASE, PASSAGE, UNRELATED

MARK = "· 📌 chosen by the moderators"
WHO = "Who issued the order restricting access?"


class Cli:
    """`directive-bot` over one knowledge copy, one index copy and one data directory."""

    def __init__(self, knowledge: Path, index: Path, data: Path) -> None:
        self.knowledge, self.index, self.data = knowledge, index, data

    def __call__(self, *args: str, input: str | None = None) -> Result:
        env = {"DISCORD_TOKEN": "", "DIRECTIVE_BOT__PATHS__DATA_DIR": str(self.data)}
        paths = ["--knowledge", str(self.knowledge), "--index", str(self.index)]
        return CliRunner().invoke(cli, [*args, *paths], input=input, env=env, catch_exceptions=False)

    def with_data(self, data: Path) -> Cli:
        """The same articles and index with another database (another deployment's)."""
        return Cli(self.knowledge, self.index, data)

    def ask_json(self, question: str) -> dict:
        result = self("ask", "--json", question)
        assert result.exit_code == 0, result.output
        return json.loads(result.output.strip().splitlines()[-1])

    def pin_passage(self, question: str = DECLINED, *extra: str) -> Result:
        result = self("kb", "pin", question, "--quote", PASSAGE, "--yes", *extra)
        assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def run(tmp_path: Path, real_index_dir: Path, real_service: KnowledgeService, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The command line over copies of the bundled articles and the real index, sharing the loaded models."""
    shutil.copytree(KNOWLEDGE, tmp_path / "knowledge")
    shutil.copytree(real_index_dir, tmp_path / "index", ignore=shutil.ignore_patterns(".build.lock", ".tmp-*"))
    open_service = KnowledgeService.open.__func__  # type: ignore[attr-defined]
    models = {"embedder": real_service.embedder, "reranker": real_service.reranker, "late": real_service.late}

    def open_sharing_models(cls: type[KnowledgeService], settings, **kwargs) -> KnowledgeService:
        return open_service(cls, settings, **{**models, **kwargs})

    monkeypatch.setattr(KnowledgeService, "open", classmethod(open_sharing_models))
    return Cli(tmp_path / "knowledge", tmp_path / "index", tmp_path / "data")


def first_excerpt(answer: dict) -> dict:
    assert not answer["abstained"], answer
    return answer["excerpts"][0]


def pins_listed(run: Cli) -> list[str]:
    """The `#id “question” (state)` lines of `kb pins`."""
    result = run("kb", "pins")
    assert result.exit_code == 0, result.output
    return [line for line in result.output.splitlines() if line.startswith("#")]


def refs(output: str) -> list[str]:
    return re.findall(r"^(\S+@\d+-\d+)$", output, flags=re.MULTILINE)


# -- pinning and serving ---------------------------------------------------------------------------


def test_a_question_pinned_with_quote_is_answered_with_that_passage_first_for_a_paraphrase(run: Cli) -> None:
    run.pin_passage(DECLINED)
    excerpt = first_excerpt(run.ask_json(PARAPHRASE))
    assert excerpt["quote"] == PASSAGE
    assert excerpt["pinned"] is True
    assert excerpt["source"]["article_id"] == ARTICLE


def test_kb_pin_prints_the_preview_and_the_new_pins_number(run: Cli) -> None:
    result = run.pin_passage(DECLINED)
    assert f"Question: {DECLINED}" in result.output
    assert f"1. “{PASSAGE}”" in result.output
    assert "Pinned #1: questions like “what happens to my chats” now get these passages first." in result.output


def test_the_text_answer_marks_the_pinned_quote_as_chosen_by_the_moderators(run: Cli) -> None:
    run.pin_passage(DECLINED)
    result = run("ask", PARAPHRASE)
    attributions = [line for line in result.output.splitlines() if line.strip().startswith("— ")]
    assert attributions[0].endswith(MARK)
    assert not any(line.endswith(MARK) for line in attributions[1:])


def test_a_german_reader_sees_the_pinned_mark_in_german(run: Cli) -> None:
    run.pin_passage(DECLINED)
    result = run("ask", PARAPHRASE, "--lang", "de")
    assert result.exit_code == 0, result.output
    assert "· 📌 von den Moderatoren ausgewählt" in result.output
    assert MARK not in result.output


def test_kb_pin_excerpt_pins_the_bots_own_excerpt_for_the_question(run: Cli) -> None:
    second = run.ask_json(WHO)["excerpts"][1]
    result = run("kb", "pin", WHO, "--excerpt", "2", "--yes")
    assert result.exit_code == 0, result.output
    pinned = first_excerpt(run.ask_json(WHO))
    assert (pinned["quote"], pinned["span"], pinned["pinned"]) == (second["quote"], second["span"], True)


def test_kb_pin_excerpt_past_the_bots_last_excerpt_is_refused(run: Cli) -> None:
    count = len(run.ask_json(WHO)["excerpts"])
    result = run("kb", "pin", WHO, "--excerpt", str(count + 1), "--yes")
    assert result.exit_code == 1
    assert f"The bot quotes {count} excerpt(s) for that question, not {count + 1}." in result.output
    assert pins_listed(run) == []


# -- finding passages ------------------------------------------------------------------------------


def test_kb_pin_search_lists_every_sentence_with_the_words_and_pins_nothing(run: Cli) -> None:
    result = run("kb", "pin", DECLINED, "--search", "older AI system")
    assert result.exit_code == 0, result.output
    assert PASSAGE in result.output
    found = refs(result.output)
    assert found and all(ref.startswith(f"{ARTICLE}@") for ref in found)
    assert f"Pin one with: directive-bot kb pin '{DECLINED}' --passage {found[0]}" in result.output
    assert pins_listed(run) == []


def test_a_ref_printed_by_the_search_pins_that_sentence(run: Cli) -> None:
    ref = refs(run("kb", "pin", DECLINED, "--search", "older AI system").output)[0]
    result = run("kb", "pin", DECLINED, "--passage", ref, "--yes")
    assert result.exit_code == 0, result.output
    assert first_excerpt(run.ask_json(DECLINED))["quote"] == PASSAGE


def test_kb_passages_prints_the_same_sentences_as_the_pin_search(run: Cli) -> None:
    passages = run("kb", "passages", "older AI system")
    search = run("kb", "pin", DECLINED, "--search", "older AI system")
    assert refs(passages.output) == refs(search.output)


def test_a_search_nothing_matches_says_so(run: Cli) -> None:
    result = run("kb", "pin", DECLINED, "--search", "zeppelin marmalade")
    assert result.exit_code == 0
    assert result.output.strip() == "No sentence contains all of those words."


# -- refusals that change nothing ------------------------------------------------------------------


def test_a_quote_no_article_contains_is_refused_in_one_line_and_nothing_is_pinned(run: Cli) -> None:
    result = run("kb", "pin", DECLINED, "--quote", "Anthropic will refund every subscriber in full.", "--yes")
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("error: ")
    assert pins_listed(run) == []


def test_kb_pin_without_a_passage_is_refused(run: Cli) -> None:
    result = run("kb", "pin", DECLINED, "--yes")
    assert result.exit_code == 1
    assert "Choose at least one passage to pin; nothing was pinned." in result.output


def test_kb_pin_without_yes_off_a_terminal_pins_nothing(run: Cli) -> None:
    result = run("kb", "pin", DECLINED, "--quote", PASSAGE)
    assert result.exit_code == 1
    assert "add --yes" in result.output
    assert pins_listed(run) == []


def test_pinning_a_question_already_pinned_is_refused(run: Cli) -> None:
    run.pin_passage(DECLINED)
    result = run("kb", "pin", DECLINED.upper(), "--quote", PASSAGE, "--yes")
    assert result.exit_code == 1
    assert "already pinned (pin #1)" in result.output
    assert len(pins_listed(run)) == 1


def test_an_over_long_question_is_refused_like_any_question(run: Cli) -> None:
    result = run("kb", "pin", "x" * 501, "--quote", PASSAGE, "--yes")
    assert result.exit_code == 1
    assert "limit is 500" in result.output
    assert pins_listed(run) == []


# -- listing, phrasings, unpinning -----------------------------------------------------------------


def test_kb_pins_without_pins_says_how_to_add_one(run: Cli) -> None:
    result = run("kb", "pins")
    assert "No pins yet; add one with `directive-bot kb pin QUESTION --quote TEXT`." in result.output


def test_kb_pins_lists_a_pin_as_served_with_its_passages_and_phrasings(run: Cli) -> None:
    run.pin_passage(DECLINED, "--phrasing", UNRELATED)
    result = run("kb", "pins")
    assert f"#1 “{DECLINED}” (served)" in result.output
    assert "0 hit(s), 👍 0 👎 0 since pinned by cli:" in result.output
    assert "1 passage(s), 1 more phrasing(s)" in result.output


def test_a_phrasing_added_with_kb_phrasing_is_answered_with_the_pin(run: Cli) -> None:
    run.pin_passage(DECLINED)
    assert run.ask_json(UNRELATED)["abstained"]  # declined before the phrasing is added
    result = run("kb", "phrasing", "1", UNRELATED)
    assert result.output.strip() == "Pin #1 now matches 2 phrasing(s)."
    assert first_excerpt(run.ask_json(UNRELATED))["quote"] == PASSAGE


def test_kb_unpin_removes_the_pin_and_its_question_gets_the_automatic_answer(run: Cli) -> None:
    run.pin_passage(DECLINED)
    result = run("kb", "unpin", "1", "--yes")
    assert result.exit_code == 0, result.output
    assert "Unpinned #1." in result.output
    assert pins_listed(run) == []
    assert not any(e.get("pinned") for e in run.ask_json(PARAPHRASE)["excerpts"])


def test_kb_unpin_of_an_unknown_pin_fails_in_one_line(run: Cli) -> None:
    result = run("kb", "unpin", "7", "--yes")
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1


def test_every_pin_change_from_the_command_line_is_in_the_audit_log(run: Cli) -> None:
    run.pin_passage(DECLINED)
    run("kb", "phrasing", "1", UNRELATED)
    run("kb", "unpin", "1", "--yes")
    log = run("kb", "log").output.splitlines()
    actions = [line.split()[3] for line in log]
    assert actions[:3] == ["unpin", "pin", "pin"]  # newest first
    assert "pinned #1 “what happens to my chats”" in log[2]
    assert "pin #1: added phrasing “Can I appeal?”" in log[1]


# -- staleness -------------------------------------------------------------------------------------


def test_an_edit_removing_the_pinned_sentence_lists_the_pin_as_stale_and_stops_serving_it(run: Cli) -> None:
    run.pin_passage(DECLINED)
    article = get_article(run.knowledge, ARTICLE)
    write_article(run.knowledge, dataclasses.replace(article, body=article.body.replace(PASSAGE, "")))
    assert run("index", "build").exit_code == 0
    (line,) = pins_listed(run)
    assert line.startswith(f"#1 “{DECLINED}” (STALE, not served: ")
    assert not any(e.get("pinned") for e in run.ask_json(PARAPHRASE)["excerpts"])


# -- export and import -----------------------------------------------------------------------------


def test_export_then_import_into_a_fresh_database_gives_the_same_answers(run: Cli, tmp_path: Path) -> None:
    run.pin_passage(DECLINED, "--phrasing", UNRELATED)
    exported = tmp_path / "pins.yaml"
    assert run("kb", "pins", "export", str(exported)).output.strip() == f"Wrote 1 pin(s) to {exported}."
    elsewhere = run.with_data(tmp_path / "elsewhere")
    result = elsewhere("kb", "pins", "import", str(exported))
    assert result.exit_code == 0, result.output
    assert "1 pin(s) imported, 0 skipped." in result.output
    for question in (DECLINED, PARAPHRASE, UNRELATED):
        assert elsewhere.ask_json(question)["excerpts"] == run.ask_json(question)["excerpts"]


def test_importing_the_same_export_twice_skips_the_pins_already_there(run: Cli, tmp_path: Path) -> None:
    run.pin_passage(DECLINED)
    exported = tmp_path / "pins.yaml"
    run("kb", "pins", "export", str(exported))
    result = run("kb", "pins", "import", str(exported))
    assert f"skipped (already pinned here): {DECLINED}" in result.output
    assert "0 pin(s) imported, 1 skipped." in result.output


def test_an_import_whose_passage_is_not_found_verbatim_is_refused_and_adds_nothing(run: Cli, tmp_path: Path) -> None:
    run.pin_passage(DECLINED)
    exported = tmp_path / "pins.yaml"
    run("kb", "pins", "export", str(exported))
    doc = yaml.safe_load(exported.read_text(encoding="utf-8"))
    doc["pins"][0]["quotes"][0]["quote"] = PASSAGE.replace("older", "newer")
    exported.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    elsewhere = run.with_data(tmp_path / "elsewhere")
    result = elsewhere("kb", "pins", "import", str(exported))
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert pins_listed(elsewhere) == []


# -- evaluation ------------------------------------------------------------------------------------


@pytest.fixture
def chats_eval(tmp_path: Path) -> Path:
    """One question the automatic pipeline declines, whose gold is the passage the tests pin."""
    path = tmp_path / "chats.yaml"
    path.write_text(yaml.safe_dump({"on_topic": [{"q": PARAPHRASE, "gold": [PASSAGE]}]}), encoding="utf-8")
    return path


def eval_rows(run: Cli, *args: str) -> dict[str, dict]:
    result = run("eval", "--json", *args)
    assert result.exit_code == 0, result.output
    (figures,) = json.loads(result.output.strip().splitlines()[-1]).values()
    return {row["mode"]: row for row in figures["modes"]}


def test_eval_measures_the_automatic_pipeline_without_the_pins(run: Cli, chats_eval: Path) -> None:
    run.pin_passage(DECLINED)
    rows = eval_rows(run, str(chats_eval))
    assert not any("pins" in mode for mode in rows)
    assert rows["hybrid+rerank"]["hit@1"] == 0.0


def test_eval_with_pins_adds_a_row_where_the_pinned_passage_answers(run: Cli, chats_eval: Path) -> None:
    run.pin_passage(DECLINED)
    rows = eval_rows(run, str(chats_eval), "--with-pins")
    assert rows["hybrid+rerank+1-pins"]["hit@1"] == 1.0
    assert rows["hybrid+rerank"]["hit@1"] == 0.0
