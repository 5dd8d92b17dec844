"""The coverage sweep over every release (on a sample) and --all: no crash, every model accounted for."""

from __future__ import annotations

import importlib.util
import json

from .conftest import REPO, cache_root, run_cli


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
    assert "gqa_paged_decode_h32_kv8_d128_ps1" in names
    assert (out / "index.md").read_text().count("| [") == len(rows)
    # a second run is served from the result cache and gives the same index
    r2 = run_cli("--all", "--sglang-path", str(root), "--jobs", "2", "--cache-dir", str(tmp_path / "c"),
                 "--config-dir", str(REPO / "tests" / "data"), "--quiet", output_dir=out)
    assert r2.code == 0
    rows2 = json.loads((out / "index.json").read_text())["models"]
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(rows2) == strip(rows)
