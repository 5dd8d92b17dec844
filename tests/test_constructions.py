"""Copied constructions (catalog ``copied_constructions``): a copy must be what building the
module again would give: a new object at its own call site, with the files and warnings of
the construction, and nothing is shared that could differ (tracked layer indices, objects)."""

from __future__ import annotations

import json

import pytest

from sglang_baseline import constructions
from sglang_baseline.constructions import NotCopyable, copy, plain_key
from sglang_baseline.index import ClassSym
from sglang_baseline.tracking import TrackedInt, TrackedStr
from sglang_baseline.values import Obj, Site, Sym

from .conftest import run_cli, synthetic_tree


def test_keys_take_plain_values_only():
    assert plain_key([1, 2.5, "x", None, True, Sym("config.rope_theta"), {"type": "yarn"}]) == \
        plain_key([1, 2.5, "x", None, True, Sym("config.rope_theta"), {"type": "yarn"}])
    assert plain_key([1]) != plain_key([True]) and plain_key([1]) != plain_key([1.0])
    assert plain_key(Sym("a")) != plain_key(Sym("b"))
    for bad in (TrackedInt(3, lambda i: i), TrackedStr("model.layers.3", lambda i: f"model.layers.{i}"),
                Obj(cls=ClassSym("m", "C")), [Obj(cls=ClassSym("m", "C"))], {"k": object()}):
        with pytest.raises(NotCopyable):
            plain_key(bad)


def test_a_copy_is_new_objects_sharing_only_immutable_values():
    inner = Obj(cls=ClassSym("m", "Inner"), is_module=True)
    outer = Obj(cls=ClassSym("m", "Outer"), is_module=True, site=Site("m.py", 1, 2))
    outer.attrs = {"inner": inner, "again": inner, "scales": [1.0, 2.0], "base": Sym("config.rope_theta")}
    inner.attrs["parent"] = outer  # a cycle
    got = copy(outer)
    assert got is not outer and got.attrs["inner"] is not inner
    assert got.attrs["inner"] is got.attrs["again"]  # shared within the copy as in the original
    assert got.attrs["inner"].attrs["parent"] is got
    assert got.attrs["scales"] == [1.0, 2.0] and got.attrs["scales"] is not outer.attrs["scales"]
    assert got.attrs["base"] is outer.attrs["base"] and got.site is outer.site
    got.attrs["scales"].append(3.0)
    assert outer.attrs["scales"] == [1.0, 2.0]
    pending = Obj(cls=ClassSym("m", "Helper"), pending=("not", "built"))
    with pytest.raises(NotCopyable):
        copy(Obj(cls=ClassSym("m", "Holder"), attrs={"helper": pending}))


ROPE = '''from torch import nn
from sglang.srt.layers.rope_math import inv_freq


class PositionTable(nn.Module):
    def __init__(self, head_size, base, scaling=None):
        super().__init__()
        self.head_size = head_size
        self.freq = inv_freq(base)
        self.scaling = scaling or {}
        self.undefined = not_defined_anywhere

    def forward(self, x):
        return x
'''

MODEL = '''from torch import nn
from sglang.srt.layers.rotary_embedding import PositionTable


class {name}ForCausalLM(nn.Module):
    def __init__(self, config, quant_config=None, prefix=''):
        super().__init__()
        self.rope_a = PositionTable(128, 10000, {{"type": "yarn"}})
        self.rope_b = PositionTable(128, 10000, {{"type": "yarn"}})

    def forward(self, x):
        x = self.rope_a(x)
        return self.rope_b(x)


EntryClass = {name}ForCausalLM
'''


def test_copied_constructions_give_what_building_again_gives(tmp_path, monkeypatch):
    tree = synthetic_tree(tmp_path / "tree", {
        "layers/rotary_embedding.py": ROPE,
        "layers/rope_math.py": "def inv_freq(base):\n    return 1.0 / base\n",
        "models/m1.py": MODEL.format(name="M1"), "models/m2.py": MODEL.format(name="M2"),
    })
    kept: list[tuple] = []
    real_keep = constructions.Constructions.keep

    def keep(self, key, obj, files, warned, steps):
        kept.append((key, bool(warned)))
        return real_keep(self, key, obj, files, warned, steps)

    monkeypatch.setattr(constructions.Constructions, "keep", keep)

    def outputs(folder):
        impl = json.loads((folder / "sglang_implementation.json").read_text())
        tree_ = impl["module_tree"]
        return (sorted((c["name"], c["code_location"], c.get("alias_of") or None) for c in tree_["children"]),
                sorted((w["kind"], w["location"]) for w in impl["warnings"]),
                impl["stats"]["files_parsed"])

    r = run_cli("--all", "--sglang-path", str(tree), "--jobs", "1", "--no-cache", "--quiet", output_dir=tmp_path / "all")
    assert r.code == 0, r.err
    assert kept and all(warned for _, warned in kept)  # the constructor warns: built every time, never copied
    for name in ("M1", "M2"):
        alone = run_cli("--model-name", f"{name}ForCausalLM", "--sglang-path", str(tree), "--no-cache", "--quiet",
                        output_dir=tmp_path / name)
        assert alone.code == 0, alone.err
        assert outputs(tmp_path / "all" / f"{name}ForCausalLM") == outputs(tmp_path / name)

    # without the warning the construction is kept once and copied for every later equal call
    (tree / "sglang/srt/layers/rotary_embedding.py").write_text(ROPE.replace(
        "        self.undefined = not_defined_anywhere\n", ""))
    kept.clear()
    r = run_cli("--all", "--sglang-path", str(tree), "--jobs", "1", "--no-cache", "--quiet", output_dir=tmp_path / "all2")
    assert r.code == 0, r.err
    assert len(kept) == 1 and not kept[0][1]
    for name in ("M1", "M2"):
        children, warnings, files = outputs(tmp_path / "all2" / f"{name}ForCausalLM")
        assert [(n, alias) for n, _, alias in children] == [("rope_a", None), ("rope_b", None)]  # two modules
        assert children[0][1] != children[1][1]  # each at its own call site
        assert files >= 3  # the model, the rotary module and rope_math, read by the copied construction
        assert warnings == []
