"""The house rules of DESIGN.md's layout, checked on the source: no import circles between
our modules, and each package imports only the layers below it (memory nothing of ours,
the engine no MCP). Imports under `if TYPE_CHECKING:` and inside functions do not count:
they do not run at import time."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "memory", "tools", "server")
MAX_LINES = 450


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return "tutti_mcp." + ".".join(parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _top_level_imports(path: Path, modules: set[str]) -> set[str]:
    """Our modules that `path` imports when it is imported."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in tree.body:  # module level only: not in functions, not under TYPE_CHECKING
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {n for n in names if n in modules}
    return found


def _graph() -> nx.DiGraph:
    sources = _sources()
    modules = set(sources)
    g = nx.DiGraph()
    for name, path in sources.items():
        g.add_node(name)
        for dep in _top_level_imports(path, modules):
            if dep != name and not name.startswith(dep + "."):  # a package's own __init__
                g.add_edge(name, dep)
    return g


def test_our_modules_import_each_other_without_circles() -> None:
    cycles = list(nx.simple_cycles(_graph()))
    assert cycles == [], "import circles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles)


def test_each_package_imports_only_the_layers_below_it() -> None:
    allowed = {
        "memory": {"memory"},
        "engine": {"engine", "memory"},
        "tools": {"tools", "engine", "memory"},
        "server": {"server", "tools", "engine", "memory"},
    }
    wrong = [
        f"{a} imports {b}"
        for a, b in _graph().edges
        if b.split(".")[1] not in allowed[a.split(".")[1]]
    ]
    assert wrong == []


def test_the_engine_and_memory_never_import_mcp() -> None:
    offenders = []
    for name, path in _sources().items():
        if name.split(".")[1] not in ("engine", "memory"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mods = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{name}: {m}" for m in mods if m == "mcp" or m.startswith("mcp.")]
    assert offenders == []


def test_no_module_is_over_the_size_the_style_guide_allows() -> None:
    long = {
        name: n
        for name, path in _sources().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these modules (over {MAX_LINES} lines): {long}"


def test_the_checks_see_the_real_import_graph() -> None:
    """Guards the checks above against passing vacuously (a wrong root, a parser that
    finds nothing)."""
    g = _graph()
    assert g.number_of_nodes() > 80
    assert g.has_edge("tutti_mcp.engine.service", "tutti_mcp.engine.execution.runner")
    assert g.has_edge("tutti_mcp.tools.workflow", "tutti_mcp.engine.supervisor")
