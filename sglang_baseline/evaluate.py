"""The symbolic evaluator: runs constructors and helpers of the tree *on paper*.

It interprets a small, safe subset of Python over the AST the index gives it:
argument binding (positional, keyword, defaults, ``*args``/``**kwargs``), locals,
``self.`` attributes through ``__init__``, ``super().__init__`` and the helpers they
call, arithmetic, comparisons, conditionals, comprehensions, bounded loops,
f-strings, dict/list/str methods, enums, properties, module-level constants and
tables.  Anything it cannot know becomes a :class:`~.values.Sym` carrying the
expression that would compute it.  Branches on unknown conditions run both ways
and merge.  Work is bounded by a step budget and a call-depth limit, so recursion
in the source cannot hang it.

Nothing is imported or executed: calls into code outside the tree are answered by
the runtime model (:mod:`.runtime`) or become symbolic.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import constructions, lazyparse, tracking
from .diagnostics import Diagnostics
from .index import (
    ClassSym,
    ExternalSym,
    FuncSym,
    Index,
    ModuleSym,
    ParsedModule,
    ValueSym,
    class_member,
    node_text,
)
from .values import (
    Alt,
    BoundMethod,
    BuiltinMethod,
    Closure,
    EnumMember,
    HostFunction,
    ModuleDictObj,
    ModuleListObj,
    Namespace,
    Obj,
    Partial,
    PropertyRef,
    Site,
    SuperProxy,
    Sym,
    expr_of,
    is_known,
)

MAX_DEPTH = 48  # interpreted call depth
# One function active this many times at once: recursion over unknown values (a walk of
# ``getattr(cfg, "text_config", None)`` on a symbolic config never bottoms out and fans out
# exponentially); real recursion in constructors is shallow.
MAX_RECURSION = 4
# a recursion whose arguments are all unknown (a walk over a config the run does not have) can
# only fan out over unknown values: it stops sooner (five sub-configs a level made ~800 calls at 4)
MAX_UNKNOWN_RECURSION = 2
MAX_EXPR_DEPTH = 150  # nested expression depth
MAX_LOOP = 2048  # iterations of one loop
MAX_SEQ = 1 << 16  # length of lists built by `*`, range, ...
MAX_INT_BITS = 256


class BudgetExhausted(Exception):
    pass


class _Return(Exception):
    pass


class _Raise(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


@dataclass
class Frame:
    module: ParsedModule
    locals: dict[str, Any] = field(default_factory=dict)
    self_obj: Any = None
    cls: ClassSym | None = None  # class whose method this frame runs (for super())
    outer: Frame | None = None  # enclosing function frame (closures)
    name: str = "<module>"
    returns: list[tuple[str, Any]] = field(default_factory=list)
    conds: tuple[str, ...] = ()  # undecided conditions on the current path
    class_ns: dict[str, Any] | None = None
    notes: dict[str, Any] = field(default_factory=dict)  # scratch space for readers of the frame


def _is_seq(v: Any) -> bool:
    return isinstance(v, (list, tuple))


_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
    ast.BitXor: operator.xor, ast.LShift: operator.lshift, ast.RShift: operator.rshift,
    ast.MatMult: None,
}
_BINOP_TEXT = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
    ast.Mod: "%", ast.Pow: "**", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
    ast.LShift: "<<", ast.RShift: ">>", ast.MatMult: "@",
}
_CMPOPS = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_CMP_TEXT = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
}


_NOT_NAME_LIKE = re.compile(r"[^\w.\[\]']")
_ALNUM = re.compile(r"[^\W_]")


def _paren(e: str) -> str:
    """``e`` as an operand: bracketed unless a name, attribute or subscript chain, or already bracketed."""
    if (not _NOT_NAME_LIKE.search(e) and _ALNUM.search(e)) or (e.startswith("(") and e.endswith(")")):
        return e
    return f"({e})"


@functools.cache
def _handlers(cls: type) -> tuple[dict[type, Any], dict[type, Any]]:
    """``_e_<Node>`` / ``_s_<Node>`` methods of an interpreter class, by AST node type."""
    def table(prefix: str) -> dict[type, Any]:
        out: dict[type, Any] = {}
        for name in dir(cls):
            node_type = getattr(ast, name[len(prefix):], None) if name.startswith(prefix) else None
            if isinstance(node_type, type):
                out[node_type] = getattr(cls, name)
        for stub in lazyparse.STUB_TYPES:  # a method not parsed yet (or broken) is run as the def it stands for
            if stub.__bases__[0] in out:
                out[stub] = out[stub.__bases__[0]]
        return out
    return table("_e_"), table("_s_")


def truth(v: Any) -> bool | None:
    """Python truthiness of a value, or None when unknown."""
    if isinstance(v, Alt):
        ts = {truth(x) for x in v.values()}
        return ts.pop() if len(ts) == 1 else None
    if isinstance(v, Sym):
        return None
    if tracking.is_tracked(v):
        tracking.record(lambda i, f=v.fn: bool(f(i)), bool(v))
        return bool(v)
    if isinstance(v, (Obj, ModuleListObj, ModuleDictObj, ClassSym, FuncSym, ExternalSym,
                      ModuleSym, BoundMethod, Closure, Partial, Namespace, EnumMember,
                      BuiltinMethod, SuperProxy, PropertyRef)):
        if isinstance(v, ModuleListObj):
            return None if v.repeat is not None else bool(v.items)
        if isinstance(v, ExternalSym):
            return None
        return True
    try:
        return bool(v)
    except Exception:
        return None


class Interpreter:
    """Evaluates code from an :class:`Index` under a :class:`runtime.Runtime`."""

    def __init__(self, index: Index, runtime: Any, diagnostics: Diagnostics | None = None,
                 budget: int = 800_000, seconds: float = 30.0) -> None:
        self.index = index
        self.runtime = runtime
        self.diag = diagnostics if diagnostics is not None else index.diagnostics
        self.budget = budget
        self.deadline = time.perf_counter() + seconds
        self.steps = 0
        self.depth = 0
        self._active: dict[tuple[str, int], int] = {}  # function body -> activations on the stack
        self.expr_depth = 0
        self.try_depth = 0
        self._module_values: dict[tuple[str, str], Any] = {}
        # what computing a memoised answer read and warned (see _memo_replay), by memo key
        self._events: dict[tuple, tuple[dict[str, str], list[tuple]]] = {}
        self._in_progress: set[tuple[str, str]] = set()
        self._memo: dict[tuple, Any] = {}
        self._class_attr_cache: dict[tuple[ClassSym, str], Any] = {}
        self.on_module_created: list[Any] = []  # hooks(obj)
        index.guard_evaluator = self._guard
        self._expr_handlers, self._stmt_handlers = _handlers(type(self))

    # ================================================================ helpers

    def new_phase(self, steps: int = 800_000, seconds: float = 30.0) -> None:
        """Give the next stage of work its own step budget and time limit."""
        self.budget = self.steps + steps
        self.deadline = time.perf_counter() + seconds

    def tick(self, n: int = 1) -> None:
        self.steps += n
        if self.steps > self.budget:
            raise BudgetExhausted()
        if not self.steps & 0x3FFF and time.perf_counter() > self.deadline:
            raise BudgetExhausted()

    def site(self, frame: Frame, node: ast.AST) -> Site:
        return Site(frame.module.rel, getattr(node, "lineno", 0), getattr(node, "end_lineno", 0) or 0)

    def loc(self, frame: Frame, node: ast.AST) -> str:
        return f"{frame.module.rel}:{getattr(node, 'lineno', 0)}"

    def module_frame(self, module: str) -> Frame | None:
        mod = self.index.module(module)
        if mod is None:
            return None
        return Frame(module=mod, name=f"<module {module}>")

    def _guard(self, mod: ParsedModule, test: Any, polarity: bool) -> bool | None:
        """Decide a module-level ``if`` guard of a binding (platform checks)."""
        if not isinstance(test, ast.AST):
            return None
        frame = Frame(module=mod, name=f"<guard {mod.name}>")
        saved = self.steps
        try:
            v = self.eval(test, frame)
        except (BudgetExhausted, RecursionError, _Raise, _Return):
            return None
        finally:
            self.steps = min(self.steps, saved + 20000)
        t = truth(v)
        if t is None:
            return None
        return t if polarity else not t

    # ================================================================ symbols -> values

    def symbol_value(self, sym: Any) -> Any:
        if isinstance(sym, ValueSym):
            return self.module_value(sym.module, sym.name)
        if isinstance(sym, ExternalSym):
            known = self.runtime.external_value(sym.dotted)
            if known is not None:
                return known[0]
        return sym

    # A memoised answer reused inside a result recorded for other analyses (a shared forward
    # reading) must give that result the files and warnings its computation gave.
    def _memo_begin(self) -> tuple[dict[str, str], Diagnostics, list[tuple]]:
        return self.index.begin_events()

    def _memo_end(self, key: tuple, token: tuple[dict[str, str], Diagnostics, list[tuple]]) -> None:
        files, log = self.index.end_events(token)
        if files or log:
            self._events[key] = (files, log)

    def _memo_replay(self, key: tuple) -> None:
        events = self._events.get(key)
        if events is not None and self.index.is_recording:
            self.index.replay(events[0])
            self.diag.replay(events[1])  # (not while deciding an if-test quietly: see ForwardReader._decide)

    def module_value(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in self._module_values:
            self._memo_replay(key)
            return self._module_values[key]
        if key in self._in_progress:
            return Sym(f"{name}")
        mod = self.index.module(module)
        if mod is None or name not in mod.bindings:
            return Sym(name)
        b = self.index.choose(mod, mod.bindings[name])
        self._in_progress.add(key)
        token = self._memo_begin()
        try:
            frame = Frame(module=mod, name=f"<module {module}>")
            value = self._assignment_value(b.node, name, frame)
            if isinstance(value, (dict, list, set)):
                self._module_mutations(mod, name, value, b.node)
        except (_Raise, _Return, _Break, _Continue):
            value = Sym(name)
        except RecursionError:
            value = Sym(name)
        finally:
            self._in_progress.discard(key)
            self._memo_end(key, token)
        self._module_values[key] = value
        return value

    def _module_mutations(self, mod: ParsedModule, name: str, value: Any, after: ast.AST) -> None:
        """Apply top-level ``NAME.update(...)`` / ``NAME[k] = v`` / ``NAME.append(...)`` after its assignment
        (under the ``if`` guards that hold on the assumed platform): registries are often built that way."""
        if name not in _mutated_names(mod):  # (most values: nothing to walk, no if-test to evaluate)
            return
        frame = Frame(module=mod, locals={name: value}, name=f"<module {mod.name}>")
        started = False

        def mutates(st: ast.stmt) -> bool:
            return name in _mutation_targets(st)

        def walk(stmts: list[ast.stmt]) -> None:
            nonlocal started
            for st in stmts:
                if st is after:
                    started = True
                    continue
                if isinstance(st, ast.If):
                    t = truth(self.eval(st.test, frame)) if started else None
                    if not started:
                        walk(st.body)
                        walk(st.orelse)
                    elif t is True:
                        walk(st.body)
                    elif t is False:
                        walk(st.orelse)
                elif isinstance(st, ast.Try):
                    walk(st.body)
                elif started and mutates(st):
                    try:
                        self.exec_stmt(st, frame)
                    except (_Raise, _Return, _Break, _Continue):
                        pass

        walk(mod.top_level)  # definitions are not entered: their bodies need not be parsed

    def _assignment_value(self, node: ast.AST, name: str, frame: Frame) -> Any:
        if isinstance(node, ast.Assign):
            value = self.eval(node.value, frame)
            for t in node.targets:
                got = self._extract_target(t, value, name, frame)
                if got is not _MISSING:
                    return got
            return Sym(name)
        if isinstance(node, ast.AnnAssign):
            if node.value is None:
                return Sym(name)
            return self.eval(node.value, frame)
        if isinstance(node, ast.AugAssign):
            return Sym(name)
        return Sym(name)

    def _extract_target(self, target: ast.AST, value: Any, name: str, frame: Frame) -> Any:
        if isinstance(target, ast.Name):
            return value if target.id == name else _MISSING
        if isinstance(target, (ast.Tuple, ast.List)):
            for i, e in enumerate(target.elts):
                sub = self._index_value(value, i, frame)
                got = self._extract_target(e, sub, name, frame)
                if got is not _MISSING:
                    return got
        return _MISSING

    def _index_value(self, value: Any, i: int, frame: Frame) -> Any:
        if _is_seq(value) and -len(value) <= i < len(value):
            return value[i]
        return Sym(f"{_paren(expr_of(value))}[{i}]")

    # ================================================================ names

    def lookup(self, name: str, frame: Frame, node: ast.AST | None = None) -> Any:
        f: Frame | None = frame
        while f is not None:
            if name in f.locals:
                return f.locals[name]
            f = f.outer
        if frame.class_ns is not None and name in frame.class_ns:
            return frame.class_ns[name]
        sym = self.index.resolve(frame.module.name, name)
        if sym is None:
            if node is not None:
                self.diag.add("unresolved-name", self.loc(frame, node), what=name)
            return Sym(name)
        return self.symbol_value(sym)

    # ================================================================ expressions

    def eval(self, node: ast.AST, frame: Frame) -> Any:
        # the hottest function of the tool: tick() inlined, handlers looked up by node type
        self.steps += 1
        if self.steps > self.budget:
            raise BudgetExhausted()
        if not self.steps & 0x3FFF and time.perf_counter() > self.deadline:
            raise BudgetExhausted()
        self.expr_depth += 1
        try:
            if self.expr_depth > MAX_EXPR_DEPTH:
                return Sym("<expression too deep>")
            method = self._expr_handlers.get(type(node))
            if method is None:
                return Sym(_unparse(node))
            return method(self, node, frame)
        finally:
            self.expr_depth -= 1

    def _e_Constant(self, node: ast.Constant, frame: Frame) -> Any:
        return node.value

    def _e_Name(self, node: ast.Name, frame: Frame) -> Any:
        return self.lookup(node.id, frame, node)

    def _e_NamedExpr(self, node: ast.NamedExpr, frame: Frame) -> Any:
        v = self.eval(node.value, frame)
        self.assign(node.target, v, frame, node)
        return v

    def _e_Starred(self, node: ast.Starred, frame: Frame) -> Any:
        return self.eval(node.value, frame)

    def _e_List(self, node: ast.List, frame: Frame) -> Any:
        return self._elements(node.elts, frame)

    def _e_Tuple(self, node: ast.Tuple, frame: Frame) -> Any:
        v = self._elements(node.elts, frame)
        return tuple(v) if isinstance(v, list) else v

    def _e_Set(self, node: ast.Set, frame: Frame) -> Any:
        v = self._elements(node.elts, frame)
        if isinstance(v, list):
            try:
                return set(v)
            except TypeError:
                return v
        return v

    def _elements(self, elts: list[ast.expr], frame: Frame) -> Any:
        out: list[Any] = []
        for e in elts:
            if isinstance(e, ast.Starred):
                v = self.eval(e.value, frame)
                if isinstance(v, (list, tuple, set, frozenset, dict, str, range)):
                    out.extend(list(v))
                elif isinstance(v, ModuleListObj) and v.repeat is None:
                    out.extend(v.items)
                else:
                    return Sym(f"[..., *{expr_of(v)}]")
            else:
                out.append(self.eval(e, frame))
        return out

    def _e_Dict(self, node: ast.Dict, frame: Frame) -> Any:
        out: dict[Any, Any] = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                d = self.eval(v, frame)
                if isinstance(d, dict):
                    out.update(d)
                continue
            kv = self.eval(k, frame)
            vv = self.eval(v, frame)
            try:
                out[kv] = vv
            except TypeError:
                out[expr_of(kv)] = vv
        return out

    def _e_JoinedStr(self, node: ast.JoinedStr, frame: Frame) -> Any:
        parts: list[str] = []
        replay: list[Any] = []  # str or (fn, conv, spec), to rebuild the string for another layer
        tracked = False
        known = True
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
                replay.append(str(v.value))
            elif isinstance(v, ast.FormattedValue):
                x = self.eval(v.value, frame)
                if isinstance(x, (int, float, str, bool)) or x is None:
                    try:
                        spec = ""
                        if v.format_spec is not None:
                            spec = self.eval(v.format_spec, frame)
                            if not isinstance(spec, str):
                                raise ValueError
                        conv = {115: str, 114: repr, 97: ascii}.get(v.conversion)
                        parts.append(format(conv(x) if conv else x, spec))
                        tracked = tracked or tracking.is_tracked(x)
                        replay.append((tracking.fn_of(x), conv, spec))
                    except (ValueError, TypeError):
                        known = False
                        parts.append("{" + expr_of(x) + "}")
                else:
                    known = False
                    parts.append("{" + expr_of(x) + "}")
        s = "".join(parts)
        if known and tracked:
            def rebuild(i: int, replay: list[Any] = replay) -> str:
                out = []
                for p in replay:
                    if isinstance(p, str):
                        out.append(p)
                    else:
                        f, conv, spec = p
                        val = f(i)
                        out.append(format(conv(val) if conv else val, spec))
                return "".join(out)

            return tracking.TrackedStr(s, rebuild)
        return s if known else Sym("f" + repr(s))

    def _e_FormattedValue(self, node: ast.FormattedValue, frame: Frame) -> Any:
        return self.eval(node.value, frame)

    def _e_Attribute(self, node: ast.Attribute, frame: Frame) -> Any:
        base = self.eval(node.value, frame)
        return self.getattr(base, node.attr, frame, node)

    def _e_Subscript(self, node: ast.Subscript, frame: Frame) -> Any:
        base = self.eval(node.value, frame)
        if isinstance(node.slice, ast.Slice):
            lo = self.eval(node.slice.lower, frame) if node.slice.lower else None
            hi = self.eval(node.slice.upper, frame) if node.slice.upper else None
            st = self.eval(node.slice.step, frame) if node.slice.step else None
            if isinstance(base, (list, tuple, str)) and all(
                x is None or isinstance(x, int) for x in (lo, hi, st)
            ):
                return base[slice(lo, hi, st)]
            if isinstance(base, ModuleListObj) and base.repeat is None and all(
                x is None or isinstance(x, int) for x in (lo, hi, st)
            ):
                return ModuleListObj(base.items[slice(lo, hi, st)], base.site)
            return Sym(f"{_paren(expr_of(base))}[{_unparse(node.slice)}]")
        key = self.eval(node.slice, frame)
        return self.subscript(base, key)

    def subscript(self, base: Any, key: Any) -> Any:
        r = self._subscript(base, key)
        if tracking.is_tracked(key) and not isinstance(r, Sym):
            fk = key.fn

            def pick(i: int, base: Any = base) -> Any:
                items = base.items if isinstance(base, ModuleListObj) else base
                return items[fk(i)]

            if tracking.is_tracked(tracking.wrap(r, pick)):
                return tracking.wrap(r, pick)
            tracking.record(pick, r)
        return r

    def _subscript(self, base: Any, key: Any) -> Any:
        if isinstance(key, Alt) and isinstance(base, (dict, list, tuple)):
            r = _alt_map(key, lambda k: self._subscript(base, k))
            if r is not _UNDECIDED:
                return r
        if isinstance(base, dict):
            try:
                if key in base:
                    return base[key]
            except TypeError:
                pass
            if is_known(key) and is_known(list(base.keys())):
                return Sym(f"{expr_of(base)}[{expr_of(key)}]", "missing key")
            return Sym(f"{_paren(expr_of(base))}[{expr_of(key)}]")
        if isinstance(base, (list, tuple, str)) and isinstance(key, int) and not isinstance(key, bool):
            if -len(base) <= key < len(base):
                return base[key]
            return Sym(f"{_paren(expr_of(base))}[{key}]", "index out of range")
        if isinstance(base, ModuleListObj) and isinstance(key, int) and base.repeat is None:
            if -len(base.items) <= key < len(base.items):
                return base.items[key]
        if isinstance(base, ModuleListObj) and base.repeat is not None:
            return base.items[0] if base.items else Sym("layer")
        if isinstance(base, ModuleDictObj) and key in base.items:
            return base.items[key]
        if isinstance(base, Namespace) and isinstance(key, str) and key in base.attrs:
            return base.attrs[key]
        return Sym(f"{_paren(expr_of(base))}[{expr_of(key)}]")

    def _e_UnaryOp(self, node: ast.UnaryOp, frame: Frame) -> Any:
        v = self.eval(node.operand, frame)
        if isinstance(node.op, ast.Not):
            t = truth(v)
            return (not t) if t is not None else Sym(f"not {_paren(expr_of(v))}")
        if isinstance(v, (int, float)) and not isinstance(v, bool) or isinstance(v, bool):
            try:
                return {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}[
                    type(node.op)
                ](v)
            except Exception:
                pass
        sym = {ast.USub: "-", ast.UAdd: "+", ast.Invert: "~"}.get(type(node.op), "?")
        return Sym(f"{sym}{_paren(expr_of(v))}")

    def _e_BinOp(self, node: ast.BinOp, frame: Frame) -> Any:
        a = self.eval(node.left, frame)
        b = self.eval(node.right, frame)
        return self.binop(type(node.op), a, b)

    def binop(self, op: type, a: Any, b: Any) -> Any:
        r = self._binop(op, a, b)
        if (tracking.is_tracked(a) or tracking.is_tracked(b)) and _BINOPS.get(op) is not None:
            f, fa, fb = _BINOPS[op], tracking.fn_of(a), tracking.fn_of(b)
            return tracking.wrap(r, lambda i: f(fa(i), fb(i)))
        return r

    def _binop(self, op: type, a: Any, b: Any) -> Any:
        if isinstance(a, Alt) or isinstance(b, Alt):
            if isinstance(a, Alt) and not isinstance(b, Alt):
                r = _alt_map(a, lambda x: self._binop(op, x, b))
            elif isinstance(b, Alt) and not isinstance(a, Alt):
                r = _alt_map(b, lambda y: self._binop(op, a, y))
            else:
                r = _UNDECIDED
            if r is not _UNDECIDED:
                return r
        fn = _BINOPS.get(op)
        if fn is not None and _arith_ok(a) and _arith_ok(b):
            try:
                if op is ast.Pow and isinstance(b, int) and abs(b) > 256:
                    raise OverflowError
                if op is ast.LShift and isinstance(b, int) and b > MAX_INT_BITS:
                    raise OverflowError
                if op is ast.Mult and (
                    (isinstance(a, (str, list, tuple)) and isinstance(b, int) and len(a) * b > MAX_SEQ)
                    or (isinstance(b, (str, list, tuple)) and isinstance(a, int) and len(b) * a > MAX_SEQ)
                ):
                    raise OverflowError
                r = fn(a, b)
                if isinstance(r, int) and not isinstance(r, bool) and r.bit_length() > MAX_INT_BITS:
                    raise OverflowError
                return r
            except (ZeroDivisionError, OverflowError, TypeError, ValueError, MemoryError):
                pass
        # algebraic simplifications that keep templates readable
        if op in (ast.Mult, ast.FloorDiv, ast.Div) and b == 1 and not isinstance(b, bool) and isinstance(a, Sym):
            return a
        if op is ast.Mult and a == 1 and not isinstance(a, bool) and isinstance(b, Sym):
            return b
        if op is ast.Add and isinstance(a, list) and isinstance(b, list):
            return a + b
        text = _BINOP_TEXT.get(op, "?")
        return Sym(f"{_paren(expr_of(a))} {text} {_paren(expr_of(b))}")

    def _e_BoolOp(self, node: ast.BoolOp, frame: Frame) -> Any:
        is_and = isinstance(node.op, ast.And)
        unknown: list[Any] = []
        last: Any = None
        for e in node.values:
            v = self.eval(e, frame)
            t = truth(v)
            last = v
            if t is None:
                unknown.append(v)
                continue
            # `unknown and False` is falsy whatever the unknown is (and `unknown or True` truthy):
            # the truth of the whole is known even if which operand it returns is not
            if is_and and not t:
                return v
            if not is_and and t:
                return v
        if not unknown:
            return last
        if not is_and and last is not None and unknown and unknown[-1] is not last:
            return Sym(_join_bool(unknown + [last], "or"))
        return unknown[0] if len(unknown) == 1 and unknown[0] is last else Sym(
            _join_bool(unknown if unknown[-1] is last else unknown + [last], "and" if is_and else "or"))

    def _e_Compare(self, node: ast.Compare, frame: Frame) -> Any:
        left = self.eval(node.left, frame)
        result: Any = True
        for op, comp in zip(node.ops, node.comparators):
            right = self.eval(comp, frame)
            r = self.compare(type(op), left, right)
            if r is False:
                return False
            if r is not True:
                result = r if result is True else Sym(f"{expr_of(result)} and {expr_of(r)}")
            left = right
        return result

    def compare(self, op: type, a: Any, b: Any) -> Any:
        r = self._compare(op, a, b)
        if isinstance(r, bool) and (tracking.is_tracked(a) or tracking.is_tracked(b) or _holds_tracked(b)):
            fa, fb = tracking.fn_of(a), _container_fn(b)
            py = _PY_CMP.get(op)
            if py is not None:
                tracking.record(lambda i: py(fa(i), fb(i)), r)
        return r

    def _compare(self, op: type, a: Any, b: Any) -> Any:
        if isinstance(a, Alt) and not isinstance(b, Alt) and not (a.options and _is_module(a.options[0][1])):
            r = _alt_map(a, lambda x: self._compare(op, x, b))
            if r is not _UNDECIDED and not isinstance(r, Alt):
                return r
        if isinstance(b, Alt) and not isinstance(a, Alt) and not (b.options and _is_module(b.options[0][1])):
            r = _alt_map(b, lambda y: self._compare(op, a, y))
            if r is not _UNDECIDED and not isinstance(r, Alt):
                return r
        if op in (ast.Is, ast.IsNot):
            r = _identity(a, b)
            if r is None:
                return Sym(f"{_paren(expr_of(a))} {_CMP_TEXT[op]} {_paren(expr_of(b))}")
            return r if op is ast.Is else not r
        if op in (ast.In, ast.NotIn):
            r = _contains(b, a)
            if r is None:
                return Sym(f"{_paren(expr_of(a))} {_CMP_TEXT[op]} {_paren(expr_of(b))}")
            return r if op is ast.In else not r
        if isinstance(a, EnumMember) or isinstance(b, EnumMember):
            if isinstance(a, EnumMember) and isinstance(b, EnumMember):
                same = a == b
                return same if op is ast.Eq else (not same if op is ast.NotEq else Sym("enum compare"))
        if is_known(a) and is_known(b) and _plain(a) and _plain(b):
            try:
                return bool(_CMPOPS[op](a, b))
            except TypeError:
                pass
        if op in (ast.Eq, ast.NotEq) and _plain(a) and _plain(b) and (a is None) != (b is None) and is_known(a) and is_known(b):
            return op is ast.NotEq
        return Sym(f"{_paren(expr_of(a))} {_CMP_TEXT[op]} {_paren(expr_of(b))}")

    def _e_IfExp(self, node: ast.IfExp, frame: Frame) -> Any:
        t = truth(self.eval(node.test, frame))
        if t is True:
            return self.eval(node.body, frame)
        if t is False:
            return self.eval(node.orelse, frame)
        a = self.eval(node.body, frame)
        b = self.eval(node.orelse, frame)
        return merge_values(a, b, _unparse(node.test))

    def _e_Lambda(self, node: ast.Lambda, frame: Frame) -> Any:
        return Closure(node, frame.module.name, {}, outer=frame, self_obj=frame.self_obj, cls=frame.cls)

    def _e_ListComp(self, node: ast.ListComp, frame: Frame) -> Any:
        return self._comprehension(node, frame, "list")

    def _e_GeneratorExp(self, node: ast.GeneratorExp, frame: Frame) -> Any:
        return self._comprehension(node, frame, "list")

    def _e_SetComp(self, node: ast.SetComp, frame: Frame) -> Any:
        v = self._comprehension(node, frame, "list")
        try:
            return set(v) if isinstance(v, list) else v
        except TypeError:
            return v

    def _e_DictComp(self, node: ast.DictComp, frame: Frame) -> Any:
        return self._comprehension(node, frame, "dict")

    def _comprehension(self, node: Any, frame: Frame, kind: str) -> Any:
        inner = Frame(module=frame.module, locals={}, self_obj=frame.self_obj, cls=frame.cls,
                      outer=frame, name=frame.name, class_ns=frame.class_ns)
        out_list: list[Any] = []
        out_dict: dict[Any, Any] = {}
        symbolic: list[Any] = []

        def emit() -> None:
            if kind == "dict":
                k = self.eval(node.key, inner)
                v = self.eval(node.value, inner)
                try:
                    out_dict[k] = v
                except TypeError:
                    out_dict[expr_of(k)] = v
            else:
                out_list.append(self.eval(node.elt, inner))

        def gen(i: int) -> None:
            if i == len(node.generators):
                emit()
                return
            g = node.generators[i]
            it = self.eval(g.iter, frame if i == 0 else inner)
            items = self.iterate(it)
            if items is None:
                symbolic.append(it)
                self.assign(g.target, Sym(_unparse(g.target)), inner, g)
                if all(truth(self.eval(c, inner)) is not False for c in g.ifs):
                    gen(i + 1)
                return
            for x in items:
                self.tick()
                self.assign(g.target, x, inner, g)
                if all(truth(self.eval(c, inner)) is not False for c in g.ifs):
                    gen(i + 1)

        gen(0)
        if symbolic:
            count = Sym(f"len({expr_of(symbolic[0])})")
            if kind == "list":
                return ModuleListObj(out_list, None, kind="list", repeat=count) if any(
                    _is_module(x) for x in out_list) else Sym(f"[{_unparse(node.elt)} for ...]")
            return Sym("{...}")
        return out_dict if kind == "dict" else out_list

    def iterate(self, v: Any) -> list[Any] | None:
        """The items of an iterable, or None when unknown/too long."""
        if isinstance(v, range):
            return list(v) if len(v) <= MAX_LOOP else None
        if isinstance(v, (list, tuple)):
            return list(v) if len(v) <= MAX_LOOP else None
        if isinstance(v, (set, frozenset)):
            try:
                return sorted(v) if len(v) <= MAX_LOOP else None
            except TypeError:
                return list(v)
        if isinstance(v, dict):
            return list(v.keys())
        if isinstance(v, str):
            return list(v)
        if isinstance(v, ModuleListObj) and v.repeat is None:
            return list(v.items)
        if isinstance(v, ModuleDictObj):
            return list(v.items.keys())
        return None

    # ================================================================ attributes

    def force(self, obj: Obj) -> None:
        """Run a lazily deferred constructor."""
        pending = obj.pending
        if pending is None:
            return
        obj.pending = None
        owner, args, kwargs, frame, node = pending
        r = self.call_function(FuncSym(owner.module, f"{owner.qualname}.__init__"), args, kwargs,
                               self_obj=obj, owner=owner, caller=frame, node=node, keep_raise=True)
        if isinstance(r, _Raised):
            obj.ctor_raised = r.why

    def getattr(self, base: Any, attr: str, frame: Frame | None, node: ast.AST | None = None) -> Any:
        self.tick()
        if isinstance(base, Obj):
            if base.pending is not None and attr not in base.attrs:
                self.force(base)
            if attr in base.attrs:
                return base.attrs[attr]
            if isinstance(base.cls, ClassSym):
                found = self.class_attribute(base.cls, attr, instance=base)
                if found is not _MISSING:
                    return found
            hook = self.runtime.object_attribute(self, base, attr)
            if hook is not None:
                return hook[0]
            return Sym(f"{expr_of_obj(base)}.{attr}")
        if isinstance(base, ClassSym):
            found = self.class_attribute(base, attr, instance=None)
            if found is not _MISSING:
                return found
            if attr == "__name__":
                return base.name
            return Sym(f"{base.name}.{attr}")
        if isinstance(base, (ModuleSym, ExternalSym)):
            if isinstance(base, ModuleSym) and base.internal:
                sym = self.index.import_from(base.name, attr)
                if sym is None:
                    return Sym(f"{base.name}.{attr}")
                return self.symbol_value(sym)
            dotted = f"{base.name if isinstance(base, ModuleSym) else base.dotted}.{attr}"
            known = self.runtime.external_value(dotted)
            if known is not None:
                return known[0]
            return ExternalSym(dotted)
        if isinstance(base, Namespace):
            if attr in base.attrs:
                return base.attrs[attr]
            return self.runtime.namespace_default(base, attr)
        if isinstance(base, EnumMember):
            if attr == "value":
                return base.value
            if attr == "name":
                return base.name
            found = self.index.find_in_class(base.cls, attr)
            if found is not None and isinstance(found[1], (ast.FunctionDef, ast.AsyncFunctionDef)):
                owner, fnode = found
                fsym = FuncSym(owner.module, f"{owner.qualname}.{attr}")
                decos = {_deco_name(d) for d in fnode.decorator_list}
                if decos & {"property", "cached_property", "functools.cached_property"}:
                    return self.call_function(fsym, [], {}, self_obj=base, owner=owner)
                return BoundMethod(base, fsym, owner)
            return Sym(f"{base!r}.{attr}")
        if isinstance(base, SuperProxy):
            return self._super_attr(base, attr)
        if isinstance(base, ModuleListObj) and attr in ("append", "extend", "insert"):
            return BuiltinMethod(base, attr)
        if isinstance(base, (dict, list, str, tuple, set)) and not isinstance(base, bool):
            if hasattr(type(base), attr):
                return BuiltinMethod(base, attr)
        if isinstance(base, Alt):
            vals = [self.getattr(v, attr, frame, node) for v in base.values()]
            if all(_same(vals[0], v) for v in vals[1:]):
                return vals[0]
            return Alt([(c, v) for (c, _), v in zip(base.options, vals)])
        if base is None:
            return Sym(f"None.{attr}")
        return Sym(f"{_paren(expr_of(base))}.{attr}")

    def class_attribute(self, cls: ClassSym, attr: str, instance: Any) -> Any:
        found = self.index.find_in_class(cls, attr)
        if found is None:
            return _MISSING
        owner, node = found
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            decos = {_deco_name(d) for d in node.decorator_list}
            fsym = FuncSym(owner.module, f"{owner.qualname}.{node.name}")
            if decos & {"property", "cached_property", "functools.cached_property"}:
                if instance is None:
                    return PropertyRef(fsym)
                value = self.call_function(fsym, [], {}, self_obj=instance, owner=owner)
                return value
            if "staticmethod" in decos:
                return fsym
            if "classmethod" in decos:
                return BoundMethod(cls if instance is None else instance.cls, fsym, owner)
            if instance is None:
                return fsym
            return BoundMethod(instance, fsym, owner)
        if isinstance(node, ast.ClassDef):
            return ClassSym(owner.module, f"{owner.qualname}.{node.name}")
        # class-level assignment
        key = (owner, attr)
        if key in self._class_attr_cache:
            value = self._class_attr_cache[key]
            self._memo_replay(key)
        else:
            self._class_attr_cache[key] = Sym(f"{owner.name}.{attr}")
            token = self._memo_begin()
            try:
                mod = self.index.module(owner.module)
                frame = Frame(module=mod, name=f"<class {owner.name}>", class_ns={}) if mod else None
                value = Sym(f"{owner.name}.{attr}")
                if frame is not None and isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                    try:
                        value = self.eval(node.value, frame)
                    except (_Raise, _Return):
                        pass
                if self.index.is_enum(owner) and not isinstance(value, Sym):
                    value = EnumMember(owner, attr, _enum_value(value))
                elif self.index.is_enum(owner):
                    value = EnumMember(owner, attr, value)
            finally:
                self._memo_end(key, token)
            self._class_attr_cache[key] = value
        return value

    def _super_attr(self, proxy: SuperProxy, attr: str) -> Any:
        obj = proxy.obj
        cls = obj.cls if isinstance(obj, Obj) else obj
        if not isinstance(cls, ClassSym):
            return Sym(f"super().{attr}")
        mro = self.index.mro(cls)
        try:
            start = mro.index(proxy.after) + 1
        except ValueError:
            start = 1
        for c in mro[start:]:
            if isinstance(c, ExternalSym):
                return _ExternalSuper(c, attr)
            node = self.index.class_node(c)
            if node is None:
                continue
            m = class_member(node, attr)
            if m is None:
                continue
            if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)):
                fsym = FuncSym(c.module, f"{c.qualname}.{m.name}")
                decos = {_deco_name(d) for d in m.decorator_list}
                if "staticmethod" in decos:
                    return fsym
                return BoundMethod(obj, fsym, c)
            return self.class_attribute(c, attr, obj if isinstance(obj, Obj) else None)
        return _ExternalSuper(ExternalSym("builtins.object"), attr)

    # ================================================================ calls

    def _e_Call(self, node: ast.Call, frame: Frame) -> Any:
        func = self.eval(node.func, frame)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for a in node.args:
            if isinstance(a, ast.Starred):
                v = self.eval(a.value, frame)
                items = self.iterate(v)
                if items is None:
                    args.append(Sym(f"*{expr_of(v)}"))
                else:
                    args.extend(items)
            else:
                args.append(self.eval(a, frame))
        for k in node.keywords:
            v = self.eval(k.value, frame)
            if k.arg is None:
                if isinstance(v, dict):
                    for kk, vv in v.items():
                        if isinstance(kk, str):
                            kwargs[kk] = vv
                continue
            kwargs[k.arg] = v
        return self.call(func, args, kwargs, frame, node)

    def call(self, func: Any, args: list[Any], kwargs: dict[str, Any], frame: Frame | None,
             node: ast.AST | None = None, arg_exprs: list[str] | None = None,
             kw_exprs: dict[str, str] | None = None) -> Any:
        self.tick()
        if isinstance(func, ClassSym):
            return self.instantiate(func, args, kwargs, frame, node, arg_exprs, kw_exprs)
        if isinstance(func, FuncSym):
            hook = self.runtime.call_hook(self, func, func.dotted, func.name, args, kwargs, frame, node)
            if hook is not None:
                return hook[0]
            return self.call_function(func, args, kwargs, caller=frame, node=node)
        if isinstance(func, BoundMethod):
            hook = self.runtime.call_hook(self, func, func.func.dotted, func.func.name, args, kwargs, frame, node)
            if hook is not None:
                return hook[0]
            return self.call_function(func.func, args, kwargs, self_obj=func.obj, owner=func.owner,
                                      caller=frame, node=node)
        if isinstance(func, Closure):
            return self.call_closure(func, args, kwargs, node)
        if isinstance(func, Partial):
            return self.call(func.func, func.args + args, {**func.kwargs, **kwargs}, frame, node)
        if isinstance(func, BuiltinMethod):
            return self.builtin_method(func, args, kwargs)
        if isinstance(func, HostFunction):
            try:
                return func.fn(*args, **kwargs)
            except Exception as e:  # a catalog helper misused: symbolic, not a crash
                return Sym(f"{func.name}(...)", str(e))
        if isinstance(func, (ExternalSym, ModuleSym)):
            dotted = func.dotted if isinstance(func, ExternalSym) else func.name
            return self.call_external(dotted, args, kwargs, frame, node, arg_exprs, kw_exprs)
        if isinstance(func, _ExternalSuper):
            return None
        if isinstance(func, PropertyRef):
            return Sym(func.func.name)
        if isinstance(func, Alt):
            vals = [self.call(f, list(args), dict(kwargs), frame, node, arg_exprs, kw_exprs) for f in func.values()]
            if vals and all(_same(vals[0], v) for v in vals[1:]):
                return vals[0]
            return Alt([(c, v) for (c, _), v in zip(func.options, vals)])
        if isinstance(func, Obj) and isinstance(func.cls, ClassSym):
            found = self.index.find_in_class(func.cls, "__call__")
            if found is not None:
                owner, fnode = found
                return self.call_function(FuncSym(owner.module, f"{owner.qualname}.__call__"), args, kwargs,
                                          self_obj=func, owner=owner, caller=frame, node=node)
        name = expr_of(func)
        if isinstance(func, Sym):
            simple = name.rsplit(".", 1)[-1]
            if simple.isidentifier():
                hook = self.runtime.call_hook(self, func, name, simple, args, kwargs, frame, node)
                if hook is not None:
                    return hook[0]
        return Sym(f"{_paren(name)}(...)")

    def call_external(self, dotted: str, args: list[Any], kwargs: dict[str, Any], frame: Frame | None,
                      node: ast.AST | None, arg_exprs: list[str] | None = None,
                      kw_exprs: dict[str, str] | None = None) -> Any:
        if dotted.startswith("builtins."):
            return self.builtin(dotted[9:], args, kwargs, frame, node)
        hook = self.runtime.call_hook(self, ExternalSym(dotted), dotted, dotted.rsplit(".", 1)[-1],
                                      args, kwargs, frame, node)
        if hook is not None:
            return hook[0]
        if dotted.startswith("math."):
            return _math(dotted[5:], args)
        if dotted in ("functools.partial",) and args:
            return Partial(args[0], list(args[1:]), dict(kwargs))
        if dotted in ("functools.lru_cache", "functools.cache", "functools.wraps"):
            return Sym(dotted)
        modelled = self.runtime.external_module(self, dotted, args, kwargs, frame, node, arg_exprs, kw_exprs)
        if modelled is not None:
            return modelled
        return Sym(f"{dotted}({', '.join(expr_of(a) for a in args[:4])})")

    # ---------------------------------------------------------------- binding

    def bind(self, fnode: ast.FunctionDef | ast.Lambda, args: list[Any], kwargs: dict[str, Any],
             frame_for_defaults: Frame, skip_first: bool) -> dict[str, Any]:
        a = fnode.args
        positional = list(a.posonlyargs) + list(a.args)
        if skip_first and positional:
            positional = positional[1:]
        out: dict[str, Any] = {}
        n_defaults = len(a.defaults)
        defaults_start = len(list(a.posonlyargs) + list(a.args)) - n_defaults
        all_pos = list(a.posonlyargs) + list(a.args)
        for i, p in enumerate(positional):
            if i < len(args):
                out[p.arg] = args[i]
        extra = args[len(positional):]
        if a.vararg is not None:
            out[a.vararg.arg] = tuple(extra)
        kw_rest: dict[str, Any] = {}
        names = {p.arg for p in positional} | {p.arg for p in a.kwonlyargs}
        for k, v in kwargs.items():
            if k in names:
                out[k] = v
            else:
                kw_rest[k] = v
        if a.kwarg is not None:
            out[a.kwarg.arg] = kw_rest
        for i, p in enumerate(all_pos):
            if p.arg not in out and (not skip_first or i > 0):
                j = i - defaults_start
                if 0 <= j < n_defaults:
                    out[p.arg] = self.eval(a.defaults[j], frame_for_defaults)
                else:
                    out[p.arg] = Sym(p.arg, "missing argument")
        for p, d in zip(a.kwonlyargs, a.kw_defaults):
            if p.arg not in out:
                out[p.arg] = self.eval(d, frame_for_defaults) if d is not None else Sym(p.arg)
        return out

    def call_function(self, fsym: FuncSym, args: list[Any], kwargs: dict[str, Any], self_obj: Any = None,
                      owner: ClassSym | None = None, caller: Frame | None = None,
                      node: ast.AST | None = None, keep_raise: bool = False) -> Any:
        fnode = self.index.node(fsym)
        mod = self.index.module(fsym.module)
        if not isinstance(fnode, (ast.FunctionDef, ast.AsyncFunctionDef)) or mod is None:
            if caller is not None and node is not None:
                self.diag.add("unresolved-call", self.loc(caller, node), what=fsym.dotted)
            return Sym(f"{fsym.name}(...)")
        memo_key = None
        if self_obj is None and all(_hashable_known(x) for x in args) and all(
            _hashable_known(x) for x in kwargs.values()
        ):
            memo_key = (fsym, tuple(args), tuple(sorted(kwargs.items())))
            if memo_key in self._memo:
                self._memo_replay(memo_key)
                return self._memo[memo_key]
        if self.depth >= MAX_DEPTH:
            self.diag.add("recursion-limit", f"{mod.rel}:{fnode.lineno}", what=fsym.dotted)
            return Sym(f"{fsym.name}(...)", "depth")
        decos = {_deco_name(d) for d in fnode.decorator_list}
        is_static = "staticmethod" in decos
        is_cls = "classmethod" in decos
        defaults_frame = Frame(module=mod, name=f"<defaults {fsym.name}>")
        if self_obj is not None and not is_static:
            bound = self.bind(fnode, args, kwargs, defaults_frame, skip_first=True)
            first = list(fnode.args.posonlyargs) + list(fnode.args.args)
            if first:
                bound[first[0].arg] = self_obj
        elif is_cls and owner is not None:
            bound = self.bind(fnode, args, kwargs, defaults_frame, skip_first=True)
            first = list(fnode.args.posonlyargs) + list(fnode.args.args)
            if first:
                bound[first[0].arg] = owner
        else:
            bound = self.bind(fnode, args, kwargs, defaults_frame, skip_first=False)
        frame = Frame(module=mod, locals=bound, self_obj=self_obj, cls=owner, name=fsym.dotted)
        token = self._memo_begin() if memo_key is not None else None
        try:
            result = self.run_body(fnode.body, frame)
        finally:
            if token is not None:
                self._memo_end(memo_key, token)
        if isinstance(result, _Raised) and not keep_raise:
            if self.try_depth > 0:  # a caller's ``try`` may handle it
                raise _Raise(result.why)
            result = Sym(f"{fsym.name}(...)", f"raises: {result.why}")
        if memo_key is not None and not isinstance(result, (Obj, ModuleListObj)):
            self._memo[memo_key] = result
        return result

    def call_closure(self, clo: Closure, args: list[Any], kwargs: dict[str, Any], node: ast.AST | None) -> Any:
        mod = self.index.module(clo.module)
        if mod is None:
            return Sym("<closure>")
        if self.depth >= MAX_DEPTH:
            return Sym("<closure>(...)", "depth")
        outer = clo.outer
        dframe = outer if outer is not None else Frame(module=mod)
        bound = self.bind(clo.node, args, kwargs, dframe, skip_first=False)
        frame = Frame(module=mod, locals=bound, self_obj=clo.self_obj, cls=clo.cls, outer=outer,
                      name="<lambda>" if isinstance(clo.node, ast.Lambda) else clo.node.name)
        if isinstance(clo.node, ast.Lambda):
            self.depth += 1
            try:
                return self.eval(clo.node.body, frame)
            finally:
                self.depth -= 1
        return self.run_body(clo.node.body, frame)

    def run_body(self, body: list[ast.stmt], frame: Frame) -> Any:
        key = (frame.module.name, id(body))
        active = self._active.get(key, 0)
        if active >= MAX_RECURSION or active >= MAX_UNKNOWN_RECURSION and _all_unknown(frame.locals):
            self.diag.add("recursion-limit", frame.module.rel, what=frame.name)
            return Sym(f"{frame.name}(...)", "recursion")
        self._active[key] = active + 1
        self.depth += 1
        try:
            try:
                self.exec_block(body, frame)
            except _Return:
                pass
            except _Raise as r:
                if not frame.returns:
                    return _Raised(r.why)
            except (_Break, _Continue):
                pass
        except RecursionError:
            self.diag.add("recursion-limit", frame.module.rel, what=frame.name)
            return Sym(f"{frame.name}(...)", "recursion")
        finally:
            self.depth -= 1
            self._active[key] = active
        return _merge_returns(frame.returns)

    # ---------------------------------------------------------------- classes

    def instantiate(self, cls: ClassSym, args: list[Any], kwargs: dict[str, Any], frame: Frame | None,
                    node: ast.AST | None, arg_exprs: list[str] | None = None,
                    kw_exprs: dict[str, str] | None = None) -> Any:
        hook = self.runtime.call_hook(self, cls, cls.dotted, cls.name, args, kwargs, frame, node)
        if hook is not None:
            return hook[0]
        if self.index.is_enum(cls):
            return self._enum_lookup(cls, args)
        key = self._copied_key(cls, args, kwargs) if self.runtime.is_copied_construction(cls) else None
        if key is None:
            return self._instantiate(cls, args, kwargs, frame, node)
        got = constructions.PROCESS.get(key)
        if got is not None:  # built before with equal arguments: a copy, as if built here
            obj, files, steps = got
            self.tick(steps)
            self.index.replay(files)
            obj.site = self.site(frame, node) if frame is not None and node is not None else None
            init = self.index.find_in_class(cls, "__init__")
            if init is not None and isinstance(init[1], (ast.FunctionDef, ast.AsyncFunctionDef)) \
                    and isinstance(node, ast.Call):
                obj.arg_exprs = _call_texts(init[1], node)
            else:
                obj.arg_exprs = {}
            return obj
        if constructions.PROCESS.tried(key):
            return self._instantiate(cls, args, kwargs, frame, node)
        steps = self.steps
        token = self.index.begin_events()
        try:
            obj = self._instantiate(cls, args, kwargs, frame, node)
        finally:
            files, warned = self.index.end_events(token)
        constructions.PROCESS.keep(key, obj, files, warned, self.steps - steps)
        return obj

    def _copied_key(self, cls: ClassSym, args: list[Any], kwargs: dict[str, Any]) -> tuple | None:
        return constructions.Constructions.key(
            (self.index.serial, id(self.runtime.catalog), self.runtime.layout_key()),  # (the catalog is cached: kept alive)
            cls, args, kwargs)

    def _instantiate(self, cls: ClassSym, args: list[Any], kwargs: dict[str, Any], frame: Frame | None,
                     node: ast.AST | None) -> Any:
        obj = Obj(cls=cls)
        obj.is_module = self.runtime.is_module_class(self.index, cls)
        if frame is not None and node is not None:
            obj.site = self.site(frame, node)
        init = self.index.find_in_class(cls, "__init__")
        fnode = init[1] if init else None
        if obj.is_module and isinstance(fnode, (ast.FunctionDef, ast.AsyncFunctionDef)):
            dmod = self.index.module(init[0].module)
            obj.args = self.bind(fnode, args, kwargs, Frame(module=dmod), skip_first=True) if dmod else {}
            if isinstance(node, ast.Call):
                obj.arg_exprs = _call_texts(fnode, node)
        elif obj.is_module:
            obj.args = {f"arg{i}": a for i, a in enumerate(args)} | dict(kwargs)
        if obj.is_module and self.runtime.is_shallow(self.index, cls):
            obj.shallow = True
            for k, v in obj.args.items():
                obj.attrs.setdefault(k, v)
            self.runtime.after_shallow(self, obj)
            return obj
        dataclass_fields = self._dataclass_fields(cls) if fnode is None else None
        if dataclass_fields is not None:
            self._init_dataclass(obj, dataclass_fields, args, kwargs)
        elif init is not None and isinstance(fnode, (ast.FunctionDef, ast.AsyncFunctionDef)) and not obj.is_module:
            # helper objects are built lazily: most are never looked at again
            obj.pending = (init[0], list(args), dict(kwargs), frame, node)
        elif init is not None and isinstance(fnode, (ast.FunctionDef, ast.AsyncFunctionDef)):
            owner = init[0]
            r = self.call_function(FuncSym(owner.module, f"{owner.qualname}.__init__"), args, kwargs,
                                   self_obj=obj, owner=owner, caller=frame, node=node, keep_raise=True)
            if isinstance(r, _Raised):
                obj.ctor_raised = r.why
                where = obj.site or Site(owner.module, 0, 0)
                self.diag.add("constructor-raised", str(where), what=cls.name, why=r.why)
        post = self.index.find_in_class(cls, "__post_init__")
        if post is not None and dataclass_fields is not None:
            self.call_function(FuncSym(post[0].module, f"{post[0].qualname}.__post_init__"), [], {},
                               self_obj=obj, owner=post[0])
        return obj

    def _enum_lookup(self, cls: ClassSym, args: list[Any]) -> Any:
        node = self.index.class_node(cls)
        if node is None or not args:
            return Sym(f"{cls.name}(...)")
        for st in node.body:
            if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
                m = self.class_attribute(cls, st.targets[0].id, None)
                if isinstance(m, EnumMember) and (m.value == args[0] or m.name == args[0]):
                    return m
        return Sym(f"{cls.name}({expr_of(args[0])})")

    def _dataclass_fields(self, cls: ClassSym) -> list[tuple[ClassSym, ast.AnnAssign]] | None:
        """Fields of a ``@dataclass`` (no explicit ``__init__``) along the MRO."""
        fields: dict[str, tuple[ClassSym, ast.AnnAssign]] = {}
        is_dc = False
        for c in reversed(self.index.mro(cls)):
            if not isinstance(c, ClassSym):
                continue
            node = self.index.class_node(c)
            if node is None:
                continue
            if any(_deco_name(d).endswith("dataclass") for d in node.decorator_list):
                is_dc = True
            struct_bases = getattr(self.runtime, "struct_bases", ())
            if struct_bases and any(isinstance(b, ExternalSym) and b.dotted in struct_bases
                                    for b in self.index.base_symbols(c)):
                is_dc = True
            for st in node.body:
                if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name):
                    fields[st.target.id] = (c, st)
        return list(fields.values()) if is_dc else None

    def _init_dataclass(self, obj: Obj, fields: list[tuple[ClassSym, ast.AnnAssign]], args: list[Any],
                        kwargs: dict[str, Any]) -> None:
        for i, (owner, st) in enumerate(fields):
            name = st.target.id  # type: ignore[union-attr]
            if i < len(args):
                obj.attrs[name] = args[i]
            elif name in kwargs:
                obj.attrs[name] = kwargs[name]
            elif st.value is not None:
                mod = self.index.module(owner.module)
                fr = Frame(module=mod) if mod else None
                v = st.value
                if isinstance(v, ast.Call) and _unparse(v.func).endswith("field"):
                    dv = next((k.value for k in v.keywords if k.arg == "default"), None)
                    df = next((k.value for k in v.keywords if k.arg == "default_factory"), None)
                    if dv is not None and fr is not None:
                        obj.attrs[name] = self.eval(dv, fr)
                    elif df is not None and fr is not None:
                        obj.attrs[name] = self.call(self.eval(df, fr), [], {}, fr)
                    else:
                        obj.attrs[name] = Sym(f"{obj.class_name}.{name}")
                elif fr is not None:
                    obj.attrs[name] = self.eval(v, fr)
            else:
                obj.attrs[name] = Sym(f"{obj.class_name}.{name}")

    # ================================================================ statements

    def exec_block(self, body: list[ast.stmt], frame: Frame) -> None:
        for st in body:
            self.exec_stmt(st, frame)

    def exec_stmt(self, st: ast.stmt, frame: Frame) -> None:
        self.tick()
        m = self._stmt_handlers.get(type(st))
        if m is not None:
            m(self, st, frame)

    def _s_Expr(self, st: ast.Expr, frame: Frame) -> None:
        if isinstance(st.value, ast.Constant):
            return
        self.eval(st.value, frame)

    def _s_Assign(self, st: ast.Assign, frame: Frame) -> None:
        v = self.eval(st.value, frame)
        for t in st.targets:
            self.assign(t, v, frame, st)

    def _s_AnnAssign(self, st: ast.AnnAssign, frame: Frame) -> None:
        if st.value is not None:
            self.assign(st.target, self.eval(st.value, frame), frame, st)

    def _s_AugAssign(self, st: ast.AugAssign, frame: Frame) -> None:
        cur = self.eval(_load(st.target), frame)
        v = self.eval(st.value, frame)
        if isinstance(cur, list) and isinstance(st.op, ast.Add) and isinstance(v, (list, tuple)):
            cur.extend(v)
            return
        self.assign(st.target, self.binop(type(st.op), cur, v), frame, st)

    def assign(self, target: ast.AST, value: Any, frame: Frame, st: ast.AST) -> None:
        if isinstance(target, ast.Name):
            frame.locals[target.id] = value
        elif isinstance(target, ast.Attribute):
            base = self.eval(target.value, frame)
            if isinstance(base, Obj):
                if base.pending is not None:
                    self.force(base)
                base.attrs[target.attr] = value
                base.attr_sites[target.attr] = self.site(frame, st)
                if _is_module(value) or isinstance(value, Alt):
                    base.attrs.pop("__order__", None)
                self.runtime.on_attribute_set(self, base, target.attr, value, frame, st)
            elif isinstance(base, Namespace):
                base.attrs[target.attr] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            star = next((i for i, e in enumerate(target.elts) if isinstance(e, ast.Starred)), None)
            items = self.iterate(value) if not isinstance(value, (Sym, Alt)) else None
            if star is None:
                for i, e in enumerate(target.elts):
                    sub = items[i] if items is not None and i < len(items) else Sym(f"{_paren(expr_of(value))}[{i}]")
                    self.assign(e, sub, frame, st)
            else:
                n_after = len(target.elts) - star - 1
                for i, e in enumerate(target.elts):
                    if i < star:
                        sub = items[i] if items is not None and i < len(items) else Sym(f"{expr_of(value)}[{i}]")
                    elif i == star:
                        sub = items[star:len(items) - n_after] if items is not None else Sym(f"{expr_of(value)}[{star}:]")
                        e = e.value  # type: ignore[attr-defined]
                    else:
                        j = i - len(target.elts)
                        sub = items[j] if items is not None and len(items) >= -j else Sym(f"{expr_of(value)}[{j}]")
                    self.assign(e, sub, frame, st)
        elif isinstance(target, ast.Subscript):
            base = self.eval(target.value, frame)
            key = self.eval(target.slice, frame) if not isinstance(target.slice, ast.Slice) else None
            if isinstance(base, dict) and key is not None:
                try:
                    base[key] = value
                except TypeError:
                    pass
            elif isinstance(base, list) and isinstance(key, int) and -len(base) <= key < len(base):
                base[key] = value
        elif isinstance(target, ast.Starred):
            self.assign(target.value, value, frame, st)

    def _s_Return(self, st: ast.Return, frame: Frame) -> None:
        v = self.eval(st.value, frame) if st.value is not None else None
        frame.returns.append((" and ".join(frame.conds), v))
        raise _Return()

    def _s_Raise(self, st: ast.Raise, frame: Frame) -> None:
        raise _Raise(f"{_unparse(st.exc)[:120] if st.exc else 'raise'} at {self.loc(frame, st)}")

    def _s_Assert(self, st: ast.Assert, frame: Frame) -> None:
        return

    def _s_Pass(self, st: ast.Pass, frame: Frame) -> None:
        return

    def _s_Break(self, st: ast.Break, frame: Frame) -> None:
        raise _Break()

    def _s_Continue(self, st: ast.Continue, frame: Frame) -> None:
        raise _Continue()

    def _s_Import(self, st: ast.Import, frame: Frame) -> None:
        for a in st.names:
            if a.asname:
                frame.locals[a.asname] = self.index.module_symbol(a.name)
            else:
                top = a.name.split(".", 1)[0]
                frame.locals[top] = self.index.module_symbol(top)

    def _s_ImportFrom(self, st: ast.ImportFrom, frame: Frame) -> None:
        target = self.index.absolute(frame.module, st.module or "", st.level)
        for a in st.names:
            if a.name == "*":
                continue
            sym = self.index.import_from(target, a.name)
            frame.locals[a.asname or a.name] = self.symbol_value(sym) if sym is not None else Sym(a.name)

    def _s_FunctionDef(self, st: ast.FunctionDef, frame: Frame) -> None:
        frame.locals[st.name] = Closure(st, frame.module.name, {}, outer=frame, self_obj=frame.self_obj,
                                        cls=frame.cls)

    _s_AsyncFunctionDef = _s_FunctionDef

    def _s_ClassDef(self, st: ast.ClassDef, frame: Frame) -> None:
        frame.locals[st.name] = Sym(st.name, "local class")

    def _s_Global(self, st: ast.stmt, frame: Frame) -> None:
        return

    _s_Nonlocal = _s_Global

    def _s_Delete(self, st: ast.Delete, frame: Frame) -> None:
        for t in st.targets:
            if isinstance(t, ast.Name):
                frame.locals.pop(t.id, None)

    def _s_With(self, st: ast.With, frame: Frame) -> None:
        for item in st.items:
            v = self.eval(item.context_expr, frame)
            if item.optional_vars is not None:
                self.assign(item.optional_vars, Sym(f"{expr_of(v)}.__enter__()"), frame, st)
        self.exec_block(st.body, frame)

    _s_AsyncWith = _s_With

    def _s_Try(self, st: ast.Try, frame: Frame) -> None:
        self.try_depth += 1
        raised: _Raise | None = None
        try:
            self.exec_block(st.body, frame)
        except _Raise as r:
            raised = r
        finally:
            self.try_depth -= 1
        if raised is not None:
            try:
                if not st.handlers:
                    raise raised
                self.exec_block(st.handlers[0].body, frame)
            finally:
                self.exec_block(st.finalbody, frame)
            return
        try:
            self.exec_block(st.orelse, frame)
        finally:
            self.exec_block(st.finalbody, frame)

    _s_TryStar = _s_Try

    def _s_Match(self, st: ast.stmt, frame: Frame) -> None:
        return

    def _s_If(self, st: ast.If, frame: Frame) -> None:
        test = self.eval(st.test, frame)
        t = truth(test)
        if t is True:
            self.exec_block(st.body, frame)
            return
        if t is False:
            self.exec_block(st.orelse, frame)
            return
        self.fork(st, frame, expr_of(test) if isinstance(test, Sym) else _unparse(st.test))

    def fork(self, st: ast.If, frame: Frame, cond: str) -> None:
        """Run both sides of an undecided ``if`` and merge what they leave behind."""
        self.runtime.on_symbolic_branch(self, frame, st, cond)
        obj = frame.self_obj if isinstance(frame.self_obj, Obj) else None
        before_locals = dict(frame.locals)
        before_attrs = dict(obj.attrs) if obj else {}
        before_conds = frame.conds
        results = []
        for body, c in ((st.body, cond), (st.orelse, f"not ({cond})")):
            frame.locals = dict(before_locals)
            if obj:
                obj.attrs = dict(before_attrs)
            frame.conds = before_conds + (c,)
            flow = "normal"
            try:
                self.exec_block(body, frame)
            except _Return:
                flow = "return"
            except _Raise:
                flow = "raise"
            except _Break:
                flow = "break"
            except _Continue:
                flow = "continue"
            results.append((flow, frame.locals, dict(obj.attrs) if obj else {}, c))
        frame.conds = before_conds
        live = [r for r in results if r[0] == "normal"]
        if not live:
            flows = {r[0] for r in results}
            frame.locals, attrs = results[0][1], results[0][2]
            if obj:
                obj.attrs = attrs
            if flows == {"raise"}:
                raise _Raise("both branches raise")
            if "return" in flows:
                raise _Return()
            if "break" in flows:
                raise _Break()
            raise _Continue()
        if len(live) == 1:
            frame.locals = live[0][1]
            if obj:
                obj.attrs = live[0][2]
            if live[0][3] != cond:  # only the else side continues
                frame.conds = before_conds + (live[0][3],)
            else:
                frame.conds = before_conds + (cond,)
            frame.conds = before_conds
            return
        (_, la, aa, _), (_, lb, ab, _) = live
        frame.locals = _merge_dicts(la, lb, cond)
        if obj:
            obj.attrs = _merge_dicts(aa, ab, cond)

    def _s_For(self, st: ast.For, frame: Frame) -> None:
        it = self.eval(st.iter, frame)
        items = self.iterate(it)
        if items is None:
            # unknown iterable: run the body once with a symbolic item, so that
            # what it builds is seen (as one representative)
            self.assign(st.target, Sym(_unparse(st.target)), frame, st)
            try:
                self.exec_block(st.body, frame)
            except (_Break, _Continue):
                pass
            return
        for x in items:
            self.tick()
            self.assign(st.target, x, frame, st)
            try:
                self.exec_block(st.body, frame)
            except _Break:
                return
            except _Continue:
                continue
        else:
            self.exec_block(st.orelse, frame)

    _s_AsyncFor = _s_For

    def _s_While(self, st: ast.While, frame: Frame) -> None:
        for _ in range(MAX_LOOP):
            t = truth(self.eval(st.test, frame))
            if t is not True:
                return
            try:
                self.exec_block(st.body, frame)
            except _Break:
                return
            except _Continue:
                continue

    # ================================================================ builtins

    def builtin(self, name: str, args: list[Any], kwargs: dict[str, Any], frame: Frame | None,
                node: ast.AST | None) -> Any:
        r = self._builtin(name, args, kwargs, frame, node)
        if any(tracking.is_tracked(a) or _holds_tracked(a) for a in args) and not kwargs:
            py = _PY_BUILTINS.get(name)
            if py is not None and not isinstance(r, Sym):
                fns = [_container_fn(a) for a in args]
                replay = lambda i: py(*[f(i) for f in fns])  # noqa: E731
                wrapped = tracking.wrap(r, replay)
                if tracking.is_tracked(wrapped) or isinstance(wrapped, (list, tuple)):
                    return wrapped
                tracking.record(replay if name != "range" else (lambda i: list(replay(i))),
                                r if name != "range" else list(r))
        return r

    def _builtin(self, name: str, args: list[Any], kwargs: dict[str, Any], frame: Frame | None,
                 node: ast.AST | None) -> Any:
        fn = _BUILTINS.get(name)
        if fn is not None:
            try:
                r = fn(self, args, kwargs, frame)
                if r is not _MISSING:
                    return r
            except (TypeError, ValueError, OverflowError, KeyError, IndexError, AttributeError,
                    ZeroDivisionError, MemoryError):
                pass
        if name == "super":
            if frame is not None and frame.self_obj is not None and frame.cls is not None:
                return SuperProxy(frame.self_obj, frame.cls)
            if args and len(args) == 2 and isinstance(args[0], ClassSym):
                return SuperProxy(args[1], args[0])
            return Sym("super()")
        if name in ("print", "setattr_", "delattr"):
            return None
        if name == "setattr" and len(args) >= 3 and isinstance(args[0], Obj) and isinstance(args[1], str):
            args[0].attrs[args[1]] = args[2]
            return None
        if name in _EXCEPTIONS:
            return Sym(f"{name}(...)")
        return Sym(f"{name}({', '.join(expr_of(a) for a in args[:3])})")

    def builtin_method(self, m: BuiltinMethod, args: list[Any], kwargs: dict[str, Any]) -> Any:
        r = self._builtin_method(m, args, kwargs)
        t = m.target
        if (tracking.is_tracked(t) or any(tracking.is_tracked(a) for a in args)) and not kwargs \
                and not isinstance(r, Sym) and isinstance(t, (str, dict, list, tuple)):
            ft, fns, name = tracking.fn_of(t), [tracking.fn_of(a) for a in args], m.name
            replay = lambda i: getattr(ft(i), name)(*[f(i) for f in fns])  # noqa: E731
            wrapped = tracking.wrap(r, replay)
            if not (tracking.is_tracked(wrapped) or isinstance(wrapped, (list, tuple))):
                tracking.record(replay, r)
            return wrapped
        return r

    def _builtin_method(self, m: BuiltinMethod, args: list[Any], kwargs: dict[str, Any]) -> Any:
        t = m.target
        if isinstance(t, ModuleListObj):
            if m.name == "append" and args:
                t.items.append(args[0])
            elif m.name == "extend" and args:
                items = self.iterate(args[0])
                if items is not None:
                    t.items.extend(items)
            return None
        if isinstance(t, list) and m.name in ("append", "extend", "insert", "pop", "remove", "sort", "reverse", "clear"):
            try:
                if m.name == "extend":
                    items = self.iterate(args[0])
                    if items is None:
                        t.append(Sym(f"*{expr_of(args[0])}"))
                        return None
                    t.extend(items)
                    return None
                if len(t) > MAX_SEQ:
                    return None
                return getattr(t, m.name)(*args)
            except Exception:
                return None
        if isinstance(t, dict) and m.name in ("update", "setdefault", "pop", "__setitem__"):
            try:
                return getattr(t, m.name)(*args, **kwargs)
            except Exception:
                return None
        if isinstance(t, dict) and m.name in ("get", "keys", "values", "items", "copy", "__contains__"):
            try:
                if m.name == "get" and args:
                    k = args[0]
                    if isinstance(k, (Sym, Alt)):
                        return Sym(f"{expr_of(t)}.get({expr_of(k)})")
                    r = t.get(*args)
                    return r
                r = getattr(t, m.name)(*args)
                return list(r) if m.name in ("keys", "values", "items") else r
            except Exception:
                return Sym(f"dict.{m.name}(...)")
        if isinstance(t, (str, list, tuple, set)) and all(is_known(a) and _plain(a) for a in args) and all(
            is_known(v) and _plain(v) for v in kwargs.values()
        ):
            if m.name in _SAFE_METHODS:
                try:
                    r = getattr(t, m.name)(*args, **kwargs)
                    if isinstance(r, str) and len(r) > MAX_SEQ:
                        return Sym("<long string>")
                    return list(r) if m.name == "split" or m.name == "splitlines" else r
                except Exception:
                    return Sym(f"{expr_of(t)}.{m.name}(...)")
        return Sym(f"{_paren(expr_of(t))}.{m.name}({', '.join(expr_of(a) for a in args[:3])})")


_SAFE_METHODS = frozenset(
    "startswith endswith lower upper split rsplit strip lstrip rstrip replace join format index "
    "count find rfind isdigit isalpha isnumeric splitlines partition rpartition capitalize title "
    "removeprefix removesuffix union intersection difference issubset issuperset copy".split()
)

_EXCEPTIONS = frozenset(n for n in dir(__builtins__) if n.endswith(("Error", "Exception", "Warning"))) if isinstance(
    __builtins__, dict) else frozenset(n for n in dir(__builtins__) if n.endswith(("Error", "Exception", "Warning")))


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


@dataclass
class _Raised:
    why: str


@dataclass(eq=False)
class _ExternalSuper:
    cls: ExternalSym
    attr: str


# ---------------------------------------------------------------------------- helpers


def _unparse(node: Any) -> str:
    if node is None:
        return "None"
    try:
        s = node_text(node)
    except Exception:
        return "<expr>"
    return s if len(s) <= 200 else s[:197] + "..."


def _load(target: ast.AST) -> ast.AST:
    t = ast.fix_missing_locations(ast.copy_location(type(target)(**{**target.__dict__, "ctx": ast.Load()}), target)) \
        if hasattr(target, "ctx") else target
    return t


def _deco_name(d: ast.AST) -> str:
    if isinstance(d, ast.Call):
        d = d.func
    return _unparse(d)


def _arith_ok(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool, list, tuple)) and is_known(v)


def _plain(v: Any) -> bool:
    if isinstance(v, (int, float, str, bool)) or v is None:
        return True
    if isinstance(v, (list, tuple, set, frozenset)):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(_plain(x) for x in v.values())
    return False


def _hashable_known(v: Any) -> bool:
    if tracking.is_tracked(v):
        return False
    if isinstance(v, (int, float, str, bool)) or v is None:
        return True
    if isinstance(v, tuple):
        return all(_hashable_known(x) for x in v)
    if isinstance(v, (ClassSym, FuncSym, ExternalSym, EnumMember)):
        return True
    return False


def _identity(a: Any, b: Any) -> bool | None:
    if isinstance(a, (Sym, Alt)) or isinstance(b, (Sym, Alt)):
        if (a is None or b is None) and (isinstance(a, Alt) or isinstance(b, Alt)):
            return None
        return None
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, EnumMember) and isinstance(b, EnumMember):
        return a == b
    if isinstance(a, (ClassSym, FuncSym, ExternalSym)) or isinstance(b, (ClassSym, FuncSym, ExternalSym)):
        return a == b
    if isinstance(a, ExternalSym) or isinstance(b, ExternalSym):
        return None
    return a is b


def _contains(container: Any, item: Any) -> bool | None:
    if isinstance(container, (Sym, Alt)):
        return None
    if isinstance(container, dict):
        container = list(container.keys())
    if isinstance(container, ModuleListObj):
        return None
    if isinstance(container, str):
        return item in container if isinstance(item, str) else None
    if isinstance(container, (list, tuple, set, frozenset)):
        if not container:
            return False
        for x in container:
            if isinstance(x, Alt) or isinstance(item, Alt):
                continue
            try:
                if _comparable(x, item) and x == item:
                    return True  # the same value, or the same symbolic expression
            except Exception:
                continue
        if is_known(item) and all(is_known(x) for x in container):
            return False
        return None
    return None


_PY_CMP = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b, ast.Is: operator.eq, ast.IsNot: operator.ne,
}
_PY_BUILTINS = {"int": int, "str": str, "float": float, "abs": abs, "max": max, "min": min, "round": round,
                "range": range, "bool": bool, "len": len}


def _holds_tracked(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and any(tracking.is_tracked(x) for x in v)


def _container_fn(v: Any) -> Any:
    if isinstance(v, (list, tuple)) and _holds_tracked(v):
        fns = [tracking.fn_of(x) for x in v]
        kind = type(v)
        return lambda i: kind(f(i) for f in fns)
    return tracking.fn_of(v)


def _comparable(a: Any, b: Any) -> bool:
    if type(a) is type(b):
        return True
    if isinstance(a, str) and isinstance(b, str):
        return True
    num = (int, float)
    return isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) and not isinstance(b, bool)


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, (Obj, ModuleListObj)) or isinstance(b, (Obj, ModuleListObj)):
        return False
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


_ALT_KINDS = (Obj, Alt, ClassSym, FuncSym)


MAX_ALT = 8  # options kept in one value set; beyond this a value becomes a plain unknown


def merge_values(a: Any, b: Any, cond: str) -> Any:
    if _same(a, b):
        return a
    if _is_module(a) or _is_module(b) or isinstance(a, _ALT_KINDS) or isinstance(b, _ALT_KINDS):
        return Alt([(cond, a), (f"not ({cond})", b)])
    if _plain(a) and _plain(b) and is_known(a) and is_known(b):
        # two known values: keep both, so that tests which agree on both can still be decided
        return Alt([(cond, a), (f"not ({cond})", b)])
    return Sym(f"({expr_of(a)} if {cond} else {expr_of(b)})")


def _alt_map(v: Alt, fn: Any) -> Any:
    """Apply ``fn`` to every option of a value set; one value when they all agree."""
    results = [(c, fn(x)) for c, x in v.options]
    first = results[0][1]
    if all(_same(first, r) for _, r in results[1:]):
        return first
    if len(results) > MAX_ALT or any(isinstance(r, Sym) for _, r in results):
        return _UNDECIDED
    return Alt(results)


class _Undecided:
    pass


_UNDECIDED = _Undecided()


def _merge_dicts(a: dict[str, Any], b: dict[str, Any], cond: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in list(a.keys()) + [k for k in b.keys() if k not in a]:
        if k in a and k in b:
            out[k] = merge_values(a[k], b[k], cond)
        elif k in a:
            out[k] = Alt([(cond, a[k])]) if _is_module(a[k]) else a[k]
        else:
            out[k] = Alt([(f"not ({cond})", b[k])]) if _is_module(b[k]) else b[k]
    return out


def _merge_returns(returns: list[tuple[str, Any]]) -> Any:
    if not returns:
        return None
    if len(returns) == 1:
        return returns[0][1]
    first = returns[0][1]
    if all(_same(first, v) for _, v in returns[1:]):
        return first
    # the unconditional return (empty condition) is the fall-through value
    unconditional = [v for c, v in returns if not c]
    if len(unconditional) == len(returns):
        return unconditional[-1]
    opts = [(c or "otherwise", v) for c, v in returns]
    if any(_is_module(v) or isinstance(v, _ALT_KINDS) for _, v in opts):
        return Alt(opts)
    return Sym("(" + " else ".join(f"{expr_of(v)} if {c}" for c, v in opts) + ")")


def _is_module(v: Any) -> bool:
    return (isinstance(v, Obj) and v.is_module) or isinstance(v, (ModuleListObj, ModuleDictObj))


def expr_of_obj(o: Obj) -> str:
    return getattr(o, "_expr", None) or f"{o.class_name}(...)"


def _join_bool(vals: list[Any], op: str) -> str:
    return f" {op} ".join(_paren(expr_of(v)) for v in vals)


def _enum_value(v: Any) -> Any:
    if isinstance(v, Sym) and v.expr.startswith("auto("):
        return v
    return v


_MUTATING_METHODS = frozenset(("update", "append", "extend", "add", "setdefault", "insert"))


def _mutation_targets(st: ast.stmt) -> list[str]:
    """The names a top-level statement mutates in place: ``NAME.update(...)`` (and the other
    container methods), ``NAME[k] = v``, ``NAME += ...``."""
    if isinstance(st, ast.Expr) and isinstance(st.value, ast.Call):
        f = st.value.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.attr in _MUTATING_METHODS:
            return [f.value.id]
    elif isinstance(st, ast.Assign):
        return [t.value.id for t in st.targets if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name)]
    elif isinstance(st, ast.AugAssign) and isinstance(st.target, ast.Name):
        return [st.target.id]
    return []


def _mutated_names(mod: ParsedModule) -> frozenset[str]:
    """Every name a top-level statement of the module mutates (in ``if`` and ``try`` bodies too, as
    ``Interpreter._module_mutations`` walks them), computed once per module."""
    got = _MUTATED.get(id(mod))
    if got is not None and got[0] is mod:
        return got[1]
    names: set[str] = set()

    def walk(stmts: list[ast.stmt]) -> None:
        for st in stmts:
            if isinstance(st, ast.If):
                walk(st.body)
                walk(st.orelse)
            elif isinstance(st, ast.Try):
                walk(st.body)
            else:
                names.update(_mutation_targets(st))

    walk(mod.top_level)
    found = frozenset(names)
    _MUTATED[id(mod)] = (mod, found)  # (the module is held: its id is not reused meanwhile)
    return found


_MUTATED: dict[int, tuple[ParsedModule, frozenset[str]]] = {}


def _all_unknown(bound: dict[str, Any]) -> bool:
    return bool(bound) and all(type(v) is Sym for v in bound.values())


def _call_texts(fnode: ast.FunctionDef, call: ast.Call) -> dict[str, str]:
    """Source text of each argument of a constructor call, by parameter name."""
    params = [p.arg for p in list(fnode.args.posonlyargs) + list(fnode.args.args)][1:]
    out: dict[str, str] = {}
    for p, a in zip(params, call.args):
        if isinstance(a, ast.Starred):
            break
        out[p] = _unparse(a)
    for k in call.keywords:
        if k.arg is not None:
            out[k.arg] = _unparse(k.value)
    return out


def _math(name: str, args: list[Any]) -> Any:
    fn = getattr(math, name, None)
    if fn is None:
        return Sym(f"math.{name}")
    if not callable(fn):
        return fn
    if all(isinstance(a, (int, float)) for a in args):
        try:
            return fn(*args)
        except (ValueError, OverflowError, TypeError):
            pass
    return Sym(f"math.{name}({', '.join(expr_of(a) for a in args)})")


# ---------------------------------------------------------------------------- builtin table


def _b_len(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    x = a[0]
    if isinstance(x, (list, tuple, str, dict, set)):
        return len(x)
    if isinstance(x, ModuleListObj):
        return len(x.items) if x.repeat is None else x.repeat
    if isinstance(x, ModuleDictObj):
        return len(x.items)
    return Sym(f"len({expr_of(x)})")


def _agg(fn: Any, name: str) -> Any:
    def run(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
        vals = list(a[0]) if len(a) == 1 and isinstance(a[0], (list, tuple, set)) else list(a)
        if "default" in k and not vals:
            return k["default"]
        if vals and all(isinstance(v, (int, float)) for v in vals):
            return fn(vals)
        if vals and all(isinstance(v, str) for v in vals) and name != "sum":
            return fn(vals)
        return Sym(f"{name}({', '.join(expr_of(v) for v in vals)})")
    return run


def _conv(fn: Any, name: str) -> Any:
    def run(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
        if not a:
            return fn()
        x = a[0]
        if isinstance(x, (int, float, str, bool)) and (len(a) == 1 or all(isinstance(y, int) for y in a[1:])):
            return fn(*a)
        if name == "str":
            return Sym(f"str({expr_of(x)})")
        if name in ("list", "tuple", "set", "sorted", "reversed", "frozenset"):
            items = it.iterate(x)
            if items is not None:
                if name == "sorted":
                    try:
                        return sorted(items, reverse=bool(k.get("reverse", False)))
                    except TypeError:
                        return list(items)
                return fn(items) if name != "reversed" else list(reversed(items))
            return Sym(f"{name}({expr_of(x)})")
        if name == "bool":
            t = truth(x)
            return t if t is not None else Sym(f"bool({expr_of(x)})")
        return Sym(f"{name}({expr_of(x)})")
    return run


def _b_range(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    if all(isinstance(x, int) and not isinstance(x, bool) for x in a) and a:
        r = range(*a)
        if len(r) <= MAX_SEQ:
            return r
    return Sym(f"range({', '.join(expr_of(x) for x in a)})")


def _b_enumerate(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    items = it.iterate(a[0])
    start = a[1] if len(a) > 1 and isinstance(a[1], int) else k.get("start", 0)
    if items is None or not isinstance(start, int):
        return Sym(f"enumerate({expr_of(a[0])})")
    return [(i + start, x) for i, x in enumerate(items)]


def _b_zip(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    lists = [it.iterate(x) for x in a]
    if any(x is None for x in lists):
        return Sym("zip(...)")
    return list(zip(*lists))


def _b_isinstance(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    if len(a) < 2:
        return _MISSING
    x, classes = a[0], a[1]
    cls_list = list(classes) if isinstance(classes, tuple) else [classes]
    py = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "tuple": tuple,
          "dict": dict, "set": set, "type(None)": type(None)}
    if isinstance(x, Alt):
        r = _alt_map(x, lambda v: _b_isinstance(it, [v, classes], k, f))
        if r is not _UNDECIDED and not isinstance(r, Alt):
            return r
    if isinstance(x, (Sym, Alt)):
        return Sym(f"isinstance({expr_of(x)}, {expr_of(classes)})")
    verdicts = []
    for c in cls_list:
        if isinstance(c, ExternalSym) and c.dotted.startswith("builtins."):
            t = py.get(c.dotted[9:])
            if t is None:
                verdicts.append(None)
            elif isinstance(x, (Obj, ModuleListObj, Namespace, ClassSym)):
                verdicts.append(False)
            else:
                verdicts.append(isinstance(x, t))
        elif isinstance(c, ClassSym) and isinstance(x, Obj) and isinstance(x.cls, ClassSym):
            verdicts.append(c in it.index.mro(x.cls))
        elif isinstance(c, ExternalSym) and isinstance(x, Obj):
            if isinstance(x.cls, ClassSym):
                mro = it.index.mro(x.cls)
                verdicts.append(True if c in mro else (None if any(isinstance(m, ExternalSym) for m in mro[1:]) else False))
            else:
                verdicts.append(x.cls == c or None)
        elif isinstance(c, (ClassSym, ExternalSym)) and isinstance(x, (int, float, str, list, tuple, dict)) or x is None:
            verdicts.append(False)
        else:
            verdicts.append(None)
    if any(v is True for v in verdicts):
        return True
    if all(v is False for v in verdicts):
        return False
    return Sym(f"isinstance({expr_of(x)}, {expr_of(classes)})")


def _b_hasattr(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    obj, name = a[0], a[1]
    if not isinstance(name, str):
        return Sym("hasattr(...)")
    v = it.getattr(obj, name, f)
    if isinstance(v, Sym):
        if isinstance(obj, Obj) and obj.attrs.get("__config__") is True and not obj.attrs.get("__symbolic__"):
            return v.why != "missing"
        return Sym(f"hasattr({expr_of(obj)}, {name!r})")
    return True


def _b_getattr(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    obj, name = a[0], a[1]
    if not isinstance(name, str):
        return Sym(f"getattr({expr_of(obj)}, {expr_of(name)})")
    if len(a) >= 3:
        hook = it.runtime.getattr_default(it, obj, name, a[2])
        if hook is not None:
            return hook[0]
    v = it.getattr(obj, name, f)
    if isinstance(v, Sym) and len(a) >= 3 and isinstance(obj, Obj) and not isinstance(obj.cls, ClassSym):
        return a[2]
    return v


def _b_type(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    x = a[0]
    if isinstance(x, Obj):
        return x.cls
    if isinstance(x, (int, float, str, bool, list, tuple, dict)) or x is None:
        return ExternalSym(f"builtins.{type(x).__name__}")
    return Sym(f"type({expr_of(x)})")


def _b_abs(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    return abs(a[0]) if isinstance(a[0], (int, float)) else Sym(f"abs({expr_of(a[0])})")


def _b_divmod(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    if all(isinstance(x, int) for x in a[:2]) and a[1] != 0:
        return divmod(a[0], a[1])
    return Sym("divmod(...)")


def _b_round(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    if isinstance(a[0], (int, float)) and (len(a) == 1 or isinstance(a[1], int)):
        return round(*a)
    return Sym(f"round({expr_of(a[0])})")


def _b_anyall(fn: Any, name: str) -> Any:
    def run(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
        items = it.iterate(a[0])
        if items is None:
            return Sym(f"{name}(...)")
        ts = [truth(x) for x in items]
        if name == "any" and any(t is True for t in ts):
            return True
        if name == "all" and any(t is False for t in ts):
            return False
        if all(t is not None for t in ts):
            return fn(ts)
        return Sym(f"{name}(...)")
    return run


def _b_map(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    if len(a) < 2:
        return _MISSING
    items = it.iterate(a[1])
    if items is None:
        return Sym("map(...)")
    return [it.call(a[0], [x], {}, f) for x in items]


def _b_filter(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    items = it.iterate(a[1])
    if items is None:
        return Sym("filter(...)")
    if a[0] is None:
        return [x for x in items if truth(x)]
    return [x for x in items if truth(it.call(a[0], [x], {}, f)) is True]


def _b_id(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    return Sym("id(...)")


def _b_callable(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    x = a[0]
    if isinstance(x, (ClassSym, FuncSym, BoundMethod, Closure, Partial, ExternalSym)):
        return True
    if x is None or isinstance(x, (int, float, str, list, tuple, dict)):
        return False
    return Sym("callable(...)")


def _b_pow(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    return it.binop(ast.Pow, a[0], a[1])


def _b_next(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    items = it.iterate(a[0])
    if items:
        return items[0]
    if len(a) > 1:
        return a[1]
    return Sym("next(...)")


def _b_dict(it: Interpreter, a: list[Any], k: dict[str, Any], f: Frame | None) -> Any:
    if not a:
        return dict(k)
    if isinstance(a[0], dict):
        return {**a[0], **k}
    items = it.iterate(a[0])
    if items is not None and all(isinstance(x, (tuple, list)) and len(x) == 2 for x in items):
        try:
            return {**dict(items), **k}
        except TypeError:
            pass
    return Sym("dict(...)")


_BUILTINS: dict[str, Any] = {
    "len": _b_len,
    "max": _agg(max, "max"),
    "min": _agg(min, "min"),
    "sum": _agg(sum, "sum"),
    "int": _conv(int, "int"),
    "float": _conv(float, "float"),
    "str": _conv(str, "str"),
    "bool": _conv(bool, "bool"),
    "list": _conv(list, "list"),
    "tuple": _conv(tuple, "tuple"),
    "set": _conv(set, "set"),
    "frozenset": _conv(frozenset, "frozenset"),
    "sorted": _conv(sorted, "sorted"),
    "reversed": _conv(reversed, "reversed"),
    "range": _b_range,
    "enumerate": _b_enumerate,
    "zip": _b_zip,
    "isinstance": _b_isinstance,
    "hasattr": _b_hasattr,
    "getattr": _b_getattr,
    "type": _b_type,
    "abs": _b_abs,
    "divmod": _b_divmod,
    "round": _b_round,
    "any": _b_anyall(any, "any"),
    "all": _b_anyall(all, "all"),
    "map": _b_map,
    "filter": _b_filter,
    "id": _b_id,
    "callable": _b_callable,
    "pow": _b_pow,
    "next": _b_next,
    "iter": lambda it, a, k, f: a[0],
    "dict": _b_dict,
}


def evaluate_expression(interp: Interpreter, text: str, env: dict[str, Any], module: str) -> Any:
    """Evaluate a catalog expression such as ``hidden_size // tp`` in ``env``."""
    mod = interp.index.module(module) if module else None
    if mod is None:
        mod = ParsedModule(name="<catalog>", path=interp.index.tree.root, rel="<catalog>", is_package=False,
                           _tree=ast.Module(body=[], type_ignores=[]))
    frame = Frame(module=mod, locals=dict(env), name="<catalog>")
    try:
        node = _parse_expr(text)
    except SyntaxError:
        return Sym(text, "invalid catalog expression")
    try:
        return interp.eval(node, frame)
    except (_Raise, _Return, _Break, _Continue, BudgetExhausted, RecursionError):
        return Sym(text)


_EXPR_CACHE: dict[str, ast.expr] = {}


def _parse_expr(text: str) -> ast.expr:
    node = _EXPR_CACHE.get(text)
    if node is None:
        node = ast.parse(text, mode="eval").body
        _EXPR_CACHE[text] = node
    return node


def iter_values(v: Any) -> Iterable[Any]:
    """The concrete alternatives a value can take (for Alt), else itself."""
    if isinstance(v, Alt):
        for _, x in v.options:
            yield from iter_values(x)
    else:
        yield v
