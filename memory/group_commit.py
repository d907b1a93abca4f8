"""Group commit: many callers' writes share one SQLite transaction, and one commit wakes
them all.

Callers hand statements to the writer (`write`, which waits, or `queue`, which rides along
with the next commit), or a function to run inside the transaction (`Call`: a claim that
reads what it changes). Everything handed over while the event loop works through its
ready tasks forms one batch, committed once they have all run (one `call_soon`), so the
checkpoints of steps and runs that finish together share a transaction; a batch waits
while the one before it is still being committed, and whatever arrives meanwhile goes into
the next. Each batch has one asyncio.Event that sets every waiter free at once.

Where a batch is committed:
- on the event loop's thread when it is small (ON_LOOP_MAX_STATEMENTS: a few steps'
  checkpoints) and the connection is free: SQLite takes ~40 us for a step's checkpoint (3
  statements and the commit, WAL without fsync), while a round trip to another thread
  costs 40-80 us on a 2-vCPU VM (two wake-ups, each waking an idle vCPU). This is what a
  chain of steps waits for at every step. The attempt never waits for a lock: it takes
  SQLite's write lock without waiting (busy timeout 0);
- on the writer's own thread otherwise (a bigger batch, which the loop would otherwise
  wait for while it could run other steps; another process holding the write lock; the
  connection busy with a `Database.call`): one hand-off and one loop wake-up per batch,
  with the connection's full busy timeout. Batches are cut between callers at
  INLINE_MAX_STATEMENTS, so that writes queued meanwhile go into the next one.

Durability is SQLite's: `write` returns after COMMIT, in WAL mode with synchronous=NORMAL
(a commit survives a process crash). The connection's automatic checkpoint is off: the
writer's thread runs a passive checkpoint on a connection of its own every
CHECKPOINT_EVERY commits, so that the copy back into the file and its fsync never land on
the event loop's thread.

Failures are per caller: the statements of each waiting caller run inside a SAVEPOINT
when a batch has several callers, so a statement that fails undoes only its own caller's
statements, which get its sqlite3 error (with a note naming the file and statement); the
other callers' statements commit. A waiter that is cancelled stops waiting, but its
statements, once handed over, are committed exactly once all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

Op = tuple[str, tuple[Any, ...]]
E = TypeVar("E", bound=BaseException)

log = logging.getLogger(__name__)

INLINE_MAX_STATEMENTS = 500  # a batch is cut (between callers) before it grows past this
ON_LOOP_MAX_STATEMENTS = 32  # batches up to this size are committed on the loop's thread
CHECKPOINT_EVERY = 256  # commits; SQLite's own default is 1000 WAL pages


@dataclass(frozen=True)
class WriterStatistics:
    """What the writer has done so far."""

    batches: int  # transactions committed (or failed)
    statements: int
    waiters: int  # write/flush calls that waited for a batch
    on_loop: int  # batches committed on the event loop's thread
    on_thread: int  # batches committed on the writer's thread
    checkpoints: int


class _Batch:
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


@dataclass(frozen=True)
class Ticket:
    """A queued statement, which `unqueue` can take back until its batch is handed over."""

    batch: _Batch
    index: int


class Call:
    """A caller's function run inside a batch's transaction: `fn(connection, *args)`, which
    must not begin or end transactions itself; its result once committed."""

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
    conn: sqlite3.Connection, batch: _Batch, groups: list[tuple[int, int]], path: str
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


def apply_batch(conn: sqlite3.Connection, batch: _Batch, path: str, *, begun: bool) -> None:
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


class Guard:
    """Who may use the connection now, and how long it waits for other processes' locks:
    not at all at rest, so that a commit on the event loop's thread never blocks the loop
    (it goes to the writer's thread instead); the full busy timeout while a thread uses
    the connection (`on_thread`)."""

    def __init__(self, conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self._waits = f"PRAGMA busy_timeout = {int(busy_timeout_ms)}"

    @contextlib.contextmanager
    def on_thread(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.conn.execute(self._waits)
            try:
                yield self.conn
            finally:
                self.conn.execute("PRAGMA busy_timeout = 0")


class GroupWriter:
    """The write path of one connection; all its methods run on the event loop's thread
    except those of its worker thread (`_thread_main`)."""

    def __init__(
        self,
        guard: Guard,
        *,
        path: str,
        loop: asyncio.AbstractEventLoop,
        open_checkpointer: Callable[[], sqlite3.Connection] | None,
    ) -> None:
        self._guard, self._conn, self._path = guard, guard.conn, path
        self._loop = loop
        self._open_checkpointer = open_checkpointer
        self._pending = _Batch()  # open: callers add to it
        self._sealed: deque[_Batch] = deque()  # full, waiting their turn, oldest first
        self._in_flight: _Batch | None = None
        self._scheduled = False
        self._jobs: queue.SimpleQueue[_Batch | str | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._since_checkpoint = 0
        self._stats = dict.fromkeys(
            ("batches", "statements", "waiters", "on_loop", "on_thread", "checkpoints"), 0
        )

    # -- callers -----------------------------------------------------------------------------
    def queue(self, op: Op) -> Ticket:
        batch = self._pending
        batch.ops.append(op)
        return Ticket(batch, len(batch.ops) - 1)

    def queued(self, ticket: Ticket) -> bool:
        return not ticket.batch.sent

    def unqueue(self, ticket: Ticket) -> bool:
        if ticket.batch.sent:
            return False
        ticket.batch.ops[ticket.index] = None
        return True

    async def write(self, ops: Iterable[Op | Call]) -> None:
        batch = self._pending
        start = len(batch.ops)
        batch.ops.extend(ops)
        if batch.ends and len(batch.ops) > INLINE_MAX_STATEMENTS:
            # Full: what came before is one batch; this caller starts the next, so that no
            # batch holds the loop for long (a single caller's statements stay whole).
            mine = batch.ops[start:]
            del batch.ops[start:]
            self._sealed.append(batch)
            batch = self._pending = _Batch()
            batch.ops.extend(mine)
        caller = len(batch.ends)
        batch.ends.append(len(batch.ops))
        self._stats["waiters"] += 1
        if self._scheduled or self._in_flight is not None or self._sealed or not self._loop_idle():
            self._schedule()
        else:
            # Nothing else would run before the scheduled commit: no other caller could join
            # this batch, so it is committed now, which saves two turns of the loop.
            self._pending = _Batch()
            if self._send(batch, on_loop=True):
                # Still one turn of the loop per commit, as a round trip would be: a long
                # chain must not keep the loop from polling for I/O (requests, other runs).
                await asyncio.sleep(0)
        # Cancelled here, the caller stops waiting; the batch is committed all the same.
        await batch.done.wait()
        error = batch.errors.get(caller)
        if error is not None:
            raise error

    async def flush(self) -> None:
        if self._pending.ops:
            await self.write(())
        elif last := (self._sealed[-1] if self._sealed else self._in_flight):
            await last.done.wait()  # batches land in order: the earlier ones have too

    def note_outside_write(self) -> None:
        """A `Database.call` may commit too: count it towards the next checkpoint."""
        self._count_commit()

    def statistics(self) -> WriterStatistics:
        return WriterStatistics(**self._stats)

    async def close(self) -> None:
        """Commit what is queued, then stop the thread (after its last checkpoint)."""
        try:
            while self._pending.ops or self._sealed or self._in_flight is not None:
                await self.flush()
        finally:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._jobs.put(None)  # after any batch still queued for it
                await asyncio.get_running_loop().run_in_executor(None, thread.join)

    # -- committing --------------------------------------------------------------------------
    def _schedule(self) -> None:
        if not self._scheduled and self._in_flight is None:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._sealed:
            batch = self._sealed.popleft()
        elif self._pending.ends:
            batch, self._pending = self._pending, _Batch()
        else:
            return  # queued statements without a waiter ride along with a later batch
        self._send(batch, on_loop=len(batch.ops) <= ON_LOOP_MAX_STATEMENTS or self._loop_idle())

    def _send(self, batch: _Batch, *, on_loop: bool) -> bool:
        """Commit the batch on the loop's thread if `on_loop` and the connection is free
        (True: it has landed), else hand it to the writer's thread."""
        batch.sent = True
        if on_loop and self._guard.lock.acquire(blocking=False):
            try:
                begun = self._begin_now()
                if begun:
                    apply_batch(self._conn, batch, self._path, begun=True)
            finally:
                self._guard.lock.release()
            if begun:
                self._stats["on_loop"] += 1
                self._landed(batch)
                return True
        self._in_flight = batch
        self._stats["on_thread"] += 1
        self._submit(batch)
        return False

    def _loop_idle(self) -> bool:
        """Whether the loop has nothing else ready to run: then a thread could not commit
        beside other work, it would only add a hand-off and fight the loop for the GIL."""
        ready = getattr(self._loop, "_ready", None)  # asyncio's run queue (test_group_commit)
        return ready is not None and not ready

    def _begin_now(self) -> bool:
        """BEGIN IMMEDIATE without waiting for another connection's write lock. False when
        that fails: the writer's thread then waits for the lock up to the busy timeout (or
        fails the batch with the same error, if it was not a lock)."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")  # the busy timeout is 0 at rest (Guard)
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return False
        return True

    def _landed(self, batch: _Batch) -> None:
        if batch is self._in_flight:
            self._in_flight = None
        self._stats["batches"] += 1
        self._stats["statements"] += batch.statements()
        batch.done.set()
        self._count_commit()
        if self._sealed or self._pending.ends:
            self._schedule()

    def _count_commit(self) -> None:
        self._since_checkpoint += 1
        if self._open_checkpointer is not None and self._since_checkpoint >= CHECKPOINT_EVERY:
            self._since_checkpoint = 0
            self._submit("checkpoint")

    # -- the writer's thread -------------------------------------------------------------------
    def _submit(self, job: _Batch | str) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._thread_main, name=f"tutti-writer {self._path}", daemon=True
            )
            self._thread.start()
        self._jobs.put(job)

    def _thread_main(self) -> None:
        checkpointer: sqlite3.Connection | None = None
        try:
            while (job := self._jobs.get()) is not None:
                if isinstance(job, _Batch):
                    self._commit_on_thread(job)
                elif self._open_checkpointer is not None:
                    try:
                        if checkpointer is None:
                            checkpointer = self._open_checkpointer()
                        checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        self._stats["checkpoints"] += 1
                    except sqlite3.Error as exc:  # the next one copies what this one left
                        log.warning("checkpoint of %s failed: %s", self._path, exc)
        finally:
            if checkpointer is not None:
                checkpointer.close()

    def _commit_on_thread(self, batch: _Batch) -> None:
        with self._guard.on_thread() as conn:
            apply_batch(conn, batch, self._path, begun=False)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self._loop.call_soon_threadsafe(self._landed, batch)
