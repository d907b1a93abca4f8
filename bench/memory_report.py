"""The memory benchmark's report: the tables printed and saved in table.txt."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Sequence
from typing import Any

import memory_corpus as mc
from memory_refs import CHUNK, CLASSES, Query


def pct(xs: Sequence[float], p: float) -> float:
    """Percentile with linear interpolation (p in 0..100)."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# -- the report ------------------------------------------------------------------------------
def ms(x: float) -> str:
    x *= 1e3
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def search_table(n: int, out: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    rows = out["search"]
    refs = out["ref_search"]
    lines = [
        f"SEARCH, {n:,} files: ms per query (limit 10), {len(rows[0]['times_s'])} rounds of the {len(rows)} queries, warm cache",
        f"{'class':<12} {'matches':>8} {'p50':>7} {'p99':>7} {'2-step':>7} |"
        f" {'official':>8} {'x':>6} {'scan':>7} {'x':>6} {'matches':>8}",
    ]
    summary: dict[str, Any] = {}
    for cls in [*CLASSES, "all"]:
        mine = [x for x in rows if cls in ("all", x["cls"])]
        ref = [x for x in refs if cls in ("all", x["cls"])]
        t = [s for x in mine for s in x["times_s"]]
        floor = [s for x in mine for s in x["two_step_s"]]
        off = [x["official_s"] for x in ref if "official_s" in x]
        scan = [x["scan_s"] for x in ref]
        p50 = statistics.median(t)
        summary[cls] = {"p50_s": p50, "p99_s": pct(t, 99), "official_p50_s": statistics.median(off)}
        lines.append(
            f"{cls:<12} {statistics.median(x['matches'] for x in mine):>8.0f} {ms(p50):>7}"
            f" {ms(pct(t, 99)):>7} {ms(statistics.median(floor)):>7} |"
            f" {ms(statistics.median(off)):>8} {statistics.median(off) / p50:>5.0f}x"
            f" {ms(statistics.median(scan)):>7} {statistics.median(scan) / p50:>5.0f}x"
            f" {statistics.median(x['matches'] for x in ref):>8.0f}"
        )
    n_off = sum(1 for x in refs if "official_s" in x)
    lines += [
        "  matches = median over the class's queries of the files matching (tutti: FTS, with the OR",
        "  fallback and filters; right: substring of the whole query, filters applied after);",
        "  2-step = p50 of the same results computed in two steps: rank in the FTS index alone (no",
        "  join per match unless a filter needs it), then snippets and sizes of the top 10 (5 rounds);",
        f"  official = read + parse the JSONL + substring match, per query ({n_off} of the queries, one",
        "  run each); scan = the substring match alone over entities already parsed; x = / tutti p50",
    ]
    return lines, summary


def report(results: dict[int, dict[str, Any]], queries: list[Query], head: list[str]) -> str:
    lines = [*head, ""]
    lines.append("QUERIES (5 per class)")
    for cls in CLASSES:
        lines.append(f"  {cls:<12} " + " | ".join(q.label for q in queries if q.cls == cls))
    summaries = {}
    for n, out in results.items():
        lines.append("")
        s_lines, summaries[n] = search_table(n, out)
        lines += s_lines
    lines += [
        "",
        "WRITES: ops/s (one transaction each), latency ms, and tutti time / key-value time",
    ]
    lines.append(
        f"{'files':>8} {'op':<12} {'count':>6} {'tutti/s':>8} {'p50':>7} {'p99':>7} |"
        f" {'kv/s':>8} {'p50':>7} | {'x kv':>5}"
    )
    for n, out in results.items():
        ld = out["load"]
        lines.append(
            f"{n:>8} {'create':<12} {n:>6} {ld['tutti_per_s']:>8.0f} {'':>7} {'':>7} |"
            f" {ld['kv_per_s']:>8.0f} {'':>7} | {ld['ratio']:>4.1f}x"
        )
        for op, row in out["edit"].items():
            t, k = row["tutti_s"], row["kv_s"]
            lines.append(
                f"{n:>8} {op:<12} {len(t):>6} {len(t) / sum(t):>8.0f} {ms(statistics.median(t)):>7}"
                f" {ms(pct(t, 99)):>7} | {len(k) / sum(k):>8.0f} {ms(statistics.median(k)):>7} |"
                f" {row['ratio']:>4.1f}x"
            )
    lines.append(
        f"  create = while loading, in blocks of {CHUNK} paired with the key-value reference;"
        " x kv = median over blocks"
    )
    lines.append(
        "  of tutti time / kv time. kv = INSERT OR REPLACE / DELETE on a bare (k, v) table, same"
    )
    lines.append("  WAL + synchronous=NORMAL. Edits on distinct random existing files.")
    for n, out in results.items():
        ld = out["load"]
        lines.append(
            f"  {n:,} files: load {ld['tutti_s']:.1f} s (kv {ld['kv_s']:.1f} s); creates/s first"
            f" tenth {ld['first_tenth_per_s']:.0f}, last tenth {ld['last_tenth_per_s']:.0f}"
        )
    for n, out in results.items():
        if "jsonl_write" not in out:
            continue
        lines.append("")
        lines.append(
            f"OFFICIAL MEMORY SERVER'S WRITES at {n:,} files: each change loads, changes and rewrites"
            f" the JSONL ({out['size']['jsonl_bytes'] / 1e6:.1f} MB)"
        )
        edit = out["edit"]
        tutti_of = {"create": 1 / out["load"]["tutti_per_s"]}
        tutti_of["add_observations"] = statistics.median(edit["insert"]["tutti_s"])
        tutti_of["delete"] = statistics.median(edit["delete"]["tutti_s"])
        for op, ts in out["jsonl_write"].items():
            p50 = statistics.median(ts)
            like = {"create": "create", "add_observations": "insert", "delete": "delete"}[op]
            lines.append(
                f"  {op:<17} {len(ts):>3} changes: {ms(p50):>6} ms each, {1 / p50:>5.1f}/s;"
                f" {p50 / tutti_of[op]:,.0f}x tutti's {like}"
            )
    lines += ["", "SIZE after loading (WAL checkpointed): bytes per memory file"]
    lines.append(
        f"{'files':>8} {'db MB':>7} {'db/file':>8} {'files tbl':>9} {'revisions':>9} {'fts':>7}"
        f" {'other':>6} | {'raw text':>8} {'kv db':>7} {'jsonl':>7}"
    )
    for n, out in results.items():
        s = out["size"]
        lines.append(
            f"{n:>8} {s['db_bytes'] / 1e6:>7.1f} {s['db_bytes'] / n:>8.0f} {s['files_bytes'] / n:>9.0f}"
            f" {s['revisions_bytes'] / n:>9.0f} {s['fts_bytes'] / n:>7.0f} {s['other_bytes'] / n:>6.0f} |"
            f" {s['raw_bytes'] / n:>8.0f} {s['kv_db_bytes'] / n:>7.0f} {s['jsonl_bytes'] / n:>7.0f}"
        )
    lines.append(
        "  files tbl = memory_files + its unique index; revisions = memory_revisions + indexes;"
        " fts = memory_fts shadow tables (dbstat)"
    )
    for n, out in results.items():
        lines.append(
            f"  {n:,} files: JSONL save {out['jsonl_save_s']:.2f} s, load+parse {out['jsonl_load_s']:.2f} s"
        )
    lines += ["", "OTHER READS (ms)"]
    for n, out in results.items():
        v = out["view"]
        lines.append(
            f"  {n:>7,} files: view a file p50 {ms(v['file_p50_s'])} p99 {ms(v['file_p99_s'])};"
            f" history of a file p50 {ms(v['history_p50_s'])};"
            f" view /memories (global, {v['files_in_global']:,} files) {ms(v['root_global_s'])};"
            f" view /memories/{mc.PROJECTS[0]} (its project scope, {v['files_in_project_dir']:,} files)"
            f" {ms(v['project_dir_s'])}"
        )
    lines += ["", "SUMMARY"]
    for n, s in summaries.items():
        a = s["all"]
        out = results[n]
        lines.append(
            f"  {n:>7,} files: search p50 {ms(a['p50_s'])} ms, p99 {ms(a['p99_s'])} ms"
            f" (official {ms(a['official_p50_s'])} ms, {a['official_p50_s'] / a['p50_s']:.0f}x);"
            f" creates/s {out['load']['tutti_per_s']:.0f} ({out['load']['ratio']:.1f}x kv);"
            f" {out['size']['db_bytes'] / n:.0f} B/file"
        )
    return "\n".join(lines) + "\n"


def _machine() -> str:
    cpu = "?"
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cpus ({cpu}), {platform.system()} {platform.release()}"


def _busy_cpu() -> tuple[float, float]:
    """(CPU seconds busy on the machine, CPU seconds of this process)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK"), time.process_time()
