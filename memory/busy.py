"""Retrying SQLite work that found the database busy, until a deadline.

SQLite's busy handler does not cover every lock it takes: changing the journal mode of a
fresh file (`PRAGMA journal_mode = WAL`) and some lock upgrades answer SQLITE_BUSY at
once, whatever the busy timeout. Connection setup retries those with backoff, so that
processes opening one new file together wait for each other instead of failing.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_FIRST_DELAY_S = 0.002
_MAX_DELAY_S = 0.1


def is_busy(exc: sqlite3.Error) -> bool:
    """Another connection holds a lock we need (SQLITE_BUSY or SQLITE_LOCKED, with any
    extended code)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def retry_busy(fn: Callable[[], T], deadline: float) -> T:
    """Call `fn` until it does not fail busy, backing off (with jitter, so processes that
    collided do not collide again) until `deadline` (time.monotonic()); then the last
    busy error is raised."""
    delay = _FIRST_DELAY_S
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            left = deadline - time.monotonic()
            if not is_busy(exc) or left <= 0:
                raise
            # This runs in the connection's own thread (aiosqlite's, or a CLI's): sleeping
            # here blocks no event loop.
            time.sleep(min(left, delay * (0.5 + random.random())))
            delay = min(delay * 2, _MAX_DELAY_S)
