"""Hostile sources and configs: warnings and partial results, never a hang, a traceback or code run."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import norm_model, run_cli, synthetic_tree

MARKER_CODE = "open({marker!r}, 'w').write('executed')\n"


def add_model(root: Path, name: str, body: str) -> Path:
    p = root / "sglang" / "srt" / "models" / f"{name}.py"
    p.write_text(textwrap.dedent(body))
    return p


def analyse(root: Path, model: str, tmp_path: Path, *extra: str):
    r = run_cli("--model-name", model, "--sglang-path", str(root), "--cache-dir", str(tmp_path / "cache"),
                *extra, output_dir=tmp_path / "out")
    assert "Traceback" not in r.err, r.err
    return r


TINY = """
from torch import nn
from sglang.srt.layers.layernorm import RMSNorm
{imports}

class TinyForCausalLM(nn.Module):
    def __init__(self, config, quant_config=None, prefix=""):
        super().__init__()
        self.norm = RMSNorm(config.hidden_size)
        {body}

    def forward(self, x):
        return self.norm(x)

EntryClass = TinyForCausalLM
"""


def tiny(imports: str = "", body: str = "pass") -> str:
    return TINY.format(imports=imports, body=body)


def test_syntax_error_in_a_helper_is_a_warning(tree, tmp_path):
    helper = tree / "sglang" / "srt" / "layers" / "broken_helper.py"
    helper.write_text("def f(:\n")
    add_model(tree, "tiny", tiny("from sglang.srt.layers.broken_helper import f", "self.x = f()"))
    r = analyse(tree, "tiny", tmp_path)
    assert r.code == 0, r.err
    warnings = r.json("sglang_implementation.json")["warnings"]
    assert any(w["kind"] == "syntax-error" and "broken_helper.py" in w["location"] for w in warnings)
    assert "rmsnorm_h{hidden_size}" in r.names


def test_python2_model_file_is_a_clean_error(tree, tmp_path):
    add_model(tree, "py2", 'print "hello"\nclass Py2ForCausalLM(object):\n    pass\nEntryClass = Py2ForCausalLM\n')
    r = analyse(tree, "Py2ForCausalLM", tmp_path)
    assert r.code == 5 and "models/py2.py" in r.err


def test_non_utf8_file_is_read_with_a_warning(tree, tmp_path):
    p = add_model(tree, "tiny", tiny())
    p.write_bytes(p.read_bytes().replace(b"from torch import nn", b"# caf\xe9 \xff\nfrom torch import nn"))
    r = analyse(tree, "tiny", tmp_path)
    assert r.code == 0, r.err
    warnings = r.json("sglang_implementation.json")["warnings"]
    assert any("UTF-8" in w["message"] for w in warnings)


def test_non_utf8_helper_module_is_reported_when_read_for_its_names_first(tree, tmp_path):
    # the import is resolved by a text scan of helpers.py; the scan's text is then parsed
    # without reading the file again: its bytes must still be reported as not UTF-8
    helper = tree / "sglang" / "srt" / "layers" / "helpers.py"
    helper.write_bytes(b"# caf\xe9\n\n\ndef make_scale(x):\n    return x * 2\n")
    add_model(tree, "tiny", tiny("from sglang.srt.layers.helpers import make_scale",
                                 "self.scale = make_scale(config.hidden_size)"))
    r = analyse(tree, "tiny", tmp_path)
    assert r.code == 0, r.err
    warnings = r.json("sglang_implementation.json")["warnings"]
    assert any("UTF-8" in w["message"] and w["location"] == "layers/helpers.py" for w in warnings), warnings


def test_huge_file_is_skipped_not_parsed(tree, tmp_path):
    big = tree / "sglang" / "srt" / "layers" / "huge_table.py"
    big.write_text("TABLE = [\n" + "    1,\n" * 1_700_000 + "]\n")  # ~10 MB
    assert big.stat().st_size > 10_000_000
    add_model(tree, "tiny", tiny("from sglang.srt.layers.huge_table import TABLE", "self.n = len(TABLE)"))
    r = analyse(tree, "tiny", tmp_path)
    assert r.code == 0, r.err
    warnings = r.json("sglang_implementation.json")["warnings"]
    assert any(w["kind"] == "unreadable-file" and "huge_table.py" in w["location"] for w in warnings)


def test_circular_imports_and_self_inheritance(tree, tmp_path):
    layers = tree / "sglang" / "srt" / "layers"
    (layers / "cyc_a.py").write_text("from sglang.srt.layers.cyc_b import B\nA = B\n")
    (layers / "cyc_b.py").write_text("from sglang.srt.layers.cyc_a import A\nclass B(A):\n    pass\n")
    add_model(tree, "tiny", tiny("from sglang.srt.layers.cyc_b import B", "self.b = B()"))
    r = analyse(tree, "tiny", tmp_path)
    assert r.code == 0, r.err
    kinds = {w["kind"] for w in r.json("sglang_implementation.json")["warnings"]}
    assert "mro-error" in kinds


def test_constructors_that_build_each_other(tree, tmp_path):
    layers = tree / "sglang" / "srt" / "layers"
    (layers / "ping.py").write_text(textwrap.dedent("""
        from torch import nn

        class Ping(nn.Module):
            def __init__(self):
                super().__init__()
                self.pong = Pong()

        class Pong(nn.Module):
            def __init__(self):
                super().__init__()
                self.ping = Ping()
    """))
    add_model(tree, "tiny", tiny("from sglang.srt.layers.ping import Ping", "self.ping = Ping()"))
    r = analyse(tree, "tiny", tmp_path)
    assert r.code == 0, r.err
    kinds = {w["kind"] for w in r.json("sglang_implementation.json")["warnings"]}
    assert kinds & {"recursion-limit", "budget-exhausted"}


def test_environment_calls_are_not_interpreted(tree, tmp_path):
    """Remote storage and the like are environment (catalog ``opaque_packages``): not walked into."""
    helper = "def width():\n    return 96\n"
    (tree / "sglang" / "srt" / "connector" / "sizes.py").write_text(helper)
    (tree / "sglang" / "srt" / "layers" / "sizes.py").write_text(helper)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"architectures": ["TinyForCausalLM"], "hidden_size": 64, "num_hidden_layers": 1}))

    def names(package: str, out: str) -> set[str]:
        add_model(tree, "tiny", tiny(f"from sglang.srt.{package}.sizes import width",
                                     "self.extra = RMSNorm(width())"))
        r = analyse(tree, "tiny", tmp_path / out, "--config", str(config))
        assert r.code == 0, r.err
        return {c["flashinfer_equivalent"] for c in r.json("kernel_calls.json")}

    assert "rmsnorm_h96" in names("layers", "a")
    assert not any(n.startswith("rmsnorm_h96") for n in names("connector", "b"))


def test_recursive_walk_over_unknown_values_does_not_fan_out(tree, tmp_path):
    """Each level of this walk is undecided (no config): 3 branches per level, unbounded depth."""
    (tree / "sglang" / "srt" / "layers" / "walk.py").write_text(textwrap.dedent("""
        def patch_all(config):
            def _patch(cfg):
                if cfg.has_children:
                    _patch(cfg.text_config)
                    _patch(cfg.vision_config)
                    _patch(cfg.audio_config)
            _patch(config)
    """))
    add_model(tree, "tiny", tiny("from sglang.srt.layers.walk import patch_all", "patch_all(config)"))
    r = analyse(tree, "tiny", tmp_path)
    assert r.code == 0, r.err
    kinds = {w["kind"] for w in r.json("sglang_implementation.json")["warnings"]}
    assert "budget-exhausted" not in kinds and "recursion-limit" in kinds
    assert any(c["flashinfer_equivalent"].startswith("rmsnorm") for c in r.json("kernel_calls.json"))


def test_3000_deep_expression(tree, tmp_path):
    deep = "1" + " + 1" * 3000
    parens = "(" * 3000 + "1" + ")" * 3000
    layers = tree / "sglang" / "srt" / "layers"
    (layers / "deep.py").write_text(f"DEEP = {deep}\n")
    (layers / "parens.py").write_text(f"P = {parens}\n")
    add_model(tree, "tiny", tiny("from sglang.srt.layers.deep import DEEP\nfrom sglang.srt.layers.parens import P",
                                 "self.d = DEEP + P"))
    r = analyse(tree, "tiny", tmp_path)
    assert r.code == 0, r.err


def test_symlink_loops_in_the_tree(tree, tmp_path):
    layers = tree / "sglang" / "srt" / "layers"
    os.symlink(layers, layers / "loop")
    os.symlink(tree / "sglang" / "srt" / "models", tree / "sglang" / "srt" / "models" / "again")
    r = analyse(tree, "llama", tmp_path)
    assert r.code == 0, r.err


def test_relative_paths_follow_symlinks_as_resolve_does(tmp_path):
    from sglang_baseline.index import SourceTree

    srt = tmp_path / "sglang" / "srt"
    (srt / "models").mkdir(parents=True)
    (srt / "models" / "real.py").write_text("x = 1\n")
    os.symlink(srt / "models" / "real.py", srt / "models" / "alias.py")
    os.symlink(srt / "models", srt / "linked")
    outside = tmp_path / "outside.py"
    outside.write_text("y = 2\n")
    os.symlink(outside, srt / "models" / "away.py")
    t = SourceTree(tmp_path)
    for p in (srt / "models" / "real.py", srt / "models" / "alias.py", srt / "linked" / "real.py",
              srt / "linked" / "alias.py", srt / "models" / "away.py", srt / "models" / "absent.py"):
        assert t.resolve(p) == p.resolve()
    assert t.rel(srt / "linked" / "alias.py") == "models/real.py"
    assert t.rel(srt / "models" / "away.py") == "outside.py"


def test_nothing_from_the_tree_is_executed(tree, tmp_path):
    marker = tmp_path / "EXECUTED"
    code = MARKER_CODE.format(marker=str(marker))
    for rel in ("__init__.py", "srt/__init__.py", "srt/layers/layernorm.py", "srt/models/llama.py",
                "srt/configs/__init__.py", "version.py"):
        p = tree / "sglang" / rel
        p.write_text(code + (p.read_text() if p.exists() else ""))
    add_model(tree, "evil", code + tiny())
    (tree / "setup.py").write_text(code)
    (tree / "sitecustomize.py").write_text(code)
    for model in ("llama", "evil"):
        r = analyse(tree, model, tmp_path)
        assert r.code == 0, r.err
    r = run_cli("--list", "--sglang-path", str(tree), "--quiet")
    assert r.code == 0
    assert not marker.exists()
    assert "sglang" not in {m.split(".")[0] for m in sys.modules if m.startswith("sglang.")}


@pytest.mark.parametrize("content,needle", [
    ('{"hidden_size": 4096, "num_attention_heads": 0}', "must be positive"),
    ('{"hidden_size": true}', "must be an integer"),
    ('{"architectures": "LlamaForCausalLM"}', "'architectures' must be a list"),
    ('{"quantization_config": [1]}', "'quantization_config' must be an object"),
    ('{"quantization_config": {"quant_method": "fp8", "weight_block_size": [128, -1]}}', "weight_block_size"),
    ('"just a string"', "expected a JSON object"),
    ('null', "expected a JSON object"),
    ('{"a": ' * 20000 + "1" + "}" * 20000, "nested too deeply"),
])
def test_hostile_configs(release, tmp_path, content, needle):
    cfg = tmp_path / "config.json"
    cfg.write_text(content)
    r = run_cli("--model-name", "llama", "--config", str(cfg), "--sglang-path", str(release("0.4.6")),
                "--cache-dir", str(tmp_path / "c"), output_dir=tmp_path / "out")
    assert r.code == 2, r.err
    assert needle in r.err and "Traceback" not in r.err


def test_huge_config_is_refused_without_reading_it_all(release, tmp_path):
    cfg = tmp_path / "config.json"
    with cfg.open("w") as fh:
        fh.write('{"pad": "')
        fh.write("x" * (9 * 1024 * 1024))
        fh.write('"}')
    r = run_cli("--model-name", "llama", "--config", str(cfg), "--sglang-path", str(release("0.4.6")),
                output_dir=tmp_path / "out")
    assert r.code == 2 and "too large" in r.err


def test_config_missing_fields_stays_symbolic(release, tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2}))
    r = run_cli("--model-name", "llama", "--config", str(cfg), "--sglang-path", str(release("0.4.6")),
                "--cache-dir", str(tmp_path / "c"), output_dir=tmp_path / "out")
    assert r.code == 0, r.err
    calls = r.json("kernel_calls.json")
    norms = [k for k in calls if k["op_type"] == "rmsnorm"]
    assert norms and all(not k["concrete"] and "{" in k["flashinfer_equivalent"] for k in norms)
    warnings = r.json("sglang_implementation.json")["warnings"]
    assert any("hidden_size" in w["message"] for w in warnings)


def test_output_inside_the_sglang_tree_is_refused(tree, tmp_path):
    r = run_cli("--model-name", "llama", "--sglang-path", str(tree),
                "--output-dir", str(tree / "sglang" / "srt" / "out"))
    assert r.code == 6 and "inside the SGLang tree" in r.err


def test_unwritable_output_is_refused(release, tmp_path, monkeypatch):
    import sglang_baseline.cli as cli

    monkeypatch.setattr(cli.os, "access", lambda *a, **k: False)
    r = run_cli("--model-name", "llama", "--sglang-path", str(release("0.4.6")),
                "--output-dir", str(tmp_path / "out"))
    assert r.code == 6 and "not writable" in r.err


def test_foreign_code_snippets_folder_is_not_replaced(release, tmp_path):
    out = tmp_path / "out"
    (out / "code_snippets").mkdir(parents=True)
    (out / "code_snippets" / "mine.py").write_text("keep me")
    r = run_cli("--model-name", "llama", "--sglang-path", str(release("0.4.6")), "--cache-dir",
                str(tmp_path / "c"), output_dir=out)
    assert r.code == 6
    assert (out / "code_snippets" / "mine.py").read_text() == "keep me"


def test_a_shared_index_gives_cached_warnings_to_every_analysis(tmp_path):
    # --all reuses one index for many models: a warning found while computing a cached
    # result (here a class hierarchy) must reach each analysis that uses the result.
    from sglang_baseline.diagnostics import Diagnostics
    from sglang_baseline.index import ClassSym, Index, SourceTree

    synthetic_tree(tmp_path, {"layers/cyc_a.py": "from sglang.srt.layers.cyc_b import B\nA = B\n",
                              "layers/cyc_b.py": "from sglang.srt.layers.cyc_a import A\nclass B(A):\n    pass\n"
                                                 "class C(B):\n    pass\n"})
    index = Index(SourceTree(tmp_path), Diagnostics())
    seen = []
    for cls in ("C", "B", "C"):
        diags = Diagnostics()
        index.begin_analysis(diags)
        index.mro(ClassSym("sglang.srt.layers.cyc_b", cls))
        seen.append([d.message for d in diags.items if d.kind == "mro-error"])
    assert seen[0] and seen[0] == seen[1] == seen[2]


def test_all_reports_each_model_what_it_reports_alone(tmp_path):
    # M1 reads the broken module first (directly), then a helper that reads it again; M2 only
    # through that helper, whose reading --all shares between models: M2 must still be told.
    files = {
        "layers/bad.py": "def thing(x):\n    return x\n\ndef broken(:\n    pass\n",
        "layers/helpers.py": "from sglang.srt.layers import bad\nfrom sgl_kernel import rmsnorm\n\n\ndef helper(x):\n"
                             "    bad.thing(x)\n    return rmsnorm(x)\n",
    }
    for i, direct in ((1, "        bad.thing(x)\n"), (2, "")):
        files[f"layers/norm{i}.py"] = (
            "from torch import nn\nfrom sglang.srt.layers import bad\nfrom sglang.srt.layers.helpers import helper\n\n\n"
            "class RMSNorm(nn.Module):\n    def __init__(self, hidden_size):\n        super().__init__()\n\n"
            f"    def forward(self, x):\n{direct}        return helper(x)\n")
        files[f"models/m{i}.py"] = norm_model(f"M{i}", f"sglang.srt.layers.norm{i}")
    synthetic_tree(tmp_path / "tree", files)

    def warnings(folder) -> list[tuple[str, str]]:
        impl = json.loads((folder / "sglang_implementation.json").read_text())
        return sorted((w["kind"], w["location"]) for w in impl["warnings"])

    r = run_cli("--all", "--sglang-path", str(tmp_path / "tree"), "--jobs", "1", "--no-cache", "--quiet",
                output_dir=tmp_path / "all")
    assert r.code == 0, r.err
    for i in (1, 2):
        alone = run_cli("--model-name", f"M{i}ForCausalLM", "--sglang-path", str(tmp_path / "tree"), "--no-cache",
                        "--quiet", output_dir=tmp_path / f"alone{i}")
        assert alone.code == 0, alone.err
        assert ("syntax-error", "layers/bad.py:4") in warnings(tmp_path / f"alone{i}")
        assert warnings(tmp_path / "all" / f"M{i}ForCausalLM") == warnings(tmp_path / f"alone{i}")


def test_catalog_opaque_methods_are_not_interpreted(tmp_path):
    # runtime.json lists RotaryEmbedding._compute_cos_sin_cache / _compute_inv_freq as tensor
    # precomputation: on a subclass (by class name along the MRO) they are not run; another
    # method of the same class still is (each reads a name that does not exist: a warning when run)
    rope = ("from torch import nn\n\n\nclass RotaryEmbedding(nn.Module):\n    def __init__(self, head_size):\n"
            "        super().__init__()\n\n\nclass MyRope(RotaryEmbedding):\n    def __init__(self, head_size):\n"
            "        super().__init__(head_size)\n        self.cache = self._compute_cos_sin_cache()\n"
            "        self.inv = self._compute_inv_freq(10000)\n        self.other = self._other()\n\n"
            "    def _compute_inv_freq(self, base):\n        return unknown_in_inv_freq\n\n"
            "    def _compute_cos_sin_cache(self):\n        return unknown_in_cache\n\n"
            "    def _other(self):\n        return unknown_in_other\n")
    model = ("from torch import nn\nfrom sglang.srt.layers.rope import MyRope\n\n\n"
             "class TinyForCausalLM(nn.Module):\n    def __init__(self, config, quant_config=None, prefix=''):\n"
             "        super().__init__()\n        self.rope = MyRope(128)\n\n    def forward(self, x):\n"
             "        return self.rope(x)\n\n\nEntryClass = TinyForCausalLM\n")
    synthetic_tree(tmp_path / "tree", {"layers/rope.py": rope, "models/tiny.py": model})
    r = analyse(tmp_path / "tree", "TinyForCausalLM", tmp_path, "--no-cache")
    assert r.code == 0, r.err
    unresolved = {w["message"] for w in r.json("sglang_implementation.json")["warnings"]
                  if w["kind"] == "unresolved-name"}
    assert "name unknown_in_other could not be resolved" in unresolved
    assert not any("unknown_in_cache" in m or "unknown_in_inv_freq" in m for m in unresolved), unresolved


def test_a_method_called_from_two_branches_keeps_each_call_sites_condition_and_path(tmp_path):
    """A helper method the forward calls in two places is read once (see ForwardReader._inline);
    each call of it still gets its own branch's condition in front of the helper's, and the
    helper chain it was found through."""
    synthetic_tree(tmp_path / "tree", {
        "layers/layernorm.py": "from torch import nn\n\n\nclass RMSNorm(nn.Module):\n"
                               "    def __init__(self, hidden_size):\n        super().__init__()\n\n"
                               "    def forward(self, x):\n        return x\n",
        "models/tiny.py": textwrap.dedent("""
            from torch import nn
            from sglang.srt.layers.layernorm import RMSNorm

            class TinyForCausalLM(nn.Module):
                def __init__(self, config, quant_config=None, prefix=""):
                    super().__init__()
                    self.norm = RMSNorm(config.hidden_size)
                    self.mode = config.mode

                def forward(self, x):
                    if self.mode == "a":
                        y = self._twice(x)
                    else:
                        y = self._twice(x, 1)
                    return y

                def _twice(self, x, n=0):
                    y = self._norm_it(x)
                    return self._norm_it(y)

                def _norm_it(self, x):
                    if x.dim() == 3:
                        return self.norm(x)
                    return x

            EntryClass = TinyForCausalLM
            """),
    })
    r = run_cli("--model-name", "tiny", "--sglang-path", str(tmp_path / "tree"), "--no-cache", "--quiet",
                output_dir=tmp_path / "out")
    assert r.code == 0, r.err
    impl = json.loads((tmp_path / "out" / "sglang_implementation.json").read_text())
    fwd = next(f for f in impl["forward"] if f["class_name"] == "TinyForCausalLM")
    calls = [(c["kind"], c["target"], c["condition"], c["via"], c["code_location"]) for c in fwd["calls"]]
    site = next(loc for *_, loc in calls)
    inner = "x.dim() == 3"
    assert calls == [("child", "norm", f"{branch} and {inner}", "self._twice > self._norm_it", site)
                     for branch in ("self.mode == 'a'", "not (self.mode == 'a')") for _ in range(2)]
