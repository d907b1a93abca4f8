"""The root of tutti's exception family.

`TuttiError` is the root of every error tutti raises on purpose: a refusal whose message
says what is wrong and what to do next. Anything else that escapes is a bug. It lives in
memory/, the bottom layer, because memory may import nothing of ours outside memory/ while
every other package may import memory; engine/errors.py re-exports it, and that is where
the rest of the family lives.

Subclasses that stand for a builtin condition keep the builtin as a second base (e.g.
`RunNotFound(TuttiError, LookupError)`), so callers catching the builtin still do.
"""

from __future__ import annotations


class TuttiError(Exception):
    """Base class of every error tutti raises on purpose."""
