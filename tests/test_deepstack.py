"""deepstack.call: same results, and deep recursion under it stops costing fresh memory."""

import sys
import threading

import pytest

from sglang_baseline import deepstack

resource = pytest.importorskip("resource")  # (POSIX)


def _down(n: int) -> int:
    return 0 if n == 0 else 1 + _down(n - 1)


def _minor_faults() -> int:
    """This thread's minor page faults (Linux), so no other thread's allocations count."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


def _swing(times: int) -> int:
    """Recurse 300 frames deep and back, ``times`` times; return the minor page faults it took."""
    _down(300)  # warm: the frames' pages are mapped once
    before = _minor_faults()
    for _ in range(times):
        _down(300)
    return _minor_faults() - before


def test_returns_result_and_passes_arguments_and_exceptions():
    assert deepstack.call(lambda a, b=0: a + b, 2, b=3) == 5
    assert deepstack.call(_down, 500) == 500
    with pytest.raises(KeyError):
        deepstack.call({}.__getitem__, "x")
    # nested: the inner call runs directly, and the thread is let go afterwards
    assert deepstack.call(deepstack.call, _down, 10) == 10
    assert not deepstack._inside


def test_each_thread_gets_its_own_chunk():
    seen = []

    def inner():
        seen.append(threading.get_ident() in deepstack._inside)

    t = threading.Thread(target=deepstack.call, args=(inner,))
    deepstack.call(lambda: (t.start(), t.join()))
    assert seen == [deepstack._deep is not None]  # the other thread ran under its own trampoline
    assert not deepstack._inside


@pytest.mark.skipif(not hasattr(resource, "RUSAGE_THREAD"), reason="needs per-thread page-fault counts (Linux)")
@pytest.mark.skipif(deepstack._deep is None, reason="CPython before 3.11 has no frame chunks: deepstack is off")
def test_recursion_swinging_across_frame_chunks_takes_no_fresh_pages():
    # CPython 3.11+ maps a 16 KiB chunk each time the frame stack crosses into it and unmaps it
    # on the way back: each swing costs fresh pages.  Under deepstack.call one chunk holds it all.
    faults = deepstack.call(_swing, 2000)
    assert faults < 200, f"{faults} minor page faults for 2000 recursion swings (Python {sys.version})"
