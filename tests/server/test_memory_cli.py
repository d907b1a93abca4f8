"""`tutti memory ...`, driven in-process through `server.cli.main` (each test has its own
database in tmp_path; the user's database is never touched)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tutti_mcp.memory.files.paths import MAX_FILE_BYTES
from tutti_mcp.memory.files.store import MemoryFiles
from tutti_mcp.server.cli import EXIT_OK, EXIT_USAGE, main

Tutti = Callable[..., tuple[int, str, str]]
NOTE = "/memories/notes/today.md"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


@pytest.fixture
def tutti(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Tutti:
    """Run `tutti --db DB memory ARGS...`; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("TUTTI_DB", str(tmp_path / "not-this-one.db"))  # --db must win

    def call(*args: str) -> tuple[int, str, str]:
        code = main(["--db", str(db), "memory", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


@pytest.fixture
def store(db: Path) -> Iterator[MemoryFiles]:
    with closing(MemoryFiles.open(db)) as files:
        yield files


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_view_shows_a_file_a_range_and_a_directory(tutti: Tutti, store: MemoryFiles) -> None:
    store.create(NOTE, "alpha\nbeta [x]\n")
    code, whole, _ = tutti("view", NOTE)
    assert code == EXIT_OK
    assert (
        whole
        == f"Here's the content of {NOTE} with line numbers:\n     1\talpha\n     2\tbeta [x]\n     3\t\n"
    )
    code, part, _ = tutti("view", NOTE, "--range", "2", "2")
    assert part == f"Here's the content of {NOTE} with line numbers:\n     2\tbeta [x]\n"
    code, listing, _ = tutti("view", "/memories")
    assert listing.splitlines()[1:] == [
        "15B\t/memories",
        "15B\t/memories/notes/",
        "15B\t/memories/notes/today.md",
    ]


def test_search_filters_by_scope_and_prefix(tutti: Tutti, store: MemoryFiles) -> None:
    store.create("/memories/db/sqlite.md", "WAL mode for sqlite")
    store.create("/memories/misc.md", "sqlite everywhere")
    store.create("/memories/db/notes.md", "sqlite busy timeout", scope="project:/repo")
    code, everywhere, _ = tutti("search", "sqlite")
    assert code == EXIT_OK
    found = [line.split("\t")[:2] for line in everywhere.splitlines() if "\t" in line]
    assert sorted(found) == [
        ["global", "/memories/db/sqlite.md"],
        ["global", "/memories/misc.md"],
        ["project:/repo", "/memories/db/notes.md"],
    ]
    _, project, _ = tutti("search", "sqlite", "--scope", "project:/repo")
    assert project.splitlines()[1] == "    **sqlite** busy timeout"
    assert project.startswith("project:/repo\t/memories/db/notes.md\t")
    _, below, _ = tutti("search", "sqlite", "--prefix", "/memories/db", "--limit", "1")
    assert len(below.splitlines()) == 2 and "/memories/db/" in below
    code, nothing, said = tutti("search", "zebra")
    assert (code, nothing) == (EXIT_OK, "") and "fewer or other words" in said


def test_history_and_restore_bring_back_a_deleted_file(tutti: Tutti, store: MemoryFiles) -> None:
    store.create(NOTE, "one")
    store.str_replace(NOTE, "one", "two")
    store.delete(NOTE)
    code, listed, _ = tutti("history", NOTE)
    assert code == EXIT_OK
    rows = [line.split("\t") for line in listed.splitlines()]
    assert [(r[1], r[2], r[3], r[5]) for r in rows] == [
        ("rev 3", "delete", "client", "deleted"),
        ("rev 2", "str_replace", "client", "3B"),
        ("rev 1", "create", "client", "3B"),
    ]
    assert all(r[0] == NOTE and r[4].endswith("Z") for r in rows)
    code, said, _ = tutti("restore", NOTE, "1")
    assert (code, said) == (EXIT_OK, f"Restored {NOTE} to revision 1\n")
    assert store.read(NOTE) == "one"
    newest = store.history(NOTE, limit=1)[0]
    assert (newest.op, newest.author, newest.detail) == ("restore", "cli", "rev 1")
    code, _, said = tutti("restore", NOTE, "3")
    assert code == EXIT_USAGE and "left no content" in said


def test_prune_forgets_old_revisions_and_keeps_current_text(
    tutti: Tutti, store: MemoryFiles
) -> None:
    store.create(NOTE, "one")
    store.str_replace(NOTE, "one", "two")
    store.create("/memories/gone.md", "x")
    store.delete("/memories/gone.md")
    code, said, _ = tutti("prune", "--older-than-days", "1")
    assert (code, said) == (
        EXIT_OK,
        "forgot 0 revisions older than 1 days; every file's current text is kept\n",
    )
    code, said, _ = tutti("prune", "--older-than-days", "0")
    assert code == EXIT_OK and said.startswith("forgot 3 revisions")
    assert store.read(NOTE) == "two"
    assert [(r.path, r.rev) for r in store.history()] == [(NOTE, 2)]
    code, _, said = tutti("prune", "--older-than-days", "-1")
    assert code == EXIT_USAGE and "must be 0 or more" in said


def test_export_then_import_into_another_scope_gives_equal_files(
    tutti: Tutti, store: MemoryFiles, tmp_path: Path
) -> None:
    files = {
        "/memories/a.md": "# A\n\nline [one]\r\nline two\n",
        "/memories/deep/er/b.txt": "ünïcode ✓",
        "/memories/empty.md": "",
    }
    for path, text in files.items():
        store.create(path, text, scope="project:/src")
    out = tmp_path / "out"
    code, said, _ = tutti("export", str(out), "--scope", "project:/src")
    assert code == EXIT_OK
    assert said == f"exported 3 files (39 bytes) of scope project:/src to {out}\n"
    assert tree(out) == {
        "a.md": files["/memories/a.md"].encode(),
        "deep/er/b.txt": files["/memories/deep/er/b.txt"].encode(),
        "empty.md": b"",
    }
    code, said, _ = tutti("import", str(out), "--scope", "workflow:copy")
    assert (code, said) == (
        EXIT_OK,
        "3 created, 0 updated, 0 unchanged, 0 skipped (scope workflow:copy)\n",
    )
    copied = {
        f.path: store.read(f.path, scope="workflow:copy")
        for f in store.files(scope="workflow:copy")
    }
    assert copied == files
    assert {r.author for r in store.history(scope="workflow:copy")} == {"cli:import"}
    # again, after one file changed: one update, the rest unchanged
    (out / "a.md").write_text("changed", encoding="utf-8")
    code, said, _ = tutti("import", str(out), "--scope", "workflow:copy")
    assert said == "0 created, 1 updated, 2 unchanged, 0 skipped (scope workflow:copy)\n"
    assert store.read("/memories/a.md", scope="workflow:copy") == "changed"


def test_import_skips_binary_undecodable_oversized_and_hidden_files(
    tutti: Tutti, store: MemoryFiles, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / ".git").mkdir(parents=True)
    (src / ".git" / "HEAD").write_text("ref: main")
    (src / ".hidden.md").write_text("secret")
    (src / "ok.md").write_text("fine")
    (src / "blob.bin").write_bytes(b"\x89PNG\r\n\x00\x00")
    (src / "latin1.txt").write_bytes("café".encode("latin-1"))
    (src / "huge.md").write_text("x" * (MAX_FILE_BYTES + 1))
    (src / "link.md").symlink_to(src / "ok.md")
    code, said, warned = tutti("import", str(src))
    assert code == EXIT_OK
    assert said == "1 created, 0 updated, 0 unchanged, 4 skipped (scope global)\n"
    assert [f.path for f in store.files()] == ["/memories/ok.md"]
    warnings = sorted(warned.splitlines())
    assert warnings == [
        "skipped blob.bin: binary",
        "skipped huge.md: 1,000,001 bytes; a memory file holds at most 1,000,000",
        "skipped latin1.txt: not UTF-8 text",
        "skipped link.md: not a regular file",
    ]


def test_errors_exit_with_2_and_say_why(tutti: Tutti, store: MemoryFiles, tmp_path: Path) -> None:
    store.create(NOTE, "one\n")
    cases = {
        ("view", "notes.md"): "Path must start with /memories",
        ("view", "/memories/nope.md"): "/memories/nope.md does not exist",
        ("view", NOTE, "--range", "0", "1"): "Invalid `view_range`: [0, 1]",
        ("view", NOTE, "--scope", "team"): "unknown scope 'team'",
        ("history", "/memories/../etc"): "would escape /memories",
        ("restore", NOTE, "9"): "has no revision 9",
        ("import", str(tmp_path / "missing")): "is not a directory",
    }
    for args, message in cases.items():
        code, out, said = tutti(*args)
        assert code == EXIT_USAGE, (args, code, out, said)
        assert said.startswith("error: ") and message in said, (args, said)


def test_memory_commands_use_tutti_db(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "env.db"
    monkeypatch.setenv("TUTTI_DB", str(db))
    with closing(MemoryFiles.open(db)) as files:
        files.create(NOTE, "from the environment's database")
    assert main(["memory", "view", NOTE]) == EXIT_OK
    assert capsys.readouterr().out.endswith("1\tfrom the environment's database\n")
