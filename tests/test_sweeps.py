"""The coverage sweep over every release (on a sample) and --all: no crash, every model accounted for."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, cache_root, norm_model, run_cli, synthetic_tree


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_coverage_sweep_on_a_sample_of_each_release(tmp_path):
    sweep = _load_script("coverage_sweep")
    out = tmp_path / "COVERAGE.md"
    code = sweep.main(["--sample", "6", "--cache", str(cache_root()), "--output", str(out)])
    text = out.read_text()
    assert code == 0, text
    for v in ("0.4.6", "0.5.6", "0.5.23"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {v} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "6" and cells[2] == "6" and cells[5] == "0", row  # classes, analysed, crashed
    assert "the ten most common unresolved constructs" in text


def test_all_writes_every_model_and_an_index(release, tmp_path):
    root = release("0.4.6")
    out = tmp_path / "all"
    r = run_cli("--all", "--sglang-path", str(root), "--jobs", "2", "--cache-dir", str(tmp_path / "c"),
                "--config-dir", str(REPO / "tests" / "data"), "--quiet", output_dir=out)
    assert r.code == 0, r.err
    index = json.loads((out / "index.json").read_text())
    rows = index["models"]
    count = sum(1 for p in (root / "sglang" / "srt" / "models").glob("*.py")
                for line in p.read_text(encoding="utf-8-sig").splitlines() if line.startswith("EntryClass"))
    assert len(rows) >= count  # one row per registered class (lists register several)
    assert all(r["status"] == "ok" for r in rows), [r for r in rows if r["status"] != "ok"]
    llama = next(r for r in rows if r["model"] == "LlamaForCausalLM")
    assert llama["config"].endswith("meta-llama--Meta-Llama-3.1-8B.json")
    names = {k["flashinfer_equivalent"] for k in json.loads((out / "LlamaForCausalLM" / "kernel_calls.json").read_text())}
    gqa = "gqa_paged_decode_h32_kv8_d128_ps1"
    assert gqa in names
    assert (out / "index.md").read_text().count("| [") == len(rows)
    # a second run is served from the result cache and gives the same index
    r2 = run_cli("--all", "--sglang-path", str(root), "--jobs", "2", "--cache-dir", str(tmp_path / "c"),
                 "--config-dir", str(REPO / "tests" / "data"), "--quiet", output_dir=out)
    assert r2.code == 0
    rows2 = json.loads((out / "index.json").read_text())["models"]
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(rows2) == strip(rows)
    # the result cache keeps only the digest of --all's outputs: a model whose folder is gone
    # or was edited is analysed again, and gives the same files
    assert not list((tmp_path / "c").rglob("*.outputs"))
    mixtral = (out / "MixtralForCausalLM" / "kernel_calls.json").read_text()
    shutil.rmtree(out / "LlamaForCausalLM")
    (out / "MixtralForCausalLM" / "kernel_calls.json").write_text("[]")
    r3 = run_cli("--all", "--sglang-path", str(root), "--jobs", "2", "--cache-dir", str(tmp_path / "c"),
                 "--config-dir", str(REPO / "tests" / "data"), "--quiet", output_dir=out)
    assert r3.code == 0, r3.err
    assert strip(json.loads((out / "index.json").read_text())["models"]) == strip(rows)
    assert gqa in {k["flashinfer_equivalent"] for k in json.loads((out / "LlamaForCausalLM" / "kernel_calls.json").read_text())}
    assert (out / "MixtralForCausalLM" / "kernel_calls.json").read_text() == mixtral


def _norm_layer(forward_body: str, imports: str = "") -> str:
    return ("from torch import nn\nfrom sgl_kernel import gemma_rmsnorm, rmsnorm\n" + imports +
            "\n\nclass RMSNorm(nn.Module):\n    def __init__(self, hidden_size, gemma=False):\n"
            "        super().__init__()\n\n    def forward(self, x):\n" + forward_body)


def _model(name: str, body: str, imports: str = "") -> str:
    return (f"from torch import nn\nfrom sglang.srt.layers.norm import RMSNorm\n{imports}\n\n"
            f"class {name}ForCausalLM(nn.Module):\n    def __init__(self, config, quant_config=None, prefix=''):\n"
            f"        super().__init__()\n{body}\n    def forward(self, x):\n        return self.norm(x)\n\n\n"
            f"EntryClass = {name}ForCausalLM\n")


def _outputs(out: Path, model: str) -> dict:
    impl = json.loads((out / f"{model}ForCausalLM" / "sglang_implementation.json").read_text())
    kernels = sorted({k["kernel"] for k in json.loads((out / f"{model}ForCausalLM" / "kernel_calls.json").read_text())})
    return {"kernels": kernels, "files_parsed": impl["stats"]["files_parsed"],
            "warnings": sorted((w["kind"], w["location"], w["message"]) for w in impl["warnings"])}


def _all_and_alone(tmp_path: Path, models: list[str]) -> tuple[dict, dict]:
    """Each model's outputs from one --all process (one worker: readings are shared) and alone."""
    r = run_cli("--all", "--sglang-path", str(tmp_path / "tree"), "--jobs", "1", "--no-cache", "--quiet",
                output_dir=tmp_path / "all")
    assert r.code == 0, r.err
    together = {m: _outputs(tmp_path / "all", m) for m in models}
    alone = {}
    for m in models:
        r = run_cli("--model-name", f"{m}ForCausalLM", "--sglang-path", str(tmp_path / "tree"), "--no-cache",
                    "--quiet", output_dir=tmp_path / "alone" / f"{m}ForCausalLM")
        assert r.code == 0, r.err
        alone[m] = _outputs(tmp_path / "alone", m)
    return together, alone


def test_all_shares_a_leaf_reading_only_between_leaves_in_the_same_state(tmp_path):
    # three models hold the same leaf class (RMSNorm, a catalog leaf) built with different
    # arguments; its forward picks its kernel by one of them
    forward = ("        if self.gemma:\n            y = gemma_rmsnorm(x, self.weight, 1e-6)\n"
               "        else:\n            y = rmsnorm(x, self.weight, 1e-6)\n        return y\n")
    synthetic_tree(tmp_path / "tree", {
        "layers/norm.py": _norm_layer(forward),
        "models/m1.py": _model("M1", "        self.norm = RMSNorm(config.hidden_size)\n"),
        "models/m2.py": _model("M2", "        self.norm = RMSNorm(config.hidden_size, gemma=True)\n"),
        "models/m3.py": _model("M3", "        self.norm = RMSNorm(config.hidden_size, gemma=False)\n"),
    })
    together, alone = _all_and_alone(tmp_path, ["M1", "M2", "M3"])
    assert together == alone
    assert together["M1"]["kernels"] == together["M3"]["kernels"] == ["sgl_kernel.rmsnorm"]
    assert together["M2"]["kernels"] == ["sgl_kernel.gemma_rmsnorm"]


def test_all_gives_a_shared_reading_the_files_and_warnings_of_what_it_reused(tmp_path):
    # The leaf's forward calls a kernel chosen at module level in another file, by a function
    # from a third file (with an unresolvable name in the call).  The first model computes that
    # value in its own constructor, so when its leaf is read the value is remembered; the second
    # model reuses the reading and must still count env.py as read and get the warning, as when
    # it is analysed alone.
    synthetic_tree(tmp_path / "tree", {
        "layers/env.py": "from sgl_kernel import rmsnorm\n\n\ndef pick(default):\n    return rmsnorm\n",
        "layers/flags.py": "from sglang.srt.layers.env import pick\n\nnorm_kernel = pick(no_such_name)\n",
        "layers/norm.py": _norm_layer("        return norm_kernel(x, self.weight, 1e-6)\n",
                                      "from sglang.srt.layers.flags import norm_kernel\n"),
        # the larger file is analysed first
        "models/m1.py": _model("M1", "        self.norm = RMSNorm(config.hidden_size)\n"
                                     "        self.kernel = norm_kernel\n" + "        # padding\n" * 40,
                               "from sglang.srt.layers.flags import norm_kernel\n"),
        "models/m2.py": _model("M2", "        self.norm = RMSNorm(config.hidden_size)\n"),
    })
    together, alone = _all_and_alone(tmp_path, ["M1", "M2"])
    assert together == alone
    assert together["M2"]["kernels"] == ["sgl_kernel.rmsnorm"]
    assert any(kind == "unresolved-name" and where.startswith("layers/flags.py")
               for kind, where, _m in alone["M2"]["warnings"]), alone["M2"]["warnings"]


def test_all_counts_the_files_a_remembered_name_lookup_read_for_every_model(tmp_path):
    # Block's constructor calls a function imported through a module that only re-exports it:
    # resolving the name reads that module.  The first model's lookup is remembered; the second
    # model uses it, and must still count the re-exporting file as read, as when alone.
    block = ("from torch import nn\nfrom sglang.srt.layers.reexport import width_of\n\n\n"
             "class Block(nn.Module):\n    def __init__(self, config):\n        super().__init__()\n"
             "        self.width = width_of(config)\n\n    def forward(self, x):\n        return x\n")
    synthetic_tree(tmp_path / "tree", {
        "layers/impl.py": "def width_of(config):\n    return config.hidden_size * 2\n",
        "layers/reexport.py": "from sglang.srt.layers.impl import width_of\n",
        "layers/block.py": block,
        "models/m1.py": _model("M1", "        self.block = Block(config)\n" + "        # padding\n" * 40,
                               "from sglang.srt.layers.block import Block\n"),
        "models/m2.py": _model("M2", "        self.block = Block(config)\n", "from sglang.srt.layers.block import Block\n"),
    })
    together, alone = _all_and_alone(tmp_path, ["M1", "M2"])
    assert together == alone
    files = json.loads((tmp_path / "all" / "M2ForCausalLM" / "sglang_implementation.json").read_text())
    assert files["stats"]["files_parsed"] == alone["M2"]["files_parsed"] >= 4  # model, block, reexport, impl


def test_all_starts_one_worker_per_core_this_process_may_use(tmp_path):
    """The default --jobs counts the cores of the process's CPU affinity (a container or taskset
    may allow fewer than the machine has), not the machine's."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    tree = synthetic_tree(tmp_path / "tree", {"layers/norm.py": "from torch import nn\n\n\nclass RMSNorm(nn.Module):\n"
                                                                "    def __init__(self, hidden_size):\n"
                                                                "        super().__init__()\n",
                                              "models/m.py": norm_model("M", "sglang.srt.layers.norm")})
    code = ("import os, sys\nos.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
            "from sglang_baseline import cli\nsys.exit(cli.main(sys.argv[1:]))\n")
    p = subprocess.run([sys.executable, "-c", code, "--all", "--sglang-path", str(tree), "--no-cache",
                        "--output-dir", str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO,
                       env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert p.returncode == 0, p.stderr
    assert "models with 1 worker process" in p.stderr and "worker processes" not in p.stderr, p.stderr
