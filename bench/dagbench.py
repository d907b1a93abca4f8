"""dagbench/1: seeded benchmark DAGs, a loader, and the conversion to a tutti workflow spec.

A dagbench DAG is JSON:

    {"format": "dagbench/1", "name": ..., "kind": "chain"|"wide"|"layered", "params": {...},
     "dist": "zero"|"const:MS"|"uniform:A:B", "seed": N,
     "steps": [{"id": ..., "deps": [...], "duration_ms": ...}, ...],
     "n_steps": ..., "n_edges": ..., "depth": ..., "critical_path_ms": ..., "superstep_bound_ms": ...}

Shapes (matching the DAGs LangGraph was measured on, /work/shared/bench-dags):
  chain N        s0000 -> s0001 -> ... (each step depends on the one before)
  wide W         `source` -> W parallel steps w0000.. -> `join`; source and join take no time,
                 the W middle steps take the distribution's durations
  layered L x W  L layers of W steps (L00_000 ..); each step of layer l > 0 depends on 1-3
                 distinct steps of layer l-1, chosen at random

`critical_path_ms` is the longest path by duration (the ideal wall time with unlimited
parallelism); `superstep_bound_ms` is the sum over depth levels of each level's slowest
step (the ideal of a scheduler that runs level by level, as LangGraph's supersteps do).

With the same seed this reproduces the shared files byte for byte:

    python bench/dagbench.py --kind layered --layers 10 --width 20 --dist uniform:10:100 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

FORMAT = "dagbench/1"
DAGS_DIR = Path(__file__).resolve().parent / "dags"


# -- durations ---------------------------------------------------------------------------
def parse_dist(dist: str) -> tuple[str, float, float]:
    """ "zero", "const:MS" (or "fixed:MS"), "uniform:A:B" -> (kind, a, b)."""
    parts = dist.split(":")
    kind = parts[0]
    try:
        if kind == "zero" and len(parts) == 1:
            return "zero", 0.0, 0.0
        if kind in ("const", "fixed") and len(parts) == 2:
            return "const", float(parts[1]), float(parts[1])
        if kind == "uniform" and len(parts) == 3:
            a, b = float(parts[1]), float(parts[2])
            if 0 <= a <= b:
                return "uniform", a, b
    except ValueError:
        pass
    raise ValueError(f"bad --dist {dist!r}: use zero, const:MS (or fixed:MS), uniform:A:B")


def canonical_dist(dist: str) -> str:
    kind, a, b = parse_dist(dist)
    if kind == "zero":
        return "zero"
    if kind == "const":
        return f"const:{_num(a)}"
    return f"uniform:{_num(a)}:{_num(b)}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _dist_tag(dist: str) -> str:
    kind, a, b = parse_dist(dist)
    if kind == "zero":
        return "zero"
    if kind == "const":
        return f"{_num(a)}ms"
    return f"u{_num(a)}-{_num(b)}ms"


def _sampler(dist: str, rng: random.Random) -> Any:
    kind, a, b = parse_dist(dist)
    if kind == "zero":
        return lambda: 0.0
    if kind == "const":
        return lambda: round(a, 1)
    return lambda: round(rng.uniform(a, b), 1)


# -- generators --------------------------------------------------------------------------
def chain(n: int, dist: str = "zero", seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    dur = _sampler(dist, rng)
    w = max(4, len(str(n - 1)))
    steps = []
    for i in range(n):
        deps = [f"s{i - 1:0{w}d}"] if i else []
        steps.append({"id": f"s{i:0{w}d}", "deps": deps, "duration_ms": dur()})
    return _finish(f"chain_{n}_{_dist_tag(dist)}", "chain", {"n": n}, dist, seed, steps)


def wide(width: int, dist: str = "zero", seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    dur = _sampler(dist, rng)
    w = max(4, len(str(width - 1)))
    mids = [f"w{i:0{w}d}" for i in range(width)]
    steps: list[dict[str, Any]] = [{"id": "source", "deps": [], "duration_ms": 0.0}]
    steps += [{"id": m, "deps": ["source"], "duration_ms": dur()} for m in mids]
    steps.append({"id": "join", "deps": mids, "duration_ms": 0.0})
    return _finish(f"wide_{width}_{_dist_tag(dist)}", "wide", {"width": width}, dist, seed, steps)


def layered(
    layers: int,
    width: int,
    dist: str = "zero",
    seed: int = 1,
    min_deps: int = 1,
    max_deps: int = 3,
) -> dict[str, Any]:
    rng = random.Random(seed)
    dur = _sampler(dist, rng)
    steps = []
    for layer in range(layers):
        for i in range(width):
            deps: list[str] = []
            if layer:
                k = rng.randint(min_deps, min(max_deps, width))
                deps = [f"L{layer - 1:02d}_{j:03d}" for j in sorted(rng.sample(range(width), k))]
            steps.append({"id": f"L{layer:02d}_{i:03d}", "deps": deps, "duration_ms": dur()})
    params = {"layers": layers, "width": width, "min_deps": min_deps, "max_deps": max_deps}
    name = f"layered_{layers}x{width}_{_dist_tag(dist)}"
    return _finish(name, "layered", params, dist, seed, steps)


def _finish(
    name: str, kind: str, params: dict[str, Any], dist: str, seed: int, steps: list[dict[str, Any]]
) -> dict[str, Any]:
    dag: dict[str, Any] = {
        "format": FORMAT,
        "name": name,
        "kind": kind,
        "params": params,
        "dist": canonical_dist(dist),
        "seed": seed,
        "steps": steps,
    }
    dag.update(dag_stats(steps))
    return dag


def dag_stats(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """n_steps, n_edges, depth, critical_path_ms, superstep_bound_ms (steps in topological order)."""
    finish: dict[str, float] = {}
    level: dict[str, int] = {}
    for s in steps:
        deps = s["deps"]
        finish[s["id"]] = max((finish[d] for d in deps), default=0.0) + s["duration_ms"]
        level[s["id"]] = max((level[d] for d in deps), default=-1) + 1
    slowest: dict[int, float] = {}
    for s in steps:
        lv = level[s["id"]]
        slowest[lv] = max(slowest.get(lv, 0.0), s["duration_ms"])
    return {
        "n_steps": len(steps),
        "n_edges": sum(len(s["deps"]) for s in steps),
        "depth": (max(level.values()) + 1) if level else 0,
        "critical_path_ms": round(max(finish.values(), default=0.0), 1),
        "superstep_bound_ms": round(sum(slowest.values()), 1),
    }


def dumps(dag: dict[str, Any]) -> str:
    return json.dumps(dag, separators=(",", ":")) + "\n"


# -- loading -----------------------------------------------------------------------------
def load(name_or_path: str | Path) -> dict[str, Any]:
    """Load a dagbench DAG by path, or by case name from bench/dags (`chain_1000` finds
    chain_1000_zero.json). Checks the format and that steps come in topological order."""
    p = Path(name_or_path)
    if not p.exists():
        cands = [
            DAGS_DIR / f"{name_or_path}.json",
            *sorted(DAGS_DIR.glob(f"{name_or_path}_*.json")),
        ]
        found = [c for c in cands if c.exists()]
        if not found:
            raise FileNotFoundError(f"no dagbench DAG {name_or_path!r} (looked in {DAGS_DIR})")
        p = found[0]
    dag = json.loads(p.read_text(encoding="utf-8"))
    if dag.get("format") != FORMAT:
        raise ValueError(f"{p}: format is {dag.get('format')!r}, expected {FORMAT!r}")
    seen: set[str] = set()
    for s in dag["steps"]:
        missing = [d for d in s["deps"] if d not in seen]
        if missing:
            raise ValueError(f"{p}: step {s['id']!r} depends on {missing} listed after it")
        seen.add(s["id"])
    stats = dag_stats(dag["steps"])
    if (
        "critical_path_ms" in dag
        and abs(dag["critical_path_ms"] - stats["critical_path_ms"]) > 0.05
    ):
        raise ValueError(
            f"{p}: critical_path_ms {dag['critical_path_ms']} != {stats['critical_path_ms']}"
        )
    for k, v in stats.items():
        dag.setdefault(k, v)
    return dag


# -- conversion --------------------------------------------------------------------------
def to_spec(
    dag: dict[str, Any],
    *,
    max_concurrency: int = 1024,
    timeout_s: float = 3600.0,
    templated: bool = False,
) -> dict[str, Any]:
    """The DAG as a tutti workflow spec: every step a builtin step, `pass` (output 0) when it
    takes no time, else `wait` for its duration.

    `templated`: every step with a dependency reads its first dependency's output through a
    template, as real workflows do: a `pass` step's value is `${dep.output}` (the output
    passed on, its type kept), a `wait` step's output (`args`) is `${dep.output}` rendered
    as text. The DAG's shape and durations are unchanged."""
    steps = []
    for s in dag["steps"]:
        ms = float(s["duration_ms"])
        deps = list(s["deps"])
        read = "${" + deps[0] + ".output}" if templated and deps else None
        step: dict[str, Any]
        if ms > 0:
            step = {"id": s["id"], "op": "wait", "value": ms / 1000.0, "depends_on": deps}
            if read is not None:
                step["args"] = read
        else:
            step = {"id": s["id"], "op": "pass", "value": 0 if read is None else read}
            step["depends_on"] = deps
        steps.append(step)
    return {
        "name": dag["name"] + ("_tmpl" if templated else ""),
        "max_concurrency": max_concurrency,
        "defaults": {"timeout": timeout_s},
        "steps": steps,
    }


# A 20-step chain as a workflow would write it: inputs read by name, JSON outputs read by
# dotted paths and filters, text built from several values, and two `when` conditions (one
# true; one false, whose step is skipped while its dependent runs through `all_done`).
REALISTIC_INPUTS: dict[str, Any] = {
    "topic": {"default": "durable workflows on SQLite"},
    "audience": {"default": "engineers"},
    "max_sections": {"type": "integer", "default": 4},
    "tags": {"type": "json", "default": ["sqlite", "durability", "mcp"]},
}
REALISTIC_STEPS: list[dict[str, Any]] = [
    {
        "id": "brief",
        "value": {
            "topic": "${inputs.topic}",
            "audience": "${inputs.audience}",
            "limit": "${inputs.max_sections}",
            "tags": "${inputs.tags}",
        },
    },
    {"id": "title", "args": "${brief.output.topic | title} for ${brief.output.audience}"},
    {
        "id": "outline",
        "value": {"sections": "${brief.output.tags}", "count": "${brief.output.tags | length}"},
    },
    {"id": "check_size", "value": "${outline.output.count <= brief.output.limit}"},
    {
        "id": "intro",
        "when": "${check_size.output}",
        "args": "${title.output}: ${outline.output.count} sections (${outline.output.sections | join(', ')}).",
    },
    {
        "id": "first",
        "value": {
            "name": "${outline.output.sections[0]}",
            "words": "${intro.output.split() | length}",
        },
    },
    {
        "id": "second",
        "value": {"name": "${outline.output.sections[1]}", "after": "${first.output.name}"},
    },
    {
        "id": "third",
        "value": {"name": "${outline.output.sections[2]}", "after": "${second.output.name}"},
    },
    {
        "id": "too_long",
        "when": "${third.output.name | length > 40}",
        "args": "Section ${third.output.name} is too long for ${inputs.audience}.",
    },
    {
        "id": "sections",
        "trigger": "all_done",
        "depends_on": ["too_long", "first", "second", "third"],
        "value": ["${first.output}", "${second.output}", "${third.output}"],
    },
    {"id": "names", "value": "${sections.output | map(attribute='name') | list}"},
    {"id": "summary", "args": "${names.output | join(' -> ')} (${inputs.topic})"},
    {
        "id": "stats",
        "value": {"chars": "${summary.output | length}", "upper": "${summary.output | upper}"},
    },
    {"id": "headline", "args": "${stats.output.upper[:24]}... (${stats.output.chars} chars)"},
    {
        "id": "tagged",
        "value": {"headline": "${headline.output}", "tags": "${brief.output.tags | sort}"},
    },
    {
        "id": "review",
        "args": "Review '${tagged.output.headline}' tagged ${tagged.output.tags | join(',')}",
    },
    {"id": "verdict", "value": "${'ok' if review.output | length < 200 else 'long'}"},
    {
        "id": "record",
        "value": {
            "verdict": "${verdict.output}",
            "title": "${title.output}",
            "sections": "${names.output}",
        },
    },
    {
        "id": "message",
        "args": "${record.output.verdict}: ${record.output.title}, ${record.output.sections | length} sections",
    },
    {
        "id": "done",
        "value": {"message": "${message.output}", "ok": "${record.output.verdict == 'ok'}"},
    },
]


def realistic(n: int = 20) -> dict[str, Any]:
    """The realistic chain's shape as a dagbench DAG (for the reference scheduler): a chain,
    each step after the one before it, no step taking time."""
    assert n == len(REALISTIC_STEPS)
    dag = chain(n)
    dag["name"], dag["kind"] = f"realistic_{n}", "realistic"
    ids = [s["id"] for s in REALISTIC_STEPS]
    for i, s in enumerate(dag["steps"]):
        s["id"], s["deps"] = ids[i], [ids[i - 1]] if i else []
    return dag


def realistic_spec(dag: dict[str, Any], *, timeout_s: float = 3600.0) -> dict[str, Any]:
    """The realistic chain as a spec: each step also depends on the one before it, so it is
    a chain however its templates read."""
    steps = []
    for prev, s in zip([None, *REALISTIC_STEPS], REALISTIC_STEPS, strict=False):
        step = {
            **s,
            "depends_on": sorted({*s.get("depends_on", []), *([prev["id"]] if prev else [])}),
        }
        steps.append(step)
    return {
        "name": dag["name"],
        "inputs": REALISTIC_INPUTS,
        "defaults": {"timeout": timeout_s},
        "steps": steps,
    }


TEMPLATED = "_tmpl"


def case(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A benchmark case's DAG and spec: a DAG's name (`chain_1000`), the same with `_tmpl`
    (every step templated, see `to_spec`), or `realistic_20`."""
    if name.startswith("realistic_"):
        dag = realistic(int(name.removeprefix("realistic_")))
        return dag, realistic_spec(dag)
    if name.endswith(TEMPLATED):
        dag = load(name.removesuffix(TEMPLATED))
        return dag, to_spec(dag, templated=True)
    dag = load(name)
    return dag, to_spec(dag)


# -- command line ------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=["chain", "wide", "layered"])
    ap.add_argument(
        "--spec",
        metavar="CASE",
        help="print a benchmark case's workflow spec instead (chain_1000, chain_1000_tmpl, "
        "realistic_20, ...), for `tutti run`",
    )
    ap.add_argument(
        "--in-memory",
        action="store_true",
        help="with --spec: `state_persistence: false` (tutti run keeps the run in memory)",
    )
    ap.add_argument("--n", type=int, help="chain length")
    ap.add_argument("--width", type=int, help="wide: parallel steps; layered: steps per layer")
    ap.add_argument("--layers", type=int, help="layered: number of layers")
    ap.add_argument("--min-deps", type=int, default=1)
    ap.add_argument("--max-deps", type=int, default=3)
    ap.add_argument("--dist", default="zero", help="zero | const:MS | fixed:MS | uniform:A:B")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--out", help="write here (a directory: NAME.json in it); else stdout")
    a = ap.parse_args(argv)
    if a.spec:
        spec = case(a.spec)[1]
        if a.in_memory:
            spec["optimization"] = {"state_persistence": False}
        sys.stdout.write(json.dumps(spec) + "\n")
        return 0
    if not a.kind:
        ap.error("--kind is required (or --spec CASE)")
    try:
        parse_dist(a.dist)
        if a.kind == "chain":
            if not a.n:
                ap.error("--kind chain needs --n")
            dag = chain(a.n, a.dist, a.seed)
        elif a.kind == "wide":
            if not a.width:
                ap.error("--kind wide needs --width")
            dag = wide(a.width, a.dist, a.seed)
        else:
            if not (a.layers and a.width):
                ap.error("--kind layered needs --layers and --width")
            if not 1 <= a.min_deps <= a.max_deps:
                ap.error("need 1 <= --min-deps <= --max-deps")
            dag = layered(a.layers, a.width, a.dist, a.seed, a.min_deps, a.max_deps)
    except ValueError as exc:
        ap.error(str(exc))
    text = dumps(dag)
    if a.out:
        out = Path(a.out)
        if out.is_dir():
            out = out / f"{dag['name']}.json"
        out.write_text(text, encoding="utf-8")
        print(
            f"wrote {out} ({dag['n_steps']} steps, critical path {dag['critical_path_ms']} ms)",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
