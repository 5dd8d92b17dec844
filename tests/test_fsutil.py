"""Output sets: atomic replacement, and identical sets left untouched."""

from __future__ import annotations

import os
import time

from sglang_baseline import fsutil
from sglang_baseline.fsutil import run_detached, write_output_set

FILES = {
    "kernel_calls.json": "[]\n",
    "summary.md": "# summary\n",
    "code_snippets/INDEX.md": "- a.py\n",
    "code_snippets/modules/a.py": "x = 1\n",
    "code_snippets/.sglang-baseline": "ours\n",
}


def _mtimes(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.name != ".sglang-baseline"}


def test_identical_set_is_not_rewritten(tmp_path):
    out = tmp_path / "out"
    write_output_set(out, FILES)
    before = _mtimes(out)
    write_output_set(out, FILES)
    assert _mtimes(out) == before


def test_a_touched_file_triggers_a_rewrite(tmp_path):
    out = tmp_path / "out"
    write_output_set(out, FILES)
    os.utime(out / "summary.md", ns=(1, 1))
    write_output_set(out, FILES)
    assert (out / "summary.md").stat().st_mtime_ns != 1


def test_edited_missing_or_extra_files_trigger_a_rewrite(tmp_path):
    out = tmp_path / "out"
    write_output_set(out, FILES)
    (out / "kernel_calls.json").write_text("[1]\n")
    (out / "code_snippets" / "modules" / "a.py").unlink()
    (out / "code_snippets" / "stray.py").write_text("junk\n")
    write_output_set(out, FILES)
    assert (out / "kernel_calls.json").read_text() == "[]\n"
    assert (out / "code_snippets" / "modules" / "a.py").read_text() == "x = 1\n"
    assert not (out / "code_snippets" / "stray.py").exists()


def test_a_changed_set_replaces_the_old_one(tmp_path):
    out = tmp_path / "out"
    write_output_set(out, FILES)
    changed = dict(FILES)
    del changed["code_snippets/modules/a.py"]
    changed["code_snippets/modules/b.py"] = "y = 2\n"
    write_output_set(out, changed)
    assert not (out / "code_snippets" / "modules" / "a.py").exists()
    assert (out / "code_snippets" / "modules" / "b.py").read_text() == "y = 2\n"


def _state(pid: int) -> str:
    """The process's state letter (Z: exited, not yet reaped), '' once it is gone."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def test_detached_work_runs_and_its_forking_child_is_reaped_later(tmp_path):
    done = tmp_path / "done"
    assert run_detached(lambda: done.write_text("yes"))
    deadline = time.monotonic() + 30
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert done.read_text() == "yes"
    # the caller did not wait for the child that forked the worker; it is left exited...
    pid = fsutil._UNREAPED[-1]
    while _state(pid) not in ("Z", "") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _state(pid) == "Z"
    # ... until the next call reaps it
    assert run_detached(lambda: None)
    assert pid not in fsutil._UNREAPED
    assert _state(pid) == ""


def test_after_exit_work_waits_for_its_caller_to_exit(tmp_path):
    """The parse-cache writer of an --all worker must not start (and copy the worker's pages)
    while the worker still runs: it starts when the worker has exited."""
    seen = tmp_path / "seen"
    caller = os.fork()
    if caller == 0:  # the caller: hands the work off, lives on a little, exits
        try:
            me = os.getpid()
            run_detached(lambda: seen.write_text("holds memory" if _has_memory(me) else "memory released"),
                         after_exit=True)
            time.sleep(0.5)
        finally:
            os._exit(0)
    deadline = time.monotonic() + 30
    while not seen.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.waitpid(caller, 0)
    assert seen.read_text() == "memory released"


def _has_memory(pid: int) -> bool:
    """Whether the process still has its address space (an exiting one releases it before it
    closes its files, which is what the detached work waits for)."""
    try:
        return "VmRSS:" in open(f"/proc/{pid}/status").read()
    except OSError:
        return False


def test_after_exit_work_starts_when_a_living_caller_releases_it(tmp_path):
    done = tmp_path / "done"
    assert run_detached(lambda: done.write_text("yes"), after_exit=True)
    time.sleep(0.3)
    assert not done.exists()  # held: this process has not exited
    fsutil.release_detached()
    deadline = time.monotonic() + 30
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert done.read_text() == "yes"
