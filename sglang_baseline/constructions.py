"""Modules built once per process for each set of argument values, and copied after that.

Some SGLang layers are built many times with the same arguments: ``get_rope`` builds a rotary
embedding for every attention class of every model, ~2,000 in an ``--all`` of 0.5.23, with
~1,000 distinct argument sets (1.3 s of a one-worker run).  A class the catalog lists under
``runtime.copied_constructions`` is built by interpreting its constructor the first time; a
later construction with equal arguments, under the same catalog and layout, gets a deep copy
of the first result: a new object, as a constructor call gives, with the call's own site and
argument texts, and the files the first construction read and its evaluation steps counted
again (as a shared forward reading gives its files, see ``forward.ForwardReader``).  A
construction that gave a warning is not kept: a warning may name the call site.

A construction is shared only when everything it could depend on is in its key or constant:
its arguments must be plain values (numbers, strings, symbolic expressions, symbols, enum
members, and lists, tuples and dicts of them: no object, no tracked layer index), it must
finish without raising or exhausting its budget, and its result must be made of objects this
module can copy (no closure or lazily built helper that holds an evaluation frame).  Like the
shared readings, it assumes the classes' constructors read no module-level state that a model
changes (checked: the outputs of every model of 0.4.6, 0.5.6 and 0.5.23 are unchanged).
"""

from __future__ import annotations

from typing import Any

from .index import ClassSym, ExternalSym, FuncSym, ModuleSym, ValueSym
from .values import Alt, BoundMethod, EnumMember, ModuleListObj, Obj, Site, Sym

_PLAIN = (type(None), bool, int, float, str)  # exact types: a tracked int or str is not plain
_SYMBOLS = (ClassSym, FuncSym, ExternalSym, ModuleSym, ValueSym)
_SHARED_AS_IS = frozenset((*_PLAIN, Sym, *_SYMBOLS, EnumMember, Site))  # immutable here
_COPIED_BY_FIELDS = frozenset((Obj, ModuleListObj, BoundMethod))  # a new instance, each field copied
LIMIT = 20_000  # entries kept per process


class NotCopyable(Exception):
    pass


def plain_key(v: Any) -> Any:
    """``v`` as a hashable key when it is plain data (see the module docstring), else NotCopyable."""
    t = type(v)
    if t in _PLAIN:
        return (t.__name__, v)
    if t is Sym:
        return ("Sym", v.expr, v.why)
    if t in _SYMBOLS or t is EnumMember:
        return v
    if t is list or t is tuple:
        return (t.__name__, tuple(plain_key(x) for x in v))
    if t is dict:
        return ("dict", tuple((plain_key(k), plain_key(x)) for k, x in v.items()))
    raise NotCopyable


def copy(v: Any, memo: dict[int, Any] | None = None) -> Any:
    """A deep copy of a construction's result: objects, module lists and containers are new,
    immutable values are shared; NotCopyable for anything else."""
    if memo is None:
        memo = {}
    t = type(v)
    if t in _SHARED_AS_IS:
        return v
    got = memo.get(id(v))
    if got is not None:
        return got
    if t in _COPIED_BY_FIELDS:
        if t is Obj and v.pending is not None:
            raise NotCopyable  # a helper object not built yet: it holds the frame it will be built in
        new = t.__new__(t)
        memo[id(v)] = new
        new.__dict__.update({k: copy(x, memo) for k, x in vars(v).items()})
        return new
    if t is list:
        out: Any = []
        memo[id(v)] = out
        out.extend(copy(x, memo) for x in v)
        return out
    if t is dict:
        out = {}
        memo[id(v)] = out
        for k, x in v.items():
            plain_key(k)  # (NotCopyable for a key holding an object: it would be shared, not copied)
            out[k] = copy(x, memo)
        return out
    if t is tuple:
        return tuple(copy(x, memo) for x in v)
    if t is Alt:
        return Alt([(c, copy(x, memo)) for c, x in v.options])
    raise NotCopyable


class Constructions:
    """The constructions a process keeps: key -> (a pristine copy of the result, the files its
    construction read, the evaluation steps it took); a key whose result could not be kept is
    remembered as such (None)."""

    def __init__(self) -> None:
        self._entries: dict[tuple, tuple[Obj, dict[str, str], int] | None] = {}

    @staticmethod
    def key(scope: tuple, cls: ClassSym, args: list[Any], kwargs: dict[str, Any]) -> tuple | None:
        """``scope``: what else the result depends on (index, catalog, layout)."""
        try:
            return (*scope, cls, plain_key(args), plain_key(kwargs))
        except NotCopyable:
            return None

    def get(self, key: tuple) -> tuple[Obj, dict[str, str], int] | None:
        """A fresh copy of the kept result, with its files and steps; None when none is kept."""
        got = self._entries.get(key)
        if got is None:
            return None
        return copy(got[0]), got[1], got[2]

    def tried(self, key: tuple) -> bool:
        return key in self._entries

    def keep(self, key: tuple, obj: Any, files: dict[str, str], warned: list[tuple], steps: int) -> None:
        """Keep a construction's result: only a module built without warnings (a warning may name
        the call site) or a raise, whose every part can be copied."""
        if len(self._entries) >= LIMIT:
            return
        kept = None
        if type(obj) is Obj and obj.is_module and not obj.shallow and not obj.ctor_raised and not warned:
            try:
                kept = copy(obj)
            except NotCopyable:
                pass
        self._entries[key] = (kept, dict(files), steps) if kept is not None else None


PROCESS = Constructions()  # shared by every analysis of the process (an --all worker's models)
