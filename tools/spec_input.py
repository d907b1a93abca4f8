"""A spec as a tool receives it from a model: an object, JSON or YAML text, or the path of
a spec file, which must be inside the workspace. Errors never quote the spec's text."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tutti_mcp.engine.errors import Problem, SpecError
from tutti_mcp.engine.spec import WorkflowSpec, load_spec_file, load_spec_text, parse_spec
from tutti_mcp.engine.spec_source import DEFAULT_LIMITS, SpecLimits

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


_FILE_NAME = re.compile(r"[^\s:{}\[\],&*#?|<>=!%@`'\"]+\.[A-Za-z0-9]{1,5}")


def _names_a_file(text: str) -> bool:
    """Whether a spec string is a file path rather than spec text: one line that ends in a
    spec suffix, or has a path separator and no `key: value`, or is a file name (`notes.txt`).
    Such a string is never parsed as YAML: an unreadable path should say so."""
    if "\n" in text or text.startswith("{"):
        return False
    if text.lower().endswith(SPEC_SUFFIXES) or _FILE_NAME.fullmatch(text):
        return True
    return ("/" in text or "\\" in text) and ": " not in text and not text.endswith(":")


def spec_path(spec: Mapping[str, Any] | str) -> str | None:
    """The file path a spec names, when it is given as one (None: the spec itself)."""
    if not isinstance(spec, str):
        return None
    text = spec.strip()
    return text if _names_a_file(text) else None


def confined_spec_path(given: str, workspace: Path, name: str | None = None) -> Path:
    """The file a spec path names, resolved (`..` and symlinks) and inside the workspace
    (`name` says which directory that is, when not the server's own); otherwise a
    SpecError. Whether a file outside exists is not told."""
    root = workspace.resolve()
    name = name or f"TUTTI_WORKSPACE={root}"
    target = (root / Path(given).expanduser()).resolve()
    if not target.is_relative_to(root):
        raise SpecError(
            [
                Problem(
                    "spec",
                    f"the path {given!r} is outside the workspace ({name}): "
                    "pass the spec itself as an object, or move the file into the workspace",
                )
            ]
        )
    if not target.name.lower().endswith(SPEC_SUFFIXES):
        raise SpecError(
            [
                Problem(
                    "spec",
                    f"{given!r} is not a spec file: spec files end in .yaml, .yml or .json "
                    "(or pass the spec itself as an object)",
                )
            ]
        )
    if not target.exists():
        raise SpecError(
            [
                Problem(
                    "spec",
                    f"no spec file at {given!r} in the workspace {root}; pass the spec itself "
                    "as an object",
                )
            ]
        )
    return target


def load_spec(
    spec: Mapping[str, Any] | str,
    workspace: Path,
    limits: SpecLimits = DEFAULT_LIMITS,
    found: Path | None = None,
) -> WorkflowSpec:
    """A spec given as an object, as JSON/YAML text, or as the path of a spec file in the
    workspace (`found`: that file, already confined by tools/workspace.py). The caller is a
    model: paths are confined to the workspace, and errors never quote the spec's text."""
    if not isinstance(spec, str):
        return parse_spec(dict(spec), limits)
    text = spec.strip()
    if _names_a_file(text):
        path = found or confined_spec_path(text, workspace)
        return load_spec_file(path, limits, source=text, follow_symlinks=False)
    return load_spec_text(text, "spec", limits)
