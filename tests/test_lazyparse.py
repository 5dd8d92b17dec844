"""Lazy parsing: the skeleton plus the definitions parsed one by one equal the full parse."""

from __future__ import annotations

import ast
import json
import textwrap

import pytest

from sglang_baseline import lazyparse
from sglang_baseline.diagnostics import Diagnostics
from sglang_baseline.index import ClassSym, Index, SourceTree

from .conftest import norm_model, run_cli, synthetic_tree


def reassembled(text: str) -> ast.Module | None:
    skeleton = lazyparse.split(text)
    if skeleton is None:
        return None
    tree = ast.parse(skeleton.text)
    positions = lazyparse.stub_positions(tree, skeleton)
    if positions is None:
        return None
    for name, (begin, end, _kind) in skeleton.chunks.items():
        tree.body[positions[name]] = lazyparse.parse_chunk(text, begin, end, name, "x.py", skeleton.offsets)
    return tree


@pytest.mark.filterwarnings("ignore::SyntaxWarning", "ignore::DeprecationWarning")  # invalid escapes in SGLang
def test_every_file_of_a_release_reassembles_to_its_full_parse(release):
    split = 0
    paths = sorted((release("0.4.6") / "sglang" / "srt").rglob("*.py"))
    for path in paths:
        text = path.read_text(encoding="utf-8-sig")
        tree = reassembled(text)
        if tree is not None:
            split += 1
            assert ast.dump(tree, include_attributes=True) == ast.dump(ast.parse(text), include_attributes=True), path
    assert split > len(paths) / 2  # most files are split, not parsed whole


TRICKY = '''
import os

@decorator(
    arg=1,
)
class A(Base):
    """Doc."""

    def f(self,
          x):
        return g(x)


async def h():
    s = 1
    return s


if os.environ.get("X"):
    def j():
        pass
'''


def test_decorators_signatures_and_async_definitions_split_exactly():
    tree = reassembled(TRICKY)
    assert tree is not None
    assert ast.dump(tree, include_attributes=True) == ast.dump(ast.parse(TRICKY), include_attributes=True)


@pytest.mark.parametrize("text", [
    'def f():\n    s = """\nx = 1\n"""\n    return s\n',  # column-0 text inside a string
    "def f():\n    return 1\n\n\ndef f():\n    return 2\n",  # defined twice
    "def f():\n    return 1 + \\\n2\n",  # a continued line at column 0
    "def f():\n    return 1\n\x0cdef g():\n    return 2\nY = 3\n",  # a form feed starts a top-level line
    "class A:\r    x = 1\r\rdef g():\r    return 2\r",  # bare carriage returns end lines
    "@dec(\n'arg')\ndef f():\n    return 1\n\n\ndef g():\n    return 2\n",  # a decorator continued at column 0
    # triple quotes inside a comment and a one-line string, around a column-0 ``class`` inside a string
    'x = 1  # """\ns = """\nclass Fake:\n    pass\n"""  # """\ndef f():\n    return s\n\n\n'
    "class Real:\n    y = \"'''\"\n    z = 2\n",
    "a = 'it\\'s'\nt = '''\ndef g():\n    x = 1\n'''\ndef h():\n    return t\n",  # an escaped quote, then a string
])
def test_doubtful_splits_parse_the_whole_file(text):
    tree = reassembled(text)
    assert tree is None or ast.dump(tree, include_attributes=True) == ast.dump(ast.parse(text), include_attributes=True)


def _index_with(tmp_path, name: str, body: str) -> Index:
    return Index(SourceTree(synthetic_tree(tmp_path, {f"layers/{name}.py": body})), Diagnostics())


def test_a_definition_is_parsed_on_first_lookup(tmp_path):
    filler = "".join(f"def unused_{i}(x):\n    return x + {i}\n\n\n" for i in range(400))
    index = _index_with(tmp_path, "big", "from torch import nn\n\n\n" + filler
                        + "class Norm(nn.Module):\n    def forward(self, x):\n        return x\n")
    mod = index.module("sglang.srt.layers.big")
    assert mod is not None and "Norm" in mod.lazy and len(mod.lazy) == 401
    found = index.find_in_class(ClassSym(mod.name, "Norm"), "forward")
    assert found is not None and found[1].lineno == 3 + 400 * 4 + 2
    assert "Norm" not in mod.lazy and len(mod.lazy) == 400
    assert len(mod.tree.body) == 402 and not mod.lazy  # the whole tree on demand


def test_a_syntax_error_in_a_used_definition_is_reported(tmp_path):
    filler = "".join(f"def unused_{i}(x):\n    return x + {i}\n\n\n" for i in range(400))
    index = _index_with(tmp_path, "broken", filler + "def used(x):\n    return (x\n\n\ndef after():\n    pass\n")
    mod = index.module("sglang.srt.layers.broken")
    assert mod is not None and "used" in mod.lazy
    assert not [d for d in index.diagnostics.items if d.kind == "syntax-error"]
    index.node(index.resolve(mod.name, "used"))
    assert [d for d in index.diagnostics.items if d.kind == "syntax-error" and "broken.py" in d.location]


def test_small_files_are_parsed_whole(tmp_path):
    index = _index_with(tmp_path, "small", textwrap.dedent("""
        def f():
            return 1
    """))
    assert not index.module("sglang.srt.layers.small").lazy


PAD = "".join(f"# padding line {i} {'x' * 70}\n" for i in range(120))  # makes a file large enough to split


def _warnings(folder) -> list[tuple[str, str]]:
    impl = json.loads((folder / "sglang_implementation.json").read_text())
    return sorted((w["kind"], w["location"]) for w in impl["warnings"])


def _all_and_alone(root, out, models):
    r = run_cli("--all", "--sglang-path", str(root), "--jobs", "1", "--no-cache", "--quiet", output_dir=out / "all")
    assert r.code == 0, r.err
    rows = {row["model"]: row for row in json.loads((out / "all" / "index.json").read_text())["models"]}
    alone = {m: run_cli("--model-name", m, "--sglang-path", str(root), "--no-cache", "--quiet", output_dir=out / m)
             for m in models}
    return rows, alone


def test_a_syntax_error_in_a_used_definition_reaches_only_its_users_in_all(tmp_path):
    big = ("from sgl_kernel import rmsnorm\n\n\ndef ok(x):\n    return rmsnorm(x)\n\n\n"
           "def broken(x):\n    return rmsnorm(x) +\n\n\n" + PAD)
    norm = ("from torch import nn\nfrom sglang.srt.layers import big\n\n\nclass RMSNorm(nn.Module):\n"
            "    def __init__(self, hidden_size):\n        super().__init__()\n\n"
            "    def forward(self, x):\n        return big.{}(x)\n")
    root = synthetic_tree(tmp_path / "tree", {
        "layers/big.py": big, "layers/norm1.py": norm.format("broken"), "layers/norm2.py": norm.format("ok"),
        "models/m1.py": norm_model("M1", "sglang.srt.layers.norm1") + "#" * 500,  # larger: analysed first
        "models/m2.py": norm_model("M2", "sglang.srt.layers.norm2")})
    rows, alone = _all_and_alone(root, tmp_path / "out", ["M1ForCausalLM", "M2ForCausalLM"])
    for m, r in alone.items():
        assert r.code == 0, r.err
        assert _warnings(tmp_path / "out" / "all" / m) == _warnings(tmp_path / "out" / m)
    assert ("syntax-error", "layers/big.py:9") in _warnings(tmp_path / "out" / "M1ForCausalLM")
    assert ("syntax-error", "layers/big.py:9") not in _warnings(tmp_path / "out" / "M2ForCausalLM")


def test_a_syntax_error_in_an_unused_method_of_the_models_own_file_is_an_error_in_all_too(tmp_path):
    steps = "".join(f"        y = y + {i}\n" for i in range(10))
    big = "".join(f"    def helper_{i}(self, y):\n{steps}        return y\n\n" for i in range(8))
    x = ("from torch import nn\n\n\nclass XModel(nn.Module):\n    def __init__(self, config):\n"
         "        super().__init__()\n\n" + big + f"    def broken(self, y):\n{steps}        return (y\n\n"
         "    def forward(self, x):\n        return x\n\n\n"
         "class XForCausalLM(nn.Module):\n    def __init__(self, config, quant_config=None, prefix=''):\n"
         "        super().__init__()\n        self.model = XModel(config)\n\n    def forward(self, x):\n"
         "        return self.model(x)\n\n\n" + PAD + "EntryClass = XForCausalLM\n")
    y = ("from torch import nn\nfrom sglang.srt.models.x import XModel\n\n\nclass YForCausalLM(nn.Module):\n"
         "    def __init__(self, config, quant_config=None, prefix=''):\n        super().__init__()\n"
         "        self.model = XModel(config)\n\n    def forward(self, x):\n        return self.model(x)\n\n\n"
         + PAD + PAD + PAD + "EntryClass = YForCausalLM\n")  # larger: analysed first, reads x.py lazily
    root = synthetic_tree(tmp_path / "tree", {"models/x.py": x, "models/y.py": y})
    rows, alone = _all_and_alone(root, tmp_path / "out", ["XForCausalLM"])
    assert alone["XForCausalLM"].code == 5 and "models/x.py" in alone["XForCausalLM"].err
    assert rows["XForCausalLM"]["status"] == "error" and "cannot be analysed" in rows["XForCausalLM"]["error"]
    assert rows["YForCausalLM"]["status"] == "ok"


def test_the_models_own_file_parses_whole_even_when_another_model_read_it_first(tmp_path):
    x = ("from torch import nn\n\n\nclass XModel(nn.Module):\n    def __init__(self, config):\n        super().__init__()\n\n"
         "    def forward(self, x):\n        return x\n\n\n"
         "class XForCausalLM(nn.Module):\n    def __init__(self, config, quant_config=None, prefix=''):\n"
         "        super().__init__()\n        self.model = XModel(config)\n\n    def forward(self, x):\n"
         "        return self.model(x)\n\n\ndef unused(x):\n    return x +\n\n\n" + PAD + "EntryClass = XForCausalLM\n")
    y = ("from torch import nn\nfrom sglang.srt.models.x import XModel\n\n\nclass YForCausalLM(nn.Module):\n"
         "    def __init__(self, config, quant_config=None, prefix=''):\n        super().__init__()\n"
         "        self.model = XModel(config)\n\n    def forward(self, x):\n        return self.model(x)\n\n\n"
         + PAD + PAD + "EntryClass = YForCausalLM\n")  # larger: analysed first, reads x.py lazily
    root = synthetic_tree(tmp_path / "tree", {"models/x.py": x, "models/y.py": y})
    rows, alone = _all_and_alone(root, tmp_path / "out", ["XForCausalLM"])
    assert alone["XForCausalLM"].code == 5 and "models/x.py" in alone["XForCausalLM"].err
    assert rows["XForCausalLM"]["status"] == "error" and "cannot be analysed" in rows["XForCausalLM"]["error"]
    assert rows["YForCausalLM"]["status"] == "ok"


def test_an_unreadable_file_is_reported_to_every_model_that_uses_it(tmp_path, monkeypatch):
    from sglang_baseline import index as index_module

    monkeypatch.setattr(index_module, "MAX_FILE_BYTES", 2000)  # stands in for a file over 4 MB
    root = synthetic_tree(tmp_path / "tree", {
        "layers/huge.py": "def helper(x):\n    return x\n" + PAD,
        "layers/norm.py": "from torch import nn\nfrom sglang.srt.layers.huge import helper\n\n\n"
                          "class RMSNorm(nn.Module):\n    def forward(self, x):\n        return helper(x)\n",
        "models/m1.py": norm_model("M1", "sglang.srt.layers.norm") + "#" * 500,
        "models/m2.py": norm_model("M2", "sglang.srt.layers.norm")})
    rows, alone = _all_and_alone(root, tmp_path / "out", ["M1ForCausalLM", "M2ForCausalLM"])
    for m in ("M1ForCausalLM", "M2ForCausalLM"):
        assert ("unreadable-file", "layers/huge.py") in _warnings(tmp_path / "out" / m)
        assert _warnings(tmp_path / "out" / "all" / m) == _warnings(tmp_path / "out" / m)


# ---------------------------------------------------------------------------- methods


def _loaded(cls: ast.ClassDef) -> ast.ClassDef:
    list(ast.walk(cls))  # reading a lazy method's fields parses it
    return cls


def _classes_split(text: str, filename: str = "x.py") -> dict[str, ast.ClassDef]:
    skeleton = lazyparse.split(text)
    out = {}
    for name, (begin, end, kind) in (skeleton.chunks.items() if skeleton else ()):
        if kind == "class":
            cls = lazyparse.parse_class(text, begin, end, name, filename, skeleton.offsets, _no_broken)
            if cls is not None:
                out[name] = cls
    return out


def _no_broken(method, line):
    raise AssertionError(f"{method} at line {line} did not parse")


@pytest.mark.filterwarnings("ignore::SyntaxWarning", "ignore::DeprecationWarning")
def test_every_class_of_a_release_reassembles_to_its_full_parse(release):
    split = lazy = 0
    for path in sorted((release("0.4.6") / "sglang" / "srt").rglob("*.py")):
        text = path.read_text(encoding="utf-8-sig")
        classes = _classes_split(text, str(path))
        if not classes:
            continue
        full = {st.name: st for st in ast.parse(text).body if isinstance(st, ast.ClassDef)}
        for name, cls in classes.items():
            split += 1
            lazy += sum(isinstance(st, lazyparse.LAZY_TYPES) for st in cls.body)
            assert ast.dump(_loaded(cls), include_attributes=True) == ast.dump(full[name], include_attributes=True), \
                (path, name)
            assert not any(isinstance(n, lazyparse.LAZY_TYPES) for n in ast.walk(cls))
    assert split > 100 and lazy > 3 * split  # large classes are split, most of their methods left for later


def _big_class(methods: str) -> str:
    filler = "".join(f"    def unused_{i}(self, x):\n        y = x + {i}\n        y = y * 2\n        y = y - 1\n"
                     f"        y = y // 3\n        y = y % 5\n        return y\n\n" for i in range(12))
    return "import os\n\n\nclass A(Base):\n    \"\"\"Doc.\"\"\"\n\n    size = 3\n\n" + methods + filler + \
        "    def last(self):\n        return 0\n" + PAD


TRICKY_METHODS = '''    @property
    def f(self):
        """A method with a docstring,
        over lines."""
        a = 1
        b = 2
        c = 3
        return a + b + c

    @staticmethod
    async def g(
        x,
        y=(1,
           2),
    ) -> int:
        async with x:
            pass
        return y
        # a comment at the end

    class Inner:
        def h(self):
            return 1

    kind = "a"

'''


def test_methods_are_left_for_later_and_parsed_exactly_when_read():
    text = _big_class(TRICKY_METHODS)
    cls = _classes_split(text)["A"]
    lazy = {st.name for st in cls.body if isinstance(st, lazyparse.LAZY_TYPES)}
    assert {"f", "g", "unused_0", "unused_11"} <= lazy and "last" not in lazy and "Inner" not in lazy
    f = next(st for st in cls.body if getattr(st, "name", "") == "f")
    assert isinstance(f, ast.FunctionDef) and f.name == "f"  # the name does not parse it
    assert "_lazy" in f.__dict__
    assert f.decorator_list[0].id == "property" and type(f) is ast.FunctionDef and "_lazy" not in f.__dict__
    full = next(st for st in ast.parse(text).body if isinstance(st, ast.ClassDef))
    assert ast.dump(_loaded(cls), include_attributes=True) == ast.dump(full, include_attributes=True)
    assert ast.unparse(_classes_split(text)["A"]) == ast.unparse(full)  # a visitor dispatches on a stub as a def


@pytest.mark.parametrize("methods", [
    '    def f(self):\n        s = """\n    def g(self):\n"""\n        x = 1\n        x = 2\n        x = 3\n        return s\n\n',
    "    def f(self):\n        return 1\n\n    def f(self):\n        return 2\n\n",  # defined twice
    "    def f(self):\n        x = (1 +\n  2)\n        x = 2\n        x = 3\n        x = 4\n        return x\n\n",
    "    if os.environ.get('X'):\n        def f(self):\n            a = 1\n            a = 2\n            a = 3\n"
    "            a = 4\n            return a\n\n",  # methods inside an ``if``
    # a triple quote inside a one-line string and a comment, and a string holding class-level lines
    "    def m(self):\n        a = \"'''\"\n" + "".join(f"        a = {i}\n" for i in range(8))
    + "        t = '''\n    y = 1\n    '''\n    w = 1  # '''\n\n",
])
def test_doubtful_classes_parse_whole_or_exactly(methods):
    text = _big_class(methods)
    full = next(st for st in ast.parse(text).body if isinstance(st, ast.ClassDef))
    cls = _classes_split(text).get("A")
    assert cls is None or ast.dump(_loaded(cls), include_attributes=True) == ast.dump(full, include_attributes=True)


def test_a_syntax_error_in_a_used_method_is_reported_and_an_unused_one_is_not(tmp_path):
    steps = "".join(f"        y = y + {i}\n" for i in range(8))
    broken = f"    def used(self, x):\n        y = x\n{steps}        return (y\n\n" \
             f"    def unused(self, x):\n        y = x\n{steps}        return [y\n\n"
    index = _index_with(tmp_path, "bad", _big_class(broken))
    mod = index.module("sglang.srt.layers.bad")
    assert index.find_in_class(ClassSym(mod.name, "A"), "size") is not None  # the class is usable
    assert not [d for d in index.diagnostics.items if d.kind == "syntax-error"]
    _cls, used = index.find_in_class(ClassSym(mod.name, "A"), "used")
    assert used.body  # an empty method stands in for it
    errors = [d.location for d in index.diagnostics.items if d.kind == "syntax-error"]
    assert errors == ["layers/bad.py:9"]  # where the method starts
    for _ in range(2):  # each later analysis that reads it is told again, as when it runs alone
        index.begin_analysis(Diagnostics())
        assert not [d for d in index.diagnostics.items if d.kind == "syntax-error"]
        assert index.find_in_class(ClassSym(mod.name, "A"), "used")[1].body
        assert [d.location for d in index.diagnostics.items if d.kind == "syntax-error"] == ["layers/bad.py:9"]


def test_a_broken_base_class_is_reported_to_each_analysis_that_looks_through_it(tmp_path):
    filler = "".join(f"def unused_{i}(x):\n    return x + {i}\n\n\n" for i in range(400))
    index = _index_with(tmp_path, "base", filler + "class Base:\n    def f(self):\n        return (\n\n\n"
                        "class Sub(Base):\n    x = 1\n")
    mod = index.module("sglang.srt.layers.base")
    for _ in range(2):
        index.begin_analysis(Diagnostics())
        assert index.find_in_class(ClassSym(mod.name, "Sub"), "f") is None
        assert [d for d in index.diagnostics.items if d.kind == "syntax-error" and "base.py" in d.location]


@pytest.mark.parametrize("version", ["0.4.6", "0.5.6", "0.5.23"])
def test_mla_architectures_read_from_the_methods_that_mention_them_equal_the_whole_file(release, version):
    from sglang_baseline.discovery import _mla_architectures, mla_architectures

    root = release(version)
    text = (root / "sglang" / "srt" / "configs" / "model_config.py").read_text(encoding="utf-8")
    whole = _mla_architectures(ast.walk(ast.parse(text)))
    index = Index(SourceTree(root), Diagnostics())
    assert "DeepseekV3ForCausalLM" in whole
    assert mla_architectures(index) == whole
    if version != "0.4.6":  # ModelConfig is split: the methods that do not mention them are not parsed
        config_class = index.module("sglang.srt.configs.model_config").defs["ModelConfig"]
        assert sum(lazyparse.pending_text(st) is not None for st in config_class.body) > 10


MLA_IF = "    if 'DeepseekV3ForCausalLM' in archs:\n        {}.attention_arch = AttentionArch.MLA\n"


@pytest.mark.parametrize("text", [
    "import x\narchs = x.archs\n" + MLA_IF.replace("    ", "", 1).replace("\n        ", "\n    ").format("y"),
    _big_class("    def f(self, archs):\n        s = \'\'\'\nx\n\'\'\'\n" + "        a = 1\n" * 8
               + MLA_IF.replace("    ", "        ").format("self") + "\n"),
])
def test_mla_architectures_outside_a_method_or_past_a_string_equal_the_whole_file(tmp_path, text):
    from sglang_baseline.discovery import _mla_architectures, mla_architectures

    (tmp_path / "sglang" / "srt" / "configs").mkdir(parents=True)
    files = {"configs/__init__.py": "", "configs/model_config.py": text + PAD}
    index = Index(SourceTree(synthetic_tree(tmp_path, files)), Diagnostics())
    assert mla_architectures(index) == _mla_architectures(ast.walk(ast.parse(text))) == ["DeepseekV3ForCausalLM"]


def test_the_pruned_walk_finds_every_statement_naming_a_wrapper_in_walk_order(release):

    text = (release("0.4.6") / "sglang" / "srt" / "layers" / "attention" / "flashinfer_backend.py").read_text()
    names = ["BatchDecodeWithPagedKVCacheWrapper", "BatchPrefillWithPagedKVCacheWrapper",
             "BatchPrefillWithRaggedKVCacheWrapper"]
    tree = ast.parse(text)
    wanted = [n for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign, ast.Call))
              and any(name in ast.get_source_segment(text, n) for name in names)]
    keep = {id(n) for n in wanted}
    visited = list(lazyparse.walk_lines(tree, lazyparse.lines_naming(text, names)))
    assert [n for n in visited if id(n) in keep] == wanted and len(wanted) > 5
    assert len(visited) < len(list(ast.walk(tree))) / 4  # most of the file is skipped


def test_looking_for_delegated_children_parses_only_the_methods_that_name_one():
    from sglang_baseline.forward import _built_attributes

    steps = "".join(f"        y = y + {i}\n" for i in range(8))
    methods = (f"    def __init__(self, x):\n        y = x\n{steps}        self.mlp = Mlp()\n"
               f"        self.gate = make_gate(self.mlp, y)\n\n"
               f"    def other(self, x):\n        y = x\n{steps}        self.cache = make(self.buffer)\n\n")
    text = _big_class(methods)
    cls = _classes_split(text)["A"]
    full = next(st for st in ast.parse(text).body if isinstance(st, ast.ClassDef))
    found = _built_attributes(cls, {"mlp"})
    assert found == _built_attributes(full, {"mlp"})[:len(found)]
    assert (["gate"], [["mlp"], []]) in found
    other = next(st for st in cls.body if getattr(st, "name", "") == "other")
    assert lazyparse.pending_text(other) is not None  # not parsed: it names no child
    assert (["cache"], [["buffer"]]) in _built_attributes(full, {"buffer"})
    _built_attributes(cls, set())
    assert lazyparse.pending_text(other) is not None


def test_the_pruned_walk_parses_only_the_methods_on_the_marked_lines():

    steps = "".join(f"        y = y + {i}\n" for i in range(8))
    text = _big_class(f"    def plan(self, x):\n        y = x\n{steps}        self.w = Wrapper(y)\n\n")
    cls = _classes_split(text)["A"]
    module = ast.Module(body=[cls], type_ignores=[])
    assigns = [n for n in lazyparse.walk_lines(module, lazyparse.lines_naming(text, ["Wrapper"])) if isinstance(n, ast.Assign)]
    assert [ast.unparse(a) for a in assigns] == ["self.w = Wrapper(y)"]
    lazy_left = [st.name for st in cls.body if lazyparse.pending_text(st) is not None]
    assert "plan" not in lazy_left and "unused_0" in lazy_left and len(lazy_left) == 12


def test_the_pruned_walk_enters_a_definition_whose_decorator_names_a_wrapper():

    text = "@deco(\n    wrappers.append(Wrapper()),\n)\ndef f():\n    return 1\n"
    tree = ast.parse(text)
    calls = [n for n in lazyparse.walk_lines(tree, lazyparse.lines_naming(text, ["Wrapper"])) if isinstance(n, ast.Call)]
    assert len(calls) == len([n for n in ast.walk(tree) if isinstance(n, ast.Call)]) == 3


def test_triple_quotes_in_comments_and_one_line_strings_do_not_stop_the_split():
    text = textwrap.dedent('''\
        x = 1  # """
        s = """
        class Fake:
            pass
        """  # """
        def f():
            return s


        class Real:
            y = "\'\'\'"
            z = 2
    ''')
    tree = reassembled(text)
    assert tree is not None and {"f", "Real"} <= set(lazyparse.split(text).chunks)
    assert "Fake" not in lazyparse.split(text).chunks
    assert ast.dump(tree, include_attributes=True) == ast.dump(ast.parse(text), include_attributes=True)


def test_a_name_defined_twice_stays_in_the_skeleton_and_the_rest_is_split():
    text = ("def f():\n    return 1\n\n\ndef g():\n    return 2\n\n\ndef f():\n    return 3\n\n\n"
            "class A:\n    x = 1\n")
    skeleton = lazyparse.split(text)
    assert skeleton is not None and set(skeleton.chunks) == {"g", "A"}
    tree = reassembled(text)
    assert ast.dump(tree, include_attributes=True) == ast.dump(ast.parse(text), include_attributes=True)
