"""Property tests: any sequence of memory commands leaves the store equal to a plain
dictionary model of files (which succeed, which fail, and the contents), and replaying the
revision history rebuilds that state, at every point in between too."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tutti_mcp.memory.files.paths import MemoryFileError
from tutti_mcp.memory.files.store import MemoryFiles

# few paths, mostly files at the top, so that commands often meet files made earlier
PATHS = st.sampled_from(
    [
        *["/memories/a", "/memories/a", "/memories/b", "/memories/b", "/memories/a/b"],
        *["/memories", "/memories/b/a", "/memories/c/a/b"],
    ]
)
TEXT = st.text(alphabet="xy\n", max_size=8)
SCOPES = st.sampled_from(["global", "global", "global", "project:/r"])

CREATE = st.fixed_dictionaries({"command": st.just("create"), "path": PATHS, "file_text": TEXT})
COMMANDS = st.one_of(
    st.fixed_dictionaries({"command": st.just("view"), "path": PATHS}),
    CREATE,
    CREATE,
    CREATE,
    st.fixed_dictionaries(
        {
            "command": st.just("str_replace"),
            "path": PATHS,
            "old_str": st.sampled_from(["", "x", "y", "xy", "\n"]),
            "new_str": TEXT,
        }
    ),
    st.fixed_dictionaries(
        {
            "command": st.just("insert"),
            "path": PATHS,
            "insert_line": st.integers(-1, 4),
            "insert_text": TEXT,
        }
    ),
    st.fixed_dictionaries({"command": st.just("delete"), "path": PATHS}),
    st.fixed_dictionaries({"command": st.just("rename"), "old_path": PATHS, "new_path": PATHS}),
    st.fixed_dictionaries({"command": st.just("restore"), "path": PATHS, "rev": st.integers(1, 4)}),
)


class Refused(Exception):
    pass


class Model:
    """Files as a dict from path to text, with the memory tool's rules spelled out plainly."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.revs: dict[str, list[str | None]] = {}  # every content a path has had

    def is_dir(self, p: str) -> bool:
        return p == "/memories" or any(f.startswith(p + "/") for f in self.files)

    def creatable(self, p: str) -> None:
        parts = p.split("/")
        if p == "/memories" or self.is_dir(p):
            raise Refused
        if any("/".join(parts[:i]) in self.files for i in range(3, len(parts))):
            raise Refused

    def set(self, p: str, text: str | None) -> None:
        if text is None:
            del self.files[p]
        else:
            self.files[p] = text
        self.revs.setdefault(p, []).append(text)

    def apply(self, c: dict[str, Any]) -> None:
        kind = c["command"]
        if kind == "rename":
            self.rename(c["old_path"], c["new_path"])
            return
        p: str = c["path"]  # every other command names one path
        if kind == "view":
            if p not in self.files and not self.is_dir(p):
                raise Refused
        elif kind == "create":
            if p in self.files:
                raise Refused
            self.creatable(p)
            self.set(p, c["file_text"])
        elif kind == "str_replace":
            text = self.files.get(p)
            if text is None or c["old_str"] == "" or text.count(c["old_str"]) != 1:
                raise Refused
            self.set(p, text.replace(c["old_str"], c["new_str"]))
        elif kind == "insert":
            text = self.files.get(p)
            if text is None:
                raise Refused
            lines = text.split("\n")
            if lines[-1] == "":
                lines.pop()
            if not 0 <= c["insert_line"] <= len(lines):
                raise Refused
            lines.insert(c["insert_line"], c["insert_text"].rstrip("\n"))
            new = "\n".join(lines)
            self.set(p, new if new.endswith("\n") else new + "\n")
        elif kind == "delete":
            gone = [f for f in self.files if f == p or f.startswith(p + "/")]
            if p == "/memories" or not gone:
                raise Refused
            for f in gone:
                self.set(f, None)
        elif kind == "restore":
            history = self.revs.get(p, [])
            if not 1 <= c["rev"] <= len(history) or history[c["rev"] - 1] is None:
                raise Refused
            if p not in self.files:
                self.creatable(p)
            self.set(p, history[c["rev"] - 1])

    def rename(self, old: str, new: str) -> None:
        moving = sorted(f for f in self.files if f == old or f.startswith(old + "/"))
        if old == "/memories" or new in self.files or self.is_dir(new) or not moving:
            raise Refused
        if new.startswith(old + "/"):
            raise Refused
        self.creatable(new)
        for f in moving:
            text = self.files[f]
            self.set(f, None)
            self.set(new + f[len(old) :], text)


def run(mem: MemoryFiles, c: dict[str, Any], scope: str) -> None:
    if c["command"] == "restore":
        mem.restore(c["path"], c["rev"], scope=scope)
    else:
        from tutti_mcp.memory.files.memory_tool import run_command

        run_command(mem, c, scope=scope)


def replay(mem: MemoryFiles, scope: str) -> dict[str, str]:
    state: dict[str, str] = {}
    rows = mem.conn.execute(
        "SELECT path, content FROM memory_revisions WHERE scope = ? ORDER BY id", (scope,)
    )
    for path, content in rows:
        if content is None:
            state.pop(path, None)
        else:
            state[path] = content
    return state


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(CREATE, SCOPES), min_size=1, max_size=6),
    st.lists(st.tuples(COMMANDS, SCOPES), min_size=10, max_size=40),
)
def test_any_command_sequence_matches_the_model_and_history_replays_to_it(
    creates: list[tuple[dict[str, Any], str]], steps: list[tuple[dict[str, Any], str]]
) -> None:
    mem = MemoryFiles.open(":memory:")
    models = {"global": Model(), "project:/r": Model()}
    for command, scope in creates + steps:
        model = models[scope]
        try:
            model.apply(command)
            expected_ok = True
        except Refused:
            expected_ok = False
        try:
            run(mem, command, scope)
            ok = True
        except MemoryFileError:
            ok = False
        assert ok == expected_ok, (command, scope, model.files)
        event(f"{command['command']} {'done' if ok else 'refused'}")
        for s, m in models.items():
            assert {f.path: mem.read(f.path, scope=s) for f in mem.files(scope=s)} == m.files
            assert replay(mem, s) == m.files
    mem.close()
