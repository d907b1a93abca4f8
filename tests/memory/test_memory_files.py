"""Memory files: the six commands of Anthropic's memory tool and each of their errors, path
rules, scopes, revisions, restore, prune and search, on an in-memory database.

The command texts are checked against the anthropic SDK's own reference implementation
(`BetaLocalFilesystemMemoryTool`, which writes real files): the same commands, sent to both,
give the same answers and the same errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from anthropic.lib.tools import ToolError
from anthropic.lib.tools._beta_builtin_memory_tool import (  # the SDK's reference, not exported
    BetaLocalFilesystemMemoryTool,
)

from tutti_mcp.memory.files.memory_tool import run_command
from tutti_mcp.memory.files.paths import (
    MAX_DEPTH,
    Limits,
    MemoryFileError,
    MemoryNotFound,
    MemoryPathError,
)
from tutti_mcp.memory.files.store import MemoryFiles, step_author


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def mem() -> MemoryFiles:
    store = MemoryFiles.open(":memory:")
    store.clock = Clock()
    return store


def seeded(mem: MemoryFiles) -> MemoryFiles:
    mem.create("/memories/notes.md", "alpha\nbeta\ngamma\n")
    mem.create("/memories/proj/tasks.md", "- ship it\n")
    mem.create("/memories/proj/deep/er/x.md", "x\n")
    mem.create("/memories/.hidden/secret.md", "s\n")
    return mem


# -- the same answers as the SDK's reference implementation -------------------------------

SESSION: list[dict[str, Any]] = [
    {"command": "create", "path": "/memories/notes.md", "file_text": "alpha\nbeta\ngamma\n"},
    {"command": "create", "path": "/memories/notes.md", "file_text": "again"},
    {"command": "view", "path": "/memories/notes.md"},
    {"command": "view", "path": "/memories/notes.md", "view_range": [2, -1]},
    {"command": "view", "path": "/memories/notes.md", "view_range": [1, 2]},
    {"command": "str_replace", "path": "/memories/notes.md", "old_str": "beta", "new_str": "BETA"},
    {"command": "str_replace", "path": "/memories/notes.md", "old_str": "delta", "new_str": "x"},
    {"command": "insert", "path": "/memories/notes.md", "insert_line": 0, "insert_text": "top\n"},
    {"command": "insert", "path": "/memories/notes.md", "insert_line": 4, "insert_text": "end"},
    {"command": "insert", "path": "/memories/notes.md", "insert_line": 9, "insert_text": "x"},
    {"command": "view", "path": "/memories/notes.md"},
    {"command": "view", "path": "/memories/missing.md"},
    {"command": "str_replace", "path": "/memories/missing.md", "old_str": "a", "new_str": "b"},
    {"command": "create", "path": "/memories/a/b/c.md", "file_text": "deep"},
    {"command": "rename", "old_path": "/memories/a", "new_path": "/memories/z"},
    {"command": "rename", "old_path": "/memories/notes.md", "new_path": "/memories/z/b/c.md"},
    {"command": "rename", "old_path": "/memories/nope.md", "new_path": "/memories/n.md"},
    {"command": "rename", "old_path": "/memories", "new_path": "/memories/x"},
    {"command": "view", "path": "/memories/z/b/c.md"},
    {"command": "delete", "path": "/memories/z"},
    {"command": "delete", "path": "/memories/z"},
    {"command": "delete", "path": "/memories"},
    {"command": "view", "path": "/memories/notes.md", "view_range": [3, 3]},
]


def answer(fn: Any) -> tuple[str, str]:
    try:
        return "ok", fn()
    except (ToolError, MemoryFileError) as exc:
        return "error", str(exc)


def test_every_command_answers_as_the_sdk_reference_implementation_does(tmp_path: Path) -> None:
    reference = BetaLocalFilesystemMemoryTool(str(tmp_path))
    mem = MemoryFiles.open(":memory:")
    for command in SESSION:
        theirs = answer(lambda c=command: reference.call(c))
        ours = answer(lambda c=command: run_command(mem, c))
        assert ours == theirs, command


def test_a_directory_view_lists_two_levels_in_name_order_without_hidden_items(
    mem: MemoryFiles,
) -> None:
    seeded(mem)
    mem.create("/memories/proj-b.md", "b")
    listing = mem.view("/memories").splitlines()
    assert listing[0] == (
        "Here're the files and directories up to 2 levels deep in /memories, excluding hidden items:"
    )
    assert [line.split("\t")[1] for line in listing[1:]] == [
        "/memories",
        "/memories/notes.md",
        "/memories/proj/",
        "/memories/proj/deep/",
        "/memories/proj/tasks.md",
        "/memories/proj-b.md",
    ]
    # sizes: files in bytes, directories the bytes of the files below them
    assert listing[2] == "17B\t/memories/notes.md"
    assert listing[3] == "12B\t/memories/proj/"


def test_viewing_a_subdirectory_and_an_empty_store(mem: MemoryFiles) -> None:
    assert mem.view("/memories").splitlines()[1:] == ["0B\t/memories"]
    seeded(mem)
    lines = mem.view("/memories/proj/").splitlines()
    assert [line.split("\t")[1] for line in lines[1:]] == [
        "/memories/proj",
        "/memories/proj/deep/",
        "/memories/proj/deep/er/",
        "/memories/proj/tasks.md",
    ]


# -- errors each command gives --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("notes.md", "Path must start with /memories, got: 'notes.md' (e.g. /memories/notes.md)"),
        ("memories/a.md", "(e.g. /memories/a.md)"),
        ("/etc/passwd", "Path must start with /memories, got: /etc/passwd"),
        ("/memoriesx/a", "Path must start with /memories, got: /memoriesx/a"),
        ("/memories/../etc/passwd", "would escape /memories directory"),
        ("/memories/a/../../b", "would escape /memories directory"),
        ("/memories/./a", "has a '.' segment"),
        ("/memories/a\nb", "contains control characters ('\\n')"),
        ("/memories/a\x00", "contains control characters ('\\x00')"),
        ("/memories/" + "a" * 256, "longer than 255 bytes"),
        ("/memories/" + "/".join(["d"] * (MAX_DEPTH + 1)), "levels deep"),
        ("/memories/" + "ab/" * 400, "bytes; at most 1024"),
    ],
)
def test_bad_paths_are_refused_with_the_reason(mem: MemoryFiles, path: str, message: str) -> None:
    commands: list[Callable[[], object]] = [
        lambda: mem.view(path),
        lambda: mem.create(path, "x"),
        lambda: mem.delete(path),
        lambda: mem.rename("/memories/ok.md", path),
    ]
    for command in commands:
        with pytest.raises(MemoryPathError, match=None) as err:
            command()
        assert message in str(err.value)


def test_paths_are_normalised_like_posix_paths(mem: MemoryFiles) -> None:
    mem.create("/memories//a///b.md", "x")
    assert mem.read("/memories/a/b.md") == "x"
    assert mem.view("/memories/a/").splitlines()[1] == "1B\t/memories/a"


def test_str_replace_says_how_often_the_text_occurs(mem: MemoryFiles) -> None:
    mem.create("/memories/n.md", "a x\nb x x\nc\n")
    with pytest.raises(MemoryFileError) as err:
        mem.str_replace("/memories/n.md", "x", "y")
    assert "Multiple occurrences of old_str `x` (3 times) in lines: 1, 2" in str(err.value)
    with pytest.raises(MemoryFileError, match="`old_str` is empty"):
        mem.str_replace("/memories/n.md", "", "y")
    assert mem.read("/memories/n.md") == "a x\nb x x\nc\n"


def test_files_and_directories_do_not_collide(mem: MemoryFiles) -> None:
    seeded(mem)
    with pytest.raises(
        MemoryFileError, match=re.escape("/memories/notes.md is a file, not a directory")
    ):
        mem.create("/memories/notes.md/inner.md", "x")
    with pytest.raises(MemoryFileError, match="The path /memories/proj is a directory"):
        mem.create("/memories/proj", "x")
    with pytest.raises(MemoryFileError, match=re.escape("The path /memories/proj is not a file.")):
        mem.str_replace("/memories/proj", "a", "b")
    with pytest.raises(MemoryFileError, match=re.escape("The path /memories/proj is not a file.")):
        mem.insert("/memories/proj", 0, "a")
    with pytest.raises(MemoryFileError, match="The destination /memories/proj already exists"):
        mem.rename("/memories/notes.md", "/memories/proj")
    with pytest.raises(MemoryPathError, match="Cannot move /memories/proj into itself"):
        mem.rename("/memories/proj", "/memories/proj/sub")
    with pytest.raises(MemoryPathError, match="give a file path like"):
        mem.create("/memories", "x")
    with pytest.raises(MemoryFileError, match="is a directory; view it"):
        mem.read("/memories/proj")


def test_sizes_and_line_counts_are_bounded(mem: MemoryFiles) -> None:
    small = MemoryFiles(mem.conn, limits=Limits(max_file_bytes=10))
    with pytest.raises(MemoryFileError, match="would be 11 bytes; a memory file holds at most 10"):
        small.create("/memories/a.md", "x" * 11)
    small.create("/memories/a.md", "x" * 10)
    with pytest.raises(MemoryFileError, match="would be 11 bytes"):
        small.insert("/memories/a.md", 1, "")
    assert small.read("/memories/a.md") == "x" * 10


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ({"command": "launch"}, "unknown command 'launch': use one of view, create"),
        ({"command": "view"}, "`view` needs `path`"),
        ({"command": "create", "path": "/memories/a"}, "`create` needs `file_text`"),
        ({"command": "insert", "path": "/memories/a", "insert_text": "x"}, "needs `insert_line`"),
        (
            {"command": "insert", "path": "/memories/a", "insert_line": "2", "insert_text": "x"},
            "`insert_line` must be a line number",
        ),
        ({"command": "rename", "old_path": "/memories/a"}, "`rename` needs `new_path`"),
        (
            {"command": "str_replace", "path": "/memories/a", "old_str": "x"},
            '`str_replace` needs `new_str` (the replacement text ("" deletes old_str))',
        ),
        ({"command": "view", "path": "/memories/a", "view_range": [1]}, "two line numbers"),
        ({"command": "view", "path": 3}, "`path` must be a path like"),
    ],
)
def test_malformed_tool_input_names_the_field(
    mem: MemoryFiles, command: dict[str, Any], message: str
) -> None:
    with pytest.raises(MemoryFileError) as err:
        run_command(mem, command)
    assert message in str(err.value)


def test_view_range_outside_the_file_is_an_error(mem: MemoryFiles) -> None:
    mem.create("/memories/n.md", "a\nb")
    with pytest.raises(
        MemoryFileError, match=r"first element should be within the file's lines \[1, 2\]"
    ):
        mem.view("/memories/n.md", [3, -1])
    with pytest.raises(MemoryFileError, match=r"second element should be -1 or within \[2, 2\]"):
        mem.view("/memories/n.md", [2, 1])


# -- scopes -----------------------------------------------------------------------------------


def test_scopes_keep_separate_trees(mem: MemoryFiles) -> None:
    mem.create("/memories/n.md", "global")
    mem.create("/memories/n.md", "project", scope="project:/home/me/repo")
    mem.create("/memories/n.md", "workflow", scope="workflow:release")
    assert mem.read("/memories/n.md") == "global"
    assert mem.read("/memories/n.md", scope="project:/home/me/repo") == "project"
    assert mem.scopes() == {"global": 1, "project:/home/me/repo": 1, "workflow:release": 1}
    with pytest.raises(MemoryNotFound):
        mem.read("/memories/n.md", scope="project:/elsewhere")


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("team:x", "unknown scope 'team:x': use global, project:<key>"),
        ("project", "unknown scope 'project'"),
        ("project:", "needs a key after the colon"),
        ("workflow:a\tb", "must be printable text"),
    ],
)
def test_bad_scopes_say_which_forms_exist(mem: MemoryFiles, scope: str, message: str) -> None:
    with pytest.raises(MemoryFileError) as err:
        mem.create("/memories/a.md", "x", scope=scope)
    assert message in str(err.value)


# -- revisions, restore, prune --------------------------------------------------------------


def test_every_change_is_a_revision_with_its_author(mem: MemoryFiles) -> None:
    mem.create("/memories/n.md", "one\n")
    mem.str_replace("/memories/n.md", "one", "two", author=step_author("r1", "draft"))
    mem.insert("/memories/n.md", 1, "three")
    mem.rename("/memories/n.md", "/memories/m.md")
    mem.delete("/memories/m.md")
    revs = [(r.path, r.rev, r.op, r.author, r.size, r.detail) for r in mem.history("/memories")]
    assert revs == [
        ("/memories/m.md", 2, "delete", "client", None, None),
        ("/memories/m.md", 1, "rename", "client", 10, "/memories/n.md"),
        ("/memories/n.md", 4, "rename", "client", None, "/memories/m.md"),
        ("/memories/n.md", 3, "insert", "client", 10, None),
        ("/memories/n.md", 2, "str_replace", "run:r1/step:draft", 4, None),
        ("/memories/n.md", 1, "create", "client", 4, None),
    ]
    assert [r.rev for r in mem.history("/memories/n.md", limit=2)] == [4, 3]
    assert mem.revision("/memories/n.md", 2).content == "two\n"


def test_a_files_history_follows_it_back_through_its_renames(mem: MemoryFiles) -> None:
    mem.create("/memories/a.md", "one\n")
    mem.str_replace("/memories/a.md", "one", "two")
    mem.rename("/memories/a.md", "/memories/b.md")
    mem.insert("/memories/b.md", 1, "three")
    mem.rename("/memories/b.md", "/memories/d/c.md")
    mem.str_replace("/memories/d/c.md", "three", "four")

    def shown(path: str, limit: int = 50) -> list[tuple[str, int, str, str | None]]:
        return [(r.path, r.rev, r.op, r.detail) for r in mem.history(path, limit=limit)]

    assert shown("/memories/d/c.md") == [
        ("/memories/d/c.md", 2, "str_replace", None),
        ("/memories/d/c.md", 1, "rename", "/memories/b.md"),
        ("/memories/b.md", 2, "insert", None),
        ("/memories/b.md", 1, "rename", "/memories/a.md"),
        ("/memories/a.md", 2, "str_replace", None),
        ("/memories/a.md", 1, "create", None),
    ]
    # a directory's history is what happened below it
    assert shown("/memories/d") == shown("/memories/d/c.md")[:2]
    assert shown("/memories/d/c.md", limit=4)[-1] == (
        "/memories/b.md",
        1,
        "rename",
        "/memories/a.md",
    )
    # an earlier name keeps what it had, up to the rename
    assert shown("/memories/b.md") == [
        ("/memories/b.md", 3, "rename", "/memories/d/c.md"),
        ("/memories/b.md", 2, "insert", None),
        ("/memories/b.md", 1, "rename", "/memories/a.md"),
        ("/memories/a.md", 2, "str_replace", None),
        ("/memories/a.md", 1, "create", None),
    ]
    assert mem.revision("/memories/a.md", 2).content == "two\n"


def test_a_rename_onto_a_name_used_before_does_not_take_that_files_history(
    mem: MemoryFiles,
) -> None:
    mem.create("/memories/x.md", "an old file")
    mem.delete("/memories/x.md")
    mem.create("/memories/y.md", "y")
    mem.rename("/memories/y.md", "/memories/x.md")
    assert [(r.path, r.rev, r.op) for r in mem.history("/memories/x.md")] == [
        ("/memories/x.md", 3, "rename"),
        ("/memories/y.md", 1, "create"),
    ]
    # and there and back again: one file all along
    mem.rename("/memories/x.md", "/memories/y.md")
    mem.rename("/memories/y.md", "/memories/x.md")
    assert [(r.path, r.rev, r.op) for r in mem.history("/memories/x.md")] == [
        ("/memories/x.md", 5, "rename"),
        ("/memories/y.md", 3, "rename"),
        ("/memories/x.md", 3, "rename"),
        ("/memories/y.md", 1, "create"),
    ]


def test_a_deleted_file_is_restored_and_the_restore_can_be_undone(mem: MemoryFiles) -> None:
    mem.create("/memories/n.md", "first")
    mem.str_replace("/memories/n.md", "first", "second")
    mem.delete("/memories/n.md")
    with pytest.raises(
        MemoryFileError, match=re.escape("revision 3 of /memories/n.md is a delete")
    ):
        mem.restore("/memories/n.md", 3)
    assert mem.restore("/memories/n.md", 1) == "Restored /memories/n.md to revision 1"
    assert mem.read("/memories/n.md") == "first"
    mem.restore("/memories/n.md", 2)
    assert mem.read("/memories/n.md") == "second"
    assert [r.op for r in mem.history("/memories/n.md")][:2] == ["restore", "restore"]
    with pytest.raises(MemoryFileError, match="has no revision 9 in scope global"):
        mem.restore("/memories/n.md", 9)


def test_prune_forgets_old_revisions_but_keeps_every_live_file(mem: MemoryFiles) -> None:
    mem.create("/memories/live.md", "v1")
    mem.str_replace("/memories/live.md", "v1", "v2")
    mem.create("/memories/gone.md", "x")
    mem.delete("/memories/gone.md")
    mem.clock.now += 1000  # type: ignore[attr-defined]
    mem.create("/memories/new.md", "fresh")
    assert mem.prune(older_than_s=500) == 3  # live v1, gone's create and delete
    assert [(r.path, r.rev) for r in mem.history("/memories")] == [
        ("/memories/new.md", 1),
        ("/memories/live.md", 2),
    ]
    assert mem.read("/memories/live.md") == "v2"
    with pytest.raises(MemoryFileError, match="has no revision 1"):
        mem.restore("/memories/gone.md", 1)


def test_put_creates_overwrites_and_skips_unchanged(mem: MemoryFiles) -> None:
    assert mem.put("/memories/a.md", "x") is True
    assert mem.put("/memories/a.md", "x") is False
    assert mem.put("/memories/a.md", "y", author="cli:import") is True
    assert [(r.op, r.author) for r in mem.history("/memories/a.md")] == [
        ("import", "cli:import"),
        ("import", "client"),
    ]


# -- search ---------------------------------------------------------------------------------


def test_search_ranks_matches_and_marks_them_in_a_snippet(mem: MemoryFiles) -> None:
    mem.create("/memories/deploy.md", "How we deploy: run the deploy script, then deploy docs.")
    mem.create("/memories/misc.md", "Lunch notes. Someone mentioned deploying once.")
    mem.create("/memories/other.md", "Nothing relevant here.")
    hits = mem.search("deploy")
    assert [h.path for h in hits] == ["/memories/deploy.md", "/memories/misc.md"]
    assert "**deploy**" in hits[0].snippet
    assert hits[0].score > hits[1].score > 0


def test_search_wants_every_word_then_falls_back_to_any(mem: MemoryFiles) -> None:
    mem.create("/memories/a.md", "red apples and green pears")
    mem.create("/memories/b.md", "green tea")
    assert [h.path for h in mem.search("green apples")] == ["/memories/a.md"]
    assert {h.path for h in mem.search("green bananas")} == {"/memories/a.md", "/memories/b.md"}
    assert [h.path for h in mem.search('"green tea"')] == ["/memories/b.md"]
    assert mem.search('"tea green"') == []


def test_search_filters_by_prefix_and_scope(mem: MemoryFiles) -> None:
    mem.create("/memories/proj/a.md", "token")
    mem.create("/memories/other/b.md", "token")
    mem.create("/memories/proj/c.md", "token", scope="project:/r")
    assert [h.path for h in mem.search("token", prefix="/memories/proj", scopes=["global"])] == [
        "/memories/proj/a.md"
    ]
    assert [(h.scope, h.path) for h in mem.search("token", scopes=["project:/r"])] == [
        ("project:/r", "/memories/proj/c.md")
    ]
    assert len(mem.search("token")) == 3


def test_search_treats_query_syntax_as_text_and_follows_edits(mem: MemoryFiles) -> None:
    mem.create("/memories/a.md", "NEAR the AND gate")
    assert [h.path for h in mem.search("AND NEAR*")] == ["/memories/a.md"]
    with pytest.raises(MemoryFileError, match="the search query has no words"):
        mem.search("  *** ")
    mem.str_replace("/memories/a.md", "gate", "door")
    assert mem.search("gate") == []
    assert [h.path for h in mem.search("door")] == ["/memories/a.md"]
    mem.rename("/memories/a.md", "/memories/b.md")
    assert [h.path for h in mem.search("door")] == ["/memories/b.md"]
    mem.delete("/memories/b.md")
    assert mem.search("door") == []


def test_paths_are_searchable_too(mem: MemoryFiles) -> None:
    mem.create("/memories/kubernetes/notes.md", "short")
    assert [h.path for h in mem.search("kubernetes")] == ["/memories/kubernetes/notes.md"]
