"""A real crash during a swarm's specialists' turns: `tutti run` is SIGKILLed once two of
four specialists have committed their turns (the other two are still waiting on the API),
and `tutti resume` finishes the swarm. The turns that had committed (the plan, two
specialists) are not asked again; the two that had not are; the synthesis runs once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.engine.swarm_support import Agents
from tests.fake_anthropic import FakeAnthropic, delay, estimated
from tests.test_durability import ROOT, cli_env, kill_when, tutti_cmd

SPECIALISTS = ("w1", "w2", "w3", "w4")
SPEC = {
    "type": "swarm",
    "topology": "hierarchical",
    "agents": {"coordinator": {"role": "plans"}, **{w: {"role": f"{w} work"} for w in SPECIALISTS}},
    "task": "Review the service",
    "defaults": {"model": "claude-sonnet-4-5", "thinking": "instant"},
}


def answer(hang: bool) -> Any:
    def respond(agent: str, phase: str, prompt: str) -> Any:
        if phase == "plan":
            return {"subtasks": [{"agent": w, "task": f"part {w}"} for w in SPECIALISTS]}
        if phase == "work":
            if hang and agent in ("w3", "w4"):  # still in flight when the process dies
                return delay(60, estimated(f"{agent} late", output_tokens=2))
            return f"{agent} result"
        return {"result": "synthesised", "conflicts": []}

    return respond


def committed(db: Path) -> set[str]:
    if not db.exists():
        return set()
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            return {r[0] for r in conn.execute("SELECT step_id FROM checkpoints")}
    except sqlite3.OperationalError:  # the schema is being created
        return set()


def env(fake: FakeAnthropic) -> dict[str, str]:
    return {**cli_env(), "ANTHROPIC_API_KEY": "test", "ANTHROPIC_BASE_URL": fake.base_url}


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_swarm_killed_during_its_specialists_resumes_asking_only_the_uncommitted_turns(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "swarm.json"
    spec.write_text(json.dumps(SPEC), encoding="utf-8")
    db = tmp_path / "swarm.db"
    log = tmp_path / "run.log"
    fake = FakeAnthropic().start()
    try:
        before = Agents(answer(hang=True))
        fake.responder = before
        want = {"swarm[w1:work#1]", "swarm[w2:work#2]"}
        kill_when(
            tutti_cmd(db, "run", str(spec), "--json"),
            log,
            lambda: want <= committed(db) and len(before.asked) >= 5,
            "two specialists committed, the other two asked",
            env=env(fake),
        )
        assert "swarm[w3:work#3]" not in committed(db)

        after = Agents(answer(hang=False))
        fake.responder = after
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            (run_id,) = conn.execute("SELECT id FROM runs").fetchone()
        resumed = subprocess.run(
            tutti_cmd(db, "resume", run_id, "--json"),
            cwd=ROOT,
            env=env(fake),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        fake.stop()
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["status"] == "succeeded"
    assert result["outputs"]["swarm"]["result"] == "synthesised"
    assert Counter(before.asked) == Counter(
        [("coordinator", "plan"), *((w, "work") for w in SPECIALISTS)]
    )
    assert Counter(after.asked) == Counter(
        [("w3", "work"), ("w4", "work"), ("coordinator", "synthesis")]
    )
