"""Coverage against a FlashInfer-Bench dataset folder, a FlashInfer release, and a trace dump;
and the handoff files for generate-model-definition."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO, cache_root

LLAMA = "meta-llama--Meta-Llama-3.1-8B.json"
# every Definition the FlashInfer-Bench dataset tags model:llama-3.1-8b, by op_type
LLAMA_DATASET = {
    "rmsnorm": ["rmsnorm_h4096", "fused_add_rmsnorm_h4096"],
    "gemm": ["gemm_n6144_k4096", "gemm_n4096_k4096", "gemm_n28672_k4096", "gemm_n4096_k14336"],
    "gqa_paged": ["gqa_paged_prefill_causal_h32_kv8_d128_ps1", "gqa_paged_prefill_causal_h32_kv8_d128_ps64",
                  "gqa_paged_decode_h32_kv8_d128_ps1", "gqa_paged_decode_h32_kv8_d128_ps64"],
    "gqa_ragged": ["gqa_ragged_prefill_causal_h32_kv8_d128"],
    "sampling": ["top_k_sampling_from_probs_v128256", "top_k_top_p_sampling_from_probs_v128256",
                 "top_p_sampling_from_probs_v128256"],
}
SHARED_SAMPLE = REPO.parent / "shared" / "flashinfer_trace_sample" / "definitions"


@pytest.fixture(scope="module")
def definitions_dir(tmp_path_factory) -> Path:
    """The dataset's own layout (definitions/<op_type>/<name>.json): the shared sample when present,
    else the same names written as minimal Definition files."""
    if SHARED_SAMPLE.is_dir():
        return SHARED_SAMPLE
    d = tmp_path_factory.mktemp("definitions")
    for op, names in LLAMA_DATASET.items():
        (d / op).mkdir()
        for n in names:
            (d / op / f"{n}.json").write_text(json.dumps({"name": n, "op_type": op, "axes": {}}))
    return d


@pytest.fixture(scope="module")
def flashinfer_tree() -> Path:
    """FlashInfer 0.6.10 from PyPI (the first release with trace templates), Python files only."""
    dest = cache_root() / "flashinfer-0.6.10"
    if (dest / "flashinfer" / "__init__.py").is_file():
        return dest
    dl = cache_root() / "dl-flashinfer"
    dl.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "flashinfer-python==0.6.10", "--no-deps",
                    "--only-binary=:all:", "-d", str(dl), "-q"], check=True, capture_output=True, timeout=900)
    wheel = next(dl.glob("flashinfer_python-0.6.10-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.filename.startswith("flashinfer/") and info.filename.endswith(".py"):
                zf.extract(info, dest)
    return dest


def test_definitions_dir_marks_existing_and_new(cli, release, definitions_dir):
    r = cli("--model-name", "llama", "--config", str(REPO / "tests" / "data" / LLAMA),
            "--sglang-path", str(release("0.5.23")), "--page-size", "1,64", "--definitions-dir", str(definitions_dir), "-q")
    assert r.code == 0, r.err
    calls = r.json("kernel_calls.json")
    existing = {k["flashinfer_equivalent"] for k in calls if k["coverage"]["dataset"] == "existing"}
    new = {k["flashinfer_equivalent"] for k in calls if k["coverage"]["dataset"] == "new"}
    assert existing == {n for names in LLAMA_DATASET.values() for n in names}
    assert "rope_with_cos_sin_cache_neox_style_d128_rd128" in new and "gemm_n128256_k4096" in new
    summary = (r.output_dir / "summary.md").read_text()
    assert "Already in the dataset** (14)" in summary


def test_flashinfer_path_classifies_support_and_trace_templates(cli, release, flashinfer_tree, definitions_dir):
    r = cli("--model-name", "llama", "--config", str(REPO / "tests" / "data" / LLAMA),
            "--sglang-path", str(release("0.5.23")), "--flashinfer-path", str(flashinfer_tree),
            "--definitions-dir", str(definitions_dir), "-q")
    assert r.code == 0, r.err
    by = {k["flashinfer_equivalent"]: k for k in r.json("kernel_calls.json")}
    assert by["gqa_paged_decode_h32_kv8_d128_ps1"]["coverage"]["flashinfer"] == "supported"
    assert by["rmsnorm_h4096"]["coverage"]["flashinfer"] == "supported"
    assert by["rmsnorm_h4096"]["coverage"]["trace_template"] is True
    assert by["rope_with_cos_sin_cache_neox_style_d128_rd128"]["coverage"]["flashinfer"] == "supported"
    # an embedding lookup has no FlashInfer API
    assert by["embedding_v128256_h4096"]["coverage"]["flashinfer"] == "missing"
    summary = (r.output_dir / "summary.md").read_text()
    assert "New, supported by FlashInfer" in summary and "New, missing in FlashInfer" in summary


def test_trace_dump_comparison(cli, release, tmp_path):
    dump = tmp_path / "dump"
    dump.mkdir()
    seen = ["rmsnorm_h4096", "gqa_paged_decode_h32_kv8_d128_ps1", "silu_and_mul_h14336"]
    for n in seen:
        (dump / f"{n}.json").write_text(json.dumps({"name": n, "op_type": "x"}))
    r = cli("--model-name", "llama", "--config", str(REPO / "tests" / "data" / LLAMA),
            "--sglang-path", str(release("0.5.23")), "--trace-dump-dir", str(dump), "-q")
    assert r.code == 0, r.err
    t = r.json("sglang_implementation.json")["trace_comparison"]
    assert t["matched"] == ["gqa_paged_decode_h32_kv8_d128_ps1", "rmsnorm_h4096"]
    assert t["seen_not_predicted"] == ["silu_and_mul_h14336"]
    assert "gemm_n6144_k4096" in t["predicted_not_seen"]


def test_model_definition_handoff(analysed):
    r = analysed("0.5.6", "llama", LLAMA, "--tp", "1", "--page-size", "1,64")
    mods = r.json("model_definition.json")["modules"]
    expect_parent = {
        "LlamaModel": "LlamaForCausalLM", "embed_tokens": "LlamaModel", "layers": "LlamaModel",
        "LlamaDecoderLayer": "layers", "self_attn": "LlamaDecoderLayer", "qkv_proj": "self_attn",
        "o_proj": "self_attn", "attn": "self_attn", "rotary_emb": "self_attn", "mlp": "LlamaDecoderLayer",
        "gate_up_proj": "mlp", "down_proj": "mlp", "input_layernorm": "LlamaDecoderLayer",
        "post_attention_layernorm": "LlamaDecoderLayer", "norm": "LlamaModel", "lm_head": "LlamaForCausalLM",
    }
    for key, parent in expect_parent.items():
        assert mods[key]["parent"] == parent, key
    assert "parent" not in mods["LlamaForCausalLM"]
    assert mods["LlamaDecoderLayer"]["count"] == 32 and mods["qkv_proj"]["count"] == 32
    assert mods["norm"]["count"] == 1 and mods["LlamaDecoderLayer"]["type"] == "block"
    assert mods["qkv_proj"]["type"] == "layer"
    assert mods["qkv_proj"]["definitions"] == ["gemm_n6144_k4096"]
    assert mods["down_proj"]["definitions"] == ["gemm_n4096_k14336"]
    assert set(mods["attn"]["definitions"]) == {
        "gqa_paged_decode_h32_kv8_d128_ps1", "gqa_paged_decode_h32_kv8_d128_ps64",
        "gqa_paged_prefill_causal_h32_kv8_d128_ps1", "gqa_paged_prefill_causal_h32_kv8_d128_ps64",
        "gqa_ragged_prefill_causal_h32_kv8_d128"}
    # SGLang 0.5.6 calls these norms directly, so their forms are exact
    assert set(mods["input_layernorm"]["definitions"]) == {"rmsnorm_h4096", "fused_add_rmsnorm_h4096"}
    assert mods["post_attention_layernorm"]["definitions"] == ["fused_add_rmsnorm_h4096"]
    assert mods["norm"]["definitions"] == ["fused_add_rmsnorm_h4096"]
    cfg = r.json("model_config.json")
    assert cfg["hidden_size"] == 4096
    summary = (r.output_dir / "summary.md").read_text()
    assert summary.rstrip().endswith("```")
    assert "/generate-model-definition --config" in summary.splitlines()[-2]
