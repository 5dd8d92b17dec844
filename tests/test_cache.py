"""The parse cache and the result cache: keyed by content, shared safely, never stale."""

from __future__ import annotations

import ast
import json
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

from sglang_baseline.cache import ParseCache

from .conftest import norm_model, run_cli, synthetic_tree
from .test_hostile import add_model, tiny


def _entries(cache: ParseCache) -> list[Path]:
    return sorted(cache.dir.rglob("*.pickle")) if cache.dir.exists() else []


def test_entries_round_trip_and_unknown_digests_miss(tmp_path):
    cache = ParseCache(tmp_path)
    tree = ast.parse("x = 1\n")
    cache.put("ab" * 16, tree)
    got = cache.get("ab" * 16)
    assert isinstance(got, ast.Module) and ast.dump(got) == ast.dump(tree)
    assert cache.get("cd" * 16) is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_damaged_entry_is_a_miss(tmp_path):
    cache = ParseCache(tmp_path)
    cache.put("ab" * 16, ast.parse("x = 1\n"))
    _entries(cache)[0].write_bytes(b"not a pickle")
    assert cache.get("ab" * 16) is None
    _entries(cache)[0].write_bytes(__import__("pickle").dumps(["not", "an", "ast"]))
    assert cache.get("ab" * 16) is None


def test_deferred_writes_land_on_flush_and_in_the_background(tmp_path):
    cache = ParseCache(tmp_path / "a", defer_writes=True)
    cache.put("ab" * 16, ast.parse("x = 1\n"))
    assert _entries(cache) == []
    cache.flush()
    assert len(_entries(cache)) == 1

    bg = ParseCache(tmp_path / "b", defer_writes=True)
    for i in range(5):
        bg.put(f"{i:02d}" * 16, ast.parse(f"x = {i}\n"))
    bg.flush(background=True)
    deadline = time.monotonic() + 30
    while len(_entries(bg)) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_entries(bg)) == 5
    assert ast.dump(ParseCache(tmp_path / "b").get("03" * 16)) == ast.dump(ast.parse("x = 3\n"))


def _hammer(root: str, seed: int) -> int:
    cache = ParseCache(Path(root))
    bad = 0
    for i in range(60):
        digest = f"{(i + seed) % 12:02d}" * 16
        cache.put(digest, ast.parse(f"value = {(i + seed) % 12}\n" * 50))
        got = cache.get(f"{(i * 7) % 12:02d}" * 16)
        if got is not None and ast.dump(got) != ast.dump(ast.parse(f"value = {(i * 7) % 12}\n" * 50)):
            bad += 1
    return bad


def test_two_processes_sharing_the_cache_never_read_half_an_entry(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        bad = pool.starmap(_hammer, [(str(tmp_path), 0), (str(tmp_path), 5)])
    assert bad == [0, 0]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_an_edited_file_is_never_served_from_either_cache(tree, tmp_path):
    """Same size, same modification time, other content: both caches must notice."""
    helper = tree / "sglang" / "srt" / "layers" / "tiny_width.py"
    helper.write_text("WIDTH = 2\n")
    add_model(tree, "tiny", tiny(imports="from sglang.srt.layers.tiny_width import WIDTH",
                                 body="self.wide = RMSNorm(config.hidden_size * WIDTH)"))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"architectures": ["TinyForCausalLM"], "model_type": "tiny", "hidden_size": 64,
                                  "num_hidden_layers": 1, "rms_norm_eps": 1e-6}))

    def names() -> tuple[set[str], str]:
        r = run_cli("--model-name", "tiny", "--sglang-path", str(tree), "--config", str(config),
                    "--cache-dir", str(tmp_path / "cache"), output_dir=tmp_path / "out")
        assert r.code == 0, r.err
        calls = json.loads((tmp_path / "out" / "kernel_calls.json").read_text())
        return {c["flashinfer_equivalent"] for c in calls}, r.err

    first, _ = names()
    assert {"rmsnorm_h64", "rmsnorm_h128"} <= first
    again, err = names()
    assert again == first and "result cache" in err

    st = helper.stat()
    helper.write_text("WIDTH = 3\n")
    os.utime(helper, ns=(st.st_atime_ns, st.st_mtime_ns))
    edited, err = names()
    assert "result cache" not in err
    assert "rmsnorm_h192" in edited and "rmsnorm_h128" not in edited


def test_result_cache_restores_a_deleted_folder_and_survives_damage(tree, tmp_path):
    add_model(tree, "tiny", tiny())
    out = tmp_path / "out"

    def run():
        r = run_cli("--model-name", "tiny", "--sglang-path", str(tree), "--cache-dir", str(tmp_path / "cache"),
                    output_dir=out)
        assert r.code == 0, r.err
        return r.err

    run()
    expected = (out / "kernel_calls.json").read_text()
    shutil.rmtree(out)
    assert "result cache" in run()
    assert (out / "kernel_calls.json").read_text() == expected and (out / "summary.md").is_file()

    bodies = list((tmp_path / "cache").rglob("*.outputs"))
    assert bodies
    stored = bodies[0].read_bytes()
    damages = [stored[:-1],  # cut short
               stored[:-3] + b"xyz",  # same lengths, other bytes: the digest differs
               b'[["kernel_calls.json", 7]]\ndamaged',  # well formed, but not the set recorded
               b'[["kernel_calls.json", 7], ["summary.md", -7]]\n',  # lengths that cancel out
               b"not an index\n" + stored]
    for damaged in damages:
        bodies[0].write_bytes(damaged)
        shutil.rmtree(out)
        assert "result cache" not in run()  # the damaged entry is a miss: analysed again
        assert (out / "kernel_calls.json").read_text() == expected


def test_all_never_serves_a_model_whose_shared_dependency_changed(tmp_path):
    # Two models import a layer through a guarded import; in --all the guard is decided while
    # analysing the first and reused for the second, so only a whole-tree key sees the flag
    # change for both.
    files = {
        "layers/flags.py": "USE_A = True\n",
        "layers/impl.py": "from sglang.srt.layers.flags import USE_A\n\nif USE_A:\n"
                          "    from sglang.srt.layers.impl_a import RMSNorm\nelse:\n"
                          "    from sglang.srt.layers.impl_b import RMSNorm\n",
        "models/m1.py": norm_model("M1", "sglang.srt.layers.impl"),
        "models/m2.py": norm_model("M2", "sglang.srt.layers.impl"),
    }
    for name, kernel in (("impl_a", "rmsnorm"), ("impl_b", "gemma_rmsnorm")):
        files[f"layers/{name}.py"] = (
            f"from torch import nn\nfrom sgl_kernel import {kernel}\n\n\nclass RMSNorm(nn.Module):\n"
            f"    def __init__(self, hidden_size):\n        super().__init__()\n\n"
            f"    def forward(self, x):\n        return {kernel}(x, self.weight, 1e-6)\n")
    srt = synthetic_tree(tmp_path / "tree", files) / "sglang" / "srt"

    def kernels() -> dict[str, set[str]]:
        r = run_cli("--all", "--sglang-path", str(tmp_path / "tree"), "--jobs", "1", "--cache-dir",
                    str(tmp_path / "cache"), "--quiet", output_dir=tmp_path / "out")
        assert r.code == 0, r.err
        return {m: {k["kernel"] for k in json.loads((tmp_path / "out" / f"{m}ForCausalLM" / "kernel_calls.json")
                                                     .read_text())} for m in ("M1", "M2")}

    assert kernels() == {"M1": {"sgl_kernel.rmsnorm"}, "M2": {"sgl_kernel.rmsnorm"}}
    (srt / "layers" / "flags.py").write_text("USE_A = False\n")
    assert kernels() == {"M1": {"sgl_kernel.gemma_rmsnorm"}, "M2": {"sgl_kernel.gemma_rmsnorm"}}


def test_all_workers_write_their_parse_cache_when_they_exit(tmp_path):
    files = {"layers/norm.py": "from torch import nn\n\n\nclass RMSNorm(nn.Module):\n    def forward(self, x):\n"
                               "        return x\n",
             "models/m1.py": norm_model("M1", "sglang.srt.layers.norm"),
             "models/m2.py": norm_model("M2", "sglang.srt.layers.norm")}
    synthetic_tree(tmp_path / "tree", files)
    r = run_cli("--all", "--sglang-path", str(tmp_path / "tree"), "--jobs", "2", "--cache-dir", str(tmp_path / "cache"),
                "--quiet", output_dir=tmp_path / "out")
    assert r.code == 0, r.err
    cache = ParseCache(tmp_path / "cache")
    deadline = time.monotonic() + 20  # written from detached processes after the run
    while time.monotonic() < deadline and len(_entries(cache)) < 3:
        time.sleep(0.1)
    assert len(_entries(cache)) >= 3  # norm.py and both model files (each worker writes what it parsed)


def test_summary_template_is_compiled_once_and_recompiled_when_damaged(tmp_path, monkeypatch):
    import jinja2

    from sglang_baseline import summary

    compiles = []
    real_compile = jinja2.Environment.compile

    def counting(self, *a, **k):
        compiles.append(1)
        return real_compile(self, *a, **k)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)

    def code(folder):
        return summary._make_env(folder).get_template("summary.md.j2").root_render_func.__code__.co_code

    fresh = code(tmp_path / "c")
    stored = list((tmp_path / "c").iterdir())
    assert len(compiles) == 1 and len(stored) == 1
    assert code(tmp_path / "c") == fresh and len(compiles) == 1  # loaded, not compiled
    stored[0].write_bytes(stored[0].read_bytes()[:40])  # cut inside the checksum pickle
    assert code(tmp_path / "c") == fresh and len(compiles) == 2
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert code(tmp_path / "d") == fresh and not (tmp_path / "d").exists()
