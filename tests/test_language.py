"""Language detection on short chat questions: English unless the script or a confident classifier says not."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.language import detect

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "eval"
ENGLISH_FILES = [
    SHARED / "dev.yaml",
    SHARED / "dev-large.yaml",
    REPO / "tests/eval/own.yaml",
    REPO / "tests/eval/unseen.yaml",
]


def _questions(path: Path) -> list[tuple[str, str]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for key in ("on_topic", "off_topic", "near_miss"):
        for item in data.get(key) or []:
            text = item if isinstance(item, str) else item["q"]
            lang = (item.get("lang") if isinstance(item, dict) else None) or "en"
            out.append((text, lang))
    return out


@pytest.mark.parametrize("path", ENGLISH_FILES, ids=lambda p: p.name)
def test_every_english_question_of_the_question_files_stays_english(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is not here")
    misread = [(q, detect(q).language) for q, _ in _questions(path) if not detect(q).english]
    assert misread == []


def test_every_translated_question_is_recognised() -> None:
    path = SHARED / "multi-dev.yaml"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    wrong = [(q, lang, detect(q).language) for q, lang in _questions(path) if detect(q).language != lang]
    assert wrong == []


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Fable 5は日本からまだ使えますか？", "ja"),  # Han and kana: Japanese, never Chinese
        ("Anthropic 在美国以外还能用吗？", "zh"),
        ("Могут ли иностранцы всё ещё пользоваться Fable 5?", "ru"),
        ("Opus 4.8 अभी भी यूज़ कर सकते हैं?", "hi"),  # the script decides, English product names or not
    ],
)
def test_a_non_latin_script_decides_even_with_english_names_in_the_question(text: str, lang: str) -> None:
    assert detect(text).language == lang


@pytest.mark.parametrize(
    "text", ["dean ball?", "how do i center a div in css", "is dis ban forever??", "vembu?", "api down?"]
)
def test_short_english_chat_that_the_classifier_misreads_stays_english(text: str) -> None:
    assert detect(text).english


def test_a_mixed_question_follows_its_majority_language() -> None:
    assert (
        detect("is Fable 5 still available in Deutschland, oder ist der Zugang jetzt für alle gesperrt?").language
        == "de"
    )
    assert detect("Kann ich Fable 5 noch benutzen, or is it blocked for everyone now?").english


def test_a_language_outside_the_models_is_still_named() -> None:
    assert detect("Ṣé àwọn ará Nàìjíríà ṣì lè lo Fable 5 báyìí?").language == "yo"


def test_a_question_without_letters_is_english() -> None:
    assert detect("4.8?").english


def test_a_question_during_the_background_load_uses_the_same_classifier(monkeypatch) -> None:
    import threading

    from bot import language

    monkeypatch.setattr(language, "_LOADED", [])
    loading = language.load_in_background()
    seen: list[object] = []
    asker = threading.Thread(target=lambda: seen.append(language._identifier()))
    asker.start()
    asker.join(30)
    loading.join(30)
    assert seen == language._LOADED and len(language._LOADED) == 1
    assert detect("Wer ist von der Anordnung betroffen?").language == "de"
