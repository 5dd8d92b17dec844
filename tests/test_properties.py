"""Property tests: the evaluator agrees with Python on integer arithmetic and never crashes;
the config loader accepts or refuses any JSON value cleanly; kernel-name patterns match as
``fnmatch`` does."""

from __future__ import annotations

import ast
import fnmatch
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sglang_baseline.catalog import load_catalog
from sglang_baseline.errors import ConfigError
from sglang_baseline.evaluate import Interpreter, evaluate_expression
from sglang_baseline.forward import glob_match
from sglang_baseline.hfconfig import config_from_dict
from sglang_baseline.index import Index, SourceTree
from sglang_baseline.runtime import Layout, Runtime
from sglang_baseline.values import Sym

OPS = ["+", "-", "*", "//", "%"]
CMPS = ["<", "<=", "==", "!=", ">", ">="]


def _interp(tmp: Path) -> Interpreter:
    (tmp / "sglang" / "srt" / "models").mkdir(parents=True, exist_ok=True)
    index = Index(SourceTree(tmp))
    return Interpreter(index, Runtime(load_catalog(), Layout()), budget=200_000)


@st.composite
def int_expr(draw, depth=0):
    if depth > 4 or draw(st.booleans()):
        n = draw(st.integers(min_value=-1000, max_value=1000))
        return f"({n})"
    kind = draw(st.sampled_from(["bin", "bin", "neg", "cond", "minmax"]))
    a = draw(int_expr(depth + 1))
    b = draw(int_expr(depth + 1))
    if kind == "bin":
        return f"({a} {draw(st.sampled_from(OPS))} {b})"
    if kind == "neg":
        return f"(-{a})"
    if kind == "minmax":
        return f"{draw(st.sampled_from(['max', 'min']))}({a}, {b})"
    c = f"({a} {draw(st.sampled_from(CMPS))} {b})"
    return f"({a} if {c} else {b})"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(expr=int_expr())
def test_integer_arithmetic_agrees_with_python(tmp_path_factory, expr):
    interp = _interp(tmp_path_factory.mktemp("t"))
    try:
        expected = eval(compile(ast.parse(expr, mode="eval"), "<e>", "eval"), {"max": max, "min": min})
    except ZeroDivisionError:
        expected = ZeroDivisionError
    got = evaluate_expression(interp, expr, {}, "")
    if expected is ZeroDivisionError:
        assert isinstance(got, Sym)  # unknown, not a wrong number
    else:
        assert got == expected and type(got) is type(expected)


@st.composite
def any_expr(draw):
    atoms = st.sampled_from(["x", "config.hidden_size", "tp", "None", "True", "'s'", "[1, 2]", "{'a': 1}",
                             "(1, x)", "getattr(config, 'q', 3)", "len(y)", "z.attr", "f(1)"])
    parts = draw(st.lists(atoms, min_size=1, max_size=6))
    ops = draw(st.lists(st.sampled_from(OPS + CMPS + [" and ", " or ", " in ", " if x else "]),
                        min_size=len(parts) - 1, max_size=len(parts) - 1))
    text = parts[0]
    for op, p in zip(ops, parts[1:]):
        text = f"({text}{op if op.startswith(' ') else ' ' + op + ' '}{p})"
        if "if x else" in op:
            text = f"({parts[0]} if x else {p})"
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(expr=any_expr())
def test_mixed_symbolic_expressions_never_crash(tmp_path_factory, expr):
    interp = _interp(tmp_path_factory.mktemp("t"))
    evaluate_expression(interp, expr, {"x": Sym("x"), "y": Sym("y"), "tp": 2}, "")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
config_keys = st.sampled_from(["hidden_size", "num_hidden_layers", "num_attention_heads", "architectures",
                               "quantization_config", "text_config", "model_type", "vocab_size", "head_dim",
                               "weight_block_size", "quant_method", "modules_to_not_convert", "x"])


@settings(max_examples=400, deadline=None)
@given(raw=st.one_of(json_values, st.dictionaries(config_keys, json_values, max_size=8)))
def test_config_loader_accepts_or_refuses_cleanly(raw):
    try:
        cfg = config_from_dict(json.loads(json.dumps(raw)), Path("config.json"))
    except ConfigError as e:
        assert str(e).startswith("--config config.json")
        return
    assert isinstance(cfg.raw, dict) and isinstance(cfg.text, dict)
    assert isinstance(cfg.architectures, list)


@settings(max_examples=3000, deadline=None)
@given(name=st.text(alphabet="ab._", max_size=10), pattern=st.text(alphabet="ab._*?", max_size=8))
def test_glob_match_is_fnmatchcase(name, pattern):
    assert glob_match(name, pattern) == fnmatch.fnmatchcase(name, pattern)
