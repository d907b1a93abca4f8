"""Memory files at scale: search latency, write throughput and database size of
`memory.files.MemoryFiles` over 10,000 and 100,000 realistic notes (bench/memory_corpus.py),
each next to a reference run in the same process.

    uv run python bench/memory_bench.py                  # --sizes 10000,100000 (~4 min, 1.3 GB temp)
    uv run python bench/memory_bench.py --quick          # 2,000 files, 300 edits (~15 s)
    uv run python bench/memory_bench.py --sizes 30000 --rounds 5 --tmpdir /dev/shm

SEARCH   `MemoryFiles.search(query, limit=10)` over a fixed mixed query set (9 classes of 5
         queries), all of them in each round in a shuffled order, warm page cache. Reference:
         the official MCP memory server's approach (modelcontextprotocol/servers src/memory):
         all entities in one JSONL file, read and parsed on each query, matched by
         case-insensitive substring on name, type and observations (a file = an entity named
         by its scope and path, its lines the observations). `2-step` is the same search
         computed here in two queries (rank, then snippets for the top 10 only), as the store
         does it: a cross-check of the store's time (same hits).
WRITES   on a file database (WAL, synchronous=NORMAL, as the server opens it): create while
         loading, str_replace, insert and delete on existing files, one transaction each.
         Reference: `INSERT OR REPLACE` / `DELETE` on a bare key-value table in a second
         database with the same settings, interleaved with tutti in blocks (paired). And the
         official server's approach at 10,000 files: every change reads, parses and rewrites
         the whole JSONL file.
SIZE     database bytes per file after loading (dbstat: files table, revisions, FTS index),
         against the raw text, the key-value database and the JSONL file.

Results: bench/results/<stamp>-memory/ (table.txt, raw.jsonl). The temp databases are deleted.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

import memory_corpus as mc  # noqa: E402
from common import Recorder  # noqa: E402
from memory_refs import (  # noqa: E402
    CHUNK,
    EDIT_BLOCK,
    KV,
    Query,
    entity,
    jsonl_load,
    jsonl_save,
    make_queries,
    match_count,
    official_search,
    substring_search,
    two_step,
)
from memory_report import _busy_cpu, _machine, pct, report  # noqa: E402

from tutti_mcp.memory.files.paths import ROOT  # noqa: E402
from tutti_mcp.memory.files.store import MemoryFiles  # noqa: E402


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@dataclass
class SizeRun:
    n: int
    docs: list[mc.MemoryDoc]
    dir: Path
    rec: Recorder
    rounds: int
    edits: int
    ref_queries: int  # per class, for the JSONL reference
    jsonl_changes: int  # per kind; 0 = skip
    progress: Callable[[str], None]
    extra: list[mc.MemoryDoc]  # files beyond the first n, for the JSONL creates
    out: dict[str, Any] = field(default_factory=dict)

    def add(self, **row: Any) -> None:
        self.rec.add({"n": self.n, **row})


def load(r: SizeRun, m: MemoryFiles, kv: KV) -> None:
    tutti_t, kv_t = [], []
    for start in range(0, r.n, CHUNK):
        chunk = r.docs[start : start + CHUNK]
        gc.collect()
        t0 = time.perf_counter()
        for d in chunk:
            m.create(d.path, d.text, scope=d.scope)
        t1 = time.perf_counter()
        for d in chunk:
            kv.put(f"{d.scope}|{d.path}", d.text)
        t2 = time.perf_counter()
        tutti_t.append(t1 - t0)
        kv_t.append(t2 - t1)
        r.add(section="load", chunk=start // CHUNK, files=len(chunk), tutti_s=t1 - t0, kv_s=t2 - t1)
        if (start // CHUNK) % 10 == 9:
            r.progress(f"  loaded {start + len(chunk):,} files ({sum(tutti_t):.1f} s)")
    tenth = max(1, len(tutti_t) // 10)
    last_files = r.n - CHUNK * (len(tutti_t) - tenth)
    r.out["load"] = {
        "tutti_s": sum(tutti_t),
        "kv_s": sum(kv_t),
        "tutti_per_s": r.n / sum(tutti_t),
        "kv_per_s": r.n / sum(kv_t),
        "ratio": statistics.median(a / b for a, b in zip(tutti_t, kv_t, strict=True)),
        "first_tenth_per_s": CHUNK * tenth / sum(tutti_t[:tenth]),
        "last_tenth_per_s": last_files / sum(tutti_t[-tenth:]),
    }


def sizes(r: SizeRun, m: MemoryFiles, kv: KV, jsonl: Path) -> None:
    for conn in (m.conn, kv.conn):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rows = m.conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
    groups = {"files": 0, "revisions": 0, "fts": 0, "other": 0}
    for name, size in rows:
        if name == "memory_files" or name == "sqlite_autoindex_memory_files_1":
            groups["files"] += size
        elif name.startswith(("memory_revisions", "sqlite_autoindex_memory_revisions")):
            groups["revisions"] += size
        elif name.startswith("memory_fts"):
            groups["fts"] += size
        else:
            groups["other"] += size
    db = Path(m.conn.execute("PRAGMA database_list").fetchone()[2])
    raw = sum(len(d.text.encode()) for d in r.docs)
    r.out["size"] = {
        "db_bytes": db.stat().st_size,
        "raw_bytes": raw,
        "kv_db_bytes": Path(kv.conn.execute("PRAGMA database_list").fetchone()[2]).stat().st_size,
        "jsonl_bytes": jsonl.stat().st_size,
        **{f"{k}_bytes": v for k, v in groups.items()},
        "tables": dict(rows),
    }
    r.add(section="size", **r.out["size"])


def search(r: SizeRun, m: MemoryFiles, queries: list[Query]) -> None:
    for q in queries:  # warm-up: page cache, statement cache
        m.search(q.text, scopes=q.scopes, prefix=q.prefix)
    rng = random.Random(r.n)
    times: dict[Query, list[float]] = {q: [] for q in queries}
    floor: dict[Query, list[float]] = {q: [] for q in queries}
    hits: dict[Query, int] = {}
    same: dict[Query, bool] = {}
    gc.collect()
    gc.freeze()
    for rnd in range(r.rounds):
        order = list(queries)
        rng.shuffle(order)
        for q in order:
            t0 = time.perf_counter()
            res = m.search(q.text, scopes=q.scopes, prefix=q.prefix)
            times[q].append(time.perf_counter() - t0)
            hits[q] = len(res)
            if rnd < 5:
                t0 = time.perf_counter()
                alt = two_step(m.conn, q)
                floor[q].append(time.perf_counter() - t0)
                same[q] = {(h.scope, h.path) for h in res} == {(a[0], a[1]) for a in alt}
    gc.unfreeze()
    for q in queries:
        row = {
            "cls": q.cls,
            "query": q.label,
            "hits": hits[q],
            "matches": match_count(m.conn, q),
            "times_s": times[q],
            "two_step_s": floor[q],
            "two_step_same_hits": same[q],
        }
        r.add(section="search", **row)
        r.out.setdefault("search", []).append(row)


def ref_search(r: SizeRun, jsonl: Path, queries: list[Query]) -> None:
    per_class: dict[str, int] = {}
    official_search(jsonl, queries[0])  # warm the page cache
    entities, _ = jsonl_load(jsonl)
    gc.collect()
    for q in queries:
        scan = timed(lambda q=q: substring_search(entities, q))
        row: dict[str, Any] = {
            "cls": q.cls,
            "query": q.label,
            "matches": len(substring_search(entities, q)),
            "scan_s": scan,
        }
        if per_class.get(q.cls, 0) < r.ref_queries:
            per_class[q.cls] = per_class.get(q.cls, 0) + 1
            row["official_s"] = timed(lambda q=q: official_search(jsonl, q))
        r.add(section="ref_search", **row)
        r.out.setdefault("ref_search", []).append(row)
    entities.clear()
    gc.collect()


def unique_line(text: str) -> str | None:
    for line in text.split("\n"):
        if len(line) >= 20 and text.count(line) == 1:
            return line
    return None


def edits(r: SizeRun, m: MemoryFiles, kv: KV) -> None:
    rng = random.Random(r.n + 1)
    picks = rng.sample(range(r.n), min(r.n, 3 * r.edits + 200))
    reps, ins, dels = [], [], []
    for i in picks:
        d = r.docs[i]
        line = unique_line(d.text)
        if len(reps) < r.edits and line is not None:
            new = line + f" (confirmed {mc._date(rng)})"
            reps.append((d, line, new, d.text.replace(line, new, 1)))
        elif len(ins) < r.edits:
            ins.append(d)
        elif len(dels) < r.edits:
            dels.append(d)
    text = "- follow-up: checked again after the last release, still relevant."

    def inserted(d: mc.MemoryDoc) -> tuple[int, str]:
        """(insert_line, the text after the insert), as MemoryFiles.insert computes it."""
        lines = d.text.split("\n")
        if lines[-1] == "":
            lines.pop()
        at = min(3, len(lines))
        lines.insert(at, text)
        return at, "\n".join(lines) + "\n"

    ops: dict[str, tuple[list[Any], Callable[[Any], None], Callable[[Any], None]]] = {
        "str_replace": (
            reps,
            lambda x: m.str_replace(x[0].path, x[1], x[2], scope=x[0].scope),
            lambda x: kv.put(f"{x[0].scope}|{x[0].path}", x[3]),
        ),
        "insert": (
            [(d, *inserted(d)) for d in ins],
            lambda x: m.insert(x[0].path, x[1], text, scope=x[0].scope),
            lambda x: kv.put(f"{x[0].scope}|{x[0].path}", x[2]),
        ),
        "delete": (
            dels,
            lambda d: m.delete(d.path, scope=d.scope),
            lambda d: kv.delete(f"{d.scope}|{d.path}"),
        ),
    }
    for op, (items, do_tutti, do_kv) in ops.items():
        t_tutti: list[float] = []
        t_kv: list[float] = []
        ratios = []
        gc.collect()
        for b in range(0, len(items), EDIT_BLOCK):
            block = items[b : b + EDIT_BLOCK]
            tt = [timed(partial(do_tutti, x)) for x in block]
            tk = [timed(partial(do_kv, x)) for x in block]
            ratios.append(sum(tt) / sum(tk))
            t_tutti += tt
            t_kv += tk
        row = {
            "op": op,
            "count": len(items),
            "tutti_s": t_tutti,
            "kv_s": t_kv,
            "ratio": statistics.median(ratios),
        }
        r.add(section="edit", **row)
        r.out.setdefault("edit", {})[op] = row


def jsonl_writes(r: SizeRun, jsonl: Path) -> None:
    """The official server's writes: each change loads the graph, changes it, saves it all."""
    rng = random.Random(r.n + 2)
    targets = rng.sample(range(r.n), 2 * r.jsonl_changes)
    new_docs = r.extra[: r.jsonl_changes]
    note = "follow-up: checked again after the last release, still relevant."

    def create(d: mc.MemoryDoc) -> None:
        ents, rels = jsonl_load(jsonl)
        e = entity(d)
        if not any(x["name"] == e["name"] for x in ents):
            ents.append(e)
        jsonl_save(jsonl, ents, rels)

    def add_observation(d: mc.MemoryDoc) -> None:
        ents, rels = jsonl_load(jsonl)
        name = f"{d.scope}:{d.path}"
        e = next(x for x in ents if x["name"] == name)
        if note not in e["observations"]:
            e["observations"].append(note)
        jsonl_save(jsonl, ents, rels)

    def delete(d: mc.MemoryDoc) -> None:
        ents, rels = jsonl_load(jsonl)
        name = f"{d.scope}:{d.path}"
        ents = [x for x in ents if x["name"] != name]
        rels = [x for x in rels if name not in (x["from"], x["to"])]
        jsonl_save(jsonl, ents, rels)

    out = {}
    for op, fn, items in (
        ("create", create, new_docs),
        ("add_observations", add_observation, [r.docs[i] for i in targets[: r.jsonl_changes]]),
        ("delete", delete, [r.docs[i] for i in targets[r.jsonl_changes :]]),
    ):
        gc.collect()
        ts = [timed(lambda d=d, fn=fn: fn(d)) for d in items]
        out[op] = ts
        r.add(section="jsonl_write", op=op, times_s=ts)
    r.out["jsonl_write"] = out


def run_size(r: SizeRun, queries: list[Query]) -> dict[str, Any]:
    m = MemoryFiles.open(r.dir / "tutti.db")
    kv = KV(r.dir / "kv.db")
    r.progress(f"{r.n:,} files: loading (tutti create, paired with the key-value reference)")
    load(r, m, kv)
    jsonl = r.dir / "memory.jsonl"
    ents = [entity(d) for d in r.docs]
    r.out["jsonl_save_s"] = timed(lambda: jsonl_save(jsonl, ents, []))
    ents.clear()
    r.out["jsonl_load_s"] = timed(lambda: jsonl_load(jsonl))
    sizes(r, m, kv, jsonl)
    r.progress(f"{r.n:,} files: search, {r.rounds} rounds of {len(queries)} queries")
    search(r, m, queries)
    r.progress(f"{r.n:,} files: reference search (official memory server's JSONL approach)")
    ref_search(r, jsonl, queries)
    r.out["view"] = view_times(r, m)
    r.progress(f"{r.n:,} files: edits, {r.edits} of each kind")
    edits(r, m, kv)
    if r.jsonl_changes:
        r.progress(f"{r.n:,} files: JSONL rewrites, {r.jsonl_changes} changes of each kind")
        jsonl_writes(r, jsonl)
    m.close()
    kv.conn.close()
    return r.out


def view_times(r: SizeRun, m: MemoryFiles) -> dict[str, float]:
    """Reads besides search: one file, its history, and the listing of the root and of a
    project directory."""
    rng = random.Random(r.n + 3)
    some = [r.docs[i] for i in rng.sample(range(r.n), min(r.n, 500))]
    file_t = [timed(lambda d=d: m.view(d.path, scope=d.scope)) for d in some]
    hist_t = [timed(lambda d=d: m.history(d.path, scope=d.scope)) for d in some[:100]]
    root_t = [timed(lambda: m.view(ROOT)) for _ in range(3)]
    proj = f"project:{mc.PROJECT_ROOT}{mc.PROJECTS[0]}"
    dir_t = [timed(lambda: m.view(f"{ROOT}/{mc.PROJECTS[0]}", scope=proj)) for _ in range(3)]
    out = {
        "file_p50_s": statistics.median(file_t),
        "file_p99_s": pct(file_t, 99),
        "history_p50_s": statistics.median(hist_t),
        "root_global_s": statistics.median(root_t),
        "project_dir_s": statistics.median(dir_t),
        "files_in_global": m.scopes().get("global", 0),
        "files_in_project_dir": len(m.files(scope=proj, prefix=f"{ROOT}/{mc.PROJECTS[0]}")),
    }
    r.add(section="view", **out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000", help="corpus sizes, comma-separated")
    ap.add_argument("--quick", action="store_true", help="2,000 files, 300 edits of each kind")
    ap.add_argument("--rounds", type=int, default=20, help="search rounds")
    ap.add_argument("--edits", type=int, default=2000, help="edits of each kind")
    ap.add_argument("--jsonl-changes", type=int, default=10, help="per kind, at 10k files")
    ap.add_argument("--tmpdir", help="where the databases go (default: the system temp dir)")
    a = ap.parse_args()
    sizes_ = [2000] if a.quick else [int(s) for s in a.sizes.split(",")]
    edits_n = 300 if a.quick else a.edits

    t0 = time.perf_counter()
    cpu0 = _busy_cpu()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = BENCH / "results" / f"{stamp}-memory"
    rec = Recorder(out_dir / "raw.jsonl")

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    progress("vocabulary from the standard library's docstrings")
    build = mc.build_vocabulary()
    queries = make_queries(build)
    progress(f"corpus: {max(sizes_):,} files")
    docs = list(mc.corpus(build, max(sizes_) + a.jsonl_changes))
    extra = docs[max(sizes_) :]
    docs = docs[: max(sizes_)]
    tmp_root = Path(tempfile.mkdtemp(prefix="tutti-memory-bench-", dir=a.tmpdir))
    rec.add(
        {
            "section": "meta",
            "sizes": sizes_,
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "machine": _machine(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "tmpdir": str(tmp_root),
            "vocabulary_digest": build.digest,
            "source_chars": build.source_chars,
            "queries": [q.__dict__ for q in queries],
        }
    )
    results: dict[int, dict[str, Any]] = {}
    try:
        for n in sizes_:
            d = tmp_root / str(n)
            d.mkdir()
            run = SizeRun(
                n=n,
                docs=docs[:n],
                dir=d,
                rec=rec,
                rounds=a.rounds,
                edits=min(edits_n, n // 4),
                ref_queries=5 if n <= 20_000 else 1,
                jsonl_changes=a.jsonl_changes if n == min(sizes_) and n <= 20_000 else 0,
                progress=progress,
                extra=docs[n:] + extra,
            )
            results[n] = run_size(run, queries)
            shutil.rmtree(d)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    cpu1 = _busy_cpu()
    other = max(0.0, (cpu1[0] - cpu0[0]) - (cpu1[1] - cpu0[1]))
    wall = time.perf_counter() - t0
    sizes_bytes = sorted(len(d.text.encode()) for d in docs)
    scope_counts: dict[str, int] = {}
    for doc in docs:
        kind = doc.scope.split(":")[0]
        scope_counts[kind] = scope_counts.get(kind, 0) + 1
    head = [
        f"MEMORY FILES   results: {out_dir.relative_to(BENCH.parent)}/raw.jsonl",
        f"versions: python {platform.python_version()}, sqlite {sqlite3.sqlite_version}",
        f"machine: {_machine()}   date: {time.strftime('%Y-%m-%d %H:%M %Z')}   wall: {wall:.0f} s",
        f"databases in: {a.tmpdir or tempfile.gettempdir()}   other processes' CPU during the run:"
        f" {100 * other / wall:.0f}% of one core",
        f"corpus ({len(docs):,} files, the smaller sizes are its first N): {sum(sizes_bytes) / 1e6:.1f} MB;"
        f" bytes min/p50/p90/p99/max {sizes_bytes[0]}/{pct(sizes_bytes, 50):.0f}/{pct(sizes_bytes, 90):.0f}"
        f"/{pct(sizes_bytes, 99):.0f}/{sizes_bytes[-1]}; scopes {scope_counts}",
        f"vocabulary: stdlib docstrings ({build.source_chars:,} chars, sha256 {build.digest}),"
        f" {len(build.word_counts):,} words, {len(build.identifiers):,} generated identifiers",
    ]
    text = report(results, queries, head)
    (out_dir / "table.txt").write_text(text, encoding="utf-8")
    print(text)
    progress(f"done; results in {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
