"""The runtime model: what the evaluator assumes about the machine and the run.

SGLang's constructors ask the environment questions (``is_cuda()``, the tensor
parallel size, server arguments).  The answers come from ``catalog/runtime.json``
and the command line (``--tp``, ``--ep``, ``--page-size``, ``--attention-backend``)
instead of from a real process.  The config object seen by the model is built here
too: the raw ``config.json`` viewed through SGLang's own config class when the
tree defines one for its ``model_type``.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .catalog import Catalog
from .evaluate import Interpreter, evaluate_expression
from .index import ClassSym, ExternalSym, FuncSym, Index
from .structure import structural_signature
from .tracking import DecisionLog, TrackedInt, TrackedStr, pop, push
from .values import BoundMethod, HostFunction, ModuleDictObj, ModuleListObj, Namespace, Obj, Site, Sym, expr_of

CONFIG_CLASS = ExternalSym("transformers.PretrainedConfig")
_NAMESPACE_REF = re.compile(r"namespace\('(\w+)'\)")


@dataclass
class Layout:
    """One parallel layout and page size the analysis is run for."""

    tp: int = 1
    ep: int = 1
    page_size: int = 1
    attention_backend: str = "flashinfer"

    def env(self) -> dict[str, Any]:
        return {"tp": self.tp, "ep": self.ep, "page_size": self.page_size,
                "attention_backend": self.attention_backend}


@dataclass
class Runtime:
    catalog: Catalog
    layout: Layout
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    layer_records: list[Any] = field(default_factory=list)
    symbolic_branches: list[tuple[str, str]] = field(default_factory=list)
    config_obj: Any = None
    missing_config_fields: set[str] = field(default_factory=set)
    layers_built: int = 0
    layers_total: int = 0
    dedupe_fallbacks: int = 0

    def __post_init__(self) -> None:
        # calls are checked against these on every interpreted call: precompute them
        opaque = self.catalog.runtime.opaque_packages
        self._opaque_exact = frozenset(opaque)
        self._opaque_prefixes = tuple(p + "." for p in opaque)
        self._opaque_methods: dict[str, frozenset[str]] = {}  # method name -> class names
        copied = self.catalog.runtime.copied_constructions
        self._copied_exact = frozenset(copied)
        self._copied_prefixes = tuple(p + "." for p in copied)
        for cls_name, methods in self.catalog.runtime.opaque_methods.items():
            for m in methods:
                self._opaque_methods[m] = self._opaque_methods.get(m, frozenset()) | {cls_name}

    # ------------------------------------------------------------ values

    def is_copied_construction(self, cls: ClassSym) -> bool:
        """A class the catalog lists under ``copied_constructions`` (by its module or itself)."""
        return bool(self._copied_exact) and (cls.module in self._copied_exact or cls.dotted in self._copied_exact
                                             or cls.module.startswith(self._copied_prefixes))

    def layout_key(self) -> tuple:
        """What runtime answers depend on (the catalog aside): the layout in force."""
        lay = self.layout
        return (lay.tp, lay.ep, lay.page_size, lay.attention_backend)

    @property
    def struct_bases(self) -> tuple[str, ...]:
        return tuple(self.catalog.runtime.struct_base_classes)

    def _value(self, interp: Interpreter, text: str, extra: dict[str, Any] | None = None) -> Any:
        m = _NAMESPACE_REF.fullmatch(text)
        if m:
            return self.namespace(interp, m.group(1))
        env = self.layout.env()
        if extra:
            env.update(extra)
        return evaluate_expression(interp, text, env, "")

    def namespace(self, interp: Interpreter, name: str) -> Namespace:
        ns = self.namespaces.get(name)
        if ns is None:
            ns = Namespace(name=name, attrs={})
            self.namespaces[name] = ns
            for k, text in self.catalog.runtime.namespace_attributes.get(name, {}).items():
                ns.attrs[k] = self._value(interp, text)
        return ns

    def namespace_default(self, ns: Namespace, attr: str) -> Any:
        return Sym(f"{ns.name}.{attr}", "runtime flag")

    def external_value(self, dotted: str) -> tuple[Any] | None:
        if dotted.startswith("math."):
            v = getattr(math, dotted[5:], None)
            if isinstance(v, (int, float)):
                return (v,)
        return None

    # ------------------------------------------------------------ calls

    def call_hook(self, interp: Interpreter, callee: Any, dotted: str, name: str, args: list[Any],
                  kwargs: dict[str, Any], frame: Any, node: Any) -> tuple[Any] | None:
        rt = self.catalog.runtime
        if isinstance(callee, ClassSym) and name in rt.lazy_import_classes and len(args) >= 2 \
                and isinstance(args[0], str) and isinstance(args[1], str):
            return (ExternalSym(f"{args[0]}.{args[1]}"),)
        if isinstance(callee, (FuncSym, ClassSym)) and (
                callee.dotted in self._opaque_exact or f"{callee.module}.".startswith(self._opaque_prefixes)):
            return (Sym(f"{name}(...)", "environment"),)
        if isinstance(callee, BoundMethod) and name in self._opaque_methods:
            classes = self._opaque_methods[name]
            if any(isinstance(c, ClassSym) and c.name in classes for c in interp.index.mro(callee.owner)):
                return (Sym(f"{name}(...)", "tensor"),)
        if isinstance(callee, (FuncSym, ExternalSym, Sym)) or hasattr(callee, "func"):
            key = dotted if dotted in rt.functions else name
            if key in rt.functions:
                extra: dict[str, Any] = {}
                for i, pname in enumerate(rt.call_arguments.get(key, [])):
                    if i < len(args):
                        extra[pname] = args[i]
                    elif pname in kwargs:
                        extra[pname] = kwargs[pname]
                return (self._value(interp, rt.functions[key], extra),)
            if name in rt.namespaces and not isinstance(callee, ClassSym):
                return (self.namespace(interp, rt.namespaces[name]),)
            if name in rt.layer_factories and isinstance(callee, FuncSym):
                return (self.layer_factory(interp, name, callee, args, kwargs, frame, node),)
        return None

    def layer_factory(self, interp: Interpreter, name: str, fsym: FuncSym, args: list[Any],
                      kwargs: dict[str, Any], frame: Any, node: Any) -> Any:
        """``make_layers(n, lambda idx, prefix: Layer(...))``: build each layer."""
        spec = self.catalog.runtime.layer_factories[name]
        fnode = interp.index.node(fsym)
        mod = interp.index.module(fsym.module)
        if not isinstance(fnode, ast.FunctionDef) or mod is None:
            return Sym(f"{name}(...)")
        from .evaluate import Frame

        bound = interp.bind(fnode, args, kwargs, Frame(module=mod), skip_first=False)
        count = bound.get(spec.count)
        layer_fn = bound.get(spec.layer_fn)
        prefix = bound.get(spec.prefix, "")
        site = interp.site(frame, node) if frame is not None and node is not None else None
        items: list[Any] = []
        repeat = None
        if isinstance(count, int) and not isinstance(count, bool) and 0 <= count <= 4096:
            items = self._build_layers(interp, layer_fn, count, prefix, frame, node)
        else:
            repeat = count if isinstance(count, Sym) else Sym(expr_of(count))
            items.append(interp.call(layer_fn, [], {"idx": Sym("layer_id"), "prefix": Sym("prefix")}, frame, node))
        modules = ModuleListObj(items, site, repeat=repeat)
        env = dict(bound)
        env["modules"] = modules
        env[spec.count] = count
        return evaluate_expression(interp, spec.returns, env, fsym.module)

    def _build_layers(self, interp: Interpreter, layer_fn: Any, count: int, prefix: Any, frame: Any,
                      node: Any) -> list[Any]:
        """Build layer 0..count-1, evaluating only layers whose decisions differ (see tracking)."""
        base = str(prefix) if isinstance(prefix, str) else None

        def build(i: int) -> tuple[Any, DecisionLog]:
            idx = TrackedInt(i, lambda j: j)
            if base is None:
                p: Any = Sym("prefix")
            elif base:
                p = TrackedStr(f"{base}.{i}", lambda j: f"{base}.{j}")
            else:
                p = TrackedStr(str(i), lambda j: str(j))
            log = DecisionLog()
            push(log)
            try:
                return interp.call(layer_fn, [], {"idx": idx, "prefix": p}, frame, node), log
            finally:
                pop()

        reps: list[tuple[DecisionLog, Any, list[int]]] = []
        items: list[Any] = []
        for i in range(count):
            rep = next((r for r in reps if r[0].replays_for(i)), None)
            if rep is not None:
                rep[2].append(i)
                items.append(rep[1])
                continue
            obj, log = build(i)
            reps.append((log, obj, [i]))
            items.append(obj)
        # verify each shared group once: its last layer, built for real, must look the same
        for _log, obj, members in reps:
            if len(members) < 2:
                continue
            again, _ = build(members[-1])
            if structural_signature(again) != structural_signature(obj):
                self.dedupe_fallbacks += 1
                return [build(i)[0] for i in range(count)]
        self.layers_built += len(reps)
        self.layers_total += count
        return items

    def external_module(self, interp: Interpreter, dotted: str, args: list[Any], kwargs: dict[str, Any],
                        frame: Any, node: Any, arg_exprs: list[str] | None, kw_exprs: dict[str, str] | None) -> Any:
        rt = self.catalog.runtime
        site = interp.site(frame, node) if frame is not None and node is not None else None
        norm = dotted.replace("torch.nn.modules.container.", "torch.nn.")
        if norm in rt.container_modules:
            kind = rt.container_modules[norm]
            if kind == "dict":
                items = args[0] if args and isinstance(args[0], dict) else {}
                return ModuleDictObj(dict(items), site)
            if kind == "sequential":
                return ModuleListObj(list(args), site, kind="Sequential")
            src = args[0] if args else []
            if isinstance(src, ModuleListObj):
                return ModuleListObj(list(src.items), site or src.site, repeat=src.repeat)
            items = interp.iterate(src)
            if items is None:
                return ModuleListObj([], site, repeat=Sym(expr_of(src)))
            return ModuleListObj(list(items), site)
        last = dotted.rsplit(".", 1)[-1]
        if dotted.startswith("torch.nn.") and last[:1].isupper() and last not in ("Parameter", "ParameterList", "ParameterDict", "Buffer"):
            params = rt.external_modules.get(dotted, [])
            obj = Obj(cls=ExternalSym(dotted), is_module=True, site=site, shallow=True)
            for i, a in enumerate(args):
                obj.args[params[i] if i < len(params) else f"arg{i}"] = a
            obj.args.update(kwargs)
            obj.attrs.update(obj.args)
            if isinstance(node, ast.Call):
                for i, a in enumerate(node.args):
                    obj.arg_exprs[params[i] if i < len(params) else f"arg{i}"] = ast.unparse(a)
                for k in node.keywords:
                    if k.arg:
                        obj.arg_exprs[k.arg] = ast.unparse(k.value)
            return obj
        return None

    # ------------------------------------------------------------ classes

    def is_module_class(self, index: Index, cls: ClassSym) -> bool:
        bases = self.catalog.runtime.module_base_classes
        for c in index.mro(cls):
            if isinstance(c, ExternalSym) and (c.dotted in bases or c.dotted.startswith("torch.nn.")):
                return True
        return False

    def is_shallow(self, index: Index, cls: ClassSym) -> bool:
        # vision/audio towers are not the language model: recorded, not built (names exclude them)
        if any(m in cls.name for m in self.catalog.layers.non_text_markers):
            return True
        rule = self.catalog.layer_rule_for(index, cls)
        if rule is None or not rule.shallow:
            return False
        # a subclass with its own constructor is interpreted (its parameters may differ)
        matched = rule.matched_class(index, cls)
        return matched == cls or index.find_in_class(cls, "__init__") == index.find_in_class(matched, "__init__")

    def after_shallow(self, interp: Interpreter, obj: Obj) -> None:
        return

    def on_attribute_set(self, interp: Interpreter, obj: Obj, attr: str, value: Any, frame: Any, st: Any) -> None:
        return

    def on_symbolic_branch(self, interp: Interpreter, frame: Any, st: Any, cond: str) -> None:
        loc = f"{frame.module.rel}:{getattr(st, 'lineno', 0)}"
        self.symbolic_branches.append((loc, cond))

    def object_attribute(self, interp: Interpreter, obj: Obj, attr: str) -> tuple[Any] | None:
        if obj.is_module and attr in self.catalog.runtime.module_methods:
            text = self.catalog.runtime.module_methods[attr]
            return (HostFunction(attr, lambda *a, **k: obj if text == "self" else _literal(text)),)
        if obj.attrs.get("__config__") is True:
            if obj.attrs.get("__symbolic__") is True:
                return (Sym(f"config.{attr}"),)
            if attr in self.catalog.runtime.config_defaults:
                return (self.catalog.runtime.config_defaults[attr],)
            if not attr.startswith("_"):
                self.missing_config_fields.add(attr)
            return (Sym(f"config.{attr}", "missing"),)
        return None

    def getattr_default(self, interp: Interpreter, obj: Any, name: str, default: Any) -> tuple[Any] | None:
        """``getattr(config, "x", default)`` on a config without ``x`` is the default."""
        if not (isinstance(obj, Obj) and obj.attrs.get("__config__") is True):
            return None
        if name in obj.attrs:
            return (obj.attrs[name],)
        if obj.attrs.get("__symbolic__") is True:
            return None
        if isinstance(obj.cls, ClassSym):
            from .evaluate import _MISSING

            v = interp.class_attribute(obj.cls, name, obj)
            if v is not _MISSING:
                return (v,)
        return (default,)


def build_config_object(interp: Interpreter, runtime: Runtime, raw: dict[str, Any] | None,
                        model_type: str | None, config_classes: dict[str, ClassSym]) -> Obj:
    """The config as the model code sees it.

    With a ``config.json``: the raw fields, then SGLang's config class for its
    ``model_type`` (if the tree has one) interpreted over them, so that its
    defaults and properties are seen.  Without: a symbolic config whose fields are
    expressions (``config.hidden_size``).
    """
    if raw is None:
        obj = Obj(cls=CONFIG_CLASS, attrs={"__config__": True, "__symbolic__": True})
        return obj
    cls = config_classes.get(model_type or "")
    obj: Obj
    if cls is not None:
        kwargs = {k: _nested(interp, runtime, v, k, config_classes) for k, v in raw.items()}
        made = interp.instantiate(cls, [], kwargs, None, None)
        obj = made if isinstance(made, Obj) else Obj(cls=cls)
        for k, v in kwargs.items():
            cur = obj.attrs.get(k)
            if k not in obj.attrs or isinstance(cur, Sym):
                obj.attrs[k] = v
    else:
        obj = Obj(cls=CONFIG_CLASS)
        for k, v in raw.items():
            obj.attrs[k] = _nested(interp, runtime, v, k, config_classes)
    obj.attrs["__config__"] = True
    return obj


def _nested(interp: Interpreter, runtime: Runtime, value: Any, key: str, config_classes: dict[str, ClassSym]) -> Any:
    if isinstance(value, dict) and key.endswith("_config") and key != "quantization_config" and (
        "hidden_size" in value or "model_type" in value or "num_hidden_layers" in value
    ):
        return build_config_object(interp, runtime, value, value.get("model_type"), config_classes)
    return value


def _literal(text: str) -> Any:
    return ast.literal_eval(text)


def site_of(obj: Any) -> Site | None:
    return getattr(obj, "site", None)
