"""A hierarchical swarm of 1 coordinator and 8 specialists on the fake Messages API, each turn
answered after 200 ms (issue 14): wall time over the ideal, in memory and on SQLite, the
share of input tokens read from the prompt cache, and a plain asyncio script doing the same
three phases against the same fake in the same process.

    uv run python bench/swarm.py                      # 7 repeats per variant, ~20 s
    uv run python bench/swarm.py --repeats 15 --latency 0.2
    uv run python bench/swarm.py --profile sqlite     # cProfile of one swarm's execute

The swarm is the seed's top-level form (`type: swarm`) with `state_sharing: shared` and a
task of about `--task-tokens` tokens (an input), so every turn starts with the same long
prefix and prompt caching applies. The fake (tests/fake_anthropic.py) answers by agent
and phase: the plan is JSON with one subtask per specialist, the work is text, and the
synthesis is JSON with no conflicts (so the swarm needs no ballots). It accounts the
prompt cache like the real API.

Ideal: plan + the slowest specialist + synthesis = 3 x latency (0.6 s). Variants, the
repeats interleaved so drift touches every variant alike:
  ref     plain asyncio: one `messages.create` for the plan, then the 8 work calls at once
          (asyncio.gather), then the synthesis; the same SDK client and fake
  mem     tutti Engine + PromptExecutor on InMemoryRunStore
  sqlite  the same on SqliteRunStore, a fresh file per run (every turn committed before the
          next phase starts)
Timed: `engine.execute` of a run created beforehand (create = parse + compile + the run's
rows), and the whole script for `ref`. Also reported: the swarm's own figures (its
`figures`: first turn's start to last turn's end, and the critical path of its batches),
the fake's latency for one request (no delay) as a check that nothing adds tens of ms per
call, and the cache-read share: cache reads / (uncached input + cache writes + cache reads),
summed over the turns.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]

import anthropic  # noqa: E402
from common import Recorder  # noqa: E402
from run import close_store, open_store  # noqa: E402  (a fresh SQLite file per run)

from tests.engine.swarm_support import who  # noqa: E402
from tests.fake_anthropic import FakeAnthropic, Reply, estimated, message  # noqa: E402
from tutti_mcp.engine.config import EngineConfig  # noqa: E402
from tutti_mcp.engine.executors.prompt import PromptExecutor  # noqa: E402
from tutti_mcp.engine.models import ModelTable  # noqa: E402
from tutti_mcp.engine.service import Engine  # noqa: E402
from tutti_mcp.engine.spec import ExecutorKind  # noqa: E402

MODEL = "claude-sonnet-5-5"
SPECIALISTS = (
    "security",
    "performance",
    "reliability",
    "api_design",
    "data_model",
    "testing",
    "docs",
    "operations",
)
PHASES = 3  # plan, the specialists' work, synthesis: the ideal is PHASES x latency
VARIANTS = ("ref", "mem", "sqlite")
TARGET = 1.03
WHERE = ("lead_in_s", "send_s", "answer_s", "gaps_s", "tail_s")
USAGE_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def task_text(tokens: int) -> str:
    """A review brief of about `tokens` tokens (chars/4): the swarm's shared task."""
    lines, chars, i = ["Review the order service before its release. Findings so far:\n"], 0, 0
    while chars < tokens * 4:
        line = (
            f"- Module {i}: handler orders/{i}.py validates lot {i} and writes it through the "
            f"repository; retries {i % 4} times; p99 {20 + i % 50} ms.\n"
        )
        lines.append(line)
        chars += len(line)
        i += 1
    return "".join(lines)[: tokens * 4]


def spec(coordinator_model: str = MODEL) -> dict[str, Any]:
    agents: dict[str, Any] = {
        "coordinator": {
            "role": "Task decomposition and synthesis",
            "model": coordinator_model,
            "capabilities": ["planning", "synthesis"],
        }
    }
    for name in SPECIALISTS:
        agents[name] = {"role": f"{name.replace('_', ' ')} review", "capabilities": [name]}
    return {
        "name": "swarm-bench",
        "type": "swarm",
        "topology": "hierarchical",
        "defaults": {"model": MODEL, "thinking": "instant"},
        "inputs": {"task": {"type": "string", "required": True}},
        "agents": agents,
        "coordination": {
            "communication": "event_driven",
            "state_sharing": "shared",
            "conflict_resolution": "consensus",
        },
    }


PLAN = {
    "subtasks": [
        {"agent": n, "task": f"Review the service for {n.replace('_', ' ')}", "capability": n}
        for n in SPECIALISTS
    ]
}
SYNTHESIS = {"result": "Ready for release once the findings are fixed.", "conflicts": []}


class Agents:
    """The scripted agents: every turn answered after `latency_s`. Records when each
    (agent, phase) request reached the fake (time.time, the engine's clock)."""

    def __init__(self, latency_s: float, coordinator_model: str = MODEL) -> None:
        self.latency_s = latency_s
        self.coordinator_model = coordinator_model
        self.arrived: dict[tuple[str, str], float] = {}

    def __call__(self, body: Any) -> Reply:
        agent, phase, _ = who(body)
        self.arrived[agent, phase] = time.time()
        if phase == "plan":
            text = json.dumps(PLAN)
        elif phase == "work":
            text = f"{agent}: three findings, each with its file and a fix."
        elif phase == "synthesis":
            text = json.dumps(SYNTHESIS)
        else:
            raise AssertionError(f"the benchmark's swarm took an unexpected turn: {agent}/{phase}")
        return estimated(text, output_tokens=40, delay_s=self.latency_s)


def split_batches(
    batches: list[list[tuple[float, ...]]], start: float, end: float, latency: float
) -> dict[str, float]:
    """The timed wall cut into parts, from each call's (start, arrival at the fake, end), the
    calls grouped by phase (a swarm's batch): before the first call starts; in each phase,
    from its first call's start to its last request's arrival at the fake (`send`: prompt
    building, the SDK, the connection, the fake reading the body) and from the last answer
    due (that arrival + latency) to the phase's last call's end (`answer`: the fake writing,
    the SDK parsing, the engine committing the turn); between phases (`gaps`: the engine
    reading a phase and adding the next); after the last call ends."""
    spans = sorted(
        (min(c[0] for c in b), max(c[1] for c in b), max(c[2] for c in b)) for b in batches
    )
    return {
        "lead_in_s": spans[0][0] - start,
        "send_s": sum(arrived - began for began, arrived, _ in spans),
        "answer_s": sum(ended - arrived - latency for _, arrived, ended in spans),
        "gaps_s": sum(nxt[0] - prev[2] for prev, nxt in itertools.pairwise(spans)),
        "tail_s": end - spans[-1][2],
    }


def start_fake(args: argparse.Namespace) -> tuple[FakeAnthropic, Agents]:
    fake = FakeAnthropic(default=message("?"))
    if not args.close:
        # Keep-alive, as the real API: the SDK reuses its connections (the fake speaks
        # HTTP/1.0 by default: one connection per request).
        fake._server.RequestHandlerClass.protocol_version = "HTTP/1.1"  # type: ignore[attr-defined]
    agents = Agents(args.latency, args.coordinator_model)
    fake.responder = agents
    return fake.start(), agents


class Fake:
    """The fake API as the benchmark drives it: in this process (`--in-process-fake`: its
    threads then share the GIL with the SDK and the engine, as a 17 KB body is parsed while
    the next is sent), or in a child process, as the real API is elsewhere. Either way it
    can be reset (a cold cache, no arrivals), switched to answering at once (`quick`), and
    asked when each (agent, phase) request arrived."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.latency_s = args.latency
        self.coordinator_model = args.coordinator_model
        self.local: tuple[FakeAnthropic, Agents] | None = None
        self.child: subprocess.Popen[str] | None = None
        if args.in_process_fake:
            self.local = start_fake(args)
            self.base_url = self.local[0].base_url
            return
        cmd = [sys.executable, __file__, "--serve-fake", "--latency", str(args.latency)]
        cmd += ["--coordinator-model", args.coordinator_model] + (["--close"] if args.close else [])
        self.child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.base_url = self._ask("url")

    def _ask(self, command: str) -> str:
        assert self.child is not None and self.child.stdin and self.child.stdout
        self.child.stdin.write(command + "\n")
        self.child.stdin.flush()
        return self.child.stdout.readline().strip()

    def reset(self) -> None:
        if self.local is not None:
            self.local[0].cache.ready.clear()
            self.local[1].arrived.clear()
        else:
            self._ask("reset")

    def quick(self, on: bool) -> None:
        if self.local is not None:
            fake, agents = self.local
            fake.responder = (lambda body: message("ok")) if on else agents
        else:
            self._ask("quick" if on else "scripted")

    def arrivals(self) -> dict[tuple[str, str], float]:
        if self.local is not None:
            return dict(self.local[1].arrived)
        return {(a, p): t for a, p, t in json.loads(self._ask("arrivals"))}

    def stop(self) -> None:
        if self.local is not None:
            self.local[0].stop()
        elif self.child is not None:
            self._ask("stop")
            self.child.wait(timeout=10)


def serve_fake(args: argparse.Namespace) -> None:
    """The child's side of `Fake`: the fake API, driven by commands on stdin."""
    fake, agents = start_fake(args)
    for line in sys.stdin:
        command = line.strip()
        answer = "ok"
        if command == "url":
            answer = fake.base_url
        elif command == "reset":
            fake.cache.ready.clear()
            agents.arrived.clear()
        elif command in ("quick", "scripted"):
            fake.responder = (lambda body: message("ok")) if command == "quick" else agents
        elif command == "arrivals":
            answer = json.dumps([[a, p, t] for (a, p), t in agents.arrived.items()])
        print(answer, flush=True)
        if command == "stop":
            break
    fake.stop()


# -- the reference: plain asyncio ----------------------------------------------------------
async def reference(client: anthropic.AsyncAnthropic, task: str, agents: Fake) -> dict[str, Any]:
    """The same three phases with nothing around them: the same prompts' shape (a cached
    task block first, then the agent's role), the same fake. Each phase's span is timed
    like a swarm's batch."""

    async def call(agent: str, phase: str, prompt: str) -> tuple[str, tuple[float, ...]]:
        system = [
            {
                "type": "text",
                "text": f"<task>\n{task}\n</task>",
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "text", "text": f"You are {agent}, one of 9 agents. Your role: {phase}"},
        ]
        t = time.time()
        msg = await client.messages.create(
            model=MODEL,
            max_tokens=1024,
            system=system,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": prompt}],
        )
        text = "".join(b.text for b in msg.content if b.type == "text")
        return text, (t, agent, phase, time.time())

    gc.collect()
    t0, w0 = time.perf_counter(), time.time()
    plan, planned = await call("coordinator", "plan", "Decompose the task into subtasks")
    work = await asyncio.gather(
        *(
            call(st["agent"], "work", f"Your subtask from the coordinator:\n{st['task']}")
            for st in json.loads(plan)["subtasks"]
        )
    )
    results = "\n".join(w[0] for w in work)
    _, synthesised = await call("coordinator", "synthesis", f"Synthesise them:\n{results}")
    wall, w1 = time.perf_counter() - t0, time.time()
    arrived = agents.arrivals()
    batches = [
        [(c[0], arrived[c[1], c[2]], c[3]) for c in b]
        for b in ([planned], [w[1] for w in work], [synthesised])
    ]
    return {"wall_s": wall, "where": split_batches(batches, w0, w1, agents.latency_s)}


# -- tutti ---------------------------------------------------------------------------------
async def tutti_swarm(
    client: anthropic.AsyncAnthropic,
    variant: str,
    task: str,
    tmpdir: str,
    agents: Fake,
    profiler: Any = None,
) -> dict[str, Any]:
    store = await open_store(variant, tmpdir)
    try:
        models = ModelTable()
        engine = Engine(
            store,
            {ExecutorKind.PROMPT: PromptExecutor(client, models)},
            EngineConfig(models=models),
        )
        prepared = await engine.create(spec(agents.coordinator_model), {"task": task})
        gc.collect()
        if profiler is not None:
            profiler.enable()
        t0, w0 = time.perf_counter(), time.time()  # time.time: the engine's clock
        run = await engine.execute(prepared)
        wall, w1 = time.perf_counter() - t0, time.time()
        if profiler is not None:
            profiler.disable()
    finally:
        await close_store(store)
    if run.status.value != "succeeded":
        raise RuntimeError(f"the swarm on {variant} ended {run.status.value}: {run.error}")
    out = run.steps["swarm"].output
    turns = [r for r in run.steps.values() if r.parent == "swarm"]
    usage = {k: sum(int((r.usage or {}).get(k) or 0) for r in turns) for k in USAGE_KEYS}
    from_agents = {k: sum(int(a.get(k) or 0) for a in out["agents"].values()) for k in USAGE_KEYS}
    return {
        "wall_s": wall,
        "where": where_time_goes(turns, agents, w0, w1),
        "turns": len(turns),
        "figures": out["figures"],
        "usage": usage,
        "agents_usage": from_agents,
        "cost_usd": sum(float(a["cost_usd"]) for a in out["agents"].values()),
    }


def where_time_goes(turns: list[Any], agents: Fake, start: float, end: float) -> dict[str, float]:
    batches: dict[int, list[tuple[float, ...]]] = {}
    arrivals = agents.arrivals()
    for r in turns:
        scope = r.scope or {}
        arrived = arrivals[scope["agent"], scope["phase"]]
        batches.setdefault(scope.get("batch", 0), []).append((r.started_at, arrived, r.finished_at))
    return split_batches(list(batches.values()), start, end, agents.latency_s)


def cache_share(usage: dict[str, int]) -> float:
    total = sum(usage.get(k, 0) for k in USAGE_KEYS)
    return usage.get("cache_read_input_tokens", 0) / total if total else 0.0


async def one_request_ms(client: anthropic.AsyncAnthropic, fake: Fake) -> float:
    """The fake's latency for one request with no scripted delay (median of 20)."""
    fake.quick(True)
    try:
        times = []
        for _ in range(22):
            t = time.perf_counter()
            await client.messages.create(
                model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "ping"}]
            )
            times.append(time.perf_counter() - t)
    finally:
        fake.quick(False)
    return statistics.median(times[2:]) * 1000


async def bench(args: argparse.Namespace, rec: Recorder, tmpdir: str) -> None:
    task = task_text(args.task_tokens)
    fake = agents = Fake(args)
    try:
        async with anthropic.AsyncAnthropic(
            api_key="bench", base_url=fake.base_url, max_retries=0
        ) as client:
            rec.add({"section": "fake", "one_request_ms": await one_request_ms(client, fake)})
            for variant in VARIANTS:  # warm-up: imports, compile caches, the SDK's pool
                await measure(client, variant, task, tmpdir, agents)
            for i in range(args.repeats):
                for variant in VARIANTS:
                    fake.reset()  # every run starts with a cold cache
                    m = await measure(client, variant, task, tmpdir, agents)
                    rec.add({"section": "run", "variant": variant, "repeat": i, **m})
    finally:
        fake.stop()


async def measure(
    client: anthropic.AsyncAnthropic, variant: str, task: str, tmpdir: str, agents: Fake
) -> dict[str, Any]:
    if variant == "ref":
        return await reference(client, task, agents)
    return await tutti_swarm(client, variant, task, tmpdir, agents)


def table(rec: Recorder, args: argparse.Namespace) -> str:
    ideal = PHASES * args.latency
    fake_ms = rec.get(section="fake")[0]["one_request_ms"]
    out = [
        f"SWARM: hierarchical, 1 coordinator ({args.coordinator_model}) + "
        f"{len(SPECIALISTS)} specialists ({MODEL}), "
        f"{args.latency * 1000:g} ms per turn on the fake API, a {args.task_tokens:,}-token "
        f"shared task; {args.repeats} repeats (median, min); ideal {ideal:g} s; target "
        f"<= {TARGET}",
        f"fake API, one request with no delay: {fake_ms:.2f} ms (median of 20)",
        f"{'variant':<8} {'wall/ideal':>10} {'min':>7} {'wall s':>7}"
        + "".join(f" {k.removesuffix('_s'):>6}" for k in WHERE)
        + f" {'swarm wall/crit':>15} "
        f"{'parallelism':>11} {'cache-read share':>16} {'turns':>5}",
    ]
    for variant in VARIANTS:
        rows = rec.get(section="run", variant=variant)
        ratios = [r["wall_s"] / ideal for r in rows]
        line = (
            f"{variant:<8} {statistics.median(ratios):>10.3f} {min(ratios):>7.3f} "
            f"{statistics.median(r['wall_s'] for r in rows):>7.3f}"
        )
        w = {k: statistics.median(r["where"][k] for r in rows) * 1000 for k in rows[0]["where"]}
        line += "".join(f" {w[k]:>6.1f}" for k in WHERE)
        if variant != "ref":
            figs = [r["figures"] for r in rows]
            line += (
                f" {statistics.median(f['wall_over_critical_path'] for f in figs):>15.3f}"
                f" {statistics.median(f['parallelism'] for f in figs):>11.2f}"
                f" {statistics.median(cache_share(r['usage']) for r in rows):>16.1%}"
                f" {rows[0]['turns']:>5}"
            )
        out.append(line)
    runs = rec.get(section="run", variant="mem")
    if runs:
        u, a = runs[0]["usage"], runs[0]["agents_usage"]
        out.append(
            "  tokens of one swarm (summed over its turns): uncached input "
            f"{u['input_tokens']:,}, cache writes {u['cache_creation_input_tokens']:,}, "
            f"cache reads {u['cache_read_input_tokens']:,}; the swarm output's `agents` "
            f"say {a['input_tokens']:,} / {a['cache_creation_input_tokens']:,} / "
            f"{a['cache_read_input_tokens']:,}"
        )
    out.append(
        "  lead_in / send / answer / gaps / tail: where the wall over 3 x latency goes, ms "
        "(medians; see split_batches)"
    )
    out.append(
        "  wall/ideal: engine.execute (ref: the whole script) / (3 x latency); swarm "
        "wall/crit: the swarm output's figures.wall_over_critical_path (first turn's start "
        "to last turn's end, over the longest turn of each batch summed)"
    )
    return "\n".join(out)


def profile(args: argparse.Namespace, variant: str) -> None:
    import cProfile
    import pstats

    async def go() -> None:
        task = task_text(args.task_tokens)
        fake = agents = Fake(args)
        try:
            async with anthropic.AsyncAnthropic(
                api_key="bench", base_url=fake.base_url, max_retries=0
            ) as client:
                with tempfile.TemporaryDirectory() as tmp:
                    for _ in range(2):
                        await tutti_swarm(client, variant, task, tmp, agents)
                    fake.reset()
                    prof = cProfile.Profile()
                    got = await tutti_swarm(client, variant, task, tmp, agents, prof)
        finally:
            fake.stop()
        print(f"wall {got['wall_s']:.3f} s ({got['wall_s'] / (PHASES * args.latency):.3f} x ideal)")
        for key in ("tottime", "cumulative"):
            print(f"\n==== swarm {variant}: top {args.top} by {key} ====")
            pstats.Stats(prof).sort_stats(key).print_stats(args.top)

    asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--latency", type=float, default=0.2, help="seconds per turn on the fake")
    ap.add_argument("--task-tokens", type=int, default=4000)
    ap.add_argument(
        "--coordinator-model",
        default=MODEL,
        help=f"the coordinator's model (the specialists': {MODEL}); another model has its "
        "own prompt cache, so the specialists' first call writes theirs",
    )
    ap.add_argument(
        "--close", action="store_true", help="the fake closes each connection (HTTP/1.0)"
    )
    ap.add_argument(
        "--in-process-fake",
        action="store_true",
        help="run the fake API in this process (its threads share the GIL with the engine)",
    )
    ap.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--profile", choices=("mem", "sqlite"), help="cProfile one swarm's execute")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    if args.serve_fake:
        serve_fake(args)
        return
    if args.profile:
        profile(args, args.profile)
        return
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out_dir = BENCH / "results" / f"{stamp}-swarm"
    rec = Recorder(out_dir / "raw.jsonl")
    rec.add({"section": "meta", "args": vars(args), "loadavg": os.getloadavg()[0]})
    with tempfile.TemporaryDirectory(prefix="tutti-swarm-") as tmp:
        asyncio.run(bench(args, rec, tmp))
    text = table(rec, args)
    print(text)
    (out_dir / "table.txt").write_text(text + "\n", encoding="utf-8")
    print(f"\nraw: {out_dir / 'raw.jsonl'}")


if __name__ == "__main__":
    main()
