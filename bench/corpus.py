"""Knowledge bases of N articles for benchmarks: the bundled articles plus distractors of real English prose.

Nothing is fetched. The prose is what any Python installation carries: the docstrings of the standard
library and of the installed packages, and the long descriptions in installed packages' metadata,
cut into paragraphs and recombined into articles of 6-12 paragraphs each. The distractors are about
other things entirely, which is the point: they test that answers stay right, and stay fast, when
most of the knowledge base is unrelated.
"""

from __future__ import annotations

import datetime as dt
import email
import functools
import importlib
import inspect
import pkgutil
import random
import re
import shutil
import sys
import sysconfig
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_WORDS = re.compile(r"[A-Za-z][a-z]+")
_SKIP_MODULES = ("test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "antigravity", "this")


def _prose(text: str) -> list[str]:
    """Paragraphs that read as prose: 30+ words, mostly words, little code or markup."""
    out = []
    for para in re.split(r"\n\s*\n", text or ""):
        para = " ".join(para.split())
        words = para.split()
        if len(words) < 30 or re.search(r"[`|{}<>=#\\]|\]\(|\.\.\s|::|>>>", para):
            continue
        if len(_WORDS.findall(para)) / len(words) < 0.75:
            continue
        out.append(para)
    return out


def _docstrings(module_name: str) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            module = importlib.import_module(module_name)
        except BaseException:
            return []
    texts = [inspect.getdoc(module) or ""]
    for _, obj in inspect.getmembers(module):
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", "") == module_name:
            texts.append(inspect.getdoc(obj) or "")
    return [p for t in texts for p in _prose(t)]


@functools.lru_cache(maxsize=1)
def paragraphs() -> tuple[str, ...]:
    """Every prose paragraph found, in a stable order."""
    found: list[str] = []
    stdlib = sysconfig.get_paths()["stdlib"]
    for info in sorted(pkgutil.iter_modules([stdlib]), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in _SKIP_MODULES:
            continue
        found += _docstrings(info.name)
    purelib = Path(sysconfig.get_paths()["purelib"])
    for meta in sorted(purelib.glob("*.dist-info/METADATA")):
        found += _metadata_prose(meta)
    return tuple(dict.fromkeys(found))


def _metadata_prose(meta: Path) -> list[str]:
    """The prose paragraphs of a package's long description (its METADATA file's body)."""
    try:
        payload = email.message_from_string(meta.read_text(encoding="utf-8", errors="replace")).get_payload()
    except OSError:
        return []
    return _prose(payload if isinstance(payload, str) else "")


@functools.lru_cache(maxsize=1)
def own_paragraphs() -> frozenset[str]:
    """This project's own prose (its README, installed as its package metadata): it quotes the bundled
    articles, so a distractor made from it would hold the answers under another title."""
    own = _prose((REPO / "README.md").read_text(encoding="utf-8"))
    purelib = Path(sysconfig.get_paths()["purelib"])
    for meta in purelib.glob("directive_bot-*.dist-info/METADATA"):
        own += _metadata_prose(meta)
    return frozenset(own)


def make_corpus(dest: Path, n_articles: int, *, seed: int = 0) -> Path:
    """``dest`` holds the bundled articles plus ``n_articles - 5`` distractor articles; returns ``dest``."""
    from bot.knowledge import write_article
    from bot.records import Article

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    bundled = sorted((REPO / "knowledge").glob("*.md"))
    for path in bundled[:n_articles]:
        shutil.copy(path, dest / path.name)
    pool = list(paragraphs())
    if not pool:
        raise RuntimeError("no prose found on this machine to make distractor articles from")
    rng = random.Random(seed)
    for i in range(max(0, n_articles - len(bundled))):
        # Drawn from the whole pool, then this project's own paragraphs left out: the other articles
        # stay as they were, so a build's embedding cache still holds them.
        drawn = rng.sample(pool, k=min(len(pool), rng.randint(6, 12)))
        body_paras = [p for p in drawn if p not in own_paragraphs()] or [pool[i % len(pool)]]
        words = _WORDS.findall(body_paras[0])[:8]
        title = " ".join(words).capitalize() or f"Article {i}"
        write_article(
            dest,
            Article(
                id=f"distractor-{i:05d}",
                title=title,
                body="\n\n".join(body_paras),
                publisher="Distractor Press",
                url=None,
                published=None,
                added=dt.date(2026, 1, 1),
            ),
        )
    return dest


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("n", type=int)
    args = parser.parse_args()
    make_corpus(args.dest, args.n)
    print(f"{args.n} articles in {args.dest} ({len(paragraphs())} paragraphs of prose available)")
