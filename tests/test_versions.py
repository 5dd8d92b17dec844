"""The same model on SGLang 0.4.6, 0.5.6 and 0.5.23: the same names, or the difference explained."""

from __future__ import annotations

import pytest

from .conftest import RELEASES

MODELS = [
    ("llama", "meta-llama--Meta-Llama-3.1-8B.json", ("--page-size", "1,64")),
    ("qwen3-moe", "Qwen--Qwen3-30B-A3B.json", ("--page-size", "1,64")),
    ("deepseek-v3", "deepseek-ai--DeepSeek-V3.json", ("--tp", "8", "--ep", "8", "--page-size", "1,64")),
]


@pytest.mark.parametrize("model,config,extra", MODELS, ids=[m[0] for m in MODELS])
def test_same_names_on_every_release(analysed, model, config, extra):
    results = {v: analysed(v, model, config, *extra) for v in RELEASES}
    classes = {v: r.json("sglang_implementation.json")["class_name"] for v, r in results.items()}
    assert len(set(classes.values())) == 1, classes
    dataset = {v: {k["flashinfer_equivalent"] for k in r.json("kernel_calls.json") if k["status"] == "dataset"}
               for v, r in results.items()}
    first = dataset[RELEASES[0]]
    for v in RELEASES[1:]:
        assert dataset[v] == first, (v, dataset[v] ^ first)
    # proposed names may differ between releases only with a warning that says why
    proposed = {v: {k["flashinfer_equivalent"] for k in r.json("kernel_calls.json") if k["status"] == "proposed"}
                for v, r in results.items()}
    union = set().union(*proposed.values())
    for v, r in results.items():
        missing = union - proposed[v]
        if missing:
            kinds = {w["kind"] for w in r.json("sglang_implementation.json")["warnings"]}
            assert "shared-experts-fused" in kinds, (v, missing)
