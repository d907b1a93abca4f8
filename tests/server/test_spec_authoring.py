"""Spec authoring from the command line (issue 13, item 7): what the README shows of an
invalid spec's errors is what `tutti plan` prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tutti_mcp.server.cli import EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def readme_blocks_after(marker: str, count: int) -> list[str]:
    """The first `count` fenced blocks of the README that follow the line holding `marker`."""
    text = README.read_text(encoding="utf-8")
    start = text.index(marker)
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```$", text[start:], flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) >= count, f"README.md: fewer than {count} code blocks after {marker!r}"
    return blocks[:count]


def test_the_readmes_invalid_spec_example_prints_what_the_readme_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, shown = readme_blocks_after("`tutti plan bad.yaml` prints:", 2)
    (tmp_path / "bad.yaml").write_text(spec, encoding="utf-8")
    code = main(["--db", str(tmp_path / "t.db"), "plan", str(tmp_path / "bad.yaml")])
    captured = capsys.readouterr()
    assert (code, captured.out, captured.err) == (EXIT_USAGE, "", shown)
