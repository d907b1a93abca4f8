"""Live progress of a run on the terminal: a bar on a TTY, one line per finished step
otherwise. Fed by the engine's event callback."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar

_DONE = {"step_succeeded", "step_degraded", "step_failed", "step_skipped"}
_STYLE = {
    "step_succeeded": "green",
    "step_degraded": "yellow",
    "step_failed": "red",
    "step_skipped": "dim",
}


class TerminalProgress:
    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.bar: Bar | None = None
        self.task: Any = None
        self.running: set[str] = set()
        self.added: dict[str, int] = {}  # step -> the steps it added so far
        self.streams: dict[str, Any] = {}  # pipeline step -> its bar's task

    def __enter__(self) -> TerminalProgress:
        if self.enabled and self.console.is_terminal:
            self.bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)

    def on_event(self, kind: str, step_id: str | None, data: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if kind == "run_started":
            if self.bar is not None:
                self.task = self.bar.add_task(
                    "running", total=data["steps"], completed=data["committed"]
                )
            elif data["committed"]:
                self.console.print(f"resuming: {data['committed']} steps already committed")
            return
        if kind == "step_started" and self.bar is not None and self.task is not None:
            self.running.add(step_id or "")
            self.bar.update(self.task, description="running " + ", ".join(sorted(self.running)[:3]))
            return
        if kind == "pipeline_progress":
            self._pipeline(step_id or "", data)
            return
        if kind == "step_expanded":  # steps added at run time: the bar grows
            added = int(data.get("steps", 0))
            if self.bar is not None and self.task is not None:
                grown = added - self.added.get(step_id or "", 0)
                self.bar.update(self.task, total=(self.bar.tasks[0].total or 0) + grown)
            self.added[step_id or ""] = added
            return
        if kind in _DONE:
            self.running.discard(step_id or "")
            detail = data.get("error") or data.get("reason") or ""
            if kind == "step_succeeded" and _added(step_id) and ":" not in (step_id or ""):
                # an instance or iteration: counted, not printed (a fan-out has thousands)
                if self.bar is not None and self.task is not None:
                    self.bar.update(self.task, advance=1)
                return
            if step_id in self.added:
                detail = detail or f"({self.added[step_id]} steps added)"
            line = f"[{_STYLE[kind]}]{kind.removeprefix('step_'):>9}[/] {escape(step_id or '')}" + (
                f"  {escape(str(detail))}" if detail else ""
            )
            self.console.print(line, markup=True, highlight=False)
            if self.bar is not None and self.task is not None:
                names = ", ".join(sorted(self.running)[:3])
                self.bar.update(
                    self.task, advance=1, description=f"running {names}" if names else ""
                )
        elif kind == "step_waiting":
            self.console.print(f"  waiting {step_id}  (handed to the client)", markup=False)
        elif kind == "step_retrying":
            self.console.print(
                f"[yellow]    retry[/] {step_id} in {data['delay_s']:.1f}s, attempt "
                f"{data['attempt']} failed: {data['error']}",
                markup=True,
            )

    def _pipeline(self, step_id: str, data: dict[str, Any]) -> None:
        """A pipeline's figures: a line of its own on the bar (items through, in flight,
        dead, items/s, and the busiest stage's queue)."""
        if self.bar is None:
            return
        stages = data.get("stages") or []
        busiest = max(stages, key=lambda s: s.get("queued", 0), default=None)
        queue = f", {busiest['id']} queue {busiest['queued']}" if busiest else ""
        rate = data.get("items_per_s")
        text = (
            f"{step_id}: {data.get('in_flight', 0)} in flight, {data.get('dead', 0)} dead"
            + (f", {rate:,.0f}/s" if rate else "")
            + queue
        )
        done = int(data.get("sunk", 0)) + int(data.get("restored", 0))
        task = self.streams.get(step_id)
        if task is None:
            self.streams[step_id] = self.bar.add_task(text, total=None, completed=done)
        else:
            self.bar.update(task, description=text, completed=done)


def _added(step_id: str | None) -> bool:
    """A step added at run time (`review[3]`, `draft#2`, a swarm's turn `swarm[ann:draft#1]`,
    which is printed: a swarm has few): spec ids have no [ or #."""
    return step_id is not None and ("[" in step_id or "#" in step_id)
