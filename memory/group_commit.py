"""Group commit: many callers' writes share one SQLite transaction, and one commit wakes
them all.

Callers hand statements to the writer (`write`, which waits, or `queue`, which rides along
with the next commit), or a function to run inside the transaction (`Call`: a claim that
reads what it changes). Everything handed over while the event loop works through its
ready tasks forms one batch, committed once they have all run (one `call_soon`), so the
checkpoints of steps and runs that finish together share a transaction; a batch waits
while the one before it is still being committed, and whatever arrives meanwhile goes into
the next. Each batch has one asyncio.Event that sets every waiter free at once.

A caller that writes while the loop has nothing else ready (a chain's step, the usual
case) does not wait for a turn of the loop: no other caller could join its batch before
the scheduled commit anyway, so it commits at once, and gives the loop a turn only if
none was given for YIELD_EVERY_S.

Where a batch is committed:
- on the event loop's thread when the loop has nothing else ready to run, or when the
  batch is small (ON_LOOP_MAX_STATEMENTS: a few steps' checkpoints), and the connection
  is free: SQLite takes ~40 us for a step's checkpoint (3 statements and the commit, WAL
  without fsync), while a round trip to another thread costs 40-80 us on a 2-vCPU VM (two
  wake-ups, each waking an idle vCPU), and a thread that runs Python beside a busy loop
  waits for the GIL at every statement. The attempt never waits for a lock: it takes
  SQLite's write lock without waiting (busy timeout 0);
- on the writer's own thread otherwise (a bigger batch while other tasks are ready to run
  beside it; another process holding the write lock; the connection busy with a
  `Database.call`): one hand-off and one loop wake-up per batch, with the connection's
  full busy timeout. Batches are cut between callers at INLINE_MAX_STATEMENTS, so that
  writes queued meanwhile go into the next one.

Durability is SQLite's: `write` returns after COMMIT, in WAL mode with synchronous=NORMAL
(a commit survives a process crash). The connection's automatic checkpoint is off: the
writer's thread runs a passive checkpoint on a connection of its own every
CHECKPOINT_EVERY commits, so that the copy back into the file and its fsync never land on
the event loop's thread.

Failures are per caller (memory/group_apply.py): a statement that fails undoes only its
own caller's statements, which get its sqlite3 error (with a note naming the file and
statement); the other callers' statements commit. A batch first runs without a savepoint
per caller and is run again with them only when a statement fails. A waiter that is
cancelled stops waiting, but its statements, once handed over, are committed exactly once
all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from tutti_mcp.memory.group_apply import Batch, Call, Op, apply_batch

__all__ = ["Call", "GroupWriter", "Guard", "Op", "Ticket", "WriterStatistics", "apply_batch"]

log = logging.getLogger(__name__)

INLINE_MAX_STATEMENTS = 500  # a batch is cut (between callers) before it grows past this
ON_LOOP_MAX_STATEMENTS = 32  # batches up to this size are committed on the loop's thread
CHECKPOINT_EVERY = 256  # commits; SQLite's own default is 1000 WAL pages
YIELD_EVERY_S = 0.001  # a caller that commits at once still yields to the loop this often


@dataclass(frozen=True)
class WriterStatistics:
    """What the writer has done so far."""

    batches: int  # transactions committed (or failed)
    statements: int
    waiters: int  # write/flush calls that waited for a batch
    on_loop: int  # batches committed on the event loop's thread
    on_thread: int  # batches committed on the writer's thread
    checkpoints: int


@dataclass(frozen=True)
class Ticket:
    """A queued statement, which `unqueue` can take back until its batch is handed over."""

    batch: Batch
    index: int


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
        self._pending = Batch()  # open: callers add to it
        self._sealed: deque[Batch] = deque()  # full, waiting their turn, oldest first
        self._in_flight: Batch | None = None
        self._scheduled = False
        self._jobs: queue.SimpleQueue[Batch | str | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._since_checkpoint = 0
        self._yielded_at = 0.0  # time.monotonic() of the last turn given to the loop
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
            batch = self._pending = Batch()
            batch.ops.extend(mine)
        caller = len(batch.ends)
        batch.ends.append(len(batch.ops))
        self._stats["waiters"] += 1
        if self._scheduled or self._in_flight is not None or self._sealed or not self._loop_idle():
            self._schedule()
        else:
            # Nothing else would run before the scheduled commit: no other caller could join
            # this batch, so it is committed now, which saves two turns of the loop.
            self._pending = Batch()
            if self._send(batch, on_loop=True) and (
                (now := time.monotonic()) - self._yielded_at >= YIELD_EVERY_S
            ):
                # A long chain must not keep the loop from polling for I/O (requests, a
                # cancellation): a turn of the loop now and then, not at every commit
                # (its epoll call costs as much as a checkpoint's statements).
                self._yielded_at = now
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
            batch, self._pending = self._pending, Batch()
        else:
            return  # queued statements without a waiter ride along with a later batch
        self._send(batch, on_loop=len(batch.ops) <= ON_LOOP_MAX_STATEMENTS or self._loop_idle())

    def _send(self, batch: Batch, *, on_loop: bool) -> bool:
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

    def _landed(self, batch: Batch) -> None:
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
    def _submit(self, job: Batch | str) -> None:
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
                if isinstance(job, Batch):
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

    def _commit_on_thread(self, batch: Batch) -> None:
        with self._guard.on_thread() as conn:
            apply_batch(conn, batch, self._path, begun=False)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self._loop.call_soon_threadsafe(self._landed, batch)
