"""Lazy parsing: the skeleton plus the definitions parsed one by one equal the full parse."""

from __future__ import annotations

import ast
import textwrap

import pytest

from sglang_baseline import lazyparse
from sglang_baseline.diagnostics import Diagnostics
from sglang_baseline.index import ClassSym, Index, SourceTree

from .conftest import synthetic_tree


def reassembled(text: str) -> ast.Module | None:
    skeleton = lazyparse.split(text)
    if skeleton is None:
        return None
    tree = ast.parse(skeleton.text)
    positions = lazyparse.stub_positions(tree, skeleton)
    if positions is None:
        return None
    offsets = lazyparse.line_offsets(text)
    for name, (begin, end, _kind) in skeleton.chunks.items():
        tree.body[positions[name]] = lazyparse.parse_chunk(text, begin, end, name, "x.py", offsets)
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
