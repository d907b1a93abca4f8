"""Spec authoring from the command line (issue 13, item 7): `tutti schema` prints or writes
the JSON Schema of specs for editors, and what the README shows of an invalid spec's errors
is what `tutti plan` prints."""

from __future__ import annotations

import json
import re
from pathlib import Path

import anyio
import pytest
import yaml

from tests.server.mcp_support import connect, fail
from tests.server.test_cli_startup import loaded, modules_after
from tutti_mcp.engine.spec_schema import SCHEMA_PATH, schema_text
from tutti_mcp.server.cli import EXIT_OK, EXIT_USAGE, main

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


@pytest.mark.anyio
async def test_workflow_plan_lists_the_same_problems_for_the_readmes_invalid_spec() -> None:
    spec, shown = readme_blocks_after("`tutti plan bad.yaml` prints:", 2)
    with anyio.fail_after(20):
        async with connect("auto") as client:
            text = await fail(client, "workflow_plan", spec=yaml.safe_load(spec))
    assert text == (
        shown.replace("error: ", "Error executing tool workflow_plan: ", 1)
        + "Fix the named fields and call again (workflow_plan checks a spec without running it)."
    )


def test_schema_prints_the_json_schema_of_the_spec_format_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--db", str(tmp_path / "t.db"), "schema"])
    captured = capsys.readouterr()
    assert (code, captured.out, captured.err) == (EXIT_OK, schema_text(), "")
    assert json.loads(captured.out)["title"] == "tutti workflow spec"
    assert not (tmp_path / "t.db").exists()  # the schema needs no database


def test_schema_output_writes_the_file_and_says_how_a_yaml_spec_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "tutti-spec.schema.json"
    target.write_text("old", encoding="utf-8")
    code = main(["schema", "--output", str(target)])
    captured = capsys.readouterr()
    assert (code, captured.out) == (EXIT_OK, "")
    assert target.read_text(encoding="utf-8") == schema_text()
    assert f"# yaml-language-server: $schema={target.as_uri()}" in captured.err


def test_schema_output_to_a_missing_directory_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no" / "such" / "dir" / "s.json"
    code = main(["schema", "-o", str(target)])
    captured = capsys.readouterr()
    assert (code, captured.out) == (EXIT_USAGE, "")
    assert captured.err == (
        f"error: cannot write the schema to {target}: No such file or directory; give "
        "--output a file in a directory you can write to\n"
    )


def test_schema_loads_neither_an_sdk_nor_the_planner_nor_the_templates(
    tmp_path: Path,
) -> None:
    modules, out = modules_after(tmp_path, ["schema"])
    assert json.loads(out) == json.loads(schema_text())
    assert loaded(modules, ("mcp", "anthropic", "networkx", "jinja2", "rich")) == []


def test_the_readme_shows_the_modeline_with_the_shipped_schema_and_the_command() -> None:
    readme = README.read_text(encoding="utf-8")
    assert "# yaml-language-server: $schema=" in readme
    assert SCHEMA_PATH in readme and (ROOT / SCHEMA_PATH).is_file()
    assert "tutti schema --output" in readme
