"""The `foreach` field of a step: where its items come from and how its instances are
named and run (engine.groups reads the items; engine.execution.growth adds the instances)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

# What a `foreach` instance reads of its own item.
ITEM_NAMES = frozenset({"item", "item_index"})


class ForEach(BaseModel):
    """Where a `foreach` step's items come from (exactly one source), and how its instances
    are named and run. The string form `foreach: "${find.output}"` is `items` alone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: Any = Field(
        None,
        description="a list, or a template whose value is a list (an earlier step's JSON "
        "output, an input); a JSON text of a list is parsed",
    )
    glob: str | None = Field(
        None, description="workspace files matching this pattern (relative, ** allowed), sorted"
    )
    lines: str | None = Field(
        None, description="a workspace file (a template): each non-blank line is an item"
    )
    key: str | None = Field(
        None,
        description="a template of ${item} naming each instance (review[KEY]); "
        "by position (review[0], review[1], ...) when omitted",
    )
    max_concurrency: int | None = Field(
        None, ge=1, le=1024, description="instances running at once (within the run's cap)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> ForEach:
        given = [n for n in ("items", "glob", "lines") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "`foreach` needs exactly one source of items: `items`, `glob` or `lines`"
                + (f"; got {', '.join(given)}" if given else "")
            )
        return self
