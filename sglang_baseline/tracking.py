"""Per-layer evaluation without evaluating every layer.

A decoder layer's constructor usually depends on its index only through a few
decisions (``layer_id >= first_k_dense_replace``, ``layers_block_type[idx]``).  The
layer index is passed in as a *tracked* value; every operation the evaluator does
on it is replayable as a function of the index, and every decision on it
(comparison, truth test, membership, lookup) is logged with its outcome.  Another
layer whose replayed decisions all come out the same takes the same path through
the same code, so its module is built identically and need not be evaluated again.

Tracked values are subclasses of ``int``/``str`` so that code which does not know
about them still works; where they are lost (a builtin we do not wrap), a
verification pass (one full evaluation per group, compared structurally) catches
the difference and falls back to evaluating every layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class TrackedInt(int):
    fn: Callable[[int], Any]

    def __new__(cls, value: int, fn: Callable[[int], Any]) -> TrackedInt:
        obj = super().__new__(cls, value)
        obj.fn = fn
        return obj


class TrackedStr(str):
    fn: Callable[[int], Any]

    def __new__(cls, value: str, fn: Callable[[int], Any]) -> TrackedStr:
        obj = super().__new__(cls, value)
        obj.fn = fn
        return obj


def is_tracked(v: Any) -> bool:
    return isinstance(v, (TrackedInt, TrackedStr))


def fn_of(v: Any) -> Callable[[int], Any]:
    """The value as a function of the layer index (a constant when untracked)."""
    if is_tracked(v):
        return v.fn
    return lambda i, _v=v: _v


def wrap(value: Any, fn: Callable[[int], Any]) -> Any:
    """Track a derived value when its type allows; else return it plain."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return TrackedInt(value, fn)
    if isinstance(value, str):
        return TrackedStr(value, fn)
    if isinstance(value, list):
        return [wrap(x, (lambda i, k=k: fn(i)[k])) for k, x in enumerate(value)]
    if isinstance(value, tuple):
        return tuple(wrap(x, (lambda i, k=k: fn(i)[k])) for k, x in enumerate(value))
    return value


@dataclass
class DecisionLog:
    """The decisions one layer's evaluation took on its index."""

    entries: list[tuple[Callable[[int], Any], Any]] = field(default_factory=list)
    limit: int = 20000

    def record(self, fn: Callable[[int], Any], outcome: Any) -> None:
        if len(self.entries) < self.limit:
            self.entries.append((fn, outcome))

    def replays_for(self, idx: int) -> bool:
        """True when every logged decision comes out the same for layer ``idx``."""
        if len(self.entries) >= self.limit:
            return False
        for fn, outcome in self.entries:
            try:
                if fn(idx) != outcome:
                    return False
            except Exception:
                return False
        return True


_ACTIVE: list[DecisionLog] = []


def active() -> DecisionLog | None:
    return _ACTIVE[-1] if _ACTIVE else None


def push(log: DecisionLog) -> None:
    _ACTIVE.append(log)


def pop() -> None:
    if _ACTIVE:
        _ACTIVE.pop()


def record(fn: Callable[[int], Any], outcome: Any) -> None:
    log = active()
    if log is not None:
        log.record(fn, outcome)
