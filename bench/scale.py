"""Scale benchmark: build, memory, start-up, latency and quality from 5 to thousands of articles.

Run: python bench/scale.py [--sizes 5 50 500 2000] [--out BENCHMARKS.md]   (add 10000 when asked)
     [--work DIR]  keep the knowledge bases, index and embedding cache there: a killed run started again
                   embeds only what it had not, and a later run with larger sizes reuses every vector
     [--synthetic 10000]  sizes built with random vectors of the models' dimensions and token counts

Each knowledge base is the bundled articles plus unrelated prose (bench/corpus.py), built in a
temporary directory (never the live index). Sizes are built in increasing order into one index
directory, so each build reuses the embedding cache of the smaller ones (the distractors of a
smaller size are the first ones of a larger). Per size it measures:

- build: ``directive-bot index build --json`` in its own process (seconds, chunks embedded);
- ``ask`` peak RSS and first answer: ``directive-bot ask`` from process start to answer;
- search p50, answer p50/p95 and dev.yaml hit@3 in process, over ../shared/eval/dev.yaml
  (after a warm-up with other questions, so the answer cache never serves them);
- ANN: recall@50 of an HNSW index against the exact search, and both search times, over the
  build's own vectors and the questions' vectors;
- at the largest size, the RSS of one and of two serving processes (``ask --json -``) on the same
  index, and how much of it is the shared, file-backed page cache.

A ``--synthetic`` size is chunked with the real tokenizers, but its vectors (dense and per token) are
random unit vectors of the real models' dimensions, written into an index directory of its own (never
into the embedding cache real builds read). Its files, start-up, memory and time per answer are those
of a real index of that size; what it answers is meaningless, so its hit@3 is not reported. Embedding
117,000 chunks takes about 100 minutes on 2 cores; this takes a few.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import corpus  # noqa: E402
from corpus import make_corpus  # noqa: E402
from report import write_section  # noqa: E402

from bench import machine, percentile, table  # noqa: E402
from bot.config import Settings, load_settings  # noqa: E402
from bot.evaluation import Figures, load_eval_set, outcome  # noqa: E402
from bot.records import Answer  # noqa: E402

DEV = REPO.parent / "shared" / "eval" / "dev.yaml"
DEV_LARGE = REPO.parent / "shared" / "eval" / "dev-large.yaml"
# Off-topic questions of every English question file: five (dev.yaml's) are too few to show a change.
OWN_EVAL = REPO / "tests" / "eval"
OFF_TOPIC_FILES = [DEV, DEV_LARGE, OWN_EVAL / "own.yaml", *sorted(OWN_EVAL.glob("unseen*.yaml"))]
WARM_UP = ["When did the order take effect?", "Which company makes Fable 5?", "What did analysts say?"]
HEADING = "## Scale: 5 to thousands of articles (`bench/scale.py`)"


def cli() -> list[str]:
    exe = shutil.which("directive-bot")
    return [exe] if exe else [sys.executable, "-m", "bot"]


FORCE: list[str] = []  # --force: rebuild sizes whose build is unchanged, so their files are the current code's
MULTILINGUAL = {"on": False}  # --multilingual: also embed every window with the multilingual model


def env_for(work: Path) -> dict[str, str]:
    """The child processes write their databases into the temp directory, never the repository's."""
    return {
        **os.environ,
        "DIRECTIVE_BOT__PATHS__DATA_DIR": str(work / "data"),
        "DIRECTIVE_BOT__EMBEDDING__ONNX_DIR": str(work / "encoders"),  # one ONNX copy for every index here
        "DIRECTIVE_BOT__MULTILINGUAL__ENABLED": "true" if MULTILINGUAL["on"] else "false",
        "DISCORD_TOKEN": "",
    }


def dirs(knowledge: Path, index: Path) -> list[str]:
    return ["--knowledge", str(knowledge), "--index", str(index)]


def build(knowledge: Path, index: Path, work: Path) -> dict:
    out = subprocess.run(
        [*cli(), "index", "build", "--json", *FORCE, *dirs(knowledge, index)],
        check=True, capture_output=True, text=True, env=env_for(work),
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


# Runs a command and prints its peak RSS in KiB. A child's ru_maxrss starts from the RSS its parent had
# when it forked, so the command is started by this small interpreter, not by the benchmark (which holds
# models and, after a synthetic build, gigabytes).
_PEAK = (
    "import resource, subprocess, sys; "
    "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def first_answer(knowledge: Path, index: Path, work: Path) -> tuple[float, float]:
    """Seconds from process start to answer, and the process's peak RSS in GB."""
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, *cli(), "ask", *dirs(knowledge, index), "Is Opus 4.8 affected?"],
        capture_output=True, text=True, env=env_for(work),
    )  # fmt: skip
    seconds = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"ask exited with status {out.returncode}")
    return seconds, int(out.stdout.strip().splitlines()[-1]) / 1024 / 1024  # KiB on Linux


def memory_of(pid: int) -> dict[str, float]:
    """RSS, its anonymous and file-backed parts, and PSS (shared pages split between sharers), in MB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            fields["Pss"] = int(line.split()[1]) / 1024
    return fields


def shard_processes(knowledge: Path, index: Path, work: Path, n: int = 2) -> list[dict[str, float]]:
    """Start ``n`` serving processes on one index, let each answer, and read their memory together."""
    procs = [
        subprocess.Popen(
            [*cli(), "ask", "--json", "-", *dirs(knowledge, index)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env_for(work),
        )
        for _ in range(n)
    ]
    try:
        for proc in procs:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("Is Opus 4.8 affected?\n")
            proc.stdin.flush()
            proc.stdout.readline()
        return [memory_of(proc.pid) for proc in procs]
    finally:
        for proc in procs:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=60)


def in_process(settings: Settings, models: dict) -> dict[str, object]:
    """Search p50, answer p50/p95, hit@3 and off-topic declines over dev.yaml in one warm process."""
    from bot.service import KnowledgeService

    service = KnowledgeService.open(settings, build_if_needed=False, **models)
    for q in WARM_UP:
        service.ask(q)
    eval_set = load_eval_set(DEV)
    figures = Figures("scale")
    search, wall, answers = [], [], {}
    for q in eval_set.questions:
        t = time.perf_counter()
        answer = answers[q.text] = service.ask(q.text)
        wall.append((time.perf_counter() - t) * 1000)
        search.append(answer.timings.search_ms)
        figures.outcomes.append(outcome(q, answer, wall[-1]))
    return {
        "search_p50": percentile(search, 0.5),
        "answer_p50": percentile(wall, 0.5),
        "answer_p95": percentile(wall, 0.95),
        "hit3": f"{figures.hit3}/{figures.n_on}",
        "off": f"{figures.off_declined}/{figures.n_off}",
        "ann": ann_recall(service, [q.text for q in eval_set.questions], settings),
        "late": late_timing(service, [q.text for q in eval_set.questions]),
        "wider": wider_quality(service, answers),
    }


def wider_quality(service, answered: dict[str, Answer]) -> dict[str, str]:
    """hit@3 over dev.yaml and dev-large.yaml, and what becomes of the off-topic questions of every English
    question file (declined, shown as closest passages, answered): distractors change both. ``answered``:
    the answers the latency pass already has (dev.yaml's), not asked again."""

    def ask(text: str) -> Answer:
        return answered[text] if text in answered else service.ask(text)

    figures = Figures("wider")
    for path in (DEV, DEV_LARGE):
        figures.outcomes += [outcome(q, ask(q.text)) for q in load_eval_set(path).on_topic]
    off = [ask(q.text) for path in OFF_TOPIC_FILES if path.exists() for q in load_eval_set(path).off_topic]
    declined = sum(a.declined for a in off)
    hedged = sum(a.tentative and not a.declined for a in off)
    return {
        "hit3": f"{figures.hit3}/{figures.n_on} ({figures.hit3 / max(figures.n_on, 1):.3f})",
        "off": f"{declined}/{len(off)} ({declined / max(len(off), 1):.1%})",
        "hedged": str(hedged),
        "answered": str(len(off) - declined - hedged),
    }


def late_timing(service, questions: list[str]) -> dict[str, float]:
    """Median ms of late-interaction scoring per question: every chunk vs the first-stage candidates only
    (whichever the settings pick for this size), on the same warm process and questions."""
    retriever = service.live.retriever
    if retriever.late is None:
        return {"full_ms": float("nan"), "candidates_ms": float("nan")}
    full, some = [], []
    for q in questions:
        text = retriever.understand(q).expanded
        qtok, qvec = retriever.late.encode_query(text), retriever.embedder.encode([text])[0]
        t = time.perf_counter()
        retriever.layout.segments.full(qtok, len(retriever.layout.sentences))
        full.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        first = retriever._dense(qvec) + retriever._lexical(text, retriever.settings.lexical_candidates)
        retriever.layout.segments.candidates(
            qtok, np.array([i for i, _ in first], dtype=np.int64), len(retriever.layout.sentences)
        )
        some.append((time.perf_counter() - t) * 1000)
    retriever.layout.segments._full = None  # the float32 copy a full scan keeps is not what serving holds
    return {"full_ms": percentile(full, 0.5), "candidates_ms": percentile(some, 0.5)}


def ann_recall(service, questions: list[str], settings: Settings) -> dict[str, float]:
    """Recall@50 of HNSW (the build's settings) against the exact search, and per-query search times."""
    from bot.store.build import dense_index

    index = service.live.index.faiss_index
    vectors = index.reconstruct_n(0, index.ntotal)
    queries = np.vstack([service.embedder.encode([q])[0] for q in questions]).astype(np.float32)
    r = settings.retrieval
    exact, _ = dense_index(vectors, ann_min_chunks=len(vectors) + 1, ef_search=r.ann_ef_search)
    t = time.perf_counter()
    approx, _ = dense_index(vectors, ann_min_chunks=0, ef_search=r.ann_ef_search)
    hnsw_build = time.perf_counter() - t
    k = min(50, len(vectors))

    def timed(idx) -> tuple[np.ndarray, float]:
        idx.search(queries[:1], k)
        t0 = time.perf_counter()
        _, ids = idx.search(queries, k)
        return ids, (time.perf_counter() - t0) * 1000 / len(queries)

    truth, flat_ms = timed(exact)
    found, hnsw_ms = timed(approx)
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(truth, found, strict=True)]))
    return {"recall": recall, "flat_ms": flat_ms, "hnsw_ms": hnsw_ms, "hnsw_build_s": hnsw_build}


def load_models(settings: Settings) -> dict:
    """The models of an answering process: the embedder's ONNX copy (exported into the index's encoder
    cache here, as a first start would), the cross-encoder, late interaction."""
    from bot.embedding import Embedder
    from bot.late import LateInteraction
    from bot.rerank import CrossEncoder
    from bot.service import encoder_cache

    return {
        "embedder": Embedder(settings.embedding, cache_dir=encoder_cache(settings)),
        "reranker": CrossEncoder(settings.retrieval.rerank_model),
        "late": LateInteraction(settings.retrieval.late_model, dim=settings.retrieval.late_dim),
    }


Rows = list[list[object]]
Report = Callable[[Rows, Rows, Rows, Rows], None]


class SyntheticEmbedder:
    """The serving embedder's name and dimension with random unit vectors (see the module's docstring)."""

    def __init__(self, name: str, dimension: int) -> None:
        self.name, self.dimension = name, dimension
        self._rng = np.random.default_rng(0)

    def encode(self, texts, *, progress=None) -> np.ndarray:
        vecs = self._rng.standard_normal((len(texts), self.dimension)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        if progress:
            progress(len(texts))
        return vecs


class SyntheticLate:
    """The late-interaction model's name, dimension and real token spans, with random token vectors."""

    def __init__(self, real) -> None:
        self.name, self.dim, self.tokenizer = real.name, real.dim, real.tokenizer
        self._rng = np.random.default_rng(1)

    def encode_documents(self, texts: list[str]) -> list:
        from bot.late import TokenMatrix

        out = []
        for enc in self.tokenizer.encode_batch(texts):
            keep = [k for k, special in enumerate(enc.special_tokens_mask) if not special]
            spans = np.array([enc.offsets[k] for k in keep], dtype=np.int32).reshape(-1, 2)
            vecs = self._rng.standard_normal((len(keep), self.dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True) + 1e-8
            out.append(TokenMatrix(vecs.astype(np.float16), spans))
        return out


def synthetic_build(knowledge: Path, index: Path, settings: Settings, models: dict) -> dict:
    """Build ``knowledge`` into ``index`` in process with random vectors (the real tokenizers chunk it)."""
    from bot.embedding import model_token_counter
    from bot.store import build_index

    t = time.perf_counter()
    report = build_index(
        settings.with_paths(knowledge, index),
        SyntheticEmbedder(models["embedder"].name, models["embedder"].dimension),
        count_tokens=model_token_counter(settings.embedding),
        late=SyntheticLate(models["late"]),
        force=True,  # always written by the code being measured (its random vectors are cached, so it is quick)
    )
    return {"chunks": report.chunks, "embedded": 0, "seconds": time.perf_counter() - t}


STAMP = ".corpus"  # hidden: the article lister skips it


def _stamp(n: int) -> str:
    """What made a corpus: the corpus code and the size."""
    return hashlib.sha256(Path(corpus.__file__).read_bytes() + str(n).encode()).hexdigest()


def _stamped(knowledge: Path, n: int) -> bool:
    stamp = knowledge / STAMP
    return stamp.is_file() and stamp.read_text(encoding="utf-8") == _stamp(n)


def measure(sizes: list[int], work: Path, report_so_far: Report, synthetic: frozenset[int] = frozenset()) -> None:
    """Measure every size, smallest first, reporting after each so a long run's results are kept."""
    base = load_settings(environ={})
    base = replace(
        base,
        paths=replace(base.paths, data_dir=work / "data"),
        embedding=replace(base.embedding, onnx_dir=work / "encoders"),
        multilingual=replace(base.multilingual, enabled=MULTILINGUAL["on"]),
    )
    index = work / "index"
    models = load_models(base.with_paths(index=index))
    rows, ann_rows, shard_rows, quality_rows = [], [], [], []
    for n in sizes:
        knowledge = work / f"knowledge-{n}"
        if not knowledge.is_dir() or len(list(knowledge.glob("*.md"))) != n or not _stamped(knowledge, n):
            make_corpus(knowledge, n)  # a kept corpus made by other code is made again (the cache keeps the rest)
            (knowledge / STAMP).write_text(_stamp(n), encoding="utf-8")
        fake = n in synthetic
        where = work / "index-synthetic" if fake else index  # random vectors never reach the real cache
        report = synthetic_build(knowledge, where, base, models) if fake else build(knowledge, where, work)
        first_s, peak_gb = first_answer(knowledge, where, work)
        stats = in_process(base.with_paths(knowledge, where), models)
        ann = stats["ann"]
        built = "random vectors" if fake else f"{report['embedded']:,} embedded"
        label = f"{n} (synthetic)" if fake else str(n)
        rows.append([
            label, f"{report['chunks']:,}", f"{report['seconds']:.0f} s ({built})",
            f"{peak_gb:.2f} GB", f"{first_s:.1f} s", f"{stats['search_p50']:.0f} ms",
            f"{stats['answer_p50']:.0f} / {stats['answer_p95']:.0f} ms",
            "–" if fake else stats["hit3"], "–" if fake else stats["off"],
        ])  # fmt: skip
        ann_rows.append([
            label, f"{report['chunks']:,}", "–" if fake else f"{ann['recall']:.3f}", f"{ann['flat_ms']:.2f}",
            f"{ann['hnsw_ms']:.2f}", f"{ann['hnsw_build_s']:.1f}", f"{stats['late']['full_ms']:.1f}",
            f"{stats['late']['candidates_ms']:.1f}",
        ])  # fmt: skip
        shard_rows = [
            [f"process {count} of 2 ({label} articles)", f"{mem['VmRSS']:.0f}", f"{mem['RssAnon']:.0f}",
             f"{mem['RssFile']:.0f}", f"{mem['Pss']:.0f}"]
            for count, mem in enumerate(shard_processes(knowledge, where, work), start=1)
        ]  # fmt: skip
        if not fake:
            wider = stats["wider"]
            quality_rows.append([label, wider["hit3"], wider["off"], wider["hedged"], wider["answered"]])
        report_so_far(rows, ann_rows, shard_rows, quality_rows)


HEADERS = [
    "articles", "chunks", "build (cache of smaller sizes reused)", "`ask` peak RSS", "first answer",
    "search p50", "answer p50 / p95", "dev.yaml hit@3", "off-topic declined",
]  # fmt: skip
BEFORE = [
    [5, "137", "3.4 s", "0.70 GB", "3.7 s", "4 ms", "102 / 152 ms", "24/25"],
    [50, "1,008", "58 s", "0.81 GB", "4.3 s", "11 ms", "103 / 502 ms", "22/25"],
    [500, "9,608", "489 s", "1.66 GB", "7.8 s", "62 ms", "150 / 187 ms", "21/25"],
    [2000, "38,586", "718 s (cache reused)", "4.21 GB", "17.2 s", "235 ms", "311 / 454 ms", "21/25"],
]
ANN_HEADERS = [
    "articles", "chunks", "HNSW recall@50", "flat ms/query", "HNSW ms/query", "HNSW build s",
    "late interaction, every chunk ms", "late interaction, candidates ms (incl. their search)",
]  # fmt: skip
SHARD_HEADERS = ["serving process", "RSS MB", "anonymous MB", "file-backed MB", "PSS MB"]
QUALITY_HEADERS = [
    "articles", "answerable hit@3, dev.yaml + dev-large.yaml", "off-topic declined, every English file",
    "off-topic shown as closest passages", "off-topic answered",
]  # fmt: skip


def load_note() -> str:
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        return ""
    return f"Load average at the end of the run: {load1:.2f} on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 50, 500, 2000])
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--note", default="", help="a sentence about the run, e.g. that the machine was shared")
    parser.add_argument("--multilingual", action="store_true", help="also build and load the multilingual vectors")
    parser.add_argument("--work", type=Path, default=None, help="keep (and reuse) the run's files here")
    parser.add_argument("--synthetic", type=int, nargs="*", default=[], help="sizes built with random vectors")
    parser.add_argument("--force", action="store_true", help="rebuild every size (with --work: from the cache)")
    args = parser.parse_args()
    MULTILINGUAL["on"] = args.multilingual
    FORCE[:] = ["--force"] if args.force else []
    work = args.work or Path(tempfile.mkdtemp(prefix="directive-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def report(rows: Rows, ann_rows: Rows, shard_rows: Rows, quality_rows: Rows) -> None:
        write_report(args, rows, ann_rows, shard_rows, quality_rows, (time.perf_counter() - t0) / 60)

    try:
        measure(sorted({*args.sizes, *args.synthetic}), work, report, frozenset(args.synthetic))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def write_report(
    args: argparse.Namespace,
    rows: Rows,
    ann_rows: Rows,
    shard_rows: Rows,
    quality_rows: Rows,
    minutes: float,
) -> None:
    """Print the tables measured so far and write them as this benchmark's section of BENCHMARKS.md."""
    settings = load_settings(environ={}).retrieval
    multilingual = "on" if args.multilingual else "off (`--multilingual` builds and loads them too)"
    text = "\n\n".join([
        HEADING,
        "Written by `python bench/scale.py`. Knowledge bases of the 5 bundled articles plus unrelated prose "
        "recombined from installed packages' documentation (bench/corpus.py), built in a temporary directory; "
        "sizes in increasing order into one index directory, so each build embeds only the articles the "
        "smaller one lacked. `ask` peak RSS and first answer: a fresh `directive-bot ask` process; latency and "
        "hit@3: one warm process over ../shared/eval/dev.yaml, reranking included. Settings: late interaction "
        f"over every chunk up to {settings.late_full_scan_chunks:,} chunks, over first-stage candidates above; "
        f"HNSW dense index from {settings.ann_min_chunks:,} chunks (efSearch {settings.ann_ef_search}). "
        f"Multilingual window vectors: {multilingual}.",
        table(HEADERS, rows),
        "Before (as reported in issue 13, on an idle machine and another distractor corpus, about 1.6 times "
        "as many chunks per article: token vectors loaded whole as float32 and scored for every chunk, flat FAISS):",
        table(HEADERS[:-1], BEFORE),
        "Approximate dense search (HNSW, M=32) against the exact flat scan, over each build's chunk vectors "
        "and the dev.yaml questions; and late-interaction scoring of every chunk against the first-stage "
        "candidates only (medians per question):",
        table(ANN_HEADERS, ann_rows),
        "Quality with distractors on more questions (the same warm process): the 144 answerable questions of "
        "dev.yaml and dev-large.yaml, and the off-topic questions of every English question file (their "
        "distractors are package documentation, so a Python question finds real Python passages):",
        table(QUALITY_HEADERS, quality_rows),
        "Two serving processes (`ask --json -`, each after one answer) on the same index. The token vectors "
        "are memory-mapped, so their pages are file-backed and shared through the page cache; PSS splits "
        "shared pages between the processes that map them:",
        table(SHARD_HEADERS, shard_rows),
        "Machine:\n\n" + table(["what", "value"], machine()),
        " ".join(s for s in (f"Run took {minutes:.0f} min so far.", load_note() + ".", args.note) if s.strip(".")),
    ]) + "\n"  # fmt: skip
    print(text)
    if not args.no_write:
        write_section(args.out, HEADING, text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
