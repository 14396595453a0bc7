"""Benchmarks: model load, answer latency by stage, build throughput, time to first answer.

Run: python bench/bench.py [--questions FILE ...] [--out BENCHMARKS.md]
Prints a table per measurement and writes them, with the machine described, to BENCHMARKS.md.
Targets (2 cores): answer p50 <= 250 ms, p95 <= 500 ms in-process with reranking (model load
excluded); build throughput >= 90% of raw SentenceTransformer.encode; `ask` answers within 10 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bot.config import load_settings  # noqa: E402
from bot.evaluation import load_eval_set  # noqa: E402
from bot.knowledge import load_knowledge  # noqa: E402

DEFAULT_QUESTION_FILES = [REPO.parent / "shared" / "eval" / "dev.yaml", REPO / "tests" / "eval" / "own.yaml"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join([line, rule, *body])


def machine() -> list[list[object]]:
    import numpy
    import onnxruntime
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(
            next(
                line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
            ).split()[1]
        )
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        pass
    return [
        ["CPU", cpu],
        ["cores available", os.cpu_count()],
        ["memory", mem],
        ["GPU", "none (CPU only)"],
        ["Python", platform.python_version()],
        ["torch", torch.__version__],
        ["onnxruntime", onnxruntime.__version__],
        ["numpy", numpy.__version__],
        ["date", dt.date.today().isoformat()],
    ]


def questions(files: list[Path]) -> list[str]:
    out: list[str] = []
    for f in files:
        if f.exists():
            es = load_eval_set(f)
            out += [q.text for q in es.questions]
    return out or ["Who issued the order?", "Is Opus 4.8 affected?", "What is the weather in Paris?"]


def latency(service, qs: list[str], rounds: int) -> tuple[list[list[object]], int]:
    """Per-stage and wall-clock percentiles of ``service.ask`` over the questions, after a warm-up."""
    for q in qs[:5]:
        service.ask(q)
    stages: dict[str, list[float]] = {k: [] for k in ("embed", "search", "rerank", "compose", "total")}
    wall: list[float] = []
    for _ in range(rounds):
        for q in qs:
            t = time.perf_counter()
            answer = service.ask(q)
            wall.append((time.perf_counter() - t) * 1000)
            stages["embed"].append(answer.timings.embed_ms)
            stages["search"].append(answer.timings.search_ms)
            stages["rerank"].append(answer.timings.rerank_ms + answer.timings.select_ms)
            stages["compose"].append(answer.timings.compose_ms)
            stages["total"].append(answer.timings.total_ms)
    rows = [[k, f"{percentile(v, 0.5):.1f}", f"{percentile(v, 0.95):.1f}", f"{max(v):.1f}"] for k, v in stages.items()]
    rows.append(
        ["wall clock of ask()", f"{percentile(wall, 0.5):.1f}", f"{percentile(wall, 0.95):.1f}", f"{max(wall):.1f}"]
    )
    return rows, len(wall)


def write_sections(path: Path, header: str, sections: list[str]) -> None:
    """Replace this script's part of ``path`` (between its markers), keeping what other benchmarks wrote."""
    begin, end = "<!-- bench.py: begin -->", "<!-- bench.py: end -->"
    mine = f"{begin}\n{header}" + "\n".join(sections) + f"\n{end}\n"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if begin in old and end in old:
        text = old[: old.index(begin)] + mine + old[old.index(end) + len(end) :].lstrip("\n")
    else:
        text = mine + ("\n" + old if old else "")
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, nargs="*", default=DEFAULT_QUESTION_FILES)
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the questions after warm-up")
    args = parser.parse_args()

    sections: list[str] = []

    def emit(title: str, headers: list[str], rows: list[list[object]], note: str = "") -> None:
        text = f"## {title}\n\n{table(headers, rows)}\n" + (f"\n{note}\n" if note else "")
        print(text)
        sections.append(text)

    emit("Machine", ["what", "value"], machine())

    work = Path(tempfile.mkdtemp(prefix="directive-bench-"))
    try:
        settings = load_settings(environ={}).with_paths(index=work / "index")

        # --- model load -------------------------------------------------------------------
        t = time.perf_counter()
        import torch  # noqa: F401 - import cost is part of a cold start
        from sentence_transformers import SentenceTransformer  # noqa: F401

        import_s = time.perf_counter() - t
        from bot.embedding import Embedder, model_token_counter
        from bot.late import LateInteraction
        from bot.rerank import CrossEncoder

        t = time.perf_counter()
        embedder = Embedder(settings.embedding)  # torch: the build-throughput baseline below
        embed_load = time.perf_counter() - t
        copies = work / "encoders"
        Embedder(settings.embedding, cache_dir=copies)  # exports the ONNX copy (what a first start does)
        t = time.perf_counter()
        onnx_embedder = Embedder(settings.embedding, cache_dir=copies)
        onnx_load = time.perf_counter() - t
        assert onnx_embedder.backend == "onnx", "the ONNX copy was not exported (is the onnx package installed?)"
        t = time.perf_counter()
        late = LateInteraction(settings.retrieval.late_model, dim=settings.retrieval.late_dim)
        late_load = time.perf_counter() - t
        t = time.perf_counter()
        reranker = CrossEncoder(settings.retrieval.rerank_model)
        rerank_load = time.perf_counter() - t
        emit(
            "Model load",
            ["step", "seconds"],
            [
                ["import torch + sentence-transformers", f"{import_s:.2f}"],
                ["MiniLM embedder on torch (packaged wheel)", f"{embed_load:.2f}"],
                ["MiniLM embedder, its ONNX copy (encoder cache; no torch import)", f"{onnx_load:.2f}"],
                ["late-interaction ONNX model", f"{late_load:.2f}"],
                ["cross-encoder ONNX model", f"{rerank_load:.2f}"],
            ],
        )

        # --- build throughput ---------------------------------------------------------------
        from bot.chunking import chunk_article
        from bot.store import build_index

        count = model_token_counter(settings.embedding)
        articles = load_knowledge(settings.paths.knowledge_dir)
        chunks = [
            c
            for a in articles
            for c in chunk_article(
                a,
                target_tokens=settings.chunking.target_tokens,
                overlap_sentences=settings.chunking.overlap_sentences,
                count_tokens=count,
            )
        ]
        texts = [c.embed_text for c in chunks]
        embedder.runtime.model.encode(texts[:8], batch_size=settings.embedding.batch_size)  # warm-up
        raw_runs = []
        for _ in range(3):
            t = time.perf_counter()
            embedder.runtime.model.encode(texts, batch_size=settings.embedding.batch_size, normalize_embeddings=True)
            raw_runs.append(time.perf_counter() - t)
        raw = statistics.median(raw_runs)
        late_runs = []
        for _ in range(3):
            t = time.perf_counter()
            late.encode_documents(texts)
            late_runs.append(time.perf_counter() - t)
        late_s = statistics.median(late_runs)

        def cold_build(with_late: bool) -> tuple[float, int]:
            shutil.rmtree(work / "index", ignore_errors=True)
            t0 = time.perf_counter()
            report = build_index(settings, embedder, count_tokens=count, late=late if with_late else None)
            return time.perf_counter() - t0, report.chunks

        dense_only_s, n = statistics.median([cold_build(False)[0] for _ in range(3)]), len(chunks)
        full_s = statistics.median([cold_build(True)[0] for _ in range(3)])
        t = time.perf_counter()
        again = build_index(settings, embedder, count_tokens=count, late=late)
        noop_s = time.perf_counter() - t
        emit(
            "Build throughput (cold cache, bundled corpus)",
            ["what", "chunks", "seconds", "chunks/s", "vs raw encode"],
            [
                ["raw SentenceTransformer.encode, same chunk texts", n, f"{raw:.2f}", f"{n / raw:.1f}", "100%"],
                [
                    "index build, dense + BM25 (late interaction off)",
                    n,
                    f"{dense_only_s:.2f}",
                    f"{n / dense_only_s:.1f}",
                    f"{raw / dense_only_s:.0%}",
                ],
                ["raw late-interaction encode, same chunk texts", n, f"{late_s:.2f}", f"{n / late_s:.1f}", ""],
                [
                    "raw encode by both models the full build runs",
                    n,
                    f"{raw + late_s:.2f}",
                    f"{n / (raw + late_s):.1f}",
                    "100% (of both)",
                ],
                [
                    "index build, full (default settings)",
                    n,
                    f"{full_s:.2f}",
                    f"{n / full_s:.1f}",
                    f"{raw / full_s:.0%} (of MiniLM), {(raw + late_s) / full_s:.0%} (of both)",
                ],
                ["rebuild with nothing changed", again.chunks, f"{noop_s:.3f}", "", f"embedded {again.embedded}"],
            ],
            "Medians of 3 runs. The full build runs two models over every chunk (MiniLM and the late-interaction "
            "model), so it is compared with the raw encode time of both; "
            "both models' vectors are cached by chunk-text hash, "
            "so rebuilds after an edit only encode the edited chunks.",
        )

        # --- answer latency ---------------------------------------------------------------
        from bot.service import KnowledgeService, encoder_cache

        qs = questions(args.questions)
        service = KnowledgeService.open(settings, embedder=onnx_embedder, reranker=reranker, late=late)
        rows, n_answers = latency(service, qs, args.rounds)
        emit(
            f"Answer latency in process, bundled corpus ({n_answers} answers: "
            f"{len(qs)} questions x {args.rounds} rounds, after warm-up)",
            ["stage", "p50 ms", "p95 ms", "max ms"],
            rows,
            "Targets: p50 <= 250 ms, p95 <= 500 ms, reranking included (the cross-encoder runs in rerank).",
        )
        from corpus import make_corpus

        big = settings.with_paths(make_corpus(work / "knowledge-50", 50), work / "index-50")
        big_service = KnowledgeService.open(big, embedder=onnx_embedder, reranker=reranker, late=late)
        rows, n_answers = latency(big_service, qs, 1)
        emit(
            f"Answer latency in process, 50 articles ({len(big_service.live.index.chunks)} chunks; "
            f"the bundled 5 plus 45 of unrelated prose; {n_answers} answers)",
            ["stage", "p50 ms", "p95 ms", "max ms"],
            rows,
        )

        # --- time to first answer ----------------------------------------------------------
        exe = shutil.which("directive-bot")
        cmd = [exe] if exe else [sys.executable, "-m", "bot"]
        shutil.rmtree(encoder_cache(settings), ignore_errors=True)
        times = []
        for _ in range(4):
            t = time.perf_counter()
            subprocess.run(
                [*cmd, "ask", "--index", str(work / "index"), "Is Opus 4.8 affected?"],
                check=True,
                capture_output=True,
                timeout=120,
            )
            times.append(time.perf_counter() - t)
        later = times[1:]
        emit(
            "Time to first answer (`directive-bot ask`, index already built)",
            ["start", "runs", "median s", "max s"],
            [
                ["first (torch; exports the embedder's ONNX copy)", 1, f"{times[0]:.2f}", f"{times[0]:.2f}"],
                ["every later one (the ONNX copy)", len(later), f"{statistics.median(later):.2f}", f"{max(later):.2f}"],
            ],
            "Whole process: interpreter start, imports, three models loaded, index loaded, one answer. Target: 6 s.",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    header = (
        "# Benchmarks\n\nWritten by `python bench/bench.py` on the bundled knowledge base "
        f"({len(load_knowledge(REPO / 'knowledge'))} articles). Re-run it after changing models or settings.\n\n"
    )
    write_sections(args.out, header, sections)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
