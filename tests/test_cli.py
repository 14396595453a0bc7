import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bot.cli import cli
from bot.knowledge import read_article
from tests.conftest import KNOWLEDGE, REPO


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    runner = CliRunner()
    return runner.invoke(cli, list(args), input=input, env={"DISCORD_TOKEN": "", **(env or {})}, catch_exceptions=False)


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    knowledge = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, knowledge)
    return {"knowledge": knowledge, "index": tmp_path / "index", "data": tmp_path / "data"}


def opts(dirs: dict[str, Path]) -> list[str]:
    return ["--knowledge", str(dirs["knowledge"]), "--index", str(dirs["index"])]


def data_env(dirs: dict[str, Path]) -> dict[str, str]:
    return {"DIRECTIVE_BOT__PATHS__DATA_DIR": str(dirs["data"])}


@pytest.fixture
def built(dirs: dict[str, Path], real_index_dir: Path) -> dict[str, Path]:
    """A copy of the session's real index, so tests may change it."""
    shutil.copytree(real_index_dir, dirs["index"])
    return dirs


@pytest.mark.parametrize(
    ("question", "message"),
    [("", "question is empty"), ("   \t ", "question is empty"), ("x" * 501, "limit is 500")],
)
def test_ask_refuses_bad_questions_with_one_line_and_exit_1(dirs, question: str, message: str) -> None:
    result = run("ask", question, *opts(dirs))
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_ask_without_a_question_explains_usage() -> None:
    result = run("ask")
    assert result.exit_code == 2
    assert "Give a question" in result.output


def test_a_token_in_the_config_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("discord:\n  token: secret\n")
    result = run("config", "show", "--config", str(config))
    assert result.exit_code == 1
    assert "DISCORD_TOKEN" in result.output


def test_options_work_after_the_command_name_too(dirs) -> None:
    result = run("config", "show", "--knowledge", str(dirs["knowledge"]))
    assert f"knowledge_dir: {dirs['knowledge']}" in result.output


def test_index_status_without_a_build_says_so(dirs) -> None:
    result = run("index", "status", *opts(dirs))
    assert result.exit_code == 0
    assert "no index built yet" in result.output


def test_index_verify_without_a_build_fails_with_a_reason(dirs) -> None:
    result = run("index", "verify", *opts(dirs))
    assert result.exit_code == 1
    assert result.output.startswith("error: No index")


def test_kb_remove_of_an_unknown_id_fails(dirs) -> None:
    result = run("kb", "remove", "no-such-article", "--yes", *opts(dirs), env=data_env(dirs))
    assert result.exit_code == 1
    assert "No article with id 'no-such-article'" in result.output


def test_kb_add_without_yes_off_a_terminal_writes_nothing(dirs, tmp_path: Path) -> None:
    source = tmp_path / "story.txt"
    source.write_text("A new headline\n\nThe first paragraph of the new story.\n")
    before = sorted(p.name for p in dirs["knowledge"].iterdir())
    result = run("kb", "add", str(source), *opts(dirs), env=data_env(dirs))
    assert result.exit_code == 1
    assert "add --yes" in result.output
    assert sorted(p.name for p in dirs["knowledge"].iterdir()) == before


def test_kb_add_file_writes_the_article_and_the_audit_log(dirs, tmp_path: Path) -> None:
    source = tmp_path / "story.txt"
    source.write_text("A new headline\n\nadvertisement\n\nThe first paragraph of the new story.\n")
    result = run("kb", "add", str(source), "--yes", "--no-rebuild", *opts(dirs), env=data_env(dirs))
    assert result.exit_code == 0, result.output
    article = read_article(dirs["knowledge"] / "a-new-headline.md")
    assert article.body == "The first paragraph of the new story."
    log = run("kb", "log", *opts(dirs), env=data_env(dirs))
    assert "add" in log.output and "a-new-headline" in log.output


@pytest.mark.parametrize("content", [b"", b"\x00\x01binary", b"---\nid: x\ntitle: [\n---\nbody"])
def test_kb_add_refuses_bad_files_and_writes_nothing(dirs, tmp_path: Path, content: bytes) -> None:
    source = tmp_path / "bad.md"
    source.write_bytes(content)
    before = sorted(p.name for p in dirs["knowledge"].iterdir())
    result = run("kb", "add", str(source), "--yes", "--no-rebuild", *opts(dirs), env=data_env(dirs))
    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert sorted(p.name for p in dirs["knowledge"].iterdir()) == before


def test_kb_list_json_lists_every_article(dirs) -> None:
    result = run("kb", "list", "--json", *opts(dirs), env=data_env(dirs))
    ids = {a["id"] for a in json.loads(result.output)}
    assert ids == {p.stem for p in KNOWLEDGE.glob("*.md")}


def test_kb_show_prints_metadata(dirs) -> None:
    article_id = next(KNOWLEDGE.glob("anthropic-shuts*.md")).stem
    result = run("kb", "show", article_id, *opts(dirs), env=data_env(dirs))
    assert "Anthropic shuts down newest AI model after US bans foreign use" in result.output
    assert "Publisher: unknown" in result.output


# --- with the real models ------------------------------------------------------------------


def test_ask_json_quotes_verbatim_from_the_cited_article(built) -> None:
    result = run("ask", "--json", "Is Opus 4.8 affected by the ban?", *opts(built))
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output.strip().splitlines()[-1])
    assert set(answer) >= {"question", "abstained", "index_version", "excerpts"}
    assert not answer["abstained"]
    for excerpt in answer["excerpts"]:
        assert set(excerpt) >= {"quote", "score", "span", "source", "also_reported_by"}
        assert set(excerpt["source"]) == {"article_id", "title", "publisher", "url", "published"}
        body = read_article(built["knowledge"] / f"{excerpt['source']['article_id']}.md").body
        start, end = excerpt["span"]
        assert body[start:end] == excerpt["quote"]
    assert "Opus 4.8" in answer["excerpts"][0]["quote"]


def test_ask_json_stdin_answers_one_object_per_line(built) -> None:
    questions = "who issued the order?\n\nweather in paris tomorrow?\n" + "y" * 600 + "\n"
    result = run("ask", "--json", "-", *opts(built), input=questions)
    lines = [json.loads(line) for line in result.output.strip().splitlines() if line.startswith("{")]
    assert [line["question"][:20] for line in lines] == ["who issued the order", "weather in paris tom", "y" * 20]
    assert lines[0]["abstained"] is False
    assert lines[1]["abstained"] is True
    assert "limit is 500" in lines[2]["error"]


def test_ask_text_output_shows_quotes_with_attribution(built) -> None:
    result = run("ask", "Who issued the order restricting access?", *opts(built))
    assert result.exit_code == 0
    assert "“" in result.output
    titles = {read_article(p).title for p in KNOWLEDGE.glob("*.md")}
    attributions = [line.strip()[2:] for line in result.output.splitlines() if line.strip().startswith("— ")]
    assert attributions and all(a in titles for a in attributions)  # the bundled articles know only titles


def test_off_topic_question_is_declined_with_covered_topics(built) -> None:
    result = run("ask", "Can you give me a good recipe for banana bread?", *opts(built))
    assert "does not cover that" in result.output
    assert "US Order Restricting Anthropic AI Models Access Sparks Criticism" in result.output


def test_index_build_json_reports_zero_embedded_when_nothing_changed(built) -> None:
    result = run("index", "build", "--json", *opts(built), env=data_env(built))
    report = json.loads(result.output.strip().splitlines()[-1])
    assert set(report) >= {"index_version", "articles", "chunks", "embedded", "seconds"}
    assert report["embedded"] == 0
    assert report["articles"] == 5


def test_index_build_after_an_edit_embeds_only_the_changed_chunks(built) -> None:
    path = next(built["knowledge"].glob("anthropic-shuts*.md"))
    path.write_text(path.read_text() + "\nA late correction was appended to this story.\n")
    result = run("index", "build", "--json", *opts(built), env=data_env(built))
    report = json.loads(result.output.strip().splitlines()[-1])
    assert 1 <= report["embedded"] <= 3
    status = run("index", "status", *opts(built))
    assert "fresh" in status.output


def test_index_verify_passes_on_a_real_build(built) -> None:
    result = run("index", "verify", *opts(built))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: index")


def test_python_dash_m_bot_runs_the_same_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0
    assert "ask" in result.stdout and "index" in result.stdout


def test_ask_lang_frames_the_answer_in_german_and_quotes_the_articles_unchanged(built) -> None:
    result = run("ask", "Who issued the order restricting access?", "--lang", "de", *opts(built))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "F: Who issued the order restricting access?"
    assert "Die Zitate stammen aus englischsprachigen Artikeln und sind unverändert wiedergegeben." in lines
    assert lines[-1].startswith("(Index ")
    bodies = [read_article(p).body for p in KNOWLEDGE.glob("*.md")]
    quotes = [line.split(". “", 1)[1].removesuffix("”") for line in lines if re.match(r"\d+\. “", line)]
    assert quotes and all(any(q in body for body in bodies) for q in quotes)


def test_ask_lang_without_a_catalogue_is_refused_before_anything_loads() -> None:
    result = run("ask", "Who is affected?", "--lang", "xx")
    assert result.exit_code == 2
    assert "no messages in 'xx'" in result.output


def test_embedding_threads_are_set_once_by_the_command_line_edge() -> None:
    import torch

    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    try:
        result = CliRunner().invoke(cli, ["config", "show"], env={"DIRECTIVE_BOT__EMBEDDING__THREADS": str(target)})
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == target
    finally:
        torch.set_num_threads(before)


def test_bm25s_debug_lines_stay_quiet_even_after_it_resets_its_level(caplog) -> None:
    """bm25s sets its logger to DEBUG when imported, which happens after the CLI has configured logging."""
    import logging

    from bot.cli import configure_process

    configure_process(verbose=False)
    logger = logging.getLogger("bm25s")
    logger.setLevel(logging.DEBUG)  # what importing bm25s does
    with caplog.at_level(logging.DEBUG, logger="bm25s"):
        logger.debug("Building index from IDs objects")
        logger.warning("a real problem")
    assert [r.getMessage() for r in caplog.records if r.name == "bm25s"] == ["a real problem"]


@pytest.fixture
def small_eval(tmp_path: Path) -> Path:
    """Eight answerable, three off-topic and two near-miss questions of the project's own set."""
    own = yaml.safe_load((REPO / "tests" / "eval" / "own.yaml").read_text(encoding="utf-8"))
    subset = {"on_topic": own["on_topic"][:8], "off_topic": own["off_topic"][:3], "near_miss": own["near_miss"][:2]}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(subset), encoding="utf-8")
    return path


def cv_report(built: dict[str, Path], small_eval: Path, *extra: str) -> dict:
    result = run("eval", *opts(built), str(small_eval), "--cv", "2", "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def test_eval_cv_reports_held_out_figures_at_the_configured_window_budget(built, small_eval: Path) -> None:
    report = cv_report(built, small_eval)
    assert report["rows"][-1]["mode"] == "2-fold held-out"
    assert report["rows"][-1]["on_topic"] == 8
    assert {p["rerank_windows"] for p in [report["fitted"], *report["folds"]]} == {10}


def test_eval_cv_windows_option_lets_the_folds_choose_among_other_budgets(built, small_eval: Path) -> None:
    report = cv_report(built, small_eval, "--windows", "3", "--windows", "5")
    assert {p["rerank_windows"] for p in [report["fitted"], *report["folds"]]} <= {3, 5}
