"""Run a call on one large block of CPython's frame stack, so that deep recursion does not
make the interpreter map and unmap memory over and over.

Since 3.11, CPython keeps frames in 16 KiB chunks that it maps with ``mmap`` and unmaps
as soon as the frame at the start of a chunk returns.  The evaluator is a recursive
interpreter whose depth swings back and forth across chunk boundaries: a DeepSeek-V3
run mapped and unmapped ~2,000 chunks, a one-worker ``--all`` ~100,000, each a pair of
system calls and fresh page faults (about a second of system time in ``--all``).

``call`` runs its function under a frame whose code object claims a large value stack
(unused: only its size matters).  The interpreter gives that frame a chunk of the next
power of two above it, and every frame of the call nests in the chunk's remaining
~1 MiB, allocated once.  The pages of the unused stack are never touched.  Elsewhere
(another interpreter, older CPython) the frame is merely larger; results are the same.
An exception that passes through the trampoline costs ~1 MiB more (its frame object is
sized for the declared stack, untouched memory until the traceback is dropped).
"""

from __future__ import annotations

import sys
import types
from _thread import get_ident
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

# 2**17 words (1 MiB) and a little: the chunk becomes 2 MiB, leaving ~1 MiB for the frames below
_STACK_WORDS = (1 << 17) + 64


def _trampoline(fn, args, kwargs):
    return fn(*args, **kwargs)


_deep = (types.FunctionType(_trampoline.__code__.replace(co_stacksize=_STACK_WORDS), {}, "_deep_trampoline")
         if sys.implementation.name == "cpython" and sys.version_info >= (3, 11) else None)
# threads running under the trampoline: nested calls there reuse its chunk.  By thread, since
# each thread (and a process forked from a thread other than the one inside) has its own stack.
_inside: set[int] = set()


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    me = get_ident()
    if _deep is None or me in _inside:
        return fn(*args, **kwargs)
    _inside.add(me)
    try:
        return _deep(fn, args, kwargs)
    finally:
        _inside.discard(me)
