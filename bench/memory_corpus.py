"""A deterministic corpus of memory files for bench/memory_bench.py: Markdown notes of the
kind models and people keep (headings, bullet lists, code identifiers, file paths, dates),
log-normal sizes (median ~1.5 KB, a tail to 30 KB, a few tiny ones), spread over scopes and
/memories/<project>/<topic>/... paths.

The English comes from the docstrings of Python's standard library, read from disk at run
time (no network): a bigram chain over them keeps their Zipf-like word frequencies and their
common phrases. Generated identifiers (snake_case, CamelCase, paths, env vars, ticket ids),
themselves drawn with Zipf weights, stand in for the code a note mentions.

File i depends only on (seed, i), so the first 10,000 files of a 100,000-file corpus are the
10,000-file corpus. `uv run python bench/memory_corpus.py --n 5 --show` prints a sample.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import itertools
import math
import random
import re
import sysconfig
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SEED = 20261125
MEDIAN_BYTES = 1500
SIGMA = 1.0  # log-normal spread: p99 ~ 15 KB
MAX_BYTES = 30_000
TINY_SHARE = 0.02  # files of 20-200 bytes

PROJECTS = (
    "tutti", "webshop", "data-pipeline", "infra", "ml-eval", "docs-site", "mobile-app",
    "billing", "auth-service", "search", "analytics", "cli-tools",
)  # fmt: skip
TOPICS = (
    "decisions", "bugs", "conventions", "runbooks", "architecture", "meetings", "people",
    "api", "dependencies", "performance", "onboarding", "incidents", "todo", "research",
    "releases",
)  # fmt: skip
DATED_TOPICS = {"meetings", "incidents", "releases"}
WORKFLOWS = ("nightly-review", "release-notes", "triage", "code-review")
PROJECT_ROOT = "/home/dev/"
# scope of a file: global, project:<its project's directory>, or workflow:<name>
SCOPE_WEIGHTS = (("global", 0.3), ("project", 0.5), ("workflow", 0.2))

_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9'_\-/]*[.,;:!?)]?$|^\([A-Za-z][a-z]*$")
_WORD = re.compile(r"^[a-z]+$")


@dataclass(frozen=True)
class MemoryDoc:
    index: int
    scope: str
    path: str
    text: str


@dataclass(frozen=True)
class Vocabulary:
    """The bigram chain, the identifier pool and word statistics the corpus is drawn from."""

    successors: dict[str, list[str]]
    starts: list[str]
    identifiers: list[str]
    ident_cum: list[float]
    word_counts: Counter[str]  # lower-cased alphabetic words of the source text
    bigram_counts: Counter[tuple[str, str]]
    source_chars: int
    digest: str  # sha256 of the source text: same digest, same corpus

    def sentence(self, rng: random.Random, max_words: int = 24) -> str:
        tok = self.starts[rng.randrange(len(self.starts))]
        words = [tok[0].upper() + tok[1:]]
        succ = self.successors
        for _ in range(max_words - 1):
            nxt = succ.get(tok)
            if not nxt or tok[-1] in ".!?":
                break
            tok = nxt[rng.randrange(len(nxt))]
            words.append(tok)
        s = " ".join(words).rstrip(",;:(")
        return s if s[-1] in ".!?)" else s + "."

    def ident(self, rng: random.Random) -> str:
        return rng.choices(self.identifiers, cum_weights=self.ident_cum)[0]


def stdlib_docstrings() -> list[str]:
    """Every module, class and function docstring of the standard library (tests, idlelib
    and site-packages left out), in a fixed order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo"}
    docs = []
    for p in sorted(root.rglob("*.py")):
        if skip & set(p.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(p.read_bytes())
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                d = ast.get_docstring(node)
                if d:
                    docs.append(d)
    return docs


def build_vocabulary(seed: int = SEED, n_identifiers: int = 30_000) -> Vocabulary:
    docs = stdlib_docstrings()
    source = "\n\n".join(docs)
    successors: dict[str, list[str]] = {}
    starts: list[str] = []
    words: Counter[str] = Counter()
    bigrams: Counter[tuple[str, str]] = Counter()
    for doc in docs:
        for para in doc.split("\n\n"):
            if para.lstrip().startswith((">>>", "...", "$", "%")):
                continue
            prev = None
            for raw in para.split():
                tok = raw.strip('`*"')
                if not _TOKEN.match(tok):
                    prev = None
                    continue
                bare = tok.rstrip(".,;:!?)").lstrip("(").lower()
                if _WORD.match(bare):
                    words[bare] += 1
                if prev is None:
                    if tok[0].isupper():
                        starts.append(tok)
                else:
                    successors.setdefault(prev, []).append(tok)
                    pb = prev.rstrip(".,;:!?)").lstrip("(").lower()
                    if _WORD.match(pb) and _WORD.match(bare) and prev[-1].isalnum():
                        bigrams[(pb, bare)] += 1
                prev = None if tok[-1] in ".!?" else tok
    rng = random.Random(seed)
    content = sorted(w for w, c in words.items() if len(w) >= 3 and c >= 2)
    idents: list[str] = []
    seen: set[str] = set()
    kinds = ("snake", "snake", "snake", "camel", "camel", "path", "env", "ticket", "call")
    while len(idents) < n_identifiers:
        kind = rng.choice(kinds)
        ws = [rng.choice(content) for _ in range(rng.randint(2, 3))]
        if kind == "snake":
            s = "_".join(ws)
        elif kind == "camel":
            s = "".join(w.capitalize() for w in ws)
        elif kind == "path":
            ext = rng.choice((".py", ".py", ".ts", ".toml", ".yaml", ".sql", ".md"))
            s = f"{rng.choice(('src', 'lib', 'app', 'tests', 'config'))}/{ws[0]}/{'_'.join(ws[1:])}{ext}"
        elif kind == "env":
            s = "_".join(w.upper() for w in ws)
        elif kind == "ticket":
            s = f"{rng.choice(('ISSUE', 'BUG', 'OPS', 'PR'))}-{rng.randint(100, 9999)}"
        else:
            s = f"{ws[0]}.{'_'.join(ws[1:])}()"
        if s not in seen:
            seen.add(s)
            idents.append(s)
    # Zipf-Mandelbrot weights: a few identifiers recur in many notes, most in a handful
    ident_cum = list(itertools.accumulate(1.0 / (r + 20) for r in range(len(idents))))
    return Vocabulary(
        successors=successors,
        starts=starts,
        identifiers=idents,
        ident_cum=ident_cum,
        word_counts=words,
        bigram_counts=bigrams,
        source_chars=len(source),
        digest=hashlib.sha256(source.encode()).hexdigest()[:16],
    )


# -- one document ---------------------------------------------------------------------------
def _date(rng: random.Random) -> str:
    return f"{rng.choice((2024, 2025, 2026))}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _title(v: Vocabulary, rng: random.Random) -> str:
    words = [w.strip(".,;:!?()") for w in v.sentence(rng, 7).split()]
    return " ".join(w for w in words if w)[:70] or "Notes"


def _slug(title: str, rng: random.Random) -> str:
    words = re.findall(r"[a-z0-9]+", title.lower())[: rng.randint(2, 4)]
    return "-".join(words) or "note"


def _with_code(v: Vocabulary, rng: random.Random, text: str, share: float) -> str:
    """Sprinkle identifiers (mostly in backticks) and dates into a sentence."""
    if rng.random() > share * 4:
        return text
    words = text.split(" ")
    for _ in range(1 + int(rng.random() * 2)):
        i = rng.randrange(len(words))
        token = _date(rng) if rng.random() < 0.12 else v.ident(rng)
        words.insert(i, f"`{token}`" if rng.random() < 0.7 else token)
    return " ".join(words)


def _paragraph(v: Vocabulary, rng: random.Random) -> str:
    return " ".join(_with_code(v, rng, v.sentence(rng), 0.1) for _ in range(rng.randint(1, 5)))


def _bullets(v: Vocabulary, rng: random.Random) -> str:
    out = []
    for _ in range(rng.randint(2, 7)):
        item = _with_code(v, rng, v.sentence(rng, 14), 0.15)
        prefix = rng.choice(("- ", "- ", "- ", "- [ ] ", "- [x] ", "* "))
        out.append(prefix + item)
    return "\n".join(out)


def _code_block(v: Vocabulary, rng: random.Random) -> str:
    lang = rng.choice(("python", "bash", "sql", "yaml"))
    ids = [v.ident(rng) for _ in range(rng.randint(2, 5))]
    if lang == "python":
        fn = re.sub(r"\W", "_", ids[0].split(".")[0]).lower()
        body = [f"def {fn}(config):"]
        body += [f"    value = config.get({i!r})" for i in ids[1:]]
        body.append("    return value")
    elif lang == "bash":
        body = [f"uv run pytest -k {i.split('/')[-1].split('.')[0]}" for i in ids]
    elif lang == "sql":
        body = [f"SELECT {ids[0].lower()} FROM {ids[1].lower()} WHERE id = ?;"]
    else:
        body = [f"{i.lower()}: {rng.randint(1, 500)}" for i in ids]
    return f"```{lang}\n" + "\n".join(body) + "\n```"


def _body(v: Vocabulary, rng: random.Random, title: str, target: int) -> str:
    parts = [f"# {title}", ""]
    if rng.random() < 0.4:
        parts += [f"Updated {_date(rng)}. Owner: {rng.choice(PROJECTS)} team.", ""]
    size = sum(len(p) + 1 for p in parts)
    while size < target:
        block = rng.random()
        if block < 0.22:
            piece = f"## {_title(v, rng)}"
        elif block < 0.6:
            piece = _paragraph(v, rng)
        elif block < 0.9:
            piece = _bullets(v, rng)
        else:
            piece = _code_block(v, rng)
        parts += [piece, ""]
        size += len(piece) + 2
    text = "\n".join(parts)
    if len(text) > target:  # cut at a line end near the target
        cut = text.rfind("\n", 0, target)
        text = text[: cut if cut > target // 2 else target].rstrip()
    return text + "\n"


def size_of(rng: random.Random) -> int:
    if rng.random() < TINY_SHARE:
        return rng.randint(20, 200)
    return min(MAX_BYTES, max(60, int(rng.lognormvariate(math.log(MEDIAN_BYTES), SIGMA))))


def document(v: Vocabulary, i: int, seed: int = SEED) -> tuple[str, str, str]:
    """(scope, path, text) of file i."""
    rng = random.Random(seed * 1_000_003 + i)
    project = PROJECTS[min(len(PROJECTS) - 1, int(rng.paretovariate(1.2)) - 1)]
    kind = rng.choices([k for k, _ in SCOPE_WEIGHTS], [w for _, w in SCOPE_WEIGHTS])[0]
    if kind == "project":
        scope = f"project:{PROJECT_ROOT}{project}"
    elif kind == "workflow":
        scope = f"workflow:{rng.choice(WORKFLOWS)}"
    else:
        scope = "global"
    topic = rng.choice(TOPICS)
    title = _title(v, rng)
    name = _slug(title, rng)
    if topic in DATED_TOPICS:
        name = f"{_date(rng)}-{name}"
    sub = ""
    if rng.random() < 0.25:
        sub = rng.choice(("2025", "2026", "backend", "frontend", "archive", "drafts")) + "/"
    path = f"/memories/{project}/{topic}/{sub}{name}.md"
    target = size_of(rng)
    if target < 200:  # a tiny note: a title and one line
        text = f"# {title}\n- {_with_code(v, rng, v.sentence(rng, 8), 0.25)}\n"[:target]
        text = text if text.endswith("\n") else text + "\n"
    else:
        text = _body(v, rng, title, target)
    return scope, path, text


def corpus(v: Vocabulary, n: int, seed: int = SEED) -> Iterator[MemoryDoc]:
    """Files 0..n-1; a (scope, path) drawn twice gets a numeric suffix."""
    seen: set[tuple[str, str]] = set()
    for i in range(n):
        scope, path, text = document(v, i, seed)
        if (scope, path) in seen:
            path = f"{path[:-3]}-{i}.md"
        seen.add((scope, path))
        yield MemoryDoc(i, scope, path, text)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--show", action="store_true", help="print the files")
    a = ap.parse_args()
    voc = build_vocabulary()
    sizes = []
    for d in corpus(voc, a.n):
        sizes.append(len(d.text.encode()))
        if a.show:
            print(f"==== {d.scope} {d.path} ({sizes[-1]} B)\n{d.text}")
    sizes.sort()
    q = [sizes[int(p * (len(sizes) - 1))] for p in (0.0, 0.1, 0.5, 0.9, 0.99, 1.0)]
    print(f"{a.n} files, {sum(sizes):,} bytes; min/p10/p50/p90/p99/max: {q}")
    print(
        f"source: {voc.source_chars:,} chars, sha256 {voc.digest}; words {len(voc.word_counts):,}"
    )
