"""One root for every error tutti raises on purpose: whatever a caller catches as
`TuttiError` covers the engine's refusals and memory's alike, so no handler has to list
memory's errors beside it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import tutti_mcp
from tutti_mcp.engine import errors as engine_errors
from tutti_mcp.engine.errors import TuttiError
from tutti_mcp.memory import errors as memory_errors

# Exceptions allowed outside the root, each with why. Private classes here never leave the
# module that raises them: they are control flow, caught and turned into a TuttiError there.
OUTSIDE_THE_ROOT: dict[str, str] = {
    "tutti_mcp.engine.modes.swarm.controller._Pending": (
        "control flow inside the swarm's conductor: carries the turns a phase must add first; "
        "caught in Conductor.next, never leaves engine/modes/swarm/controller.py"
    ),
    "tutti_mcp.engine.spec_source._BadNumber": (
        "json.loads' number hooks raise it; _parse_json turns it into a SpecError"
    ),
    "tutti_mcp.engine.spec_source._TooDeep": (
        "must be a yaml ComposerError to unwind yaml's composer; turned into a SpecError"
    ),
    "tutti_mcp.engine.template_paths.Missing": (
        "control flow inside templating: a path that is not a plain lookup is rendered by "
        "jinja2 instead; never leaves engine/templating.py"
    ),
    "tutti_mcp.memory.group_apply._Located": (
        "control flow inside the group-commit writer: carries which caller's statement "
        "failed to apply_batch, which hands callers their own error; never leaves the module"
    ),
    "tutti_mcp.engine.spec_source._TooMany": (
        "must be a yaml ComposerError to unwind yaml's composer; turned into a SpecError"
    ),
}

# Importing __main__ runs the CLI.
NOT_IMPORTED = frozenset({"tutti_mcp.__main__"})


def _fail_to_import(name: str) -> None:
    raise AssertionError(f"cannot import {name}: the walk would miss its exceptions")


def every_module() -> list[ModuleType]:
    """Every module of the tutti_mcp package, imported; an import error fails the test
    instead of hiding the module's exceptions (walk_packages ignores it by default)."""
    names = [
        info.name
        for info in pkgutil.walk_packages(
            tutti_mcp.__path__, f"{tutti_mcp.__name__}.", onerror=_fail_to_import
        )
        if info.name not in NOT_IMPORTED
    ]
    return [importlib.import_module(name) for name in names]


def exceptions_defined_in(module: ModuleType) -> list[type[Exception]]:
    return [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == module.__name__
    ]


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_every_exception_tutti_defines_derives_from_tutti_error() -> None:
    defined = {qualified(c): c for m in every_module() for c in exceptions_defined_in(m)}
    # the walk reached every layer: some of each are known to exist
    for name in (
        "tutti_mcp.memory.errors.TuttiError",
        "tutti_mcp.memory.runs.store.RunNotFound",
        "tutti_mcp.memory.runs.history.HistoryWriteError",
        "tutti_mcp.memory.files.paths.MemoryNotFound",
        "tutti_mcp.engine.errors.SpecError",
        "tutti_mcp.engine.model_catalog.NotDescribed",
        "tutti_mcp.engine.thinking.ThinkingError",
    ):
        assert name in defined, f"the walk did not find {name}"
    outside = sorted(n for n, c in defined.items() if not issubclass(c, TuttiError))
    strays = [n for n in outside if n not in OUTSIDE_THE_ROOT]
    assert strays == [], (
        f"derive these from TuttiError (memory/errors.py), or allow-list them with a reason: {strays}"
    )
    # an entry whose class is gone or now under the root is stale: delete it
    assert sorted(OUTSIDE_THE_ROOT) == outside


def test_the_engine_re_exports_the_one_root_defined_in_memory() -> None:
    assert engine_errors.TuttiError is memory_errors.TuttiError
    assert "root of every error tutti raises on purpose" in (memory_errors.__doc__ or "")


def test_memory_errors_are_still_caught_as_the_builtin_they_stand_for() -> None:
    from tutti_mcp.engine.model_catalog import NotDescribed
    from tutti_mcp.memory.files.paths import MemoryFileError, MemoryNotFound
    from tutti_mcp.memory.runs.store import RunNotFound

    assert issubclass(RunNotFound, LookupError)
    assert issubclass(MemoryFileError, ValueError) and issubclass(MemoryNotFound, ValueError)
    assert issubclass(NotDescribed, ValueError)
