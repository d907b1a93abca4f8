"""`tutti models`: every known model with capabilities, prices and their source, from the
shipped table, the Models API (the fake one) and its cache; `--table`, the README's table;
`tutti plan` shows what each API step sends."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fake_anthropic import FakeAnthropic
from tests.fake_models import FakeModel
from tutti_mcp.engine.models import ModelTable
from tutti_mcp.server.cli import main
from tutti_mcp.server.models_cli import thinking_table

ROOT = Path(__file__).resolve().parents[2]
Tutti = Callable[..., tuple[int, str]]


@pytest.fixture
def tutti(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Tutti:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "TUTTI_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TUTTI_DB", str(tmp_path / "models.db"))

    def call(*args: str) -> tuple[int, str]:
        code = main(list(args))
        return code, capsys.readouterr().out

    return call


def listing(tutti: Tutti) -> dict[str, dict[str, Any]]:
    code, out = tutti("models", "--json")
    assert code == 0
    return {m["id"]: m for m in json.loads(out)["models"]}


def test_models_lists_every_shipped_model_with_capabilities_prices_and_source(
    tutti: Tutti,
) -> None:
    models = listing(tutti)
    assert list(models) == ModelTable().known_ids()
    assert models["claude-sonnet-5-5"] == {
        "id": "claude-sonnet-5-5",
        "source": "table",
        "max_tokens": 64_000,
        "max_input_tokens": 200_000,
        "thinking_types": ["adaptive", "between_tools"],
        "efforts": ["low", "medium", "high", "xhigh", "max"],
        "structured_outputs": True,
        "prices_usd_per_mtok": {
            "input": 2.0,
            "output": 10.0,
            "cache_write_5m": 2.5,
            "cache_write_1h": 4.0,
            "cache_read": 0.2,
        },
        "aliases": ["sonnet"],
    }
    assert models["claude-haiku-5-5"]["prices_usd_per_mtok"] is None


def test_models_asks_the_models_api_with_a_key_and_remembers_the_answers(
    tutti: Tutti, fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_anthropic.models["claude-haiku-5-5"] = FakeModel(frozenset({"adaptive", "disabled"}))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    online = listing(tutti)
    assert {online[i]["source"] for i in fake_anthropic.models} == {"api"}
    assert online["claude-haiku-5-5"]["thinking_types"] == ["adaptive", "disabled"]
    assert online["claude-opus-4-0"]["source"] == "table"  # the fake does not list it

    monkeypatch.delenv("ANTHROPIC_API_KEY")
    offline = listing(tutti)
    assert offline["claude-haiku-5-5"]["source"] == "cache"
    assert offline["claude-haiku-5-5"]["thinking_types"] == ["adaptive", "disabled"]


def test_models_shows_overrides_as_their_source(
    tutti: Tutti, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "models.json"
    path.write_text(
        json.dumps({"models": {"claude-haiku-5-5": {"prices": {"input": 1, "output": 5}}}}),
        encoding="utf-8",
    )
    monkeypatch.setenv("TUTTI_MODELS", str(path))
    haiku = listing(tutti)["claude-haiku-5-5"]
    assert (haiku["source"], haiku["prices_usd_per_mtok"]["cache_read"]) == ("override", 0.1)


def test_the_readme_table_of_parameters_per_model_and_mode_is_the_generated_one(
    tutti: Tutti,
) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(
        r"<!-- models-table:start -->\n(.*?)\n<!-- models-table:end -->", readme, re.S
    )
    assert found is not None, "README.md lost its models-table markers"
    assert found[1] == thinking_table(ModelTable()), "run `tutti models --table` into README.md"
    assert tutti("models", "--table") == (0, found[1] + "\n")


def test_plan_shows_the_parameters_each_api_step_sends_and_why(
    tutti: Tutti, tmp_path: Path
) -> None:
    spec = tmp_path / "quick.yaml"
    spec.write_text(
        "steps:\n"
        "  - {id: quick, prompt: hi, thinking: instant}\n"
        "  - {id: tight, prompt: hi, model: haiku, thinking: extended, max_tokens: 2000}\n",
        encoding="utf-8",
    )
    code, out = tutti("plan", str(spec))
    assert code == 0
    assert (
        '    claude-sonnet-5-5: {"max_tokens": 4096, "thinking": {"type": "between_tools"}, '
        '"output_config": {"effort": "low"}}: thinking off: between_tools at effort low (the '
        "model does not accept disabled) [capabilities: table]\n"
    ) in out
    assert (
        '    claude-haiku-4-5: {"max_tokens": 2000, "thinking": {"type": "enabled", '
        '"budget_tokens": 1024}}: enabled, budget_tokens 1024, not 16000: max_tokens is 2000 '
        "(budget model: no adaptive thinking) [capabilities: table]\n"
    ) in out


def test_models_piped_prints_one_line_per_model_with_every_cell_whole(tutti: Tutti) -> None:
    """Not a terminal (here: captured), so no terminal width to fold the table to: each
    model is one line a reader or grep can use."""
    code, out = tutti("models")
    assert code == 0
    lines = out.splitlines()
    for model_id in ModelTable().known_ids():
        assert len([line for line in lines if f" {model_id} " in f" {line} "]) == 1, model_id
    sonnet = next(line for line in lines if "claude-sonnet-5-5 " in line).split()
    assert sonnet[:4] == ["claude-sonnet-5-5", "sonnet", "table", "adaptive,"]
    assert "2 / 10; cache write 2.5 (5m) 4 (1h), read 0.2" in " ".join(sonnet)
    header = next(line for line in lines if line.split()[:1] == ["model"])
    assert header.split() == [
        *("model", "aliases", "source", "thinking", "effort", "max", "out", "context", "prices")
    ]
