"""The model table: aliases, and per model id the facts of three layers, the highest
winning: TUTTI_MODELS overrides, then what the Models API reported (learned at run time by
engine/model_catalog.py, or from its cache), then the shipped table
(engine/model_table.py). Prices come from the shipped table or the overrides only: the
API reports none.

Dated ids (`claude-haiku-4-5-20251001`, `...-latest`) take the facts of their family. An id
nobody knows is guessed as adaptive-thinking only, without a price (cost then reads as
unknown rather than a made-up number, and a cost budget refuses it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tutti_mcp.engine.errors import ConfigurationError
from tutti_mcp.engine.model_info import (
    Effort,
    ModelInfo,
    Prices,
    Source,
    ThinkingType,
)
from tutti_mcp.engine.model_table import ALIASES, DEFAULT_MODEL, SHIPPED

__all__ = [
    "DEFAULT_MODEL",
    "Effort",
    "ModelInfo",
    "ModelTable",
    "Prices",
    "Source",
    "ThinkingType",
]

_DATED = re.compile(r"^(?P<family>.+?)-(?:\d{8}|latest)$")

# TUTTI_MODELS fields of one model. The legacy ones (`thinking` as a style,
# `can_disable_thinking`, `*_usd_per_mtok`, `max_output_tokens`) keep working.
_PRICE_FIELDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
_LEGACY_PRICES = {"input_usd_per_mtok": "input", "output_usd_per_mtok": "output"}
_STYLES = {
    "budget": frozenset({ThinkingType.ENABLED}),
    "adaptive": frozenset({ThinkingType.ADAPTIVE}),
    "both": frozenset({ThinkingType.ADAPTIVE, ThinkingType.ENABLED}),
}
OVERRIDE_FIELDS = (
    "max_tokens",
    "max_input_tokens",
    "thinking_types",
    "efforts",
    "structured_outputs",
    "prices",
    # legacy
    "thinking",
    "can_disable_thinking",
    "max_output_tokens",
    *_LEGACY_PRICES,
)


@dataclass(frozen=True)
class Override:
    """One model's TUTTI_MODELS entry, validated, applied on top of whatever layer is below."""

    fields: Mapping[str, Any]  # ModelInfo fields to replace
    prices: Mapping[str, float]  # price fields to replace (the rest derived or kept)
    can_disable: bool | None = None  # legacy: add or remove `disabled`

    def apply(self, base: ModelInfo) -> ModelInfo:
        info = replace(base, **self.fields, source=Source.OVERRIDE)
        if self.can_disable is not None:
            types = set(info.thinking_types)
            (types.add if self.can_disable else types.discard)(ThinkingType.DISABLED)
            info = replace(info, thinking_types=frozenset(types))
        if self.prices:
            info = replace(info, prices=_merge_prices(info.id, info.prices, self.prices))
        return info


def _merge_prices(model_id: str, base: Prices | None, given: Mapping[str, float]) -> Prices:
    known: dict[str, float] = {} if base is None else dict(base.as_dict())
    if "input" in given:  # cache prices follow a new input price unless given too
        for key in ("cache_write_5m", "cache_write_1h", "cache_read"):
            known.pop(key, None)
    known.update(given)
    if "input" not in known or "output" not in known:
        raise ConfigurationError(
            f"model override for {model_id!r}: prices need both `input` and `output` (USD per "
            "million tokens); this model has no price to complete them from"
        )
    return Prices.of(
        known["input"],
        known["output"],
        cache_write_5m=known.get("cache_write_5m"),
        cache_write_1h=known.get("cache_write_1h"),
        cache_read=known.get("cache_read"),
    )


def _enum_set(model_id: str, key: str, values: Any, kind: type[ThinkingType] | type[Effort]) -> Any:
    if not isinstance(values, list):
        raise ConfigurationError(f"model override for {model_id!r}: `{key}` must be a list")
    try:
        return frozenset(kind(v) for v in values)
    except ValueError:
        allowed = ", ".join(k.value for k in kind)
        raise ConfigurationError(
            f"model override for {model_id!r}: `{key}` takes {allowed}; got {values!r}"
        ) from None


def parse_override(model_id: str, raw: Any) -> Override:
    """Validate one model's TUTTI_MODELS entry."""
    if not isinstance(raw, dict):
        raise ConfigurationError(f"model override for {model_id!r} must be an object")
    unknown = sorted(set(raw) - set(OVERRIDE_FIELDS))
    if unknown:
        raise ConfigurationError(
            f"model override for {model_id!r}: unknown field {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(OVERRIDE_FIELDS)})"
        )
    fields: dict[str, Any] = {}
    prices: dict[str, float] = {}
    for key, value in raw.items():
        if key in ("max_tokens", "max_output_tokens", "max_input_tokens"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(
                    f"model override for {model_id!r}: `{key}` must be a positive integer"
                )
            fields["max_tokens" if key == "max_output_tokens" else key] = value
        elif key == "thinking_types":
            fields[key] = _enum_set(model_id, key, value, ThinkingType)
        elif key == "efforts":
            fields[key] = _enum_set(model_id, key, value, Effort)
        elif key == "thinking":
            if value not in _STYLES:
                raise ConfigurationError(
                    f"model override for {model_id!r}: `thinking` takes budget, adaptive or "
                    f"both (or use `thinking_types`); got {value!r}"
                )
            fields["thinking_types"] = _STYLES[value] | {ThinkingType.DISABLED}
        elif key in ("structured_outputs", "can_disable_thinking"):
            if not isinstance(value, bool):
                raise ConfigurationError(
                    f"model override for {model_id!r}: `{key}` must be true or false"
                )
            if key == "structured_outputs":
                fields[key] = value
        elif key == "prices":
            if not isinstance(value, dict) or set(value) - set(_PRICE_FIELDS):
                raise ConfigurationError(
                    f"model override for {model_id!r}: `prices` is an object with "
                    f"{', '.join(_PRICE_FIELDS)} (USD per million tokens)"
                )
            prices.update({k: _price(model_id, k, v) for k, v in value.items()})
        else:  # a legacy price field
            prices[_LEGACY_PRICES[key]] = _price(model_id, key, value)
    can_disable = raw.get("can_disable_thinking")
    return Override(fields, prices, can_disable if isinstance(can_disable, bool) else None)


def _price(model_id: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigurationError(
            f"model override for {model_id!r}: price `{key}` must be a number >= 0 (USD per "
            "million tokens)"
        )
    return float(value)


class ModelTable:
    """Aliases and model facts: overrides over learned (API) facts over the shipped table."""

    def __init__(
        self,
        models: Mapping[str, ModelInfo] | None = None,
        aliases: Mapping[str, str] | None = None,
        overrides: Mapping[str, Override] | None = None,
    ) -> None:
        self.models = dict(SHIPPED if models is None else models)
        self.aliases = dict(ALIASES if aliases is None else aliases)
        self.overrides = dict(overrides or {})
        self.learned: dict[str, ModelInfo] = {}  # from the Models API (engine/model_catalog.py)

    def model_id(self, name: str | None) -> str:
        """An alias or id as the id sent to the API."""
        name = name or DEFAULT_MODEL
        return self.aliases.get(name, name)

    def _family(self, model_id: str, layer: Mapping[str, Any]) -> str | None:
        if model_id in layer:
            return model_id
        m = _DATED.match(model_id)
        return m["family"] if m and m["family"] in layer else None

    def shipped(self, model_id: str) -> ModelInfo:
        """The shipped table's facts for an id (its family's for a dated id), else a guess."""
        family = self._family(model_id, self.models)
        if family is None:
            return ModelInfo(model_id, frozenset({ThinkingType.ADAPTIVE}), source=Source.GUESS)
        return replace(self.models[family], id=model_id)

    def resolve(self, name: str | None) -> ModelInfo:
        """Alias or id to the model's facts, every layer applied."""
        model_id = self.model_id(name)
        table = self.shipped(model_id)
        learned = self.learned.get(model_id)
        # the API reports capabilities, never prices: those stay the table's
        info = table if learned is None else replace(learned, id=model_id, prices=table.prices)
        family = self._family(model_id, self.overrides)
        if family is not None:
            info = self.overrides[family].apply(info)
        return info

    def learn(self, info: ModelInfo) -> None:
        """Record what the Models API said about `info.id` (capabilities; source api/cache)."""
        self.learned[info.id] = info

    def known_ids(self) -> list[str]:
        """Every id the table knows something about, shipped ids first."""
        ids = dict.fromkeys([*self.models, *self.learned, *self.overrides, *self.aliases.values()])
        return list(ids)

    def with_overrides(self, data: Mapping[str, Any]) -> ModelTable:
        """Apply `{"aliases": {...}, "models": {id: {field: value}}}` (the TUTTI_MODELS file)."""
        unknown = sorted(set(data) - {"aliases", "models"})
        if unknown:
            raise ConfigurationError(
                f"model overrides: unknown key {', '.join(map(repr, unknown))} (known: aliases, models)"
            )
        aliases = data.get("aliases", {})
        models = data.get("models", {})
        if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
            raise ConfigurationError("model overrides: `aliases` maps names to model ids")
        if not isinstance(models, dict):
            raise ConfigurationError("model overrides: `models` maps model ids to fields")
        table = ModelTable(self.models, {**self.aliases, **aliases}, self.overrides)
        table.learned = dict(self.learned)
        for model_id, fields in models.items():
            table.overrides[model_id] = parse_override(model_id, fields)
            table.resolve(model_id)  # a price that cannot be completed fails here, not later
        return table

    @classmethod
    def from_file(cls, path: str | Path | None) -> ModelTable:
        table = cls()
        if not path:
            return table
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigurationError(
                f"cannot read model overrides from {path} (TUTTI_MODELS): {exc}"
            ) from None
        if not isinstance(data, dict):
            raise ConfigurationError(f"model overrides in {path} (TUTTI_MODELS) must be an object")
        return table.with_overrides(data)

    def describe(self, ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every known model (or `ids`) as JSON, with the aliases that name it."""
        names: dict[str, list[str]] = {}
        for alias, target in self.aliases.items():
            names.setdefault(target, []).append(alias)
        return [
            {**self.resolve(i).describe(), "aliases": names.get(i, [])}
            for i in (self.known_ids() if ids is None else ids)
        ]
