"""The model-independent work of a one-model run, done by a forked helper meanwhile.

Some of what one model's analysis needs does not depend on the model: the registrations (every
``EntryClass`` under ``models/``), SGLang's config classes and MLA architectures, and the paths
read with an empty instance by ``analysis._class_calls``: the attention backends' decode and
prefill paths and the catalog's other kernel sources (``LogitsProcessor.forward``,
``Sampler.forward``, ...).  That is ~130 ms of a ~1 s run, so a helper process does it on the
second core while the main process imports the analysis and evaluates the model.

The helper is forked before the analysis modules are imported, when the heap is small (so
neither process pays for copied pages), does first what the main process needs first, and
sends each result as soon as it has it: the value (plain data: ``ModelFileEntry``,
``ClassSym``, ``Call``), the files it read and the warnings it gave, which the main process
replays as if it had computed the result (``Index.shared``).  The main process waits for a
result only when it needs it and the helper has said it will send it; if the helper fails, or
there is none (no ``fork``, one core, ``SGLANG_BASELINE_NO_PREFETCH`` set), the main process
computes the result itself.  The outputs are the same either way.

The helper also makes the JSON outputs and ``summary.md`` from the records the main process
sends it when its analysis is done (``Prefetch.serialize``), so that the main process never
imports pydantic nor jinja2.  It gets them ready (~0.15 s) once it has sent what most models
read, before the backends of other attention architectures; asked for the outputs, it starts no
further reading.
"""

from __future__ import annotations

import errno
import os
import pickle
import select
import signal
import struct
import sys
from collections.abc import Callable
from typing import Any

from .fsutil import fork_child, stdio_to_devnull, usable_cores

_HEADER = struct.Struct("<I")
_DONE = ("done",)


class Prefetch:
    """The main process's end: results by ``Index.shared`` key, read from the helper on demand."""

    KINDS = ("registrations", "config-classes", "mla-architectures", "find-class", "class-calls")  # what it sends
    STALL_SECONDS = 20  # its whole work takes well under a second

    def __init__(self, pid: int, fd: int, requests: int = -1) -> None:
        self.pid = pid
        self._fd = fd
        self._requests = requests  # where the outputs are asked for (see serialize)
        self._outputs: dict[str, str] | None = None
        self._buf = b""
        self._results: dict[tuple, tuple[Any, dict[str, str], list[tuple]]] = {}
        self._promised: set[tuple] = set()  # keys the helper will send
        self._pending: set[str] = set(self.KINDS)  # kinds whose keys it has not all named yet
        self._open = True
        self.trouble = ""  # why the helper stopped before its work was done, if it did
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def take(self, key: tuple) -> tuple[Any, dict[str, str], list[tuple]] | None:
        """The helper's result for ``key`` (value, files, warnings), waiting for it if the helper
        has it still to send; None when the helper does not read it (or has failed)."""
        if key[0] not in self.KINDS:
            return None
        self._receive(block=False)
        while key not in self._results and self._open and (key in self._promised or key[0] in self._pending):
            self._receive(block=True)
        return self._results.pop(key, None)

    def _receive(self, block: bool) -> None:
        """Handle one message (blocking: waiting for it), or every message already here.  A helper
        silent for STALL_SECONDS while a result is awaited is taken for stuck and stopped."""
        while self._open:
            msg = self._message()
            if msg is not None:
                self._handle(msg)
                if block:
                    return
                continue
            if not self._poll.poll(self.STALL_SECONDS * 1000 if block else 0):
                if block:
                    self.trouble = f"silent for {self.STALL_SECONDS} s: stopped"
                    self.close()
                return
            try:
                chunk = os.read(self._fd, 1 << 20)
            except InterruptedError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.trouble = "exited before its work was done"
                self.close()
                return
            self._buf += chunk

    def _message(self) -> tuple | None:
        got = _unframe(self._buf)
        if got is None:
            return None
        data, self._buf = got
        try:
            return pickle.loads(data)
        except Exception as e:
            self.trouble = f"sent a message that does not load ({type(e).__name__})"
            self.close()
            return None

    def _handle(self, msg: tuple) -> None:
        if msg[0] == "keys":  # ("keys", keys it will send, kinds now named in full)
            self._promised.update(msg[1])
            self._pending.difference_update(msg[2])
        elif msg[0] == "result":
            self._results[msg[1]] = msg[2]
        elif msg[0] == "failed":
            self.trouble = f"failed: {msg[1]}"
            self.close()
        elif msg[0] == "done":  # nothing more to wait for, but it stays for the outputs
            self._promised.clear()
            self._pending.clear()
        elif msg[0] == "outputs":
            self._outputs = msg[1]
            self.close()

    def serialize(self, impl: Any, calls: list, data: dict[str, Any], output_dir: Any, config_written: bool
                  ) -> Callable[[], dict[str, str] | None]:
        """Have the helper validate and serialise the outputs and render ``summary.md``
        (``report.make_outputs``), so that this process need not import pydantic nor jinja2;
        the function returned waits for the files: None when the helper cannot (gone, or
        failed, a record that does not validate included): the caller then makes them itself.
        A helper still reading stops after the class it is reading (the analysis is over),
        gets its libraries ready if it had not, and answers."""
        self._receive(block=False)
        if not (self._open and self._requests >= 0):
            return lambda: None
        try:
            request = _frame(("outputs", impl, calls, data, str(output_dir), config_written))
        except Exception as e:  # a value that does not pickle (a bug): made by the caller
            self.trouble = f"could not be sent the outputs ({type(e).__name__}: {e})"[:300]
            return lambda: None
        try:
            _write_all(self._requests, request, self.STALL_SECONDS, self._fd, lambda: self._receive(block=False))
        except OSError as e:
            self.trouble = f"could not be asked for the outputs ({e.strerror or e})"
            self.close()
            return lambda: None

        def wait() -> dict[str, str] | None:
            while self._open and self._outputs is None:
                self._receive(block=True)
            return self._outputs

        return wait

    def close(self) -> None:
        """Stop listening; a helper still at work is stopped (what it has left is not needed)."""
        if not self._open:
            return
        self._open = False
        for fd in (self._fd, self._requests):
            try:
                if fd >= 0:
                    os.close(fd)
            except OSError:
                pass
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if not pid:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        except (ChildProcessError, ProcessLookupError, OSError):
            pass


def start(root: Any, cache_dir: Any, layout: tuple[int, int, int, str], raw_config: dict | None) -> Prefetch | None:
    """Fork the helper for the tree at ``root`` and the first layout (tp, ep, page size, attention
    backend): None where the platform cannot fork, on one core, or when ``SGLANG_BASELINE_NO_PREFETCH``
    is set (everything is then computed in this process)."""
    if not hasattr(os, "fork") or os.environ.get("SGLANG_BASELINE_NO_PREFETCH") or usable_cores() < 2:
        return None
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return None  # a thread may hold a lock (an import's) that the forked helper would wait on forever
    parent = os.getpid()
    r, w = os.pipe()  # results, to this process
    rq, wq = os.pipe()  # the request for the outputs, to the helper
    _widen(wq)
    try:
        pid = fork_child()
    except OSError:
        for fd in (r, w, rq, wq):
            os.close(fd)
        return None
    if pid:
        os.close(w)
        os.close(rq)
        return Prefetch(pid, r, wq)
    # the helper: never returns
    code = 0
    try:
        _die_with(parent)
        stdio_to_devnull()
        keep = sorted((w, rq))  # and nothing else the caller had open
        os.closerange(3, keep[0])
        os.closerange(keep[0] + 1, keep[1])
        os.closerange(keep[1] + 1, _max_fd())
        _serve(w, rq, root, cache_dir, layout, raw_config)
        _make_outputs(w, rq)
    except BaseException as e:
        code = 1
        try:
            _send(w, ("failed", f"{type(e).__name__}: {e}"[:300]))
        except BaseException:
            pass
    finally:
        os._exit(code)


def _die_with(parent: int) -> None:
    """Have the kernel stop this helper if the main process dies (Linux); else it would finish
    its work first."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before that took effect
        os._exit(0)


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (OSError, ValueError):
        return 1 << 16


def _frame(msg: tuple) -> bytes:
    data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _send(fd: int, msg: tuple) -> None:
    view = memoryview(_frame(msg))
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _write_all(fd: int, data: bytes, seconds: float, results: int = -1,
               drain: Callable[[], None] | None = None) -> None:
    """Write ``data`` to a pipe the helper drains, giving up (TimeoutError) after ``seconds``
    without progress.  Meanwhile ``drain()`` reads the helper's ``results`` pipe whenever it has
    something: a helper still reading may be blocked sending a result, not yet reading this."""
    view = memoryview(data)
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    if results >= 0 and drain is not None:
        poll.register(results, select.POLLIN)
    os.set_blocking(fd, False)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            ready = poll.poll(seconds * 1000)
            if not ready:
                raise TimeoutError(errno.ETIMEDOUT, "the helper does not read") from None
            if drain is not None and any(f == results for f, _ in ready):
                drain()


def _widen(fd: int) -> None:
    """A pipe that holds a large request at once (Linux; elsewhere the default is kept)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


def _unframe(buf: bytes) -> tuple[bytes, bytes] | None:
    """The first whole message in ``buf`` (its pickled bytes) and what follows it; None when
    ``buf`` does not hold one yet."""
    if len(buf) < _HEADER.size:
        return None
    (n,) = _HEADER.unpack_from(buf)
    if len(buf) < _HEADER.size + n:
        return None
    return buf[_HEADER.size:_HEADER.size + n], buf[_HEADER.size + n:]


def _read_message(fd: int) -> tuple | None:
    """One message from the pipe ``fd`` (blocking); None at its end."""
    buf = b""
    while True:
        got = _unframe(buf)
        if got is not None:
            return pickle.loads(got[0])
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return None
        buf += chunk


def _prepare_outputs() -> None:
    """Import pydantic and jinja2, build the output validators and load the template (~0.15 s)."""
    from . import serialize, summary  # noqa: F401  (serialize builds its validators on import)

    summary.compile_templates()  # (loaded from its compiled form, as a main process would)


def _make_outputs(fd: int, requests: int) -> None:
    """Make the output files the main process asks for (``report.make_outputs``), once ready."""
    from pathlib import Path

    from .report import make_outputs

    _prepare_outputs()  # (done already, unless the request came first)
    msg = _read_message(requests)
    if msg is None or msg[0] != "outputs":
        return  # the main process made them, or stopped
    _, impl, calls, data, output_dir, config_written = msg
    _send(fd, ("outputs", make_outputs(impl, calls, data, Path(output_dir), config_written)))


def _asked(requests: int) -> Callable[[], bool]:
    """Whether the main process has asked for its outputs (or closed the request pipe): its
    analysis is over, and no reading is wanted any more."""
    poll = select.poll()
    poll.register(requests, select.POLLIN)
    return lambda: bool(poll.poll(0))


def _serve(fd: int, requests: int, root: Any, cache_dir: Any, layout: tuple[int, int, int, str],
           raw_config: dict | None) -> None:
    import gc

    gc.disable()  # short-lived, like the main process (see cli.main)
    from pathlib import Path

    from .cache import ParseCache
    from .diagnostics import Diagnostics
    from .discovery import config_classes, mla_architectures, read_registrations
    from .index import Index, SourceTree

    # first what the main process needs first, before the imports the rest needs (the evaluator's)
    first = ["registrations", "config-classes", "mla-architectures"]
    _send(fd, ("keys", [(k,) for k in first], first))
    _send(fd, ("result", ("registrations",), (read_registrations(Path(root) / "sglang" / "srt"), {}, [])))
    cache = ParseCache(Path(cache_dir), defer_writes=True) if cache_dir is not None else None  # read, never written
    index = Index(SourceTree(Path(root)), Diagnostics(), cache)
    _send(fd, ("result", ("config-classes",), index.with_events(lambda: config_classes(index))))
    _send(fd, ("result", ("mla-architectures",), index.with_events(lambda: mla_architectures(index))))

    from .analysis import find_class, model_independent_readings
    from .catalog import load_catalog
    from .runtime import Layout

    catalog = load_catalog()
    tp, ep, page_size, backend = layout
    plan, likely, read = model_independent_readings(index, catalog, Layout(tp=tp, ep=ep, page_size=page_size,
                                                                          attention_backend=backend), raw_config)
    # "class-calls" counts as named in full from here: a class's calls are named just before the
    # class is sent, and the main process asks for a class's calls only after the class
    _send(fd, ("keys", [("find-class", name) for name, _ in plan], ["find-class", "class-calls"]))
    asked = _asked(requests)
    for i, (name, methods) in enumerate(plan):
        if asked():
            return  # the analysis is over: straight to its outputs
        if i == likely:  # what most models read is sent: get the outputs ready before the rest
            _prepare_outputs()
        cls, files, warned = index.with_events(lambda name=name: find_class(index, name))
        if cls is not None:
            _send(fd, ("keys", [("class-calls", cls.dotted, m) for m in methods], []))
        _send(fd, ("result", ("find-class", name), (cls, files, warned)))
        if cls is None:
            continue
        for m in methods:
            value, files, warned = index.with_events(lambda cls=cls, m=m: read(cls, m))
            _send(fd, ("result", ("class-calls", cls.dotted, m), (value, files, warned)))
    _send(fd, _DONE)
