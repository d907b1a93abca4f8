"""The two consoles every command prints through: `out` (stdout: results) and `err`
(stderr: progress, errors, where things are), and how a table is printed to either. Only
rich's console is imported here, so a command that prints no table or run pays for
nothing more."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from rich.table import Table

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)
UNBOUNDED = 100_000  # columns: wider than any table we print


def print_table(table: Table, console: Console = out) -> None:
    """On a terminal, the table as rich draws it, fitted to the terminal's width. Piped,
    redirected or captured there is no width to fit: rich would assume 80 columns and fold
    every long cell over several lines. There each row is one line at its natural width,
    without borders, which a reader, `grep` or `cut` can use."""
    if console.is_terminal:
        console.print(table)
        return
    table.box = None
    table.pad_edge = False
    table.title_justify = "left"
    for column in table.columns:
        column.no_wrap = True
        column.overflow = "ignore"
    # a console of its own: print(width=...) cannot go past the console's 80 columns
    wide = Console(width=UNBOUNDED, highlight=False, color_system=None)
    with wide.capture() as captured:
        wide.print(table)
    lines = [line.rstrip() for line in captured.get().splitlines()]
    console.file.write("\n".join(lines) + "\n")
