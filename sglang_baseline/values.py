"""The values of the symbolic evaluator.

A value is either a plain Python value (int, float, str, bool, None, tuple, list,
dict) when it is known, or one of the classes here.  ``Sym`` is an unknown with the
expression that would compute it, written in terms of the config fields and
parallel sizes it came from (``config.hidden_size // tp_size``), so that it can be
shown as a template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .index import ClassSym, ExternalSym, FuncSym, ModuleSym


class Sym:
    """An unknown value and the expression that computes it."""

    __slots__ = ("expr", "why")

    def __init__(self, expr: str, why: str = "") -> None:
        self.expr = expr
        self.why = why

    def __repr__(self) -> str:
        return f"Sym({self.expr!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sym) and other.expr == self.expr

    def __hash__(self) -> int:
        return hash(("Sym", self.expr))


@dataclass
class Alt:
    """A value chosen by a condition the evaluator could not decide."""

    options: list[tuple[str, Any]]  # (condition expression, value)

    def values(self) -> list[Any]:
        return [v for _, v in self.options]


@dataclass(eq=False)
class Site:
    """Where a value was made: file (relative to sglang/srt) and line range."""

    rel: str
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.rel}:{self.start}-{self.end}" if self.end > self.start else f"{self.rel}:{self.start}"


@dataclass(eq=False)
class Obj:
    """An instance of a class from the tree (or a modelled external class).

    For ``nn.Module`` instances the evaluator also records what the structure stage
    needs: the bound constructor arguments, where it was built, and the order in
    which child attributes were assigned.
    """

    cls: ClassSym | ExternalSym
    attrs: dict[str, Any] = field(default_factory=dict)
    is_module: bool = False
    args: dict[str, Any] = field(default_factory=dict)  # bound constructor arguments
    arg_exprs: dict[str, str] = field(default_factory=dict)
    site: Site | None = None
    attr_sites: dict[str, Site] = field(default_factory=dict)
    shallow: bool = False  # constructor not interpreted (catalog leaf)
    delegates: dict[str, list[str]] = field(default_factory=dict)  # attr -> child names passed in
    ctor_raised: str = ""
    pending: Any = None  # a non-module constructor not run yet (run on first attribute use)

    @property
    def class_name(self) -> str:
        return self.cls.name if isinstance(self.cls, (ClassSym, ExternalSym)) else str(self.cls)

    def __repr__(self) -> str:
        return f"<Obj {self.class_name}>"


@dataclass(eq=False)
class ModuleListObj:
    """``nn.ModuleList`` / ``nn.Sequential`` / a list of modules."""

    items: list[Any]
    site: Site | None = None
    kind: str = "ModuleList"
    repeat: Any = None  # a Sym count when the items are one symbolic representative

    is_module = True


@dataclass(eq=False)
class ModuleDictObj:
    items: dict[str, Any]
    site: Site | None = None
    is_module = True


@dataclass(frozen=True)
class EnumMember:
    cls: ClassSym
    name: str
    value: Any

    def __repr__(self) -> str:
        return f"{self.cls.name}.{self.name}"


@dataclass(eq=False)
class BoundMethod:
    obj: Any  # Obj or ClassSym (classmethod)
    func: FuncSym
    owner: ClassSym  # class in whose body the function is defined


@dataclass(eq=False)
class Closure:
    """A lambda or nested function with the scope it closes over."""

    node: Any
    module: str
    env: dict[str, Any]
    outer: Any = None  # enclosing frame
    self_obj: Any = None
    cls: ClassSym | None = None


@dataclass(eq=False)
class Partial:
    func: Any
    args: list[Any]
    kwargs: dict[str, Any]


@dataclass(eq=False)
class Namespace:
    """A modelled runtime object (parallel context, server args, ...) from the catalog."""

    name: str
    attrs: dict[str, Any]


@dataclass(eq=False)
class SuperProxy:
    obj: Any
    after: ClassSym


@dataclass(eq=False)
class BuiltinMethod:
    """A method of a known Python value (``dict.get``, ``list.append``, ...)."""

    target: Any
    name: str


@dataclass(eq=False)
class HostFunction:
    """A helper the catalog's expressions may call (``cls_name(x)``, ``arg(...)``)."""

    name: str
    fn: Any


@dataclass(eq=False)
class PropertyRef:
    """A property object seen as a class attribute."""

    func: FuncSym


Callable_ = ClassSym | FuncSym | ExternalSym | ModuleSym | BoundMethod | Closure | Partial


def is_known(v: Any) -> bool:
    """True when ``v`` (recursively) holds no unknown."""
    if isinstance(v, (Sym, Alt)):
        return False
    if isinstance(v, (list, tuple, set, frozenset)):
        return all(is_known(x) for x in v)
    if isinstance(v, dict):
        return all(is_known(x) for x in v.values())
    return True


def expr_of(v: Any) -> str:
    """A source-like expression for any value (used to build ``Sym`` expressions)."""
    if isinstance(v, Sym):
        return v.expr
    if isinstance(v, Alt):
        parts = [f"{expr_of(val)} if {cond}" for cond, val in v.options]
        return "(" + " else ".join(parts) + ")"
    if isinstance(v, (Obj,)):
        return f"{v.class_name}(...)"
    if isinstance(v, (ClassSym, FuncSym)):
        return v.name
    if isinstance(v, ExternalSym):
        return v.dotted
    if isinstance(v, ModuleSym):
        return v.name
    if isinstance(v, EnumMember):
        return repr(v)
    if isinstance(v, Namespace):
        return v.name
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (int, str, bool)) or v is None:
        return repr(v)
    if isinstance(v, (list, tuple)):
        inner = ", ".join(expr_of(x) for x in v[:8])
        more = ", ..." if len(v) > 8 else ""
        return f"[{inner}{more}]" if isinstance(v, list) else f"({inner}{more})"
    if isinstance(v, dict):
        return "{...}"
    return type(v).__name__


def untracked(v: Any) -> Any:
    """A tracked layer index (or a value derived from one, see tracking) as the plain int or str
    it stands for; anything else as it is.  Output records hold plain data."""
    if type(v) in (int, str) or isinstance(v, bool) or not isinstance(v, (int, str)):
        return v
    return int(v) if isinstance(v, int) else str(v)


def json_value(v: Any, depth: int = 0) -> Any:
    """A JSON-safe rendering of a known value; None for values that are not data."""
    if depth > 6:
        return None
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, str)):
        return untracked(v)
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else str(v)
    if isinstance(v, (list, tuple)):
        if len(v) > 64:
            return None
        out = [json_value(x, depth + 1) for x in v]
        return out
    if isinstance(v, dict):
        if len(v) > 64:
            return None
        return {str(k): json_value(x, depth + 1) for k, x in v.items() if isinstance(k, (str, int))}
    if isinstance(v, EnumMember):
        return json_value(v.value, depth + 1) if isinstance(v.value, (int, str)) else v.name
    return None
