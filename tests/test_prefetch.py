"""The forked helper of a one-model run: what it reads is what the run would read itself, and
a helper that fails or dies costs nothing but time."""

from __future__ import annotations

import os
import re
import signal
import sys
import time

import pytest

from sglang_baseline import fsutil, prefetch

from .conftest import DATA, run_cli


def _outputs(out) -> dict[str, str]:
    """Every output file, without timings and the output folder's own name."""
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name != ".sglang-baseline":
            text = p.read_text(encoding="utf-8").replace(str(out), "OUT")
            files[str(p.relative_to(out))] = re.sub(r'"seconds": [^,\n]+', "", text)
    return files


def _run(release, tmp_path, name: str, model: str, config: str | None = None):
    args = ["--model-name", model, "--sglang-path", str(release("0.5.23")), "--no-cache", "--quiet"]
    if config:
        args += ["--config", str(DATA / config)]
    r = run_cli(*args, output_dir=tmp_path / name)
    assert r.code == 0, r.err
    return _outputs(tmp_path / name)


@pytest.fixture
def taken(monkeypatch):
    """The keys the main process took from a helper, and the helpers it started (a helper
    needs a second usable core and no other thread running)."""
    threading = sys.modules.get("threading")
    if fsutil.usable_cores() < 2 or threading is not None and threading.active_count() > 1:
        pytest.skip("no helper here: one usable core, or threads running")
    monkeypatch.delenv("SGLANG_BASELINE_NO_PREFETCH", raising=False)
    got: list[tuple] = []
    helpers: list[prefetch.Prefetch] = []
    take, start, serialize = prefetch.Prefetch.take, prefetch.start, prefetch.Prefetch.serialize

    def counting_serialize(self, *a):  # output files the helper made count as ("outputs",)
        wait = serialize(self, *a)

        def waiting():
            files = wait()
            if files is not None:
                got.append(("outputs",))
            return files
        return waiting

    def counting_take(self, key):
        result = take(self, key)
        if result is not None:
            got.append(key)
        return result

    def recording_start(*a, **k):
        p = start(*a, **k)
        if p is not None:
            helpers.append(p)
        return p

    monkeypatch.setattr(prefetch.Prefetch, "take", counting_take)
    monkeypatch.setattr(prefetch.Prefetch, "serialize", counting_serialize)
    monkeypatch.setattr(prefetch, "start", recording_start)
    return got, helpers


@pytest.mark.parametrize("model, config", [("deepseek-v3", "deepseek-ai--DeepSeek-V3.json"), ("qwen3_next", None)])
def test_the_helper_reads_what_the_run_would_and_is_gone_after(release, tmp_path, monkeypatch, taken, model, config):
    got, helpers = taken
    with_helper = _run(release, tmp_path, "with", model, config)
    kinds = {k[0] for k in got}
    assert kinds == set(prefetch.Prefetch.KINDS) | {"outputs"}, got  # the JSON files and summary.md too
    assert helpers and all(_gone(h.pid) for h in helpers)
    monkeypatch.setenv("SGLANG_BASELINE_NO_PREFETCH", "1")
    got.clear()
    alone = _run(release, tmp_path, "alone", model, config)
    assert got == []
    assert with_helper == alone


def test_a_failing_or_dying_helper_changes_nothing(release, tmp_path, monkeypatch, taken):
    got, _ = taken
    monkeypatch.setenv("SGLANG_BASELINE_NO_PREFETCH", "1")
    alone = _run(release, tmp_path, "alone", "llama", "meta-llama--Meta-Llama-3.1-8B.json")
    monkeypatch.delenv("SGLANG_BASELINE_NO_PREFETCH")

    def fail(*a, **k):  # runs in the forked helper
        raise RuntimeError("helper broke")

    monkeypatch.setattr(prefetch, "_serve", fail)
    assert _run(release, tmp_path, "failed", "llama", "meta-llama--Meta-Llama-3.1-8B.json") == alone
    assert got == []
    r = run_cli("--model-name", "llama", "--sglang-path", str(release("0.5.23")), "--no-cache", "--verbose",
                output_dir=tmp_path / "verbose")
    assert r.code == 0 and "helper process failed: RuntimeError: helper broke; its work was done here" in r.err

    real_send = prefetch._send
    sent = []

    def die_after_two(fd, msg):  # the helper is killed mid-way, after its first result
        if len(sent) == 2:
            os._exit(9)
        sent.append(msg)
        real_send(fd, msg)

    monkeypatch.setattr(prefetch, "_serve", _serve_unpatched)
    monkeypatch.setattr(prefetch, "_send", die_after_two)
    assert _run(release, tmp_path, "died", "llama", "meta-llama--Meta-Llama-3.1-8B.json") == alone
    assert got == [("registrations",)]

    monkeypatch.setattr(prefetch, "_send", real_send)
    got.clear()

    def outputs_fail(fd, requests):  # its results sent, the helper fails at the outputs
        raise RuntimeError("no outputs")

    monkeypatch.setattr(prefetch, "_make_outputs", outputs_fail)
    assert _run(release, tmp_path, "no-outputs", "llama", "meta-llama--Meta-Llama-3.1-8B.json") == alone
    assert ("registrations",) in got and ("outputs",) not in got


_serve_unpatched = prefetch._serve


@pytest.mark.parametrize("helper", [True, False])
def test_an_output_record_that_does_not_validate_is_an_internal_error(release, tmp_path, monkeypatch, taken, helper):
    """The records are checked by pydantic where the JSON is made: in the helper, or here
    without one.  A bad record (a bug) fails the run either way, and no JSON is written."""
    from sglang_baseline import report

    got, _ = taken
    if not helper:
        monkeypatch.setenv("SGLANG_BASELINE_NO_PREFETCH", "1")
    build = report.build_implementation

    def broken(*a, **k):
        impl = build(*a, **k)
        impl.definitions[0].concrete = "maybe"  # not a bool
        return impl

    monkeypatch.setattr(report, "build_implementation", broken)
    r = run_cli("--model-name", "llama", "--sglang-path", str(release("0.5.23")), "--no-cache",
                output_dir=tmp_path / "out")
    assert r.code == 1 and "internal error: ValidationError" in r.err and "concrete" in r.err, r.err
    assert not (tmp_path / "out" / "sglang_implementation.json").exists()
    assert ("outputs",) not in got and (("registrations",) in got) == helper


def test_a_stuck_helper_is_stopped_and_its_work_done_here(release, tmp_path, monkeypatch, taken):
    got, helpers = taken
    monkeypatch.setenv("SGLANG_BASELINE_NO_PREFETCH", "1")
    alone = _run(release, tmp_path, "alone", "llama")
    monkeypatch.delenv("SGLANG_BASELINE_NO_PREFETCH")
    real_send = prefetch._send

    def stall_after_promising(fd, msg):  # in the helper: names what it will send, then hangs
        real_send(fd, msg)
        if msg[0] == "keys":
            time.sleep(3600)

    monkeypatch.setattr(prefetch, "_send", stall_after_promising)
    monkeypatch.setattr(prefetch.Prefetch, "STALL_SECONDS", 1)

    def hung(signum, frame):  # a main process waiting forever fails the test instead of hanging it
        raise TimeoutError("the main process waited on a stuck helper")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        assert _run(release, tmp_path, "stuck", "llama") == alone
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert got == [] and helpers and all(_gone(h.pid) for h in helpers)


def test_the_helper_is_stopped_when_the_run_ends_before_the_analysis(release, tmp_path, monkeypatch, taken):
    _, helpers = taken
    import sglang_baseline.analysis as analysis

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(analysis, "analyse", interrupted)
    r = run_cli("--model-name", "llama", "--sglang-path", str(release("0.5.23")), "--no-cache", "--quiet",
                output_dir=tmp_path / "out")
    assert r.code != 0 and "interrupted" in r.err
    assert helpers and all(_gone(h.pid) for h in helpers)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_helper_still_reading_when_the_outputs_are_asked_for_stops_and_makes_them(release, tmp_path, monkeypatch,
                                                                                     taken):
    """The backends of other attention architectures come last in the helper's plan (only some
    models read them). Asked for the outputs meanwhile, it reads no further: the analysis is over."""
    import sglang_baseline.analysis as analysis

    got, _ = taken
    monkeypatch.setenv("SGLANG_BASELINE_NO_PREFETCH", "1")
    alone = _run(release, tmp_path, "alone", "llama")
    monkeypatch.delenv("SGLANG_BASELINE_NO_PREFETCH")
    index = analysis.Index(analysis.SourceTree(release("0.5.23")))
    plan, likely, _ = analysis.model_independent_readings(index, analysis.load_catalog(), analysis.Layout(), None)
    rest = [name for name, _ in plan[likely:]]
    assert len(rest) >= 2
    real_find, log, asking = analysis.find_class, tmp_path / "found.log", tmp_path / "asking"
    real_serialize = prefetch.Prefetch.serialize

    def slow_rest(index, name):  # in the helper: the first of the rest is looked up until asked
        with open(log, "a") as fh:
            fh.write(name + "\n")
        deadline = time.monotonic() + 60
        while name == rest[0] and not asking.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return real_find(index, name)

    def marked_serialize(self, *a):  # in the main process: it has asked for its outputs
        wait = real_serialize(self, *a)
        asking.write_text("")
        return wait

    monkeypatch.setattr(analysis, "find_class", slow_rest)
    monkeypatch.setattr(prefetch.Prefetch, "serialize", marked_serialize)
    assert _run(release, tmp_path, "asked", "llama") == alone
    assert ("outputs",) in got
    found = log.read_text().split()
    assert rest[0] in found and not set(rest[1:]) & set(found), found  # it stopped after the first


def test_asking_a_helper_blocked_on_its_results_pipe_drains_that_pipe_meanwhile():
    """A request larger than its pipe, to a helper that first sends more results than fit in
    theirs: the main process must read those results while it writes, or each waits on the other."""
    results_r, results_w = os.pipe()
    requests_r, requests_w = os.pipe()
    size = 1 << 20  # more than either pipe holds (64 KiB unless widened)
    pid = os.fork()
    if pid == 0:  # the helper: its results first, then the request
        try:
            os.close(results_r)
            os.close(requests_w)
            view = memoryview(b"r" * size)
            while view:
                view = view[os.write(results_w, view):]
            got = 0
            while got < size:
                got += len(os.read(requests_r, 1 << 16))
        finally:
            os._exit(0)
    os.close(results_w)
    os.close(requests_r)
    drained = []
    try:
        prefetch._write_all(requests_w, b"q" * size, 10, results_r,
                            lambda: drained.append(len(os.read(results_r, 1 << 20))))
    finally:
        os.close(requests_w)
        os.close(results_r)
        os.waitpid(pid, 0)
    assert sum(drained) > 0  # it read the helper's results to get its request through
