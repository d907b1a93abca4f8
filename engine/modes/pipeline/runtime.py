"""The streaming runtime: the source, each stage's workers and the sink as tasks, joined by
bounded anyio memory object streams.

Items move in chunks (a list per send and receive), since yielding to the event loop at
each send is most of what a trivial stage costs: a builtin stage takes up to CHUNK items
at a time, a stage that calls an executor takes one (so its `concurrency` workers share
the items). Each buffer holds at most `buffer` items.

A client stage collects its items instead (client_batches): they wait there, out of the
flow (their credits given back), and once one stage holds a full batch the source stops
reading, the items in flight drain, and the run returns with what waits for the client.

Backpressure: the source takes one credit per item it reads and the sink gives it back,
so the items between source and sink never exceed the bound: `(stages + 1) * buffer` in
the buffers plus `concurrency * chunk` in each stage's hands. A slow stage fills its
buffer, its senders wait, and the source stops reading. In ordered mode the sink holds
early items until the ones before them arrive; the credits bound that too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from tutti_mcp.engine.errors import ConfigurationError, StepError, TemplateError
from tutti_mcp.engine.modes.pipeline.client_batches import Parked
from tutti_mcp.engine.modes.pipeline.items import Work
from tutti_mcp.engine.modes.pipeline.journal import Journal, resumed_work
from tutti_mcp.engine.modes.pipeline.stages import StageRunner
from tutti_mcp.engine.modes.pipeline.stats import PipelineStats
from tutti_mcp.memory.runs.pipeline_rows import PipelineSnapshot

CHUNK = 128  # items a builtin stage takes at once
TICK_S = 0.25  # how often queue depths are sampled, progress told and rows committed

Chunk = list[Work]


class Credits:
    """Items the source may still put in flight."""

    def __init__(self, n: int) -> None:
        self.free = n
        self._freed = anyio.Event()

    async def take(self, want: int) -> int:
        while self.free == 0:
            if self._freed.is_set():
                self._freed = anyio.Event()
            await self._freed.wait()
        got = min(want, self.free)
        self.free -= got
        return got

    def give(self, n: int) -> None:
        self.free += n
        self._freed.set()


def chunk_size(runner: StageRunner, buffer: int) -> int:
    if runner.client:
        return max(1, min(buffer, runner.batch))
    if runner.fast:
        return max(1, min(CHUNK, buffer, runner.stage.batch or CHUNK))
    return 1


def in_flight_bound(runners: list[StageRunner], buffer: int) -> int:
    """The most items between source and sink (what the credits allow)."""
    hands = sum(r.stage.concurrency * chunk_size(r, buffer) for r in runners)
    return (len(runners) + 1) * buffer + hands


class Runtime:
    def __init__(
        self,
        runners: list[StageRunner],
        journal: Journal,
        stats: PipelineStats,
        *,
        buffer: int,
        ordered: bool,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.runners, self.journal, self.stats = runners, journal, stats
        self.buffer, self.ordered, self.progress = buffer, ordered, progress
        self.sizes = [chunk_size(r, buffer) for r in runners] + [max(1, min(CHUNK, buffer))]
        self.credits = Credits(stats.limit)
        self._ticker = anyio.CancelScope()
        # client stages: the items waiting at each (by stage), and the source's stop
        self.parked: dict[int, list[Parked]] = {i: [] for i, r in enumerate(runners) if r.client}
        self.stopping = False
        self._reading: anyio.CancelScope | None = None

    async def run(self, items: AsyncIterator[Any], snap: PipelineSnapshot) -> None:
        """Every item of `items` (and those `snap` left unfinished) through the stages to
        the sink; returns once all are sunk or dead, and committed."""
        n = len(self.runners)
        pairs = [
            anyio.create_memory_object_stream[Chunk](max(1, self.buffer // size))
            for size in self.sizes
        ]
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._tick)
                tg.start_soon(self._source, items, snap, pairs[0][0].clone())
                for i, runner in enumerate(self.runners):
                    for _ in range(1 if runner.client else runner.stage.concurrency):
                        recv, send = pairs[i][1].clone(), pairs[i + 1][0].clone()
                        work = self._collect if runner.client else self._worker
                        tg.start_soon(work, i, recv, send)
                tg.start_soon(self._sink, pairs[n][1].clone())
                for send, recv in pairs:
                    send.close()
                    recv.close()
        except BaseExceptionGroup as group:
            raise _one_error(group) from None
        finally:
            with anyio.CancelScope(shield=True):  # what finished before a stop stays done
                await self.journal.commit()

    # -- the tasks --------------------------------------------------------------------------
    async def _source(
        self, items: AsyncIterator[Any], snap: PipelineSnapshot, send: ObjectSendStream[Chunk]
    ) -> None:
        rows, frontier = dict(snap.rows), snap.mark.frontier
        stats, done = self.stats, self.journal.done_states
        size = self.sizes[0]
        chunk: Chunk = []
        seq = 0
        async with send:
            index = 0
            async for item in self._until_stopped(items) if self.parked else items:
                row = rows.pop(index, None)
                if row is None and index >= frontier:
                    work: Work | None = Work(index, item)
                elif row is None or row.state in done:
                    work = None  # finished by an earlier execution
                    stats.restored += 1
                else:
                    work = resumed_work(row)
                index += 1
                if work is not None:
                    work.seq, seq = seq, seq + 1
                    chunk.append(work)
                    if len(chunk) >= size:
                        await self._send_in(send, chunk)
                        chunk = []
            # rows past the source's end now (it shrank since): their items go on too
            for row in sorted(rows.values(), key=lambda r: r.item) if not self.stopping else ():
                if row.state not in done:
                    work = resumed_work(row)
                    work.seq, seq = seq, seq + 1
                    chunk.append(work)
            while chunk:
                await self._send_in(send, chunk[: self.sizes[0]])
                chunk = chunk[self.sizes[0] :]

    async def _send_in(self, send: ObjectSendStream[Chunk], chunk: Chunk) -> None:
        """Into the first buffer, as credits allow."""
        stats = self.stats
        while chunk:
            if self.parked and self._starved():
                self.stop()
            if self.stopping:  # not sent: these items are read again by the next execution
                return
            got = await self.credits.take(len(chunk))
            part, chunk = chunk[:got], chunk[got:]
            stats.read += got
            stats.in_flight += got
            if stats.in_flight > stats.max_in_flight:
                stats.max_in_flight = stats.in_flight
            await self._put(send, part, 0)

    async def _put(self, send: ObjectSendStream[Chunk], chunk: Chunk, i: int) -> None:
        """Into buffer `i` (i == stages: the sink's), in that buffer's chunks."""
        size = self.sizes[i]
        counted = i < len(self.runners)
        for k in range(0, len(chunk), size):
            part = chunk[k : k + size] if len(chunk) > size else chunk
            if counted:
                self.stats.stages[i].queued += len(part)
            await send.send(part)

    async def _worker(
        self, i: int, recv: ObjectReceiveStream[Chunk], send: ObjectSendStream[Chunk]
    ) -> None:
        runner, journal = self.runners[i], self.journal
        st = self.stats.stages[i]
        async with recv, send:
            async for chunk in recv:
                st.queued -= len(chunk)
                st.in_flight += len(chunk)
                later = runner.run_fast(chunk) if runner.fast else chunk
                for w in later:
                    await runner.run_one(w)
                if not runner.fast:  # a transform is not worth a row: it is redone instead
                    for w in chunk:
                        if w.error is None and len(w.outs) == i + 1:
                            journal.moved(w)
                st.in_flight -= len(chunk)
                await self._put(send, chunk, i + 1)

    async def _sink(self, recv: ObjectReceiveStream[Chunk]) -> None:
        journal, stats, credits = self.journal, self.stats, self.credits
        waiting: dict[int, Work] = {}
        next_seq = 0
        async with recv:
            async for chunk in recv:
                for w in chunk:
                    if w.error is not None:  # a dead letter has no place in the order
                        journal.dead_item(w)
                        stats.dead += 1
                if self.ordered:  # (it keeps its credit until its turn: memory stays bounded)
                    for w in chunk:
                        waiting[w.seq] = w
                    ready = []
                    while next_seq in waiting:
                        ready.append(waiting.pop(next_seq))
                        next_seq += 1
                else:
                    ready = chunk
                for w in ready:
                    if w.error is None:
                        journal.sunk_item(w)
                        stats.sunk += 1
                stats.in_flight -= len(ready)
                credits.give(len(ready))
                if journal.due:
                    await journal.commit()
        self._ticker.cancel()

    # -- client stages ----------------------------------------------------------------------
    async def _collect(
        self, i: int, recv: ObjectReceiveStream[Chunk], send: ObjectSendStream[Chunk]
    ) -> None:
        """A client stage's worker: its items wait here for the client (rendered), out of the
        flow; those past it (answered), skipped by its `when` or dead pass on."""
        runner, parked = self.runners[i], self.parked[i]
        stats, st = self.stats, self.stats.stages[i]
        async with recv, send:
            async for chunk in recv:
                st.queued -= len(chunk)
                on: Chunk = []
                for w in chunk:
                    task = None
                    if w.error is None and len(w.outs) == i:
                        task = await runner.park(w)
                    if task is None:
                        on.append(w)
                    else:
                        parked.append(task)
                waits = len(chunk) - len(on)
                if waits:
                    st.waiting += waits
                    stats.in_flight -= waits
                    self.credits.give(waits)
                    if len(parked) >= runner.batch:
                        self.stop()
                if on:
                    await self._put(send, on, i + 1)

    def stop(self) -> None:
        """Read no more items (a batch waits for the client): what is in flight drains."""
        self.stopping = True
        if self._reading is not None:
            self._reading.cancel()

    def _starved(self) -> bool:
        """No credits left while items wait at a client stage: in ordered mode the sink may
        hold every credit for items that come after a waiting one, so stop and hand over."""
        return self.credits.free == 0 and any(self.parked.values())

    async def _until_stopped(self, items: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The source's items until `stop()`, which also ends a wait for the next one (a
        command that prints nothing for a while keeps no batch from the client)."""
        while not self.stopping:
            with anyio.CancelScope() as self._reading:
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    return
            self._reading = None
            if self.stopping:
                return
            yield item

    async def _tick(self) -> None:
        with self._ticker:
            while True:
                await anyio.sleep(TICK_S)
                self.stats.sample()
                if self.journal.pending:
                    await self.journal.commit()
                if self.progress is not None:
                    self.progress(self.stats.snapshot())


def _one_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that stopped the pipeline (a bad source, say), out of its task group, when
    it is one of ours; else the group as it is."""
    flat: list[BaseException] = []
    todo: list[BaseException] = [group]
    while todo:
        e = todo.pop()
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        else:
            flat.append(e)
    ours = [e for e in flat if isinstance(e, StepError | TemplateError | ConfigurationError)]
    return ours[0] if len(ours) == len(flat) == 1 else group
