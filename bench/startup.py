"""How long the `tutti` command takes to start, in fresh processes.

Figures (medians over the repeats, each a new process):

- `python -c pass`: the interpreter alone, the reference;
- `tutti --help` and `tutti --version`: start to exit;
- `tutti serve` over stdio, without and with an API key: start to the first line on stdout,
  the answer to the JSON-RPC `initialize` request written on its stdin (then stdin is closed
  and the server exits);
- a bare `MCPServer` of the MCP SDK over stdio, no tools: the same wait, the floor that
  importing the SDK sets for `tutti serve`;
- `tutti plan examples/seed-chain.json` (no database yet: no history): start to exit.

The bytecode cache is warm: PYTHONDONTWRITEBYTECODE is removed from the children's
environment and each command runs once, unmeasured, before its repeats. With an API key the
server gets a dummy key and a base URL on 127.0.0.1 where nothing listens: answering
`initialize` must not call the API.

Run: `uv run python bench/startup.py [--repeats 7] [--json]`;
`--source DIR` measures the tutti_mcp of another source tree with this environment (e.g. a
`git archive` of the base commit, for before/after figures side by side).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import select
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 30.0  # one start; a hung server is killed and reported, never waited on
EXIT_S = 10.0  # a server whose stdin was closed ends

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bench-startup", "version": "0"},
    },
}

BARE_SERVER = "from mcp.server.mcpserver import MCPServer\nMCPServer('bare').run()"


@dataclass(frozen=True)
class Sample:
    wall_s: float
    cpu_s: float  # user + system of the measured process: what co-tenants' load inflates least


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    target_s: float | None
    measure: Callable[[], Sample]


def tutti_command() -> list[str]:
    """The `tutti` script of this environment (what users run), else `python -m tutti_mcp`."""
    script = Path(sysconfig.get_path("scripts")) / "tutti"
    if script.is_file():
        return [str(script)]
    found = shutil.which("tutti")
    return [found] if found else [sys.executable, "-m", "tutti_mcp"]


def child_env(source: Path | None, db: Path, api_key: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "TUTTI_MODEL_EXECUTOR"):
        env.pop(name, None)
    if api_key:
        env["ANTHROPIC_API_KEY"] = "bench-startup-unused"
        env["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9"  # the discard port: nothing answers
    env["TUTTI_DB"] = str(db)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return env


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_exit(argv: list[str], env: dict[str, str], cwd: Path) -> Sample:
    cpu0 = children_cpu_s()
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, timeout=TIMEOUT_S, check=False
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return Sample(elapsed, children_cpu_s() - cpu0)


def read_line(proc: subprocess.Popen[bytes], deadline: float) -> bytes:
    """The first line the process writes on stdout, waiting until `deadline` at most."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError(f"no line on stdout within {TIMEOUT_S}s")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"stdout closed before a line; got {buf!r}")
            buf += chunk
    return buf.split(b"\n", 1)[0]


def time_initialize(argv: list[str], env: dict[str, str], cwd: Path) -> Sample:
    """Start to the answer to `initialize` (stderr goes to a file: a full pipe would block)."""
    with tempfile.TemporaryFile() as errf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errf
        )
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
            proc.stdin.flush()
            try:
                line = read_line(proc, t0 + TIMEOUT_S)
            except (TimeoutError, RuntimeError) as exc:
                errf.seek(0)
                raise RuntimeError(f"{exc}; stderr: {errf.read().decode()[-2000:]}") from None
            elapsed = time.perf_counter() - t0
            cpu = process_cpu_s(proc.pid)
            answer = json.loads(line)
            if answer.get("id") != 1 or "result" not in answer:
                raise RuntimeError(f"not an answer to initialize: {line[:500]!r}")
            proc.stdin.close()
            proc.wait(timeout=EXIT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=EXIT_S)
    return Sample(elapsed, cpu)


def cases(source: Path | None, tmp: Path, plan: bool) -> list[Case]:
    tutti = tutti_command()
    root = source or ROOT
    db = tmp / "tutti.db"  # the first serve creates it: the usual case is a database that exists
    env = child_env(source, db, api_key=False)
    env_key = child_env(source, db, api_key=True)
    env_nodb = child_env(source, tmp / "absent" / "tutti.db", api_key=False)
    found = [
        Case(
            "reference",
            "python -c pass",
            None,
            lambda: time_exit([sys.executable, "-c", "pass"], env, tmp),
        ),
        Case("help", "tutti --help", 0.15, lambda: time_exit([*tutti, "--help"], env, tmp)),
        Case(
            "version", "tutti --version", 0.15, lambda: time_exit([*tutti, "--version"], env, tmp)
        ),
        Case(
            "serve",
            "tutti serve: initialize answered",
            0.35,
            lambda: time_initialize([*tutti, "serve"], env, tmp),
        ),
        Case(
            "serve_api_key",
            "  the same with an API key",
            0.35,
            lambda: time_initialize([*tutti, "serve"], env_key, tmp),
        ),
    ]
    found.append(
        Case(
            "sdk_floor",
            "  bare MCPServer (the SDK's floor)",
            None,
            lambda: time_initialize([sys.executable, "-c", BARE_SERVER], env, tmp),
        )
    )
    spec = root / "examples" / "seed-chain.json"
    if plan and spec.is_file():
        found.append(
            Case(
                "plan",
                "tutti plan examples/seed-chain.json",
                None,
                lambda: time_exit([*tutti, "plan", str(spec)], env_nodb, tmp),
            )
        )
    return found


def measure(selected: list[Case], repeats: int) -> dict[str, list[Sample]]:
    """Every case once to warm the bytecode cache, then the repeats interleaved, so that a
    burst of load elsewhere falls on every case alike."""
    for case in selected:
        case.measure()
    samples: dict[str, list[Sample]] = {c.key: [] for c in selected}
    for _ in range(repeats):
        for case in selected:
            samples[case.key].append(case.measure())
    return samples


def summary(selected: list[Case], samples: dict[str, list[Sample]]) -> dict[str, Any]:
    ref = statistics.median(x.wall_s for x in samples["reference"])
    figures: dict[str, Any] = {}
    for case in selected:
        xs = [x.wall_s for x in samples[case.key]]
        med = statistics.median(xs)
        figures[case.key] = {
            "label": case.label.strip(),
            "median_s": round(med, 4),
            "min_s": round(min(xs), 4),
            "max_s": round(max(xs), 4),
            "cpu_median_s": round(statistics.median(x.cpu_s for x in samples[case.key]), 4),
            "target_s": case.target_s,
            "ratio_to_reference": round(med / ref, 2),
            "meets_target": None if case.target_s is None else med <= case.target_s,
        }
    return figures


def table(selected: list[Case], figures: dict[str, Any], repeats: int, source: Path | None) -> str:
    lines = [
        f"startup, fresh processes, medians of {repeats} (warm bytecode cache); "
        f"tutti_mcp from {source or ROOT}",
        f"{'figure':<40} {'median':>8} {'min':>8} {'max':>8} {'cpu':>8} {'target':>8} {'x ref':>7}",
    ]
    for case in selected:
        f = figures[case.key]
        target = "-" if case.target_s is None else f"{case.target_s:.2f}s"
        verdict = "" if f["meets_target"] is None else ("  ok" if f["meets_target"] else "  MISS")
        lines.append(
            f"{case.label:<40} {f['median_s']:>7.3f}s {f['min_s']:>7.3f}s {f['max_s']:>7.3f}s "
            f"{f['cpu_median_s']:>7.3f}s {target:>8} {f['ratio_to_reference']:>6.1f}x{verdict}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="runs per figure (default: 7)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--no-plan", action="store_true", help="leave out `tutti plan`")
    p.add_argument(
        "--source",
        type=Path,
        help="measure the tutti_mcp package of this source tree (default: this checkout)",
    )
    args = p.parse_args(argv)
    source = args.source.resolve() if args.source else None
    with tempfile.TemporaryDirectory(prefix="tutti-startup-") as tmp:
        selected = cases(source, Path(tmp), plan=not args.no_plan)
        samples = measure(selected, args.repeats)
    figures = summary(selected, samples)
    if args.json:
        info = {
            "repeats": args.repeats,
            "source": str(source or ROOT),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
            "figures": figures,
            "samples_s": {
                k: [{"wall": round(x.wall_s, 4), "cpu": round(x.cpu_s, 4)} for x in v]
                for k, v in samples.items()
            },
        }
        print(json.dumps(info, indent=1))
    else:
        print(table(selected, figures, args.repeats, source))
        print(
            f"load average (1 min) after the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
