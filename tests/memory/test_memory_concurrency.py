"""Two processes writing the same memory file on one database lose no update: every command
is one BEGIN IMMEDIATE transaction, so read-modify-write commands serialise across
processes (the busy timeout waits for the other writer)."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

from tutti_mcp.memory.files.store import MemoryFiles

WRITER = r"""
import sys
from tutti_mcp.memory.files.store import MemoryFiles
from tutti_mcp.memory.files.paths import MemoryFileError

db, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
mem = MemoryFiles.open(db)
print("ready", flush=True)
sys.stdin.readline()  # the parent says go once both writers are ready
retries = 0
for i in range(n):
    mem.insert("/memories/log.md", 0, f"{name}-{i}", author=name)
    while True:  # a counter: read, then replace the exact value read
        # delimited: a stale "<1>" must not match inside "<12>" (str_replace finds substrings)
        text = mem.read("/memories/counter.md")
        try:
            new = f"<{int(text.strip('<>')) + 1}>"
            mem.str_replace("/memories/counter.md", text, new, author=name)
            break
        except MemoryFileError:
            retries += 1  # the other writer got there first: read again
print("done", retries, flush=True)
"""


def test_two_processes_writing_one_file_lose_no_update(tmp_path: Path) -> None:
    db = tmp_path / "tutti.db"
    setup = MemoryFiles.open(db)
    setup.create("/memories/log.md", "")
    setup.create("/memories/counter.md", "<0>")
    n = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), name, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("one", "two")
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), outs

    lines = setup.read("/memories/log.md").splitlines()
    assert sorted(lines) == sorted(f"{w}-{i}" for w in ("one", "two") for i in range(n))
    assert setup.read("/memories/counter.md") == f"<{2 * n}>"
    authors = [r.author for r in setup.history("/memories/log.md", limit=1000)]
    switches = sum(a != b for a, b in itertools.pairwise(authors))
    assert switches > 1, "the two writers never overlapped, so this test proved nothing"
    assert len(setup.history("/memories/counter.md", limit=1000)) == 2 * n + 1
