"""Reading SGLang like an engineer, checked against facts about real models.

Expected names are FlashInfer-Bench dataset names (flashinfer_trace/definitions, and the
Llama-3.1-8B sample in shared/flashinfer_trace_sample); layer counts come from the
models' configs.  Nothing here was produced by the code under test.
"""

from __future__ import annotations

import re

import pytest

LLAMA_DATASET = {
    "rmsnorm_h4096", "fused_add_rmsnorm_h4096",
    "gemm_n6144_k4096", "gemm_n4096_k4096", "gemm_n28672_k4096", "gemm_n4096_k14336",
    "gqa_paged_prefill_causal_h32_kv8_d128_ps1", "gqa_paged_prefill_causal_h32_kv8_d128_ps64",
    "gqa_paged_decode_h32_kv8_d128_ps1", "gqa_paged_decode_h32_kv8_d128_ps64",
    "gqa_ragged_prefill_causal_h32_kv8_d128",
    "top_k_sampling_from_probs_v128256", "top_k_top_p_sampling_from_probs_v128256",
    "top_p_sampling_from_probs_v128256",
}
LLAMA = "meta-llama--Meta-Llama-3.1-8B.json"


def _tree(node, path=()):
    yield path + (node["name"],), node
    for c in node["children"]:
        yield from _tree(c, path + (node["name"],))


def _child(node, name):
    found = [c for c in node["children"] if c["name"] == name]
    assert found, f"{node['name']} has no child {name}: {[c['name'] for c in node['children']]}"
    return found[0]


@pytest.mark.parametrize("version", ["0.5.23", "0.5.6"])
def test_llama_names_are_the_datasets(analysed, version):
    r = analysed(version, "llama", LLAMA, "--tp", "1", "--page-size", "1,64")
    names = r.names
    assert LLAMA_DATASET <= names, LLAMA_DATASET - names
    assert not [n for n in names if n.startswith(("mla_", "moe_", "gdn_"))]
    for k in r.json("kernel_calls.json"):
        assert k["variant"]["tp"] == 1 and k["variant"]["page_size"] in (1, 64)
        if k["flashinfer_equivalent"].startswith("gqa_paged"):
            assert k["flashinfer_equivalent"].endswith(f"_ps{k['variant']['page_size']}")


@pytest.mark.parametrize("version", ["0.5.23", "0.5.6"])
def test_llama_module_tree_counts_and_forward_order(analysed, version):
    r = analysed(version, "llama", LLAMA, "--tp", "1", "--page-size", "1,64")
    impl = r.json("sglang_implementation.json")
    root = impl["module_tree"]
    assert root["class_name"] == "LlamaForCausalLM"
    model = _child(root, "model")
    assert model["class_name"] == "LlamaModel"
    layers = _child(model, "layers")
    groups = layers["children"]
    assert len(groups) == 1 and groups[0]["class_name"] == "LlamaDecoderLayer" and groups[0]["count"] == 32
    layer = groups[0]
    expect = {"input_layernorm": "RMSNorm", "self_attn": "LlamaAttention", "post_attention_layernorm": "RMSNorm",
              "mlp": "LlamaMLP"}
    for name, cls in expect.items():
        assert _child(layer, name)["class_name"] == cls
    attn = _child(layer, "self_attn")
    assert _child(attn, "qkv_proj")["class_name"] == "QKVParallelLinear"
    assert _child(attn, "o_proj")["class_name"] == "RowParallelLinear"
    assert _child(attn, "attn")["class_name"] == "RadixAttention"
    assert _child(attn, "rotary_emb")
    mlp = _child(layer, "mlp")
    for name in ("gate_up_proj", "act_fn", "down_proj"):
        assert _child(mlp, name)
    for path, node in _tree(layer):
        assert node["count"] == 32, path
    assert _child(model, "norm")["count"] == 1 and _child(model, "embed_tokens")["count"] == 1
    assert _child(root, "lm_head") and _child(root, "logits_processor")
    f = impl["forward_pass_structure"]
    assert (f["embedding"], f["final_norm"], f["lm_head"]) == ("embed_tokens", "norm", "lm_head")
    assert [x["name"] for x in f["layers"]] == ["input_layernorm", "self_attn", "post_attention_layernorm", "mlp"]
    inner = [k.split(":")[0] for k in f["layers"][1]["kernels"]]
    assert inner == ["qkv_proj", "rotary_emb", "attn", "o_proj"]


@pytest.mark.parametrize("version", ["0.5.23", "0.5.6"])
def test_llama_kernel_calls_have_file_and_line(analysed, version):
    r = analysed(version, "llama", LLAMA, "--tp", "1", "--page-size", "1,64")
    calls = r.json("kernel_calls.json")
    by = {}
    for k in calls:
        by.setdefault(k["flashinfer_equivalent"], []).append(k)
    loc = re.compile(r"^[\w/]+\.py:\d+-\d+$")
    for k in calls:
        assert loc.match(k["code_location"]), k
    norm = by["rmsnorm_h4096"][0]
    assert norm["code_location"].startswith("layers/layernorm.py:") and norm["kernel"].endswith("rmsnorm")
    fused = by["fused_add_rmsnorm_h4096"][0]
    assert fused["code_location"].startswith("layers/layernorm.py:") and "fused_add_rmsnorm" in fused["kernel"]
    for name, wrapper in (("gqa_paged_decode_h32_kv8_d128_ps1", "BatchDecodeWithPagedKVCacheWrapper"),
                          ("gqa_paged_prefill_causal_h32_kv8_d128_ps1", "BatchPrefillWithPagedKVCacheWrapper"),
                          ("gqa_ragged_prefill_causal_h32_kv8_d128", "BatchPrefillWithRaggedKVCacheWrapper")):
        k = by[name][0]
        assert k["kernel"].startswith(wrapper), k
        assert k["code_location"].startswith("layers/attention/flashinfer_backend.py:"), k
    gemm = by["gemm_n6144_k4096"][0]
    assert gemm["module"].endswith("self_attn.qkv_proj") and gemm["count"] == 32
    assert gemm["module_location"].startswith("models/llama.py:")
    # the snippets of a file's kernel call sites: each under a header naming its lines
    snippet = (r.output_dir / "code_snippets" / "kernels" / "layers.layernorm.py").read_text()
    heads = [line for line in snippet.splitlines() if line.startswith("# source: ")]
    norm_line = int(norm["code_location"].split(":")[1].split("-")[0])
    assert all(h.startswith("# source: sglang/srt/layers/layernorm.py:") for h in heads)
    assert any(int(h.rsplit(":", 1)[1].split("-")[0]) <= norm_line <= int(h.rsplit("-", 1)[1]) for h in heads)


def test_deepseek_v3_layers_mla_and_moe(analysed):
    r = analysed("0.5.23", "deepseek-v3", "deepseek-ai--DeepSeek-V3.json", "--tp", "8", "--ep", "8",
                 "--page-size", "1,64")
    impl = r.json("sglang_implementation.json")
    layers = _child(_child(impl["module_tree"], "model"), "layers")
    groups = {g["name"]: g for g in layers["children"]}
    assert sum(g["count"] for g in groups.values()) == 61
    mlp_kinds = {}
    for g in groups.values():
        mlp_kinds[_child(g, "mlp")["class_name"]] = mlp_kinds.get(_child(g, "mlp")["class_name"], 0) + g["count"]
    assert mlp_kinds == {"DeepseekV2MLP": 3, "DeepseekV2MoE": 58}
    assert impl["attention"]["architecture"] == "mla"
    assert impl["attention"]["backend_class"] == "FlashInferMLAAttnBackend"
    dataset = {
        "rmsnorm_h7168", "fused_add_rmsnorm_h7168", "rmsnorm_h1536", "rmsnorm_h512", "gemm_n256_k7168",
        "mla_paged_decode_h16_ckv512_kpe64_ps1", "mla_paged_decode_h16_ckv512_kpe64_ps64",
        "mla_paged_prefill_causal_h16_ckv512_kpe64_ps1", "mla_paged_prefill_causal_h16_ckv512_kpe64_ps64",
        "mla_ragged_prefill_causal_h16_qk192_vo128",
        "moe_fp8_block_scale_ds_routing_topk8_ng8_kg4_e32_h7168_i2048",
        "top_k_sampling_from_probs_v129280", "top_p_sampling_from_probs_v129280",
        "top_k_top_p_sampling_from_probs_v129280",
    }
    names = r.names
    assert dataset <= names, dataset - names
    # quantisation-aware: the FP8 projections never get a plain GEMM name, and no GQA name appears
    plain_gemm = {n for n in names if re.fullmatch(r"gemm_n\d+_k\d+", n)}
    assert plain_gemm <= {"gemm_n256_k7168", "gemm_n129280_k7168"}, plain_gemm
    assert not [n for n in names if n.startswith("gqa_")]
    mla = [k for k in r.json("kernel_calls.json") if k["op_type"] == "mla_paged"]
    assert all(k["code_location"].startswith("layers/attention/flashinfer_mla_backend.py:") for k in mla)


def test_kimi_k2_dataset_names(analysed):
    r = analysed("0.5.23", "kimi-k2", "moonshotai--Kimi-K2-Instruct.json", "--tp", "8", "--ep", "1,8")
    names = r.names
    for n in ("mla_paged_decode_h8_ckv512_kpe64_ps1", "mla_paged_prefill_causal_h8_ckv512_kpe64_ps1",
              "mla_ragged_prefill_causal_h8_qk192_vo128",
              "moe_fp8_block_scale_ds_routing_topk8_ng1_kg1_e384_h7168_i2048",
              "moe_fp8_block_scale_ds_routing_topk8_ng1_kg1_e48_h7168_i2048",
              "rmsnorm_h7168", "fused_add_rmsnorm_h7168", "rmsnorm_h1536", "rmsnorm_h512"):
        assert n in names, n
    moe = {(k["variant"]["ep"], k["flashinfer_equivalent"]) for k in r.json("kernel_calls.json") if k["op_type"] == "moe"}
    assert (1, "moe_fp8_block_scale_ds_routing_topk8_ng1_kg1_e384_h7168_i2048") in moe
    assert (8, "moe_fp8_block_scale_ds_routing_topk8_ng1_kg1_e48_h7168_i2048") in moe


def test_qwen3_next_hybrid_layers(analysed):
    r = analysed("0.5.23", "qwen3-next", "Qwen--Qwen3-Next-80B-A3B-Thinking.json")
    impl = r.json("sglang_implementation.json")
    layers = next(n for p, n in _tree(impl["module_tree"]) if n["name"] == "layers")
    counts = {}
    for g in layers["children"]:
        counts[g["class_name"]] = counts.get(g["class_name"], 0) + g["count"]
    assert sum(counts.values()) == 48
    assert sorted(counts.values()) == [12, 36]
    names = r.names
    for n in ("gdn_prefill_qk16_v32_d128_k_last", "gdn_decode_qk16_v32_d128_k_last",
              "gdn_mtp_qk16_v32_d128_k_last", "rmsnorm_h2048", "fused_add_rmsnorm_h2048"):
        assert n in names, n
    gdn = [k for k in r.json("kernel_calls.json") if k["op_type"] == "gdn"]
    assert {k["count"] for k in gdn} == {36}
    gqa = [k for k in r.json("kernel_calls.json") if k["op_type"] == "gqa_paged"]
    assert gqa and {k["count"] for k in gqa} == {12}


def test_qwen3_moe_fp8_is_quantisation_aware(analysed):
    r = analysed("0.5.23", "qwen3-moe", "Qwen--Qwen3-30B-A3B-FP8.json")
    names = r.names
    for n in ("moe_fp8_block_scale_renorm_topk8_e128_h2048_i768", "gemm_n128_k2048", "rmsnorm_h128",
              "rmsnorm_h2048", "fused_add_rmsnorm_h2048", "gqa_paged_decode_h32_kv4_d128_ps1",
              "gqa_paged_prefill_causal_h32_kv4_d128_ps1", "gqa_ragged_prefill_causal_h32_kv4_d128"):
        assert n in names, n
    # QKV and O projections are FP8 in this checkpoint: a quantisation-blind tool would print these
    assert "gemm_n5120_k2048" not in names and "gemm_n2048_k4096" not in names


def test_qwen3_moe_bf16_gets_the_plain_gemms(analysed):
    r = analysed("0.5.23", "qwen3-moe", "Qwen--Qwen3-30B-A3B.json")
    names = r.names
    for n in ("gemm_n5120_k2048", "gemm_n2048_k4096", "gemm_n128_k2048"):
        assert n in names, n
    assert not [n for n in names if "fp8" in n]


def test_without_config_names_are_templates_and_counts_symbolic(analysed):
    r = analysed("0.5.23", "llama")
    calls = r.json("kernel_calls.json")
    assert all(not k["concrete"] for k in calls if k["op_type"] in ("rmsnorm", "gemm", "gqa_paged"))
    layer = next(n for p, n in _tree(r.json("sglang_implementation.json")["module_tree"])
                 if n["class_name"] == "LlamaDecoderLayer")
    assert isinstance(layer["count"], str) and "num_hidden_layers" in layer["count"]
