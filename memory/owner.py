"""Which process owns a run, and whether that process still exists.

An owner is "host:pid:start" where start is the process start time from /proc (so a
recycled pid is not mistaken for the original process).
"""

from __future__ import annotations

import os
import socket


def _start_ticks(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return ""
    # the command name (field 2) may contain spaces; fields after it are plain
    return stat.rsplit(")", 1)[1].split()[19]


def current_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def owner_alive(owner: str | None) -> bool:
    """False when the owner is on this host and its process is gone (or was replaced).
    Owners on other hosts are assumed alive: we cannot see them."""
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
        return True
    except ValueError:
        return False
    return not start or _start_ticks(pid) == start
