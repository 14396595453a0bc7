"""The scale benchmark's distractor corpus (bench/corpus.py): unrelated prose, never this project's own."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import corpus


def test_distractors_never_hold_this_projects_readme_paragraphs(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = sorted(corpus.own_paragraphs())
    assert own, "the README has prose paragraphs that quote the articles"
    filler = [f"Paragraph {i} of unrelated prose " + "about gardens and rivers " * 8 for i in range(30)]
    monkeypatch.setattr(corpus, "paragraphs", lambda: tuple(own * 3 + filler))
    dest = corpus.make_corpus(tmp_path / "kb", 40)
    distractors = sorted(dest.glob("distractor-*.md"))
    assert len(distractors) == 40 - len(list(Path(corpus.REPO, "knowledge").glob("*.md")))
    for path in distractors:
        text = path.read_text(encoding="utf-8")
        assert not any(p in text for p in own), path.name
