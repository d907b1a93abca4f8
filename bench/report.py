"""The benchmark's report: the tables, next to LangGraph's figures, and the targets."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    LATENCY_CASES,
    LG_FILE,
    MEMORY_CASES,
    OVERHEAD_CASES,
    SCALING_N,
    TARGETS,
    TEMPLATED_CASES,
    VARIANTS,
    Recorder,
)

ROOT = BENCH.parent
_LG_SECTIONS = ("OVERHEAD", "SCALING", "LATENCY-BOUND", "MEMORY", "BUILD", "CHECKPOINT COST")


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def iqr_pct(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    q = statistics.quantiles(xs, n=4, method="inclusive")
    m = statistics.median(xs)
    return 100.0 * (q[2] - q[0]) / m if m else 0.0


def paired_ratio(a: list[float], b: list[float]) -> float:
    return med([x / y for x, y in zip(a, b, strict=True) if y > 0])


def _nums(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w.])", text)]


def read_langgraph(path: Path = LG_FILE) -> dict[str, Any]:
    """Pick LangGraph's figures out of its results table (best effort; '-' where missing)."""
    lg: dict[str, Any] = {"overhead": {}, "scaling": {}, "latency": {}, "memory": {}, "ckpt": {}}
    if not path.exists():
        return lg
    section = None
    for line in path.read_text(encoding="utf-8").splitlines():
        head = next((h for h in _LG_SECTIONS if line.startswith(h)), None)
        if head is not None:
            section = head
            continue
        words = line.split()
        if not words:
            continue
        try:
            if section == "OVERHEAD" and words[0] in OVERHEAD_CASES:
                # case steps ref [iqr] lg [iqr] lg+sqlite [iqr] ...
                v = [w for w in words[1:] if not w.startswith("[")]
                lg["overhead"][words[0]] = {
                    "ref": float(v[1]),
                    "lg": float(v[2]),
                    "lg_sqlite": float(v[3]),
                }
            elif section == "SCALING" and words[0].isdigit():
                n = _nums(line)
                lg["scaling"][int(words[0])] = {
                    "ref": n[1],
                    "lg": n[2],
                    "lg_sqlite": n[3],
                    "blob_kb": n[4],
                    "mb_written": n[5],
                    "rss_lg": n[6],
                    "rss_lg_sqlite": n[7],
                }
            elif section == "LATENCY-BOUND" and words[0] in LATENCY_CASES:
                n = [float(w) for w in words[1:10]]
                lg["latency"][words[0]] = {
                    "crit": n[0],
                    "sstep": n[1],
                    "ref_wall": n[2],
                    "ref_ratio": n[3],
                    "lg_wall": n[4],
                    "lg_ratio": n[5],
                    "lg_sqlite_wall": n[6],
                    "lg_sqlite_ratio": n[7],
                }
            elif section == "MEMORY" and words[0] in MEMORY_CASES:
                cells = re.findall(r"([\d.]+)\s*/\s*\+([\d.]+)", line)
                names = ("ref", "lg", "lg_sqlite", "lg_sqlite_sync")
                lg["memory"][words[0]] = {
                    k: (float(p), float(g)) for k, (p, g) in zip(names, cells, strict=False)
                }
            elif (
                section == "CHECKPOINT COST"
                and words[0] == "chain_1000"
                and words[1] == "lg+sqlite"
            ):
                n = [float(w) for w in words[2:]]
                lg["ckpt"] = {"ckpt_per_s": n[4], "commits_per_s": n[5], "blob_avg_kb": n[6]}
        except (IndexError, ValueError):
            continue
    return lg


def fmt(x: float | None, spec: str = ".1f") -> str:
    if x is None or x != x:
        return "-"
    return format(x, spec)


def report(rec: Recorder, repeats: int, out_dir: Path) -> tuple[str, dict[str, Any]]:
    lg = read_langgraph()
    lines: list[str] = []
    p = lines.append
    verdicts: dict[str, Any] = {}

    import sqlite3

    import networkx
    import pydantic

    p(
        f"results: {out_dir.relative_to(ROOT)}/raw.jsonl   repeats: {repeats}   "
        "(medians; [IQR% of median]; ratios = median of per-repeat paired ratios)"
    )
    p(
        f"versions: python {platform.python_version()}, anyio {_ver('anyio')}, "
        f"aiosqlite {_ver('aiosqlite')}, sqlite {sqlite3.sqlite_version}, pydantic {pydantic.__version__}, "
        f"networkx {networkx.__version__}"
    )
    p(f"machine: {_machine()}   date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    meta = rec.get(section="meta")[0]
    busy = rec.get(section="summary_load")[0]
    other = busy["other_cpu_s"] / busy["elapsed_s"]
    p(
        f"other processes' CPU during the run: {100 * other:.0f}% of one core   "
        f"sqlite files in: {meta.get('tmpdir')}"
    )
    if other > 0.10:
        p("  WARNING: other processes were busy during this run (2 cores here): figures, sqlite")
        p("  above all (its commits hop to a thread and share the disk), are slower and noisier")
        p("  than on a quiet machine; see the [IQR%] and raw.jsonl")
    p(
        "LangGraph columns (lg, lg+sql): bench/dags/langgraph-figures-2026-11-25.txt, same DAGs, "
        "same Python (their ideal-asyncio ref there: 3.3-4.8 us/step, a check that the machines compare)"
    )

    def us(case: str, v: str) -> list[float]:
        n = rec.get(section="zero", case=case, variant=v)[0]["n_steps"]
        return [1e6 * w / n for w in rec.walls(section="zero", case=case, variant=v)]

    p("")
    p("OVERHEAD, zero-duration steps: microseconds per step = wall of engine.execute / n_steps")
    p(
        f"{'case':<15}{'steps':>6}{'ref':>13}{'tutti-mem':>13}{'tutti-sqlite':>14}"
        f"{'mem/ref':>9}{'sql/ref':>9}{'sql/mem':>9}  |{'lg':>8}{'lg+sql':>9}{'lg/mem':>8}{'lg+sql/sql':>11}"
    )
    for case in OVERHEAD_CASES:
        r, m, s = us(case, "ref"), us(case, "mem"), us(case, "sqlite")
        n = rec.get(section="zero", case=case, variant="ref")[0]["n_steps"]
        lgo = lg["overhead"].get(case, {})
        p(
            f"{case:<15}{n:>6}{_cell(r):>13}{_cell(m):>13}{_cell(s):>14}"
            f"{paired_ratio(m, r):>8.0f}x{paired_ratio(s, r):>8.0f}x{paired_ratio(s, m):>8.2f}x  |"
            f"{fmt(lgo.get('lg')):>8}{fmt(lgo.get('lg_sqlite')):>9}"
            f"{_x(lgo.get('lg'), med(m)):>8}{_x(lgo.get('lg_sqlite'), med(s)):>11}"
        )

    p("")
    p("TEMPLATED, zero-duration steps reading their dependency's output through templates:")
    p("us per step; +plain = minus the same DAG without templates (paired medians)")
    p(
        f"{'case':<17}{'steps':>6}{'ref':>11}{'tutti-mem':>13}{'tutti-sqlite':>14}"
        f"{'mem +plain':>12}{'sqlite +plain':>15}"
    )
    for case in TEMPLATED_CASES:
        r, m, s = us(case, "ref"), us(case, "mem"), us(case, "sqlite")
        n = rec.get(section="zero", case=case, variant="ref")[0]["n_steps"]
        plain = case.removesuffix("_tmpl")
        extra = ["-", "-"]
        if plain != case and rec.get(section="zero", case=plain):
            extra = [
                f"{med([a - b for a, b in zip(t, us(plain, v), strict=True)]):+.1f}"
                for t, v in ((m, "mem"), (s, "sqlite"))
            ]
        p(f"{case:<17}{n:>6}{_cell(r):>11}{_cell(m):>13}{_cell(s):>14}{extra[0]:>12}{extra[1]:>15}")
    p("  every template compiled before the timed run (a warm-up run each): what a server that")
    p("  runs a spec again pays; `tutti run` (one run per process) figures: bench/README.md")

    p("")
    p("SCALING, zero-duration chain of N steps: us/step, and the checkpoints' size (tutti-sqlite)")
    p(
        f"{'N':>6}{'ref':>7}{'mem':>8}{'sqlite':>8}{'mem/ref':>8}{'sql/mem':>8}{'ckpt B/step':>12}"
        f"{'ckpt tbl B/step':>16}{'db KB':>8}  |{'lg':>8}{'lg+sql':>8}{'lg blob KB':>11}"
    )
    ckpt_per_step: dict[int, float] = {}
    for n in SCALING_N:
        case = f"chain_{n}"
        r, m, s = us(case, "ref"), us(case, "mem"), us(case, "sqlite")
        d = next(
            x for x in rec.get(section="zero", case=case, variant="sqlite") if "ckpt_rows" in x
        )
        per = d["ckpt_payload_bytes"] / d["ckpt_rows"]
        ckpt_per_step[n] = per
        lgs = lg["scaling"].get(n, {})
        p(
            f"{n:>6}{med(r):>7.1f}{med(m):>8.1f}{med(s):>8.1f}{paired_ratio(m, r):>7.0f}x"
            f"{paired_ratio(s, m):>7.2f}x{per:>12.1f}{d['ckpt_table_bytes'] / n:>16.1f}"
            f"{d['db_file_bytes'] / 1024:>8.0f}  |{fmt(lgs.get('lg')):>8}{fmt(lgs.get('lg_sqlite')):>8}"
            f"{fmt(lgs.get('blob_kb')):>11}"
        )
    p("  ckpt B/step = sum of the checkpoint rows' column sizes / steps (output is JSON `0`);")
    p("  ckpt tbl B/step = pages of the checkpoints table (dbstat) / steps; db KB = whole file")

    p("")
    p("LATENCY-BOUND (steps that wait their duration): wall ms and wall / critical-path")
    p(
        f"{'case':<25}{'crit':>7}{'sstep':>7}{'ref':>8}{'ratio':>7}{'mem':>8}{'ratio':>7}"
        f"{'sqlite':>8}{'ratio':>7}{'mem lag':>8}{'sql lag':>8}  |{'lg':>7}{'lg+sql':>8}"
    )
    for case in LATENCY_CASES:
        rows = {v: rec.get(section="latency", case=case, variant=v) for v in VARIANTS}
        crit = rows["ref"][0]["critical_path_ms"]
        sstep = rows["ref"][0]["superstep_bound_ms"]
        walls = {
            v: [1000 * w for w in rec.walls(section="latency", case=case, variant=v)]
            for v in VARIANTS
        }
        ratios = {v: med([w / crit for w in walls[v]]) for v in VARIANTS}
        lags = {v: med([r["lag_p50_ms"] for r in rows[v]]) for v in VARIANTS}
        verdicts[f"sqlite_ratio_{case}"] = ratios["sqlite"]
        lgl = lg["latency"].get(case, {})
        p(
            f"{case:<25}{crit:>7.1f}{sstep:>7.1f}{med(walls['ref']):>8.1f}{ratios['ref']:>7.3f}"
            f"{med(walls['mem']):>8.1f}{ratios['mem']:>7.3f}{med(walls['sqlite']):>8.1f}{ratios['sqlite']:>7.3f}"
            f"{lags['mem']:>6.2f}ms{lags['sqlite']:>6.2f}ms  |{fmt(lgl.get('lg_ratio'), '.3f'):>7}"
            f"{fmt(lgl.get('lg_sqlite_ratio'), '.3f'):>8}"
        )
    p("  crit = critical path ms; sstep = superstep bound ms; ratio = wall / crit; lag = p50 of")
    p("  (step start - end of its last dependency), which includes the dependency's commit;")
    p("  lg, lg+sql = LangGraph's wall / crit")

    p("")
    p("CHECKPOINT COST, tutti-sqlite on chain_1000 (one checkpoint per step, each durable before")
    p("its dependent starts)")
    s_walls = rec.walls(section="zero", case="chain_1000", variant="sqlite")
    commits_per_s = [1000 / w for w in s_walls]
    t = rec.get(section="txns")[0]
    p(
        f"  checkpoint commits/s (steps / wall): {med(commits_per_s):.0f} [{iqr_pct(commits_per_s):.0f}%]   "
        f"(LangGraph lg+sqlite: {fmt(lg['ckpt'].get('ckpt_per_s'), '.0f')} checkpoints/s, "
        f"{fmt(lg['ckpt'].get('commits_per_s'), '.0f')} commits/s)"
    )
    if "error" in t:
        p(f"  (transaction replay unavailable: {t['error']})")
    else:
        n = max(1, t["txns"])
        p(
            f"  SQLite transactions in execute: {t['txns']} ({t['statements']} statements, "
            f"{t['statements'] / n:.1f} per transaction), {t['txns'] / t['wall_s']:.0f} transactions/s"
        )
        p(
            f"  the same transactions replayed without the engine, us per transaction:  sync sqlite3 "
            f"{1e6 * t['sync_s'] / n:.1f}   via aiosqlite {1e6 * t['aiosqlite_s'] / n:.1f}   "
            f"(bare aiosqlite round trip {1e6 * t['roundtrip_s'] / n:.1f})"
        )
        p(
            f"  => of tutti-sqlite's {med(us('chain_1000', 'sqlite')):.1f} us/step: tutti-mem's engine work "
            f"{med(us('chain_1000', 'mem')):.1f}, SQLite + thread hand-off floor "
            f"{1e6 * t['aiosqlite_s'] / 1000:.1f} per step"
        )
        if "writer_s" in t:
            p(
                f"  through the store's writer (group commit, on the loop's thread when it can): "
                f"{1e6 * t['writer_s'] / n:.1f} us per transaction"
            )

    conc = rec.get(section="concurrent")
    if conc:
        n_runs, n_steps = conc[0]["n_runs"], conc[0]["n_steps"]
        p("")
        p(f"CONCURRENT RUNS: {n_runs} runs of a {n_steps}-step templated chain at once, one store")
        p("and engine, create + execute: wall s and us per step (all steps of all runs)")
        for v in ("mem", "sqlite"):
            ws = [r["wall_s"] for r in conc if r["variant"] == v]
            p(
                f"  tutti-{v:<7} {med(ws):6.2f} s [{iqr_pct(ws):.0f}%]   "
                f"{1e6 * med(ws) / (n_runs * n_steps):6.1f} us/step"
            )
        w = [r["writer"] for r in conc if r["variant"] == "sqlite" and "writer" in r]
        if w:
            p(
                f"  sqlite writer, first repeat: {w[0]['batches']} transactions for "
                f"{w[0]['waiters']} waiting writes ({w[0]['statements']} statements), "
                f"{w[0]['on_loop']} committed on the loop's thread, {w[0]['on_thread']} on the writer's"
            )

    p("")
    p("MEMORY (fresh process per run): peak RSS MB / growth over RSS after imports MB")
    p(f"{'case':<16}{'ref':>16}{'tutti-mem':>16}{'tutti-sqlite':>16}  |{'lg':>16}{'lg+sqlite':>16}")
    for case in MEMORY_CASES:
        cells = []
        for v in VARIANTS:
            rows = rec.get(section="memory", case=case, variant=v)
            peak = med([r["peak_rss_mb"] for r in rows])
            grow = med([r["growth_mb"] for r in rows])
            cells.append(f"{peak:.1f} / +{grow:.1f}" if peak == peak else "-")
            if case == "chain_2000" and v != "ref":
                verdicts[f"rss_growth_{v}"] = grow
        lgm = lg["memory"].get(case, {})
        lgc = [
            f"{lgm[k][0]:.1f} / +{lgm[k][1]:.1f}" if k in lgm else "-" for k in ("lg", "lg_sqlite")
        ]
        p(f"{case:<16}{cells[0]:>16}{cells[1]:>16}{cells[2]:>16}  |{lgc[0]:>16}{lgc[1]:>16}")
    base = med([r["rss_after_imports_mb"] for r in rec.get(section="memory")])
    p(
        f"  RSS after imports (engine, memory, aiosqlite, anyio, DAG loaded): {fmt(base)} MB; peak = VmHWM"
    )
    p("  reset after imports; chain_2000 median of the repeats, other cases one run")

    p("")
    p(
        "BUILD: create_run (parse + compile + preflight + the run's rows) is outside the timed region;"
    )
    p("compile = parse + compile + preflight, plan = make_plan, each alone; in execute = the part")
    p("of engine.execute (timed) spent in parse_spec / compile_workflow / make_plan / run_metrics")
    p(
        f"{'case':<25}{'create_run':>11}{'compile':>9}{'plan':>7}   in execute (ms, % of tutti-mem execute wall)"
    )
    for case in [*OVERHEAD_CASES, *LATENCY_CASES, "chain_250", "chain_2000"]:
        sect = "zero" if rec.get(section="zero", case=case) else "latency"
        cr = [1000 * r["create_s"] for r in rec.get(section=sect, case=case, variant="mem")]
        b = rec.get(section="build", case=case)[0]
        ins = b["in_execute"]
        wall = 1000 * med(rec.walls(section=sect, case=case, variant="mem"))
        parts = (
            ", ".join(
                f"{n} {1000 * ins['spent_s'][n]:.1f}" + (f" x{c}" if c > 1 else "")
                for n, c in ins["calls"].items()
                if c
            )
            or "none"
        )
        total = 1000 * sum(ins["spent_s"].values())
        p(
            f"{case:<25}{med(cr):>11.1f}{1000 * b['compile_s']:>9.1f}{1000 * b['plan_s']:>7.1f}   "
            f"{parts} = {total:.1f} ({100 * total / wall:.0f}%)"
        )
    p("")

    # -- targets
    p("")
    p("TARGETS")
    mem_us = med(us("chain_1000", "mem"))
    sql_us = med(us("chain_1000", "sqlite"))
    spread = (
        100
        * (max(ckpt_per_step.values()) - min(ckpt_per_step.values()))
        / min(ckpt_per_step.values())
    )
    checks = [
        (
            "<= 25 us/step without persistence (tutti-mem, chain_1000)",
            mem_us,
            TARGETS["mem_us_per_step_chain_1000"],
            "us",
        ),
        (
            "<= 60 us/step templated, without persistence (tutti-mem, chain_1000_tmpl)",
            med(us("chain_1000_tmpl", "mem")),
            TARGETS["mem_us_per_step_chain_1000_tmpl"],
            "us",
        ),
        (
            "<= 150 us/step with SQLite (tutti-sqlite, chain_1000)",
            sql_us,
            TARGETS["sqlite_us_per_step_chain_1000"],
            "us",
        ),
        (
            "wall/crit <= 1.03, layered_10x20_u10-100ms, sqlite",
            verdicts["sqlite_ratio_layered_10x20_u10-100ms"],
            TARGETS["sqlite_ratio_layered_10x20_u10-100ms"],
            "",
        ),
        (
            "wall/crit <= 1.10, wide_200_50ms, sqlite",
            verdicts["sqlite_ratio_wide_200_50ms"],
            TARGETS["sqlite_ratio_wide_200_50ms"],
            "",
        ),
        (
            f"constant checkpoint bytes/step (N=250..2000 within {TARGETS['ckpt_bytes_per_step_spread_pct']:.0f}%: "
            f"{ckpt_per_step[250]:.1f} .. {ckpt_per_step[2000]:.1f} B)",
            spread,
            TARGETS["ckpt_bytes_per_step_spread_pct"],
            "%",
        ),
        (
            "<= 30 MB peak RSS growth, chain_2000, tutti-mem",
            verdicts["rss_growth_mem"],
            TARGETS["rss_growth_mb_chain_2000"],
            "MB",
        ),
        (
            "<= 30 MB peak RSS growth, chain_2000, tutti-sqlite",
            verdicts["rss_growth_sqlite"],
            TARGETS["rss_growth_mb_chain_2000"],
            "MB",
        ),
    ]
    results = {}
    for label, value, limit, unit in checks:
        if value != value:  # nan: not measured (--no-memory)
            results[label] = {"value": None, "limit": limit, "pass": None}
            p(f"  SKIP  {label}: not measured")
            continue
        ok = value <= limit
        results[label] = {"value": value, "limit": limit, "pass": ok}
        shown = f"{value:.3f}" if unit == "" else f"{value:.1f}"
        p(f"  {'PASS' if ok else 'FAIL'}  {label}: {shown}{unit} (limit {limit:g}{unit})")
    return "\n".join(lines), results


def _cell(xs: list[float]) -> str:
    return f"{med(xs):.1f} [{iqr_pct(xs):.0f}%]"


def _x(a: float | None, b: float) -> str:
    if a is None or not b:
        return "-"
    return f"{a / b:.1f}x"


def _ver(dist: str) -> str:
    from importlib.metadata import version

    try:
        return version(dist)
    except Exception:
        return "?"


def _machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cpus ({cpu}), {platform.system()} {platform.release()}"
