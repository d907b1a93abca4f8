"""The engine benchmarks side by side against another commit, in one run.

    uv run python bench/compare.py --base c40f4c6                 # chain, wide, layered (zero-duration steps), mem + sqlite
    uv run python bench/compare.py --base c40f4c6 --repeats 9 --cases chain_1000 --variants sqlite

The base commit is checked out in a temporary git worktree with its own environment
(`uv sync --locked`: packages come from uv's cache or the registry). Each repeat runs, for
every case and variant, one fresh process per side, the sides in alternating order; each
process does a warm-up run and then `--runs` timed runs of that side's own
`bench/run.py:tutti_run`, whose figure is the wall of `engine.execute` alone. Reported:
median microseconds per step for each side and the ratio head / base (below 1: head is
faster), with the interquartile range of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEAD = HERE.parent
CASES = ["chain_1000", "wide_1000", "layered_20x50"]
VARIANTS = ["mem", "sqlite"]

# Run inside a side's checkout: that side's bench/run.py and engine, nothing of ours.
DRIVER = """
import asyncio, json, sys, tempfile
sys.path.insert(0, "bench")
import dagbench, run
case, variant, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
dag = dagbench.load(case)
spec = dagbench.to_spec(dag)
with tempfile.TemporaryDirectory() as tmp:
    asyncio.run(run.tutti_run(dag, spec, variant, tmp))
    walls = [asyncio.run(run.tutti_run(dag, spec, variant, tmp))["wall_s"] for _ in range(runs)]
print(json.dumps({"n_steps": dag["n_steps"], "walls": walls}))
"""


def sh(cmd: list[str], cwd: Path, timeout: float = 900) -> str:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{r.stderr[-2000:]}")
    return r.stdout


def measure(side: Path, case: str, variant: str, runs: int) -> float:
    """Median microseconds per step of `runs` timed runs in one fresh process."""
    out = sh(["uv", "run", "--locked", "python", "-c", DRIVER, case, variant, str(runs)], side)
    data = json.loads(out.strip().splitlines()[-1])
    return statistics.median(data["walls"]) / data["n_steps"] * 1e6


def iqr_pct(xs: list[float]) -> float:
    if len(xs) < 4:
        return 0.0
    q = statistics.quantiles(xs, n=4)
    return (q[2] - q[0]) / statistics.median(xs) * 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base", required=True, help="the commit to compare against")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3, help="timed runs per process")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()
    cases, variants = args.cases.split(","), args.variants.split(",")
    base_rev = sh(["git", "rev-parse", "--short", args.base], HEAD).strip()
    head_rev = sh(["git", "rev-parse", "--short", "HEAD"], HEAD).strip()
    tmp = Path(tempfile.mkdtemp(prefix="tutti-bench-base-"))
    side = tmp / "base"
    sh(["git", "worktree", "add", "--detach", str(side), base_rev], HEAD)
    try:
        print(f"preparing {base_rev} in {side} ...", file=sys.stderr)
        sh(["uv", "sync", "--locked", "-q"], side)
        figures: dict[tuple[str, str], dict[str, list[float]]] = {}
        for r in range(args.repeats):
            for case in cases:
                for variant in variants:
                    fig = figures.setdefault((case, variant), {"base": [], "head": []})
                    order = [("base", side), ("head", HEAD)]
                    for name, where in order if r % 2 == 0 else order[::-1]:
                        fig[name].append(measure(where, case, variant, args.runs))
            print(f"repeat {r + 1}/{args.repeats} done", file=sys.stderr)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(side)], cwd=HEAD, check=False)
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for (case, variant), fig in figures.items():
        ratios = [h / b for h, b in zip(fig["head"], fig["base"], strict=True)]
        rows.append(
            {
                "case": case,
                "variant": variant,
                "base_us_per_step": statistics.median(fig["base"]),
                "head_us_per_step": statistics.median(fig["head"]),
                "ratio": statistics.median(ratios),
                "ratio_iqr_pct": iqr_pct(ratios),
            }
        )
    if args.json:
        print(json.dumps({"base": base_rev, "head": head_rev, "rows": rows}))
        return
    print(f"engine.execute, microseconds per step; medians of {args.repeats} paired repeats")
    print(
        f"{'case':<16}{'variant':<9}{'base ' + base_rev:>14}{'head ' + head_rev:>14}{'head/base':>11}"
    )
    for row in rows:
        print(
            f"{row['case']:<16}{row['variant']:<9}{row['base_us_per_step']:>14.1f}"
            f"{row['head_us_per_step']:>14.1f}{row['ratio']:>8.2f} [{row['ratio_iqr_pct']:.0f}%]"
        )


if __name__ == "__main__":
    main()
