"""FlashInfer-Bench names for the modules of the tree.

Each module whose class (or a base class) has a catalog rule gets the rule's
definitions, with the axis expressions evaluated over the module's bound
constructor arguments, the config and the layout (tp, ep, page size).  Attention
layers get theirs from the attention backend the run would use.  What cannot be
evaluated stays in the name as a template placeholder (``rmsnorm_h{hidden_size}``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from .catalog import Catalog, DefinitionRule, LayerRule
from .diagnostics import Diagnostics
from .evaluate import Interpreter, evaluate_expression, truth
from .forward import Call, ForwardReader
from .index import ClassSym, ExternalSym, Index
from .runtime import Layout
from .structure import Node
from .values import EnumMember, HostFunction, Obj, Sym, expr_of, is_known

FIXED_WORDS = ("causal", "k_last")
INVOKED_ROLES = frozenset({"linear"})


@dataclass
class AxisValue:
    expr: str
    value: Any = None

    @property
    def known(self) -> bool:
        return self.value is not None


@dataclass
class DefinitionUse:
    """One definition a module runs, for one layout."""

    node: Node
    rule: DefinitionRule
    name: str
    concrete: bool
    axes: dict[str, AxisValue]
    status: str
    layout: Layout
    count: int | str
    scope: str
    call_form: str = ""
    evidence: str = ""  # how the call form was decided
    backend: str = ""
    kernels: list[Call] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fi_api: str = ""

    @property
    def op_type(self) -> str:
        return self.rule.op_type


@dataclass
class AttentionChoice:
    arch: str
    backend_class: str
    requested: str
    why: str


class Namer:
    """Applies the catalog to a tree for one layout."""

    def __init__(self, index: Index, interp: Interpreter, catalog: Catalog, layout: Layout,
                 config_obj: Any, raw_config: dict | None, quant_config: Any, architecture: str,
                 mla_architectures: list[str], forward: ForwardReader, diagnostics: Diagnostics) -> None:
        self.index = index
        self.interp = interp
        self.catalog = catalog
        self.layout = layout
        self.config = config_obj
        self.raw = raw_config
        self.quant_config = quant_config
        self.architecture = architecture
        self.mla_architectures = mla_architectures
        self.forward = forward
        self.diag = diagnostics
        self.hidden_size = _config_int(raw_config, "hidden_size")
        self.attention = self._choose_attention()
        self.not_invoked: list[tuple[Node, str]] = []

    # ------------------------------------------------------------------ attention

    def _choose_attention(self) -> AttentionChoice:
        env = self._base_env()
        env.update({"architecture": self.architecture, "mla_architectures": self.mla_architectures,
                    "backend": self.layout.attention_backend})
        arch = "mha"
        for rule in self.catalog.backends.architectures:
            if _truthy(evaluate_expression(self.interp, rule.when, env, "")):
                arch = rule.arch
                break
        env["arch"] = arch
        for choice in self.catalog.backends.selection:
            if _truthy(evaluate_expression(self.interp, choice.when, env, "")):
                return AttentionChoice(arch, choice.backend_class, self.layout.attention_backend,
                                       f"{arch} attention with --attention-backend {self.layout.attention_backend}")
        return AttentionChoice(arch, "", self.layout.attention_backend, "no backend rule matched")

    # ------------------------------------------------------------------ environment

    def _base_env(self) -> dict[str, Any]:
        env: dict[str, Any] = dict(self.layout.env())
        env["config"] = self.config
        env["quant_config"] = self.quant_config
        env["config_has"] = HostFunction("config_has", lambda name: bool(self.raw) and name in (self.raw or {}))
        env["cls_name"] = HostFunction("cls_name", _cls_name)
        env["quantized"] = HostFunction("quantized", self._quantized)
        env["quant_word"] = HostFunction("quant_word", lambda qm: self._quant_word(qm, self.catalog.layers.linear_quant_words))
        env["moe_quant_word"] = HostFunction("moe_quant_word", lambda qm: self._quant_word(qm, self.catalog.layers.moe_quant_words))
        env["block_quant"] = HostFunction("block_quant", self._block_quant)
        env["make"] = HostFunction("make", self._make)
        env["routing_word"] = HostFunction("routing_word", self._routing_word)
        env["routing_grouped"] = HostFunction("routing_grouped", self._routing_grouped)
        return env

    def _env(self, node: Node, obj: Obj, parent: Node | None) -> dict[str, Any]:
        env = self._base_env()
        for k, v in obj.args.items():
            env[k] = v
        # a subclass that passes *args/**kwargs through: the base constructor's attributes stand in
        for k, v in obj.attrs.items():
            if k not in env and not k.startswith("_") and (isinstance(v, (int, str, float, bool, list, tuple))
                                                             or v is None):
                env[k] = v
        env["self"] = obj
        env["node_name"] = node.name
        env["arg"] = HostFunction("arg", lambda name, default=None: obj.args.get(name, default)
                                  if obj.args.get(name, default) is not None else default)
        env["sibling"] = HostFunction("sibling", lambda cls: _sibling(parent, cls))
        env["routing_method"] = HostFunction("routing_method", lambda o: self._routing_method(o, parent))
        env["group_count"] = HostFunction("group_count", lambda o: self._group_count(o, parent))
        return env

    # ------------------------------------------------------------------ helpers for rules

    def _make(self, class_name: str) -> Any:
        from .analysis import find_class

        cls = find_class(self.index, class_name)
        return self.interp.instantiate(cls, [], {}, None, None) if cls is not None else None

    def _quantized(self, qm: Any) -> Any:
        if qm is None or self.quant_config is None:
            return False
        if isinstance(qm, Obj):
            return qm.class_name not in self.catalog.layers.linear_unquantized_methods
        return Sym("quantized(quant_method)")

    def _quant_word(self, qm: Any, words: list) -> Any:
        name = "None" if qm is None else (qm.class_name if isinstance(qm, Obj) else "")
        if not name:
            return Sym("quant")
        for w in words:
            if w.method != name:
                continue
            ok = evaluate_expression(self.interp, w.when, {"quant_config": self.quant_config,
                                                           "block_quant": HostFunction("block_quant", self._block_quant)}, "")
            if _truthy(ok):
                return _Word(w.word, w.status)
        low = name.replace("LinearMethod", "").replace("MoEMethod", "").replace("FusedMoEMethod", "").lower()
        return _Word(low or "quantized", "proposed")

    def _block_quant(self, qc: Any) -> Any:
        if qc is None:
            return False
        v = self.interp.getattr(qc, "weight_block_size", None)
        if isinstance(v, Sym):
            raw = (self.raw or {}).get("quantization_config") or {}
            return raw.get("weight_block_size") is not None
        return v is not None

    def _routing_method(self, obj: Obj, parent: Node | None) -> Any:
        rmt = obj.args.get("routing_method_type")
        if isinstance(rmt, EnumMember):
            return rmt.name
        topk = _sibling(parent, "TopK")
        src = topk.args if isinstance(topk, Obj) else obj.args
        grouped = src.get("use_grouped_topk")
        bias = src.get("correction_bias")
        scoring = src.get("scoring_func")
        if grouped is True or (bias is not None and not isinstance(bias, Sym)) or scoring == "sigmoid":
            return "DeepSeekV3" if grouped is True else "Sigmoid"
        renorm = src.get("renormalize")
        if renorm is True:
            return "Renormalize"
        if renorm is False:
            return "Default"
        return Sym("routing_method_type")

    def _routing_word(self, r: Any) -> Any:
        if not isinstance(r, str):
            return Sym("routing")
        for w in self.catalog.layers.routing_words:
            if w.routing_method == r:
                return _Word(w.word, w.status)
        return _Word(r.lower(), "proposed")

    def _routing_grouped(self, r: Any) -> Any:
        if not isinstance(r, str):
            return False
        return any(w.grouped for w in self.catalog.layers.routing_words if w.routing_method == r)

    def _group_count(self, obj: Obj, parent: Node | None) -> Any:
        topk = _sibling(parent, "TopK")
        for src in ([topk.args] if isinstance(topk, Obj) else []) + [obj.args]:
            ng, kg = src.get("num_expert_group"), src.get("topk_group")
            if isinstance(ng, int) and isinstance(kg, int):
                return (ng, kg)
        raw = self.raw or {}
        ng, kg = raw.get("n_group"), raw.get("topk_group")
        if isinstance(ng, int) and isinstance(kg, int):
            return (ng, kg)
        return (Sym("config.n_group"), Sym("config.topk_group"))

    # ------------------------------------------------------------------ main

    def name_tree(self, root: Node) -> list[DefinitionUse]:
        out: list[DefinitionUse] = []
        self._visit(root, None, out)
        return out

    def _visit(self, node: Node, parent: Node | None, out: list[DefinitionUse]) -> None:
        if isinstance(node.obj, Obj) and node.obj.is_module:
            out.extend(self.definitions_for(node, parent))
        for c in node.children:
            self._visit(c, node, out)

    def definitions_for(self, node: Node, parent: Node | None) -> list[DefinitionUse]:
        obj = node.obj
        rule = self.catalog.layer_rule_for(self.index, obj.cls) if isinstance(obj.cls, (ClassSym, ExternalSym)) else None
        if rule is None:
            return []
        env = self._env(node, obj, parent)
        self._probe(rule, obj, env)
        rules: list[DefinitionRule] = list(rule.definitions)
        backend = ""
        if rule.role == "attention":
            backend = self.attention.backend_class
            spec = self.catalog.backends.backends.get(backend)
            rules = list(spec.definitions) if spec else []
            if not spec:
                self.diag.add("unknown-backend", str(node.site or ""), what=self.layout.attention_backend,
                              why=f"no naming rule for {backend or 'this backend'} ({self.attention.why})")
        if rule.role in INVOKED_ROLES and not self._invoked(node, parent):
            return []
        if rule.role == "moe":
            self._note_expert_fusion(node, obj)
        forms, evidence = self._call_forms(node, parent, rule)
        uses: list[DefinitionUse] = []
        for d in rules:
            if d.call != "any" and d.call not in forms:
                continue
            when = evaluate_expression(self.interp, d.when, env, _module_of(obj))
            if when is False or (not _truthy(when) and is_known(when)):
                continue
            if isinstance(when, Sym):
                note = f"only when {when.expr}"
            else:
                note = ""
            axes, status = self._axes(d, env, obj)
            name, concrete = render(d.name, axes)
            use = DefinitionUse(node=node, rule=d, name=name, concrete=concrete, axes=axes,
                                status="proposed" if d.status == "proposed" or status == "proposed" else "dataset",
                                layout=self.layout, count=node.count, scope=node.scope,
                                call_form=d.call if d.call != "any" else "", evidence=evidence if d.call != "any" else "",
                                backend=backend, fi_api=render(d.fi_api, axes)[0] if d.fi_api else "")
            if note:
                use.notes.append(note)
            if d.note:
                use.notes.append(d.note)
            if not concrete:
                missing = [k for k, a in axes.items() if not a.known]
                self.diag.add("missing-dimension", str(node.site or ""), what=name,
                              why=", ".join(f"{k} = {axes[k].expr}" for k in missing))
            uses.append(use)
        return uses

    def _probe(self, rule: LayerRule, obj: Obj, env: dict[str, Any]) -> None:
        for key, text in rule.attrs.items():
            cache = f"__probe_{key}"
            if cache in obj.attrs:
                v = obj.attrs[cache]
            else:
                v = evaluate_expression(self.interp, text, env, _module_of(obj))
                obj.attrs[cache] = v
            env[key] = v
            if obj.attrs.get(key) is None or isinstance(obj.attrs.get(key), Sym):
                obj.attrs[key] = v

    def _axes(self, d: DefinitionRule, env: dict[str, Any], obj: Obj) -> tuple[dict[str, AxisValue], str]:
        axes: dict[str, AxisValue] = {}
        status = "dataset"
        for key, spec in d.axes.items():
            texts = spec if isinstance(spec, list) else [spec]
            value: Any = None
            expr = texts[0]
            for text in texts:
                v = evaluate_expression(self.interp, text, env, _module_of(obj))
                if isinstance(v, _Word):
                    if v.status == "proposed":
                        status = "proposed"
                    v = v.word
                if isinstance(v, bool) or not isinstance(v, (int, str)) or isinstance(v, Sym):
                    expr = expr_of(v) if isinstance(v, Sym) else text
                    continue
                value, expr = v, text
                break
            axes[key] = AxisValue(expr=_template_expr(expr), value=value)
        return axes, status

    def _note_expert_fusion(self, node: Node, obj: Obj) -> None:
        """Say so when the MoE kernel runs more experts than the config routes (fused shared experts)."""
        raw = self.raw or {}
        routed = next((raw[k] for k in ("n_routed_experts", "num_experts", "num_local_experts", "moe_num_experts")
                       if isinstance(raw.get(k), int)), None)
        n = obj.args.get("num_experts")
        if isinstance(n, int) and isinstance(routed, int) and n > routed:
            self.diag.add("shared-experts-fused", str(node.site or ""),
                          what=f"{node.path}: the MoE kernel runs {n} experts where the config routes {routed}: "
                               f"SGLang folds {n - routed} shared (or redundant) experts into it, so no separate "
                               f"shared-expert layers run; names use the {routed} routed experts")

    # ------------------------------------------------------------------ call forms

    def _invoked(self, node: Node, parent: Node | None) -> bool:
        """False for a layer the parent's forward never calls (a weight holder)."""
        if parent is None or not isinstance(parent.obj, Obj):
            return True
        path = self.forward.forward_of(parent.obj)
        if path is None or not path.calls:
            return True
        mine = [c for c in path.calls if c.target == node.name]
        if any(c.kind in ("child", "delegate") for c in mine):
            return True
        self.not_invoked.append((node, "its tensors are read but it is never called" if mine else
                                 f"never called in {path.owner}.{path.method}"))
        return False

    def _call_forms(self, node: Node, parent: Node | None, rule: LayerRule) -> tuple[set[str], str]:
        """plain / residual: how the parent's forward calls this module."""
        if rule.role != "norm" or parent is None or not isinstance(parent.obj, Obj):
            return {"plain", "residual"}, ""
        path = self.forward.forward_of(parent.obj)
        forms: set[str] = set()
        unknown = False
        if path is not None:
            for c in path.calls:
                if c.target != node.name or c.kind not in ("child", "delegate"):
                    continue
                if c.kind == "delegate" and c.nargs < 0:
                    unknown = True
                    continue
                forms.add("residual" if c.with_residual or c.nargs >= 2 else "plain")
        if forms:
            how = ", ".join(sorted(forms))
            return forms, f"called as {how} in {path.owner if path else parent.class_name}.{path.method if path else 'forward'}"
        width = node.obj.args.get("hidden_size", node.obj.args.get("dim"))
        if isinstance(width, int) and self.hidden_size and width == self.hidden_size:
            why = "handed to a residual helper" if unknown else "not called directly"
            return {"plain", "residual"}, f"{why}; a norm on the residual stream (width = hidden_size) runs both forms"
        if isinstance(width, int) and self.hidden_size:
            return {"plain"}, "not on the residual stream (width != hidden_size): plain form only"
        return {"plain", "residual"}, "call form not known"


class _Word(str):
    """A naming word (quantisation, routing) that remembers whether the dataset uses it."""

    status: str = "dataset"

    def __new__(cls, word: str, status: str = "dataset") -> _Word:
        obj = super().__new__(cls, word)
        obj.status = status
        return obj

    @property
    def word(self) -> str:
        return str(self)


def render(template: str, axes: dict[str, AxisValue]) -> tuple[str, bool]:
    """Fill a name template; unknown axes stay as ``{expression}`` placeholders."""
    out = template
    concrete = True
    for key, a in axes.items():
        token = "{" + key + "}"
        if a.known:
            out = out.replace(token, str(a.value))
        else:
            concrete = False
            out = out.replace(token, "{" + a.expr + "}")
    return out, concrete


def _template_expr(text: str) -> str:
    got = _TEMPLATE_EXPRS.get(text)
    if got is None:
        t = text.replace("config.", "").replace("self.", "")
        try:
            ast.parse(t, mode="eval")
        except SyntaxError:
            t = text
        if len(_TEMPLATE_EXPRS) < 100_000:
            _TEMPLATE_EXPRS[text] = t
        got = t
    return got


_TEMPLATE_EXPRS: dict[str, str] = {}  # expression texts repeat model after model (a --all run: ~30,000 calls)


def _module_of(obj: Obj) -> str:
    return obj.cls.module if isinstance(obj.cls, ClassSym) else ""


def _truthy(v: Any) -> bool:
    return truth(v) is True


def _cls_name(x: Any) -> str:
    if x is None:
        return "None"
    if isinstance(x, Obj):
        return x.class_name
    return expr_of(x)


def _sibling(parent: Node | None, cls_name: str) -> Any:
    if parent is None:
        return None
    for c in parent.children:
        if isinstance(c.obj, Obj) and c.obj.class_name == cls_name:
            return c.obj
    return None


def _config_int(raw: dict | None, key: str) -> int | None:
    if not raw:
        return None
    v = raw.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None
