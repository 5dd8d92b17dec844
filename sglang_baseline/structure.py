"""The module tree: from the evaluated entry-class instance to counted nodes.

The evaluator leaves behind an object graph: each ``nn.Module`` instance with its
child attributes in the order they were assigned.  This stage walks it, groups
identical layers of a ``ModuleList`` (same classes, same constructor values, same
children) into one node with a count and the layer ids it covers, keeps branches
the evaluator could not decide as alternatives with their condition, and marks
towers that are not the language model (vision, audio) so that their kernels are
not mistaken for the text model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .index import ClassSym, ExternalSym, Index
from .values import Alt, ModuleDictObj, ModuleListObj, Obj, Site, Sym, expr_of, json_value

# constructor arguments that differ between otherwise identical layers
_IDENTITY_ARGS = frozenset({"prefix", "layer_id", "layer_idx", "idx", "layer_index", "layer_number",
                            "start_layer", "alt_stream", "config", "quant_config", "stage_boundaries"})
MAX_NODES = 20000


@dataclass
class Node:
    """One module (or group of identical modules) in the tree."""

    name: str
    path: str
    obj: Any  # representative Obj / ModuleListObj
    count: int | str = 1  # instances in the whole model ("expr" when unknown)
    instances: list[Any] = field(default_factory=list)
    layer_ids: list[int] = field(default_factory=list)
    condition: str = ""
    children: list[Node] = field(default_factory=list)
    container: str = ""  # ModuleList | Sequential | ModuleDict | ''
    alias_of: str = ""  # same object as another node (tied weights)
    scope: str = "text"  # text | vision
    site: Site | None = None
    attr_site: Site | None = None
    role: str = ""
    helper: bool = False
    group_key: str = ""

    @property
    def class_name(self) -> str:
        if isinstance(self.obj, Obj):
            return self.obj.class_name
        if isinstance(self.obj, ModuleListObj):
            return self.obj.kind
        if isinstance(self.obj, ModuleDictObj):
            return "ModuleDict"
        return type(self.obj).__name__

    @property
    def class_dotted(self) -> str:
        if isinstance(self.obj, Obj):
            c = self.obj.cls
            return c.dotted if isinstance(c, (ClassSym, ExternalSym)) else str(c)
        if isinstance(self.obj, ModuleListObj):
            return f"torch.nn.{self.obj.kind}" if self.obj.kind != "list" else "list"
        return "torch.nn.ModuleDict"

    @property
    def type(self) -> str:
        return "block" if self.children else "layer"

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


def count_text(v: int | str) -> str:
    return str(v)


def _mul(a: int | str, b: int | str) -> int | str:
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    if a == 1:
        return b
    if b == 1:
        return a
    return f"{a} * {b}"


class TreeBuilder:
    def __init__(self, index: Index, non_text_markers: list[str], role_of: Any) -> None:
        self.index = index
        self.markers = non_text_markers
        self.role_of = role_of  # callable(Obj) -> role str
        self.seen: dict[int, str] = {}
        self.nodes = 0
        self._sig_cache: dict[int, str] = {}

    def build(self, root: Obj) -> Node:
        node = Node(name=root.class_name, path="", obj=root, count=1, instances=[root], site=root.site)
        node.scope = self._scope(root, "text")
        self.seen[id(root)] = ""
        self._children(node, root, 1, node.scope)
        return node

    # ------------------------------------------------------------------ walking

    def _scope(self, obj: Any, parent_scope: str) -> str:
        if parent_scope != "text":
            return parent_scope
        name = obj.class_name if isinstance(obj, Obj) else ""
        return "vision" if any(m in name for m in self.markers) else "text"

    def _children(self, node: Node, obj: Any, count: int | str, scope: str, depth: int = 0) -> None:
        if depth > 40 or self.nodes > MAX_NODES:
            return
        attrs = obj.attrs if isinstance(obj, Obj) else {}
        for attr, value in list(attrs.items()):
            if attr.startswith("__"):
                continue
            for cond, v in _options(value):
                child = self._make(attr, _join(node.path, attr), v, count, scope, depth, cond)
                if child is not None:
                    child.attr_site = obj.attr_sites.get(attr) if isinstance(obj, Obj) else None
                    node.children.append(child)

    def _make(self, name: str, path: str, v: Any, count: int | str, scope: str, depth: int,
              cond: str) -> Node | None:
        if isinstance(v, Obj) and v.is_module:
            self.nodes += 1
            if id(v) in self.seen:
                return Node(name=name, path=path, obj=v, count=count, instances=[v], condition=cond,
                            alias_of=self.seen[id(v)], scope=scope, site=v.site, role=self.role_of(v))
            self.seen[id(v)] = path
            sc = self._scope(v, scope)
            node = Node(name=name, path=path, obj=v, count=count, instances=[v], condition=cond, scope=sc,
                        site=v.site, role=self.role_of(v))
            self._children(node, v, count, sc, depth + 1)
            return node
        if isinstance(v, ModuleListObj):
            self.nodes += 1
            node = Node(name=name, path=path, obj=v, count=count, instances=[v], condition=cond, scope=scope,
                        site=v.site, container=v.kind)
            self._list_children(node, v, count, scope, depth)
            return node
        if isinstance(v, ModuleDictObj):
            self.nodes += 1
            node = Node(name=name, path=path, obj=v, count=count, instances=[v], condition=cond, scope=scope,
                        site=v.site, container="ModuleDict")
            for k, item in v.items.items():
                for c2, iv in _options(item):
                    child = self._make(str(k), _join(path, str(k)), iv, count, scope, depth + 1, c2)
                    if child is not None:
                        node.children.append(child)
            return node
        return None

    def _list_children(self, node: Node, lst: ModuleListObj, count: int | str, scope: str, depth: int) -> None:
        items = [(i, it) for i, it in enumerate(lst.items)]
        if lst.repeat is not None:
            # one symbolic representative standing for `repeat` layers
            for _, it in items[:1]:
                for cond, v in _options(it):
                    if isinstance(v, Obj) and v.is_module:
                        total = _mul(count, _expr(lst.repeat))
                        child = self._make(v.class_name, _join(node.path, "*"), v, total, scope, depth + 1, cond)
                        if child is not None:
                            node.children.append(child)
            return
        groups: dict[str, list[tuple[int, Any, str]]] = {}
        order: list[str] = []
        for i, it in items:
            for cond, v in _options(it):
                if not (isinstance(v, Obj) and v.is_module) and not isinstance(v, ModuleListObj):
                    continue
                key = self.signature(v) + "|" + cond
                if key not in groups:
                    groups[key] = []
                    order.append(key)
                groups[key].append((i, v, cond))
        names_used: dict[str, int] = {}
        for key in order:
            members = groups[key]
            first_i, first, cond = members[0]
            base = first.class_name if isinstance(first, Obj) else "list"
            names_used[base] = names_used.get(base, 0) + 1
            total = _mul(count, len(members))
            idx_text = str(first_i) if len(members) == 1 else "*"
            child = self._make(base, _join(node.path, idx_text), first, total, scope, depth + 1, cond)
            if child is None:
                continue
            child.instances = [m[1] for m in members]
            child.layer_ids = [m[0] for m in members]
            child.group_key = key
            # nodes below a group inherit its count
            _set_counts(child, total)
            node.children.append(child)
        # disambiguate same-class groups by their first layer id
        dup = {n for n, k in names_used.items() if k > 1}
        for c in node.children:
            if c.name in dup and c.layer_ids:
                c.name = f"{c.name}[{_ranges(c.layer_ids)}]"

    # ------------------------------------------------------------------ signatures

    def signature(self, v: Any, depth: int = 0) -> str:
        return structural_signature(v, self._sig_cache, depth)


def structural_signature(v: Any, cache: dict[int, str] | None = None, depth: int = 0) -> str:
    """A structural key: class, plain constructor values, children (recursively)."""
    if cache is None:
        cache = {}
    return _Sig(cache).signature(v, depth)


class _Sig:
    def __init__(self, cache: dict[int, str]) -> None:
        self._sig_cache = cache

    def signature(self, v: Any, depth: int = 0) -> str:
        key = id(v)
        if key in self._sig_cache:
            return self._sig_cache[key]
        if depth > 30:
            return "..."
        if isinstance(v, ModuleListObj):
            s = "[" + ",".join(self.signature(x, depth + 1) for x in v.items[:512]) + f"]x{expr_of(v.repeat) if v.repeat is not None else len(v.items)}"
        elif isinstance(v, Obj):
            parts = [v.cls.dotted if isinstance(v.cls, (ClassSym, ExternalSym)) else str(v.cls)]
            for k in sorted(v.args):
                if k in _IDENTITY_ARGS:
                    continue
                arg = v.args[k]
                if isinstance(arg, dict):  # **kwargs passed through: drop identity keys inside too
                    arg = {kk: vv for kk, vv in arg.items() if kk not in _IDENTITY_ARGS}
                jv = json_value(arg)
                if jv is not None or arg is None:
                    parts.append(f"{k}={jv!r}")
                elif isinstance(arg, Sym):
                    parts.append(f"{k}~{arg.expr}")
            for k, x in v.attrs.items():
                if isinstance(x, (Obj, ModuleListObj, ModuleDictObj)) and getattr(x, "is_module", False):
                    parts.append(f"{k}:{self.signature(x, depth + 1)}")
                elif isinstance(x, Alt) and any(getattr(o, "is_module", False) for o in x.values()):
                    parts.append(f"{k}:alt(" + ",".join(self.signature(o, depth + 1) for o in x.values()) + ")")
            s = "(" + ";".join(parts) + ")"
        else:
            s = type(v).__name__
        self._sig_cache[key] = s
        return s


def _set_counts(node: Node, total: int | str) -> None:
    for c in node.children:
        if not c.alias_of:
            c.count = total
        _set_counts(c, total)


def _options(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, Alt):
        out: list[tuple[str, Any]] = []
        for cond, v in value.options:
            for c2, v2 in _options(v):
                out.append((" and ".join(x for x in (cond, c2) if x), v2))
        return out
    return [("", value)]


def _join(a: str, b: str) -> str:
    return f"{a}.{b}" if a else b


def _expr(v: Any) -> str:
    return expr_of(v)


def _ranges(ids: list[int]) -> str:
    """``0-2,5`` style text for a sorted list of layer ids."""
    if not ids:
        return ""
    out = []
    start = prev = ids[0]
    for i in ids[1:]:
        if i == prev + 1:
            prev = i
            continue
        out.append(f"{start}-{prev}" if prev > start else str(start))
        start = prev = i
    out.append(f"{start}-{prev}" if prev > start else str(start))
    return ",".join(out)
