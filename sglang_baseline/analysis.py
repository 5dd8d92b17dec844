"""The pipeline for one model: source -> index -> evaluate -> structure -> kernels -> definitions.

Each stage takes the previous one's result and adds to it.  The entry class is
instantiated once per (tp, ep) layout; page sizes only change attention names,
so they are applied while naming.  The result is a plain data object that
:mod:`.report` turns into files.
"""

from __future__ import annotations

import ast
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import deepstack
from .cache import ParseCache
from .catalog import Catalog, DefinitionRule, load_catalog
from .definitions import DefinitionUse, Namer
from .diagnostics import Diagnostics
from .discovery import Match, ModelFileEntry, config_classes, find_model, mla_architectures, read_registrations
from .errors import ModelSourceError
from .evaluate import BudgetExhausted, Interpreter, evaluate_expression, truth
from .forward import Call, ForwardPath, ForwardReader, kernel_rank
from .hfconfig import ModelConfig
from .index import ClassSym, Index, SourceTree, iter_python_files
from .runtime import Layout, Runtime, build_config_object
from .source import SourceInfo
from .structure import Node, TreeBuilder
from .values import HostFunction, Obj, Sym

Progress = Callable[[str], None]


@dataclass
class LayoutResult:
    layout: Layout  # tp/ep; page sizes are in `uses`
    root: Obj | None
    tree: Node | None
    uses: list[DefinitionUse]
    forward: ForwardReader
    namer: Namer | None
    steps: int
    seconds: float
    not_invoked: list[tuple[Node, str]] = field(default_factory=list)


@dataclass
class Analysis:
    model_name: str
    source: SourceInfo
    config: ModelConfig | None
    match: Match
    entries: list[ModelFileEntry]
    index: Index
    catalog: Catalog
    layouts: list[LayoutResult]
    page_sizes: list[int]
    attention_backend: str
    diagnostics: Diagnostics
    kernel_links: dict[int, list[Call]] = field(default_factory=dict)  # id(use) -> calls
    seconds: float = 0.0

    @property
    def primary(self) -> LayoutResult:
        return self.layouts[0]


def analyse(source: SourceInfo, model_name: str, config: ModelConfig | None, tps: list[int], eps: list[int],
            page_sizes: list[int], attention_backend: str, cache: ParseCache | None = None,
            progress: Progress = lambda m: None, entries: list[ModelFileEntry] | None = None,
            match: Match | None = None, index: Index | None = None, prefetch: Any = None) -> Analysis:
    """Analyse one model.  ``prefetch`` (a prefetch.Prefetch) gives the model-independent readings
    a helper process makes meanwhile; the caller closes it (stopping the helper) afterwards."""
    t0 = time.perf_counter()
    # The analysis allocates millions of short-lived AST and value objects and keeps few
    # cycles: the cyclic collector would spend more time scanning than it frees.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return deepstack.call(_analyse, source, model_name, config, tps, eps, page_sizes, attention_backend, cache,
                              progress, entries, match, t0, index, prefetch)
    finally:
        if gc_was_enabled:
            gc.enable()


def _analyse(source: SourceInfo, model_name: str, config: ModelConfig | None, tps: list[int], eps: list[int],
             page_sizes: list[int], attention_backend: str, cache: ParseCache | None, progress: Progress,
             entries: list[ModelFileEntry] | None, match: Match | None, t0: float,
             shared: Index | None = None, prefetch: Any = None) -> Analysis:
    catalog = load_catalog()
    diags = Diagnostics()
    if entries is None:
        got = prefetch.take(("registrations",)) if prefetch is not None else None
        entries = got[0] if got is not None else read_registrations(source.srt)
    if match is None:
        archs = (config.architectures if config else []) + ([a for a in config.text.get("architectures", [])
                                                             if isinstance(a, str)] if config and config.text_key else [])
        match = find_model(model_name, entries, archs)
    if shared is not None:
        shared.begin_analysis(diags)
        index = shared
    else:
        index = Index(SourceTree(source.root), diags, cache)
    index.prefetch = prefetch
    try:
        index.parse_whole.add(match.chosen.module)
        mod = index.module(match.chosen.module)
        if mod is not None and mod.parsed_lazily:  # for another model (--all): the model's file must parse
            mod.check_parses()
        if mod is None or mod.error and (mod.broken or mod.tree is not None and not mod.tree.body):
            why = mod.error if mod is not None else "file not found"
            raise ModelSourceError(f"{match.chosen.file} cannot be analysed: {why}")
        progress(f"analysing {match.chosen.class_name} in {match.chosen.file} ({source.describe()})")
        results: list[LayoutResult] = []
        layouts = [(tp, ep) for tp in tps for ep in eps]
        for tp, ep in layouts:
            progress(f"evaluating {match.chosen.class_name} for tp={tp} ep={ep} ...")
            results.append(_one_layout(index, catalog, config, match, Layout(tp=tp, ep=ep, page_size=page_sizes[0],
                                                                              attention_backend=attention_backend),
                                       page_sizes, diags))
        analysis = Analysis(model_name=model_name, source=source, config=config, match=match, entries=entries,
                            index=index, catalog=catalog, layouts=results, page_sizes=page_sizes,
                            attention_backend=attention_backend, diagnostics=diags)
        _link_kernels(analysis)
    finally:  # however the analysis ends: a later analysis of this index must not ask this helper
        index.prefetch = None
    analysis.seconds = time.perf_counter() - t0
    return analysis


def _one_layout(index: Index, catalog: Catalog, config: ModelConfig | None, match: Match, layout: Layout,
                page_sizes: list[int], diags: Diagnostics) -> LayoutResult:
    t0 = time.perf_counter()
    runtime = Runtime(catalog, layout)
    interp = Interpreter(index, runtime, diags)
    raw = config.raw if config else None
    cfg = build_config_object(interp, runtime, raw, config.model_type if config else None, config_classes(index))
    quant = _quant_config(interp, catalog, config, diags)
    cls = ClassSym(match.chosen.module, match.chosen.class_name)
    root: Obj | None = None
    try:
        made = interp.instantiate(cls, [], _entry_kwargs(index, cls, cfg, quant), None, None)
        root = made if isinstance(made, Obj) else None
        if root is not None and root.pending is not None:  # the entry class is always built
            root.is_module = True
            interp.force(root)
    except BudgetExhausted:
        diags.add("budget-exhausted", match.chosen.file, what=match.chosen.class_name)
    except RecursionError:
        diags.add("recursion-limit", match.chosen.file, what=match.chosen.class_name)
    interp.new_phase()  # naming and forward reading get their own budget
    forward = ForwardReader(index, interp, catalog)
    if root is None:
        return LayoutResult(layout, None, None, [], forward, None, interp.steps, time.perf_counter() - t0)
    if root.ctor_raised:
        diags.add("constructor-raised", match.chosen.file, what=match.chosen.class_name, why=root.ctor_raised)
    for f in sorted(runtime.missing_config_fields):
        diags.add("config", "", what=f"config has no field '{f}': values computed from it stay symbolic")
    builder = TreeBuilder(index, catalog.layers.non_text_markers, lambda o: _role(catalog, index, o))
    tree = builder.build(root)
    arch = (config.architectures[0] if config and config.architectures else match.chosen.class_name)
    mla = mla_architectures(index)
    uses: list[DefinitionUse] = []
    namer = None
    not_invoked: list[tuple[Node, str]] = []
    text_raw = config.text if config else None
    text_cfg = cfg.attrs.get(config.text_key, cfg) if config and config.text_key else cfg
    for ps in page_sizes:
        lay = Layout(tp=layout.tp, ep=layout.ep, page_size=ps, attention_backend=layout.attention_backend)
        runtime.layout = lay
        namer = Namer(index, interp, catalog, lay, text_cfg, text_raw, quant, arch, mla, forward, diags)
        for u in namer.name_tree(tree):
            if ps != page_sizes[0] and "page_size" not in u.rule.varies_with and u.op_type not in ("gqa_paged",):
                if not any("page_size" in str(a.expr) for a in u.axes.values()) and "ps" not in u.axes:
                    continue  # page size does not change this name
            uses.append(u)
        if ps == page_sizes[0]:
            not_invoked = list(namer.not_invoked)
    runtime.layout = layout
    for node, _why in not_invoked:
        node.helper = True
    return LayoutResult(layout, root, tree, uses, forward, namer, interp.steps, time.perf_counter() - t0,
                        not_invoked)


def _entry_kwargs(index: Index, cls: ClassSym, cfg: Any, quant: Any) -> dict[str, Any]:
    found = index.find_in_class(cls, "__init__")
    params: list[str] = []
    if found is not None and isinstance(found[1], (ast.FunctionDef, ast.AsyncFunctionDef)):
        a = found[1].args
        params = [p.arg for p in list(a.posonlyargs) + list(a.args) + list(a.kwonlyargs)]
    kwargs: dict[str, Any] = {}
    if "config" in params or not params:
        kwargs["config"] = cfg
    if "quant_config" in params:
        kwargs["quant_config"] = quant
    if "prefix" in params:
        kwargs["prefix"] = ""
    return kwargs


def _quant_config(interp: Interpreter, catalog: Catalog, config: ModelConfig | None, diags: Diagnostics) -> Any:
    if config is None or not config.quant.method:
        return None
    spec = catalog.runtime.quantization
    env = {"method": config.quant.method, "qcfg": dict(config.quant.raw)}
    for text in (spec.build, spec.fallback_build):
        if not text:
            continue
        v = evaluate_expression(interp, text, env, spec.module)
        if isinstance(v, Obj):
            return v
    diags.add("quantization", "", what=f"SGLang's quantization config for '{config.quant.method}' could not be "
                                       f"built; every linear layer is treated as quantized")
    return Sym(f"quant_config[{config.quant.method}]")


def _role(catalog: Catalog, index: Index, obj: Obj) -> str:
    rule = catalog.layer_rule_for(index, obj.cls)
    return rule.role if rule else ""


# ---------------------------------------------------------------------------- kernels


def _link_kernels(a: Analysis) -> None:
    """Attach to each definition the kernel call sites that implement it."""
    for lr in a.layouts:
        backend_cache: dict[tuple[str, str], list[Call]] = {}
        for u in lr.uses:
            calls = _kernel_calls_for(a, lr, u, backend_cache)
            u.kernels = calls


def _kernel_calls_for(a: Analysis, lr: LayoutResult, u: DefinitionUse,
                      cache: dict[tuple[str, str], list[Call]]) -> list[Call]:
    rule: DefinitionRule = u.rule
    calls: list[Call] = []
    if u.backend:
        spec = a.catalog.backends.backends.get(u.backend)
        methods = spec.paths.get(rule.stage, []) if spec else []
        calls = _class_calls(a, lr, [u.backend], methods, cache)
    elif rule.kernel_source is not None:
        calls = _class_calls(a, lr, rule.kernel_source.classes, rule.kernel_source.methods, cache)
    elif isinstance(u.node.obj, Obj):
        path = lr.forward.forward_of(u.node.obj)
        calls = list(path.calls) if path else []
    kernels = [c for c in calls if c.kind == "kernel"]
    if not rule.kernels:
        return kernels[:1]
    ranked = []
    for c in kernels:
        rank = kernel_rank(c.target, rule.kernels)
        if rank is not None:
            ranked.append((rank, len(c.condition), c))
    ranked.sort(key=lambda t: (t[0], t[1]))
    out: list[Call] = []
    for _, _, c in ranked:
        if not any(o.target == c.target and o.site.start == c.site.start and o.site.rel == c.site.rel for o in out):
            out.append(c)
    return out


def _class_calls(a: Analysis, lr: LayoutResult, classes: list[str], methods: list[str],
                 cache: dict[tuple[str, str], list[Call]]) -> list[Call]:
    out: list[Call] = []
    for name in classes:
        cls = find_class(a.index, name)
        if cls is None:
            continue
        for m in methods:
            key = (cls.dotted, m)
            if key not in cache:  # backend and sampler paths do not depend on the model: shared
                cache[key] = a.index.shared(("class-calls", cls.dotted, m),
                                            lambda cls=cls, m=m: _reader_calls(lr.forward, cls, m))
            out.extend(cache[key])
        if out:
            break
    return out


def _reader_calls(reader: ForwardReader, cls: ClassSym, method: str) -> list[Call]:
    path: ForwardPath | None = reader.method_calls(Obj(cls=cls), method)
    return list(path.calls) if path else []


def model_independent_readings(index: Index, catalog: Catalog, layout: Layout, raw_config: dict | None
                               ) -> tuple[list[tuple[str, list[str]]], int, Callable[[ClassSym, str], list[Call]]]:
    """What ``_class_calls`` may read for any model, and how (for a helper reading it meanwhile:
    see prefetch).  The plan lists (class name, methods): the attention backend the config most
    likely selects (by the catalog's rules), then the other kernel sources, then the backends of
    the other attention architectures, which only some models read: the plan's entries before
    that (the count returned) are what most models read."""
    interp = Interpreter(index, Runtime(catalog, layout), index.diagnostics)
    raw = raw_config or {}
    archs = raw.get("architectures")
    env: dict[str, Any] = {**layout.env(), "backend": layout.attention_backend,
                           "architecture": archs[0] if isinstance(archs, list) and archs else "",
                           "mla_architectures": mla_architectures(index),
                           "config_has": HostFunction("config_has", lambda name: name in raw)}
    order = [r.arch for r in catalog.backends.architectures]
    likely = next((r.arch for r in catalog.backends.architectures
                   if truth(evaluate_expression(interp, r.when, env, "")) is True), None)
    if likely in order:
        order.remove(likely)
        order.insert(0, likely)
    backends: list[str] = []
    for arch in order:
        for choice in catalog.backends.selection:
            if truth(evaluate_expression(interp, choice.when, {**env, "arch": arch}, "")) is True:
                if choice.backend_class in catalog.backends.backends and choice.backend_class not in backends:
                    backends.append(choice.backend_class)
                break
    plan: list[tuple[str, list[str]]] = []
    for name in backends:
        methods = [m for ms in catalog.backends.backends[name].paths.values() for m in ms]
        plan.append((name, list(dict.fromkeys(methods))))
    sources: dict[str, list[str]] = {}
    for rule in catalog.layers.layers:
        for d in rule.definitions:
            if d.kernel_source is not None:
                for name in d.kernel_source.classes:
                    got = sources.setdefault(name, [])
                    got.extend(m for m in d.kernel_source.methods if m not in got)
    plan[1:1] = [(name, ms) for name, ms in sources.items() if name not in backends]
    likely_count = len(plan) - max(len(backends) - 1, 0)
    reader = ForwardReader(index, interp, catalog)
    interp.new_phase()
    return plan, likely_count, lambda cls, method: _reader_calls(reader, cls, method)


def find_class(index: Index, name: str) -> ClassSym | None:
    """A class by simple name: the first file under layers/ (in path order) that defines it."""
    return index.shared(("find-class", name), lambda: _find_class(index, name))


def _find_class(index: Index, name: str) -> ClassSym | None:
    layers = index.shared(("layer-files",), lambda: _LayerFiles(index.tree.srt / "layers"))
    for path in layers.holding((f"class {name}(".encode(), f"class {name}:".encode())):
        mod = index.module_of_path(path)
        if mod is not None and name in mod.defs and isinstance(mod.defs[name], ast.ClassDef):
            return ClassSym(mod.name, name)
    return None


class _LayerFiles:
    """The files under a folder in path order, each read once, when a search first needs it
    (several backend classes are looked for by name in each analysis)."""

    def __init__(self, folder: Path) -> None:
        self._paths = iter_python_files(folder) if folder.is_dir() else iter(())
        self._read: list[tuple[Path, bytes]] = []

    def holding(self, needles: tuple[bytes, ...]) -> Iterator[Path]:
        """The files whose text contains one of ``needles``, in path order."""
        i = 0
        while True:
            if i == len(self._read):
                path = next(self._paths, None)
                if path is None:
                    return
                try:
                    data = path.read_bytes()
                except OSError:
                    data = b""
                self._read.append((path, data))
            path, data = self._read[i]
            i += 1
            if any(n in data for n in needles):
                yield path


def model_file_for_github(rel: str) -> str:
    return f"python/sglang/srt/{rel}"


def read_snippet(index: Index, rel: str, start: int, end: int) -> str:
    mod = index.parsed_module_rel(rel)
    if mod is not None:  # kernel sites come from parsed files: their lines are kept
        return mod.snippet(start, max(end, start))
    path = index.tree.srt / rel
    if not path.exists():
        path = index.tree.root / rel
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[max(start - 1, 0):max(end, start)])


def existing(p: Path) -> bool:
    try:
        return p.exists()
    except OSError:
        return False
