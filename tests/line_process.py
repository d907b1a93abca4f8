"""A subprocess driven one line at a time over its stdin and stdout (the multi-process
race and contention tests keep their workers alive across rounds this way)."""

from __future__ import annotations

from anyio.abc import Process


class LineProcess:
    def __init__(self, process: Process) -> None:
        self.process = process
        self.buffer = b""

    async def line(self) -> str:
        """The next line the process printed (callers bound the wait)."""
        assert self.process.stdout is not None
        while b"\n" not in self.buffer:
            self.buffer += await self.process.stdout.receive()
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    async def send(self, text: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(text.encode() + b"\n")


def kill_if_running(process: Process) -> None:
    """An exit callback: a worker still alive when its test ends is killed."""
    if process.returncode is None:
        process.kill()
