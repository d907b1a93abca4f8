"""The shape of server/ (issue 11): no import circle through a server module, no module
past about 400 lines, and every command the parser names is a function that exists. The
import graph is read from the source (imports inside functions count too: a circle closed
at run time is still a circle)."""

from __future__ import annotations

import argparse
import ast
from importlib import import_module
from pathlib import Path

from tutti_mcp.server.cli_parser import parser

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "memory", "tools", "server")
MAX_LINES = 400


def module_name(path: Path) -> str:
    name = "tutti_mcp." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def import_graph() -> dict[str, set[str]]:
    """Each tutti_mcp module and the tutti_mcp modules it imports."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            deps: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tutti_mcp"):
                    assert node.module is not None
                    deps.add(node.module)
                    deps.update(f"{node.module}.{a.name}" for a in node.names)
                elif isinstance(node, ast.Import):
                    deps.update(a.name for a in node.names if a.name.startswith("tutti_mcp"))
            graph[module_name(path)] = deps
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_runs_through_a_server_module() -> None:
    through_server = [
        c for c in circles(import_graph()) if any(m.startswith("tutti_mcp.server.") for m in c)
    ]
    assert through_server == []


def test_the_circle_finder_finds_a_circle_closed_inside_a_function() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


def test_no_server_module_is_longer_than_about_400_lines() -> None:
    lengths = {
        p.name: len(p.read_text(encoding="utf-8").splitlines())
        for p in (ROOT / "server").glob("*.py")
    }
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


def test_every_command_the_parser_names_is_a_function_that_exists() -> None:
    targets: dict[str, str] = {}
    for action in parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                targets[name] = sub.get_default("target")
    assert len(targets) == 13  # run ... memory, schema, approve, and worker
    for name, target in targets.items():
        module, _, function = target.partition(":")
        assert callable(getattr(import_module(module), function, None)), (name, target)
