"""Turning an :class:`~.analysis.Analysis` into the output files.

Writes, in ``--output-dir``: ``sglang_implementation.json``, ``kernel_calls.json``,
``model_definition.json``, ``model_config.json`` (with a config), ``summary.md`` and
``code_snippets/``.  Every file is written to a temporary name and renamed into
place; only files this tool owns are replaced, anything else in the folder is left
alone.  Ordering is stable, so two runs diff cleanly.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import __version__
from .analysis import Analysis, LayoutResult, model_file_for_github, read_snippet
from .definitions import DefinitionUse
from .forward import Call
from .fsutil import MARKER, SNIPPETS
from .schemas import (
    AttentionOut,
    CallSite,
    ConfigOut,
    DefinitionSummary,
    ForwardInfo,
    ForwardLayer,
    ForwardPassStructure,
    Implementation,
    KernelCall,
    KernelSite,
    MatchOut,
    SourceOut,
    TraceComparison,
    TreeNode,
    Value,
    Variant,
    Warning_,
)
from .structure import Node
from .values import Obj, Site, Sym, expr_of, is_known, json_value, untracked

# ---------------------------------------------------------------------------- building


def value(v: Any, expr: str = "") -> Value:
    if isinstance(v, Sym):
        return Value(expr=v.expr, value=None, concrete=False)
    jv = json_value(v)
    known = is_known(v) and (jv is not None or v is None)
    return Value(expr=expr or expr_of(v), value=jv if known else None, concrete=known)


def _loc(site: Site | None) -> str:
    if site is None:
        return ""
    return f"{site.rel}:{site.start}-{site.end or site.start}"


def build_kernel_calls(a: Analysis) -> list[KernelCall]:
    out: list[KernelCall] = []
    order = _tree_order(a.primary.tree) if a.primary.tree else {}
    for lr in a.layouts:
        for u in lr.uses:
            if u.scope != "text":
                continue
            out.append(_kernel_call(u))
    out.sort(key=lambda k: (order.get(k.module, 1 << 30), k.module, k.op_type, k.flashinfer_equivalent,
                            k.variant.tp, k.variant.ep, k.variant.page_size))
    return out


def _kernel_call(u: DefinitionUse) -> KernelCall:
    node = u.node
    first = u.kernels[0] if u.kernels else None
    notes = list(u.notes)
    if len(u.kernels) > 1:
        notes.append("also runs: " + "; ".join(f"{c.target} at {_loc(c.site)}" for c in u.kernels[1:4]))
    if first is None:
        notes.append("no kernel call site found on the CUDA path for this definition")
    baseline = first.origin if first is not None and first.origin else node.class_dotted
    return KernelCall(
        module=node.path or node.name,
        module_class=node.class_name,
        kernel=first.target if first else "",
        kernel_kind=first.kernel_kind if first else "",
        baseline_impl=baseline,
        flashinfer_equivalent=u.name,
        code_location=_loc(first.site) if first else _loc(node.site),
        module_location=_loc(node.site or node.attr_site),
        op_type=u.op_type,
        status=u.status,  # type: ignore[arg-type]
        concrete=u.concrete,
        axes={k: Value(expr=a.expr, value=untracked(a.value), concrete=a.known) for k, a in u.axes.items()},
        variant=Variant(tp=u.layout.tp, ep=u.layout.ep, page_size=u.layout.page_size),
        stage=u.rule.stage,
        count=u.count,
        layer_ids=list(node.layer_ids),
        condition=node.condition,
        call_form=u.call_form,
        evidence=u.evidence,
        fi_api=u.fi_api,
        notes=notes,
    )


def _tree_order(tree: Node | None) -> dict[str, int]:
    out: dict[str, int] = {}
    if tree is None:
        return out
    for i, n in enumerate(tree.walk()):
        out.setdefault(n.path or n.name, i)
    return out


def build_tree(a: Analysis, lr: LayoutResult) -> TreeNode:
    names: dict[int, list[str]] = {}
    for u in lr.uses:
        if u.scope == "text":
            lst = names.setdefault(id(u.node), [])
            if u.name not in lst:
                lst.append(u.name)

    def conv(n: Node) -> TreeNode:
        ctor = {}
        if isinstance(n.obj, Obj):
            for k, v in n.obj.args.items():
                if k in ("config", "quant_config") or k.startswith("_"):
                    continue
                if isinstance(v, (Obj,)) or getattr(v, "is_module", False):
                    continue
                expr = n.obj.arg_exprs.get(k, "")
                ctor[k] = value(v, expr)
        return TreeNode(name=n.name, path=n.path or n.name, class_name=n.class_name, class_dotted=n.class_dotted,
                        type=n.type, count=n.count, layer_ids=list(n.layer_ids), condition=n.condition,  # type: ignore[arg-type]
                        code_location=_loc(n.site or n.attr_site), role=n.role, scope=n.scope,  # type: ignore[arg-type]
                        alias_of=n.alias_of, helper=n.helper, constructor=ctor,
                        definitions=sorted(names.get(id(n), [])),
                        children=[conv(c) for c in n.children])

    assert lr.tree is not None
    return conv(lr.tree)


def build_forward(a: Analysis, lr: LayoutResult) -> list[ForwardInfo]:
    out: list[ForwardInfo] = []
    seen: set[str] = set()
    if lr.tree is None:
        return out
    for n in lr.tree.walk():
        if not isinstance(n.obj, Obj) or n.alias_of:
            continue
        key = n.class_dotted
        if key in seen:
            continue
        seen.add(key)
        path = lr.forward.forward_of(n.obj)
        if path is None:
            continue
        calls = [CallSite(kind=c.kind, target=c.target, code_location=_loc(c.site), condition=c.condition,
                          via=c.via, arguments=c.nargs) for c in path.calls if c.kind in ("child", "kernel", "delegate")]
        out.append(ForwardInfo(class_name=n.class_name, method=path.method, defined_in=path.owner,
                               code_location=_loc(path.site), calls=calls, alternatives=list(path.alternatives)))
    return out


def build_kernel_sites(a: Analysis, lr: LayoutResult) -> list[KernelSite]:
    sites: OrderedDict[tuple[str, str], KernelSite] = OrderedDict()
    if lr.tree is None:
        return []

    def add(c: Call, module: str) -> None:
        key = (c.target, _loc(c.site))
        ks = sites.get(key)
        if ks is None:
            params = {f"arg{i}": Value(expr=t, value=None, concrete=False) for i, t in enumerate(c.args_text)}
            ks = KernelSite(function=c.target, kind=c.kernel_kind, code_location=_loc(c.site), reached_by=[],
                            parameters=params, condition=c.condition, via=c.via)
            sites[key] = ks
        if module and module not in ks.reached_by:
            ks.reached_by.append(module)

    for n in lr.tree.walk():
        if not isinstance(n.obj, Obj) or n.scope != "text":
            continue
        path = lr.forward.forward_of(n.obj)
        if path is None:
            continue
        for c in path.calls:
            if c.kind == "kernel":
                add(c, n.path or n.name)
    for u in lr.uses:
        for c in u.kernels:
            add(c, u.node.path or u.node.name)
    return sorted(sites.values(), key=lambda s: (s.code_location, s.function))


def build_forward_structure(a: Analysis, lr: LayoutResult) -> ForwardPassStructure:
    tree = lr.tree
    if tree is None:
        return ForwardPassStructure(embedding=None, layers=[], final_norm=None, lm_head=None)
    defs: dict[int, list[str]] = {}
    for u in lr.uses:
        lst = defs.setdefault(id(u.node), [])
        if u.name not in lst:
            lst.append(u.name)
    # the decoder layer: the largest group inside a ModuleList
    lists = [n for n in tree.walk() if n.container and n.children and n.scope == "text"]
    best_list = max(lists, key=lambda n: sum(_int(c.count) for c in n.children), default=None)
    embedding = next((n.name for n in tree.walk() if n.role == "embedding" and n.scope == "text"), None)
    lm_head = next((n.name for n in tree.walk() if n.name == "lm_head" or n.role == "lm_head"), None)
    final_norm = None
    layers: list[ForwardLayer] = []
    layer_class = None
    layer_count: int | str | None = None
    if best_list is not None:
        parent = _parent_of(tree, best_list)
        if parent is not None:
            final_norm = next((c.name for c in parent.children if c.role == "norm"), None)
        group = max(best_list.children, key=lambda c: _int(c.count))
        layer_class = group.class_name
        layer_count = sum(_int(c.count) for c in best_list.children) if all(
            isinstance(c.count, int) for c in best_list.children) else group.count
        layers = _ordered_children(lr, group, defs)
    return ForwardPassStructure(embedding=embedding, layers=layers, final_norm=final_norm, lm_head=lm_head,
                                layer_class=layer_class, layer_count=layer_count)


def _ordered_children(lr: LayoutResult, node: Node, defs: dict[int, list[str]], depth: int = 0) -> list[ForwardLayer]:
    if not isinstance(node.obj, Obj):
        return []
    path = lr.forward.forward_of(node.obj)
    by_name = {c.name: c for c in node.children}
    order: list[str] = []
    if path is not None:
        for c in path.calls:
            if c.kind in ("child", "delegate") and c.target in by_name and c.target not in order:
                order.append(c.target)
    order += [n for n in by_name if n not in order and not by_name[n].helper]
    out: list[ForwardLayer] = []
    for name in order:
        child = by_name[name]
        names = defs.get(id(child), [])
        kernels = sorted({k for u in lr.uses if u.node is child for k in [c.target for c in u.kernels]})
        fl = ForwardLayer(name=name, type=child.class_name, class_name=child.class_dotted, definitions=names)
        if child.children and depth < 1:
            sub = _ordered_children(lr, child, defs, depth + 1)
            fl.kernels = [f"{s.name}: {', '.join(s.definitions) or s.type}" for s in sub]
        elif len(kernels) == 1:
            fl.kernel = kernels[0]
        elif kernels:
            fl.kernels = kernels
        out.append(fl)
    return out


def _parent_of(tree: Node, target: Node) -> Node | None:
    for n in tree.walk():
        if target in n.children:
            return n
    return None


def _int(v: Any) -> int:
    return v if isinstance(v, int) else 0


def build_definitions(a: Analysis, calls: list[KernelCall]) -> list[DefinitionSummary]:
    by: OrderedDict[str, DefinitionSummary] = OrderedDict()
    for k in calls:
        d = by.get(k.flashinfer_equivalent)
        if d is None:
            d = DefinitionSummary(name=k.flashinfer_equivalent, op_type=k.op_type, status=k.status,
                                  concrete=k.concrete, modules=[], variants=[], fi_api=k.fi_api,
                                  coverage=replace(k.coverage))
            by[k.flashinfer_equivalent] = d
        if k.module not in d.modules:
            d.modules.append(k.module)
        if k.variant not in d.variants:
            d.variants.append(k.variant)
    return sorted(by.values(), key=lambda d: (d.op_type, d.name))


def build_implementation(a: Analysis, calls: list[KernelCall], trace: TraceComparison | None = None) -> Implementation:
    lr = a.primary
    m = a.match
    cfg = a.config
    namer = lr.namer
    warnings = [Warning_(kind=d.kind, message=d.message, location=d.location, detail=d.detail)
                for d in a.diagnostics.sorted()]
    if a.source.note:
        warnings.insert(0, Warning_(kind="source", message=a.source.note))
    for node, why in lr.not_invoked:
        warnings.append(Warning_(kind="not-invoked", message=f"{node.path}: {why}; no definition emitted",
                                 location=_loc(node.site)))
    tree = build_tree(a, lr) if lr.tree is not None else TreeNode(
        name=m.chosen.class_name, path="", class_name=m.chosen.class_name,
        class_dotted=f"{m.chosen.module}.{m.chosen.class_name}", type="layer", count=1, code_location="")
    stats = {
        "seconds": round(a.seconds, 3),
        "files_parsed": len(a.index.files_read),
        "evaluation_steps": sum(x.steps for x in a.layouts),
        "modules": sum(1 for _ in lr.tree.walk()) if lr.tree else 0,
        "warnings": len(warnings),
    }
    return Implementation(
        tool={"name": "sglang-baseline", "version": __version__},
        model_name=a.model_name,
        model_file=model_file_for_github(m.chosen.file),
        model_file_srt=m.chosen.file,
        class_name=m.chosen.class_name,
        match=MatchOut(how=m.how, alternatives=[f"{r.class_name} ({r.file})" for r in m.alternatives]),
        source=SourceOut(kind=a.source.kind, location=a.source.location, version=a.source.version,
                         commit=a.source.commit, ref=a.source.ref, note=a.source.note),
        config=ConfigOut(path=str(cfg.path), architectures=list(cfg.architectures), model_type=cfg.model_type,
                         text_config_key=cfg.text_key, quantization=cfg.quant.summary,
                         not_converted=cfg.quant.not_converted[:200]) if cfg else None,
        variants=sorted({(x.layout.tp, x.layout.ep, p): Variant(
            tp=x.layout.tp, ep=x.layout.ep, page_size=p) for x in a.layouts for p in a.page_sizes}.values(),
            key=lambda v: (v.tp, v.ep, v.page_size)),
        attention=AttentionOut(architecture=namer.attention.arch, backend_class=namer.attention.backend_class,
                               requested_backend=namer.attention.requested, reason=namer.attention.why)
        if namer else None,
        forward_pass_structure=build_forward_structure(a, lr),
        module_tree=tree,
        forward=build_forward(a, lr),
        kernel_calls=build_kernel_sites(a, lr),
        definitions=build_definitions(a, calls),
        trace_comparison=trace,
        warnings=warnings,
        stats=stats,
    )


def build_model_definition(impl: Implementation) -> dict[str, Any]:
    """The module tree in the FlashInfer-Bench web ``Model`` shape."""
    modules: OrderedDict[str, dict[str, Any]] = OrderedDict()
    used: set[str] = set()

    def key_for(node: TreeNode, parent_key: str | None, in_list: bool) -> str:
        base = node.class_name if parent_key is None or in_list or node.name == "model" else node.name
        base = re.sub(r"\[.*\]$", "", base) if not in_list else base.replace("[", "_").replace("]", "").replace(",", "_")
        key = base
        if key in used:
            key = f"{parent_key}.{base}" if parent_key else base
        i = 2
        while key in used:
            key = f"{base}_{i}"
            i += 1
        used.add(key)
        return key

    def visit(node: TreeNode, parent_key: str | None, in_list: bool) -> None:
        if node.scope != "text" or node.alias_of:
            return
        key = key_for(node, parent_key, in_list)
        entry: dict[str, Any] = {"count": node.count}
        if parent_key is not None:
            entry["parent"] = parent_key
        entry["type"] = node.type
        entry["definitions"] = list(node.definitions)
        modules[key] = entry
        is_list = node.class_name in ("ModuleList", "Sequential", "list")
        for c in node.children:
            visit(c, key, is_list)

    visit(impl.module_tree, None, False)
    return {"id": impl.model_name, "name": impl.model_name, "class_name": impl.class_name,
            "source": f"sglang {impl.source.version or 'unknown'}", "modules": modules}


# ---------------------------------------------------------------------------- writing


Serializer = Callable[[Implementation, list[KernelCall], dict[str, Any], Path, bool],
                     Callable[[], "dict[str, str] | None"]]


def render_outputs(a: Analysis, output_dir: Path, impl: Implementation, calls: list[KernelCall],
                   serialize: Serializer | None = None) -> dict[str, str]:
    """Every output file, by path relative to the output folder (snippets under code_snippets/).

    The JSON files and the summary come from pydantic and jinja2 (``serialize.json_outputs``,
    ``summary.render_summary``).  ``serialize``, when given, is handed the records, the plain
    data of the other JSON files, the folder and whether the config is written, and returns a
    function that returns those files made elsewhere (the helper's; None if that failed: they
    are then made here)."""
    data: dict[str, Any] = {"model_definition.json": build_model_definition(impl)}
    if a.config is not None:
        data["model_config.json"] = a.config.raw
    config_written = a.config is not None
    pending = serialize(impl, calls, data, output_dir, config_written) if serialize is not None else None
    snippets = render_snippets(a, impl, calls)
    made = pending() if pending is not None else None
    if made is None:
        made = make_outputs(impl, calls, data, output_dir, config_written)
    files = {name: made[name] for name in ("sglang_implementation.json", "kernel_calls.json", *data)}
    files.update((f"{SNIPPETS}/{name}", text) for name, text in snippets.items())
    files["summary.md"] = made["summary.md"]
    return files


def make_outputs(impl: Implementation, calls: list[KernelCall], data: dict[str, Any], output_dir: Path,
                 config_written: bool) -> dict[str, str]:
    """The JSON files (validated) and summary.md, by the libraries that make them."""
    from .serialize import json_outputs
    from .summary import render_summary

    impl, calls, files = json_outputs(impl, calls, data)
    files["summary.md"] = render_summary(impl, calls, output_dir, config_written)
    return files


def render_snippets(a: Analysis, impl: Implementation, calls: list[KernelCall]) -> dict[str, str]:
    """code_snippets/modules/<file>.py (every module class of the tree defined in that source file)
    and code_snippets/kernels/<file>.py (every kernel call site in that source file).

    One file per source file, not per class or site: a model has ~40 classes and sites,
    and creating files dominated writing a --all run.
    """
    files: dict[str, str] = {}
    classes: dict[str, dict[tuple[int, int], str]] = {}
    mods: dict[str, Any] = {}
    seen: set[str] = set()
    lr = a.primary
    if lr.tree is not None:
        for n in lr.tree.walk():
            if not isinstance(n.obj, Obj) or n.alias_of:
                continue
            cls = n.obj.cls
            dotted = n.class_dotted
            if dotted in seen or not hasattr(cls, "qualname"):
                continue
            seen.add(dotted)
            mod = a.index.module(cls.module)  # type: ignore[union-attr]
            node = a.index.class_node(cls) if mod else None  # type: ignore[arg-type]
            if mod is None or node is None:
                continue
            mods[mod.rel] = mod
            classes.setdefault(mod.rel, {}).setdefault((node.lineno, node.end_lineno or node.lineno), dotted)
    listed: dict[str, list[tuple[str, str]]] = {"modules": [], "kernels": []}

    def add(kind: str, rel: str, found: dict[tuple[int, int], str], text: str) -> None:
        name = _snippet_name(files, kind, rel)
        files[name] = text
        listed[kind].append((name, ", ".join(sorted(set(found.values())))))

    for rel, found in classes.items():
        add("modules", rel, found, "\n".join(_snippet(rel, s, e, dotted, mods[rel].snippet(s, e))
                                              for (s, e), dotted in sorted(found.items())))
    # kernel call sites, the sites of a file in line order with two lines of context
    sites: dict[str, dict[tuple[int, int], str]] = {}
    located = [(ks.code_location, ks.function) for ks in impl.kernel_calls]
    located += [(kc.code_location, kc.baseline_impl or kc.kernel) for kc in calls]
    for where, function in located:
        m = re.match(r"(.+):(\d+)-(\d+)$", where)
        if m:
            sites.setdefault(m.group(1), {}).setdefault((int(m.group(2)), int(m.group(3))), function)
    for rel, found in sites.items():
        parts = []
        for (s, e), function in sorted(found.items()):
            first, last = max(s - 2, 1), e + 2
            parts.append(_snippet(rel, first, last, function, read_snippet(a.index, rel, first, last)))
        add("kernels", rel, found, "\n".join(parts))
    index = ["# code_snippets\n\nExact source lines, each under a header naming what it is, the file (relative "
             "to sglang/srt) and the line range.\n"]
    for kind, title in (("modules", "Module classes, by the file that defines them"),
                        ("kernels", "Kernel call sites, by the file that holds them")):
        index.append(f"\n## {title}\n\n")
        index.extend(f"- {name}: {what}\n" for name, what in sorted(listed[kind]))
    files["INDEX.md"] = "".join(index)
    files[MARKER] = "written by sglang-baseline; replaced on every run\n"
    return files


def _snippet_name(files: dict[str, str], kind: str, rel: str) -> str:
    """``kernels/layers.layernorm.py`` for ``layers/layernorm.py``; a hash keeps two paths with one
    safe name (non-ASCII, very long) apart."""
    base = _safe(rel.removesuffix(".py").replace("/", "."))
    name = f"{kind}/{base}.py"
    if name in files:
        name = f"{kind}/{base[:100]}-{_short_hash(rel)}.py"
    return name


def _snippet(rel: str, start: int, end: int, what: str, body: str) -> str:
    header = f"# {what}\n# source: sglang/srt/{rel}:{start}-{end}\n\n"
    return header + body + ("\n" if not body.endswith("\n") else "")


def _short_hash(s: str) -> str:
    return hashlib.blake2b(s.encode(), digest_size=4).hexdigest()


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", s)[:150]
