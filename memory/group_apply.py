"""How one batch of the group-commit writer (memory/group_commit.py) is applied to SQLite:
in one transaction, optimistically without a savepoint per caller, again with one per
caller only when a statement fails, and with consecutive identical statements run as one
executemany."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

Op = tuple[str, tuple[Any, ...]]
E = TypeVar("E", bound=BaseException)

log = logging.getLogger("tutti_mcp.memory.group_commit")  # where the writer's records go


class Batch:
    """Statements of callers committed in one transaction, in the order handed over."""

    __slots__ = ("done", "ends", "errors", "ops", "sent")

    def __init__(self) -> None:
        self.ops: list[Item] = []
        self.ends: list[int] = []  # where each waiting caller's statements end in ops
        self.errors: dict[int, BaseException] = {}  # by caller (index into ends)
        self.sent = False  # handed to SQLite: its statements can no longer be taken back
        self.done = asyncio.Event()

    def groups(self) -> list[tuple[int, int]]:
        """(start, end) of each caller's statements, and of the queued ones after the last
        caller (a group nobody waits for)."""
        out, start = [], 0
        for end in self.ends:
            out.append((start, end))
            start = end
        if start < len(self.ops):
            out.append((start, len(self.ops)))
        return out

    def statements(self) -> int:
        return sum(op is not None for op in self.ops)


class Call:
    """A caller's function run inside a batch's transaction: `fn(connection, *args)`, which
    must not begin or end transactions itself; its result once committed. It may run twice
    (its first run undone: apply_batch), so it must act on the connection only."""

    __slots__ = ("args", "fn", "result")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args
        self.result: Any = None

    def __str__(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))


Item = Op | Call | None  # None: a queued statement taken back


def _fail(exc: E, item: Item, path: str) -> E:
    what = "COMMIT" if item is None else str(item) if isinstance(item, Call) else item[0]
    what = " ".join(what.split())[:120]
    exc.add_note(f"while committing to {path}: {what}; the caller's statements were rolled back")
    return exc


_DML = ("INSERT", "UPDATE", "DELETE", "REPLAC")
_many: dict[str, bool] = {}  # SQL text -> whether executemany may run it (a few distinct texts)


def _coalescible(sql: str) -> bool:
    ok = _many.get(sql)
    if ok is None:  # executemany runs DML only, and would drop what RETURNING returns
        head = sql.lstrip()[:6].upper()
        ok = _many[sql] = head in _DML and "RETURNING" not in sql.upper()
    return ok


def _run_items(conn: sqlite3.Connection, items: list[Item], start: int, end: int) -> None:
    """Run items[start:end] in order. Consecutive statements with the same SQL go to SQLite
    as one executemany: the same statements in the same order, one call for all of them."""
    i = start
    while i < end:
        item = items[i]
        try:
            if isinstance(item, Call):
                item.result = item.fn(conn, *item.args)
            elif item is not None:
                sql, j = item[0], i + 1
                while j < end and (
                    (nxt := items[j]) is None or (isinstance(nxt, tuple) and nxt[0] == sql)
                ):
                    j += 1  # taken-back statements (None) in between change nothing
                if j - i > 1 and _coalescible(sql):
                    conn.executemany(sql, [op[1] for op in items[i:j] if isinstance(op, tuple)])
                    i = j
                    continue
                conn.execute(*item)
        # the caller's own statement or function failed: the error is the caller's
        except Exception as exc:
            raise _Located(exc, item) from exc
        i += 1


class _Located(Exception):
    def __init__(self, exc: Exception, item: Item) -> None:
        self.exc, self.item = exc, item


def _run_callers(
    conn: sqlite3.Connection, batch: Batch, groups: list[tuple[int, int]], path: str
) -> None:
    """Each caller's statements inside a savepoint of their own: one that fails is undone
    and its caller gets the error, the others stay."""
    for g, (start, end) in enumerate(groups):
        conn.execute("SAVEPOINT caller")
        try:
            _run_items(conn, batch.ops, start, end)
        except _Located as failed:
            if not conn.in_transaction:  # SQLite ended the transaction itself
                raise
            conn.execute("ROLLBACK TO caller")
            batch.errors[g] = _fail(failed.exc, failed.item, path)
        conn.execute("RELEASE caller")


def apply_batch(conn: sqlite3.Connection, batch: Batch, path: str, *, begun: bool) -> None:
    """Commit the batch in one transaction (begun already when `begun`); a caller whose
    statement fails gets that error and its statements are undone, the others commit.
    Every failure ends up in `batch.errors`: this is where callers and the connection
    meet, so nothing raised here may leave a caller waiting forever.

    Optimistic: the callers' statements first run one after the other with no savepoint
    per caller (two statements each, for a failure that almost never happens). Only if one
    fails is that undone (back to one savepoint around them all: the transaction and its
    write lock are kept) and the batch run again with a savepoint per caller, so that the
    failing caller alone gets its error. A `Call` may therefore run twice; the first run's
    writes are undone before the second."""
    groups = batch.groups()
    try:
        if not begun:
            conn.execute("BEGIN IMMEDIATE")
        if len(groups) == 1:
            _run_items(conn, batch.ops, *groups[0])
        else:
            conn.execute("SAVEPOINT batch")
            try:
                _run_items(conn, batch.ops, 0, len(batch.ops))
            except _Located:
                if not conn.in_transaction:  # SQLite ended the transaction itself
                    raise
                conn.execute("ROLLBACK TO batch")
                _run_callers(conn, batch, groups, path)
            conn.execute("RELEASE batch")
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, _Located):  # one caller, or the transaction is gone: all fail
            error: BaseException = _fail(exc.exc, exc.item, path)
        elif isinstance(exc, sqlite3.Error):  # BEGIN, COMMIT (disk full, I/O), a savepoint
            error = _fail(exc, None, path)
        elif isinstance(exc, Exception):  # a savepoint statement (a bug): callers hear it
            error = exc
        else:
            raise
        batch.errors = dict.fromkeys(range(len(groups)), error)
    for g, err in batch.errors.items():
        if g >= len(batch.ends):  # queued statements nobody waits for: say so somewhere
            log.error("queued writes to %s were lost: %s", path, err)
