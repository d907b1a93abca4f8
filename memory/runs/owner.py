"""Which process owns a run, and whether that process still exists.

An owner is "host:pid:start" where start is the process start time from /proc (so a
recycled pid is not mistaken for the original process).
"""

from __future__ import annotations

import os
import socket

# /proc/<pid>/stat states of a process that has exited: a zombie (exited, not yet reaped
# by its parent; where PID 1 does not reap, as in a container without an init, it stays
# one) and dead (being reaped).
_EXITED = frozenset({"Z", "X", "x"})


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name, from the state (field 3)
    on; empty when there is no such process (or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return []
    # the command name (field 2) may contain spaces and parentheses; fields after it are plain
    return stat.rsplit(")", 1)[1].split()


def _start_ticks(pid: int) -> str:
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


_mine: tuple[int, str] | None = None  # (pid, owner): read from /proc once per process


def current_owner() -> str:
    global _mine
    pid = os.getpid()
    if _mine is None or _mine[0] != pid:  # a forked child is a new owner
        _mine = (pid, f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}")
    return _mine[1]


def owner_alive(owner: str | None) -> bool:
    """False when the owner is on this host and its process is gone, has exited (a zombie
    is dead, however long its parent takes to reap it), or was replaced. Owners on other
    hosts are assumed alive: we cannot see them."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_s, _, start = rest.partition(":")
    if host != socket.gethostname():
        return True
    try:
        pid = int(pid_s)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's process: /proc still tells its state
    except ValueError:
        return False
    fields = _stat(pid)
    if not fields:  # gone since the signal; or no /proc here, and then no start either
        return not start
    if fields[0] in _EXITED:
        return False
    return not start or (len(fields) > 19 and fields[19] == start)
