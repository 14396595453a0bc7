from pathlib import Path

import pytest

from bot.config import REPO_ROOT, Settings, load_settings
from bot.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_and_no_environment_gives_the_defaults() -> None:
    assert load_settings(environ={}) == Settings()


def test_defaults_point_at_the_project_directories() -> None:
    paths = load_settings(environ={}).paths
    assert paths.knowledge_dir == REPO_ROOT / "knowledge"
    assert paths.index_dir == REPO_ROOT / "index"


def test_example_config_documents_exactly_the_defaults() -> None:
    example = load_settings(REPO_ROOT / "config.example.yaml", environ={})
    assert example == Settings()


def test_yaml_values_override_defaults(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, "discord:\n  cooldown_seconds: 2.5\n  allowed_channels: [1, 2]\n"), environ={}
    )
    assert settings.discord.cooldown_seconds == 2.5
    assert settings.discord.allowed_channels == (1, 2)


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "paths:\n  index_dir: built\n"), environ={})
    assert settings.paths.index_dir == (tmp_path / "built").resolve()


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "discord:\n  mention_replies: true\n")
    settings = load_settings(path, environ={"DIRECTIVE_BOT__DISCORD__MENTION_REPLIES": "off"})
    assert settings.discord.mention_replies is False


def test_command_line_paths_override_everything(tmp_path: Path) -> None:
    settings = load_settings(environ={}, knowledge=tmp_path / "k", index=tmp_path / "i")
    assert (settings.paths.knowledge_dir, settings.paths.index_dir) == (tmp_path / "k", tmp_path / "i")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("discord:\n  token: abc.def\n", "DISCORD_TOKEN"),
        ("discord_token: abc\n", "DISCORD_TOKEN"),
        ("discord:\n  colour: blue\n", "Unknown setting discord.colour"),
        ("nonsense:\n  a: 1\n", "Unknown config section"),
        ("discord:\n  cooldown_seconds: soon\n", "discord.cooldown_seconds must be a number"),
        ("discord: [1, 2\n", "not valid YAML"),
        ("- a list\n", "mapping"),
    ],
)
def test_bad_config_files_are_refused_with_a_clear_message(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text), environ={})


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.yaml", environ={})


def test_token_comes_from_the_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "from-env")
    assert load_settings(environ={}).discord_token == "from-env"


def test_malformed_environment_key_is_explained() -> None:
    with pytest.raises(ConfigError, match="SECTION__KEY"):
        load_settings(environ={"DIRECTIVE_BOT__COOLDOWN": "1"})


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("discord:\n  cooldown_seconds: MTIzNDU2Nzg5.secret-value\n", "discord.cooldown_seconds", "a number"),
        ("discord:\n  workers: MTIzNDU2Nzg5.secret-value\n", "discord.workers", "an integer"),
        ("discord:\n  moderator_roles: [MTIzNDU2Nzg5.secret-value]\n", "discord.moderator_roles", "a list of integers"),
        ("paths:\n  data_dir: {MTIzNDU2Nzg5: secret-value}\n", "paths.data_dir", "a path"),
    ],
)
def test_a_wrong_value_is_named_by_key_and_type_and_never_echoed(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ={})
    message = str(caught.value)
    assert key in message
    assert expected in message
    assert "MTIzNDU2Nzg5" not in message
    assert "secret-value" not in message


def test_a_wrong_environment_value_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"DIRECTIVE_BOT__KNOWLEDGE__MAX_ARTICLE_BYTES": "hunter2-secret"})
    assert "knowledge.max_article_bytes must be an integer" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_article_size_limit_is_configurable() -> None:
    settings = load_settings(environ={"DIRECTIVE_BOT__KNOWLEDGE__MAX_ARTICLE_BYTES": "1000"})
    assert settings.knowledge.max_article_bytes == 1000


def test_discord_ids_from_the_environment_may_be_comma_or_space_separated() -> None:
    settings = load_settings(environ={"DIRECTIVE_BOT__DISCORD__MODERATOR_ROLES": "12, 34 56"})
    assert settings.discord.moderator_roles == (12, 34, 56)


def test_relative_paths_in_the_file_are_relative_to_the_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "paths:\n  data_dir: state\n"), environ={})
    assert settings.paths.data_dir == (tmp_path / "state").resolve()
