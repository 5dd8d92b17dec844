"""Atomic file writes (a temporary file in the same folder, then a rename), and the process helpers
the tool forks (detached writers, the prefetch helper)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

OWNED_FILES = ("sglang_implementation.json", "kernel_calls.json", "model_definition.json", "model_config.json",
               "summary.md")
SNIPPETS = "code_snippets"
MARKER = ".sglang-baseline"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` so that readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


_UNREAPED: list[int] = []
_HELD: list[int] = []  # write ends of the pipes detached workers wait on (see run_detached)
AFTER_EXIT_WAIT_SECONDS = 60.0


def run_detached(work: Callable[[], None], after_exit: bool = False) -> bool:
    """Run ``work`` in a detached grandchild process (its stdio on /dev/null) and return at once.

    False when the platform cannot fork; the caller then does the work itself.  The
    grandchild is re-parented, so nothing waits for it.  Nor does the caller wait for the
    child that forks it (~10 ms of forking and exiting a large process, usually just before
    the caller exits): an exited child is reaped by the next call, or adopted by init when
    the caller exits first.

    With ``after_exit``, the grandchild starts ``work`` only once the caller has exited (or
    called ``release_detached``; at most AFTER_EXIT_WAIT_SECONDS).  Until then it touches
    nothing, so it shares every page with the caller; working at once, it would copy each
    page that its reading changes (reference counts), the whole heap of an ``--all`` worker
    whose parse cache it pickles, while that worker still holds its own.
    """
    if not hasattr(os, "fork"):
        return False
    _reap()
    gate = os.pipe() if after_exit else None
    try:
        pid = fork_child()
    except OSError:
        if gate is not None:
            os.close(gate[0])
            os.close(gate[1])
        return False
    if pid:
        _UNREAPED.append(pid)
        if gate is not None:
            os.close(gate[0])
            _HELD.append(gate[1])  # closed when this process exits: the grandchild's signal
        return True
    try:  # the child: fork the worker and leave
        try:
            if os.fork():
                os._exit(0)
        except OSError:
            pass  # no grandchild: do the work here
        for fd in _HELD + ([gate[1]] if gate is not None else []):
            os.close(fd)  # only the caller's own copies may keep a gate open
        _HELD.clear()
        stdio_to_devnull()
        if gate is not None:
            _wait_closed(gate[0], AFTER_EXIT_WAIT_SECONDS)
        work()
    finally:
        os._exit(0)


def release_detached() -> None:
    """Let the detached workers waiting for this process's exit start now (it lives on)."""
    while _HELD:
        try:
            os.close(_HELD.pop())
        except OSError:
            pass


def _wait_closed(fd: int, seconds: float) -> None:
    """Wait until every write end of the pipe ``fd`` reads from is closed (EOF), or ``seconds``."""
    import select

    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:  # (an interrupted select or read is retried by Python itself)
            ready, _, _ = select.select([fd], [], [], left)
            if ready and not os.read(fd, 4096):
                return
        except OSError:
            return


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container or ``taskset`` may allow
    fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def fork_child() -> int:
    """``os.fork()`` for a helper process: the caller's buffered output is flushed first (or the
    child would write it again), and SIGINT is held until the child has its own handling (the
    default: it dies).  A Ctrl-C landing between the fork and the child's first ``try`` would
    otherwise raise KeyboardInterrupt into the caller's code, running on in the child."""
    sys.stdout.flush()
    sys.stderr.flush()
    hold = hasattr(signal, "pthread_sigmask")
    if hold:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        return pid
    finally:
        if hold:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def stdio_to_devnull() -> None:
    """In a helper process: stdin, stdout and stderr on /dev/null (nothing is printed into the
    caller's output, and the caller's pipes are not held open)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _reap() -> None:
    for pid in list(_UNREAPED):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _UNREAPED.remove(pid)


def encode_outputs(files: Mapping[str, str | bytes]) -> dict[str, bytes]:
    """The files as UTF-8 bytes: encoded once, then hashed, written and cached as they are."""
    return {rel: text.encode("utf-8") if isinstance(text, str) else text for rel, text in files.items()}


def write_output_set(output_dir: Path, files: Mapping[str, str | bytes]) -> str:
    """Write an analysis's files: each top-level file atomically, code_snippets/ as one folder swap;
    returns the set's digest (``output_set_digest``).

    Files of ours that this run does not produce (model_config.json without --config) are
    removed; anything else in the folder is left alone.  A code_snippets/ folder that this
    tool did not write is never replaced.
    """
    from .errors import OutputError

    files = encode_outputs(files)
    digest = output_set_digest(files)
    if is_current(output_dir, digest):
        return digest
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / SNIPPETS
    if final.exists() and not (final / MARKER).is_file() and any(final.iterdir()):
        raise OutputError(f"{final} exists and was not written by sglang-baseline; not replacing it")
    staging = Path(tempfile.mkdtemp(prefix=".code_snippets-", dir=str(output_dir)))
    try:
        _write_tree(staging, {rel[len(SNIPPETS) + 1:]: text for rel, text in files.items()
                              if rel.startswith(SNIPPETS + "/")})
        for rel, text in files.items():
            if not rel.startswith(SNIPPETS + "/") and rel != "summary.md":
                write_atomic(output_dir / rel, text)
        ours = (output_dir / MARKER).is_file() or (final / MARKER).is_file()
        for name in OWNED_FILES:
            if name not in files and ours and (output_dir / name).is_file():
                (output_dir / name).unlink()
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=".old-snippets-", dir=str(output_dir)))
            os.replace(final, old / "x")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # the summary last: an agent that sees it can read everything else
    if "summary.md" in files:
        write_atomic(output_dir / "summary.md", files["summary.md"])
    _record(output_dir, files, digest)
    return digest


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    """Write many small files into a fresh private folder.

    Plain ``os`` calls, each folder made once: ``Path.write_text`` with
    ``mkdir(exist_ok=True)`` per file costs ~8x more, which a ``--all`` run
    (~6,000 snippet files) pays in full.
    """
    made = {""}
    base = str(root)
    for rel, text in files.items():
        folder = rel.rpartition("/")[0]
        if folder not in made:
            os.makedirs(os.path.join(base, folder), exist_ok=True)
            made.add(folder)
        fd = os.open(os.path.join(base, rel), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)  # less the umask
        try:
            data = memoryview(text)
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)


# The folder's own marker records what was written (a digest of the whole set, and each
# file's size and times), so that rewriting an identical set can be skipped: a warm
# ``--all`` would otherwise rewrite ~6,000 unchanged snippet files.

def output_set_digest(files: Mapping[str, str | bytes]) -> str:
    # SHA-256: OpenSSL's runs at twice BLAKE2b's speed on CPUs with SHA extensions, and a
    # --all run hashes ~190 MB of outputs
    h = hashlib.sha256()
    data = encode_outputs(files)
    for rel in sorted(data):
        h.update(rel.encode())
        h.update(b"\0")
        h.update(data[rel])
        h.update(b"\0")
    return h.hexdigest()[:32]


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _record(output_dir: Path, files: dict[str, str], digest: str) -> None:
    try:
        stamps = {rel: _stamp(os.stat(output_dir / rel)) for rel in files}
    except OSError:
        return
    state = {"note": "written by sglang-baseline; replaced on every run", "digest": digest, "files": stamps}
    try:
        write_atomic(output_dir / MARKER, json.dumps(state, sort_keys=True) + "\n")
    except OSError:
        pass


def is_current(output_dir: Path, digest: str) -> bool:
    """True when the folder holds exactly the set with this digest, untouched since this tool wrote it."""
    try:
        state = json.loads((output_dir / MARKER).read_text(encoding="utf-8"))
        if not isinstance(state, dict) or state.get("digest") != digest:
            return False
        recorded = state.get("files")
        if not isinstance(recorded, dict):
            return False
        for rel, stamp in recorded.items():
            if _stamp(os.stat(output_dir / rel)) != stamp:
                return False
        present = {f"{SNIPPETS}/{p.relative_to(output_dir / SNIPPETS).as_posix()}"
                   for p in (output_dir / SNIPPETS).rglob("*") if not p.is_dir()}
    except (OSError, ValueError):
        return False
    return present == {rel for rel in recorded if rel.startswith(SNIPPETS + "/")}
