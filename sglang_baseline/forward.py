"""The forward pass: ordered calls to child modules and to kernels.

For each module class the CUDA path of its ``forward`` (``forward_cuda`` where the
class dispatches by platform) is read statement by statement.  Calls are
classified as

- calls to child modules (``self.qkv_proj(x)``; with the number of arguments,
  so a norm called with a residual can be told from one called without),
- calls to the module's own helper methods (read inline),
- children handed to another call (``final_norm(h, batch, self.norm)``), which
  then run inside it (one level is looked through to see how),
- kernels (FlashInfer, sgl_kernel, torch, triton, ...), also inside helper
  functions of the tree the forward calls (followed a few levels deep).

``if`` tests that only depend on the platform and the constructed module
(``if _is_npu:``) are decided; others keep both sides, with the test recorded.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from . import lazyparse
from .catalog import Catalog
from .diagnostics import Diagnostics
from .evaluate import BudgetExhausted, Frame, Interpreter, _Break, _Continue, _Raise, _Return, truth
from .index import (
    ClassSym,
    ExternalSym,
    FuncSym,
    Index,
    ModuleSym,
    ParsedModule,
    ValueSym,
    node_text,
    register_node_cache,
)
from .values import Alt, EnumMember, Obj, Site, Sym

MAX_FOLLOW = 2  # levels of helper functions followed to find kernels
MAX_INLINE = 4  # levels of self.method() inlined
DECIDE_BUDGET = 3000  # evaluation steps allowed to decide one if-test


@dataclass
class Call:
    kind: str  # child | kernel | delegate
    target: str  # child attribute name, or the kernel's dotted name
    site: Site
    nargs: int = 0
    keywords: tuple[str, ...] = ()
    condition: str = ""
    via: str = ""  # helper chain the call was found through
    kernel_kind: str = ""
    receiver: str = ""  # for wrapper calls: the receiver expression text
    args_text: list[str] = field(default_factory=list)
    origin: str = ""  # dotted function whose body holds the call

    @property
    def with_residual(self) -> bool:
        return self.nargs >= 2 or "residual" in self.keywords


@dataclass
class ForwardPath:
    method: str  # the method read (forward / forward_cuda / ...)
    owner: str  # dotted class that defines it
    site: Site | None
    calls: list[Call]
    alternatives: list[str] = field(default_factory=list)  # other platform paths


class ForwardReader:
    def __init__(self, index: Index, interp: Interpreter, catalog: Catalog) -> None:
        self.index = index
        self.interp = interp
        self.catalog = catalog
        self._cache: dict[tuple, ForwardPath] = {}
        self._func_cache: dict[tuple, tuple[list[Call], dict[str, str], list[tuple]]] = {}
        self._degraded = False  # an if-test could not be decided within its budget or the time limit
        self._inlined: dict[tuple[int, int, int], tuple[Obj, ast.AST, dict[str, str], list[Call]]] = {}  # _inline
        self.quiet = Diagnostics()
        self._children: dict[int, tuple[Obj, set[str]]] = {}
        self._keys: dict[int, tuple[Any, Any]] = {}  # id(obj) -> (obj, its state key): objects shared by many leaves

    # ------------------------------------------------------------------ entry points

    def forward_of(self, obj: Obj) -> ForwardPath | None:
        cls = obj.cls
        if not isinstance(cls, ClassSym):
            return None
        key = (cls, id(obj))
        if key in self._cache:
            return self._cache[key]
        # A catalog leaf (shallow: its constructor is not run) holds only its constructor's
        # arguments, so its reading is a function of their values: readings are shared, within
        # an analysis and across the analyses of a process, by the values' state_key (a --all
        # run reads ~5,400 leaves, two thirds of them in a state read before).
        state = self._state_key(obj) if obj.shallow else None
        if state is None:
            path = self._read_forward(obj, cls)
        else:
            path = self._shared(_SHARED_READINGS, (cls, state), lambda: self._read_forward(obj, cls))[0]
        self._cache[key] = path
        return path

    def _shared(self, cache: dict[tuple, tuple], what: tuple,
                read: Callable[[], Any]) -> tuple[Any, dict[str, str], list[tuple]]:
        """``read()`` shared by the analyses of the process under ``what`` (with this index,
        catalog and layout), and the files it used and warnings it gave, which a reuse gives
        again. A reading whose if-tests ran out of budget or time is this analysis's only."""
        layout_key = getattr(self.interp.runtime, "layout_key", None)
        key = (self.index.serial, id(self.catalog), layout_key(), *what) if layout_key else None
        hit = cache.get(key) if key else None
        if hit is not None and hit[3] is self.catalog:
            found, files, warned, _ = hit
            self.index.replay(files, warned)
            return found, files, warned
        degraded, self._degraded = self._degraded, False
        found, files, warned = self.index.with_events(read)
        if key and not self._degraded and len(cache) < 50_000:
            cache[key] = (found, files, warned, self.catalog)
        self._degraded = self._degraded or degraded
        return found, files, warned

    def _read_forward(self, obj: Obj, cls: ClassSym) -> ForwardPath | None:
        method, owner, node, alternatives = self._pick_forward(cls)
        if node is None:
            return None
        mod = self.index.module(owner.module)
        calls = self._read_method(obj, mod, owner, node, 0, "") if mod else []
        return ForwardPath(method=method, owner=owner.dotted,
                           site=Site(mod.rel, node.lineno, node.end_lineno or node.lineno) if mod else None,
                           calls=calls, alternatives=alternatives)

    def _state_key(self, obj: Obj) -> tuple | None:
        """The values an object's reading can depend on, as a hashable key; None when one of
        them is known only by identity (an id could be reused by another analysis)."""
        try:
            return _value_key(obj, 4, self._keys)
        except _Unshareable:
            return None

    def method_calls(self, obj: Obj, method: str) -> ForwardPath | None:
        """The calls of one named method (an attention backend's ``forward_decode``)."""
        cls = obj.cls
        if not isinstance(cls, ClassSym):
            return None
        found = self.index.find_in_class(cls, method)
        if found is None or not isinstance(found[1], (ast.FunctionDef, ast.AsyncFunctionDef)):
            return None
        owner, node = found
        mod = self.index.module(owner.module)
        if mod is None:
            return None
        calls = self._read_method(obj, mod, owner, node, 0, "")
        return ForwardPath(method=method, owner=owner.dotted,
                           site=Site(mod.rel, node.lineno, node.end_lineno or node.lineno), calls=calls)

    def _pick_forward(self, cls: ClassSym) -> tuple[str, ClassSym, Any, list[str]]:
        dispatch = self.catalog.kernels.dispatch_methods
        present = [m for m in dispatch if self.index.find_in_class(cls, m) is not None]
        fwd = self.index.find_in_class(cls, "forward")
        if "forward_cuda" in present:
            owner, node = self.index.find_in_class(cls, "forward_cuda")  # type: ignore[misc]
            # a class overriding forward itself (after the dispatching base) wins
            if fwd is not None and fwd[0] != owner and cls_depth(self.index, cls, fwd[0]) < cls_depth(self.index, cls, owner):
                return "forward", fwd[0], fwd[1], [m for m in present]
            return "forward_cuda", owner, node, [m for m in present if m != "forward_cuda"]
        if fwd is not None and isinstance(fwd[1], (ast.FunctionDef, ast.AsyncFunctionDef)):
            return "forward", fwd[0], fwd[1], present
        return "", cls, None, present

    # ------------------------------------------------------------------ reading

    def _frame(self, obj: Obj, mod: ParsedModule, owner: ClassSym, node: ast.FunctionDef) -> Frame:
        params = [a.arg for a in list(node.args.posonlyargs) + list(node.args.args) + list(node.args.kwonlyargs)]
        local: dict[str, Any] = {p: Sym(p) for p in params}
        if params:
            local[params[0]] = obj
        if node.args.vararg:
            local[node.args.vararg.arg] = Sym(node.args.vararg.arg)
        if node.args.kwarg:
            local[node.args.kwarg.arg] = Sym(node.args.kwarg.arg)
        return Frame(module=mod, locals=local, self_obj=obj, cls=owner, name=f"{owner.dotted}.{node.name}")

    def _read_method(self, obj: Obj, mod: ParsedModule, owner: ClassSym, node: ast.FunctionDef,
                     depth: int, via: str) -> list[Call]:
        frame = self._frame(obj, mod, owner, node)
        out: list[Call] = []
        self._block(node.body, obj, frame, out, depth, via, ())
        return out

    def _decide(self, test: ast.expr, frame: Frame) -> bool | None:
        """Decide an ``if`` test cheaply (a small step budget), or say it cannot be decided.

        Only tests over names, attributes and constants (and calls of runtime-model
        functions such as ``is_cuda()``) are evaluated: those decide platform paths.
        """
        if not self._simple_test(test):
            return None
        saved = self.interp.diag
        self.interp.diag = self.quiet
        steps, budget = self.interp.steps, self.interp.budget
        self.interp.budget = steps + DECIDE_BUDGET
        try:
            v = self.interp.eval(test, frame)
            return truth(v)
        except BudgetExhausted:
            self._degraded = True
            return None
        except (_Raise, _Return, _Break, _Continue, RecursionError):
            return None
        except Exception:  # an unmodelled construct in a test: keep both sides
            return None
        finally:
            self.interp.diag = saved
            self.interp.steps, self.interp.budget = steps, budget

    def _simple_test(self, test: ast.expr) -> bool:
        got = _SIMPLE.get(id(test))
        if got is None or got[0] is not test:
            got = (test, self._is_simple_test(test))
            _SIMPLE[id(test)] = got
        return got[1]

    def _is_simple_test(self, test: ast.expr) -> bool:
        functions = self.catalog.runtime.functions
        for n in _walk(test):
            if isinstance(n, ast.Call):
                f = n.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name not in functions and name not in ("isinstance", "hasattr", "getattr"):
                    return False
            elif isinstance(n, (ast.Lambda, ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.SetComp)):
                return False
            elif isinstance(n, ast.Attribute):
                root = n.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id[:1].isupper():
                    return False  # Enum.MEMBER / Class.attr: runtime state, and costly to resolve
        return True

    def _block(self, body: list[ast.stmt], obj: Obj, frame: Frame, out: list[Call], depth: int, via: str,
               conds: tuple[Cond, ...]) -> None:
        if not body:
            return
        for st in body:
            if isinstance(st, ast.If):
                t = self._decide(st.test, frame)
                self._calls_in(st.test, obj, frame, out, depth, via, conds)
                # an undecided test's text is made only if a call under it is recorded (_cond_text)
                if t is not False:
                    self._block(st.body, obj, frame, out, depth, via, conds + ((st.test,) if t is None else ()))
                if t is not True:
                    self._block(st.orelse, obj, frame, out, depth, via, conds + ((_Not(st.test),) if t is None else ()))
            elif isinstance(st, (ast.For, ast.AsyncFor, ast.While)):
                head = st.iter if isinstance(st, (ast.For, ast.AsyncFor)) else st.test
                self._calls_in(head, obj, frame, out, depth, via, conds)
                self._block(st.body, obj, frame, out, depth, via, conds)
                self._block(st.orelse, obj, frame, out, depth, via, conds)
            elif isinstance(st, (ast.With, ast.AsyncWith)):
                for item in st.items:
                    self._calls_in(item.context_expr, obj, frame, out, depth, via, conds)
                self._block(st.body, obj, frame, out, depth, via, conds)
            elif isinstance(st, ast.Try):
                self._block(st.body, obj, frame, out, depth, via, conds)
                self._block(st.orelse, obj, frame, out, depth, via, conds)
                self._block(st.finalbody, obj, frame, out, depth, via, conds)
            elif isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            else:
                self._calls_in(st, obj, frame, out, depth, via, conds)
                if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
                    # remember simple local aliases of attributes (w = self.decode_wrapper)
                    if isinstance(st.value, (ast.Attribute, ast.Subscript, ast.Name)):
                        frame.notes.setdefault("aliases", {})[st.targets[0].id] = node_text(st.value)

    def _inline(self, obj: Obj, mod: ParsedModule, owner: ClassSym, node: ast.FunctionDef, depth: int,
                via: str) -> list[Call]:
        """The calls of ``self.method(...)`` read in place, under no condition and through ``via``
        alone (the caller adds its own).  A method called from several places (within a reading,
        LogitsProcessor._get_logits: four) is read once per object: what it records depends only
        on the object, the method and the depth (its frame is fresh, its arguments unknown).
        Kept within one recording of files and warnings, which the first reading gave to it."""
        key = (id(obj), id(node), depth)
        got = self._inlined.get(key)
        if got is not None and got[0] is obj and got[1] is node and got[2] is self.index.files_read:
            return got[3]
        calls: list[Call] = []
        self._block(node.body, obj, self._frame(obj, mod, owner, node), calls, depth, via, ())
        self._inlined[key] = (obj, node, self.index.files_read, calls)
        return calls

    def _calls_in(self, node: ast.AST, obj: Obj, frame: Frame, out: list[Call], depth: int, via: str,
                  conds: tuple[Cond, ...]) -> None:
        calls, data = self._nodes_of(node)
        for c in calls:
            self._call(c, obj, frame, out, depth, via, conds)
        # a child's tensors read without calling it (``self.conv1d.weight``)
        children = None
        for n in data:
            if True:
                chain = _self_chain(n)
                if len(chain) == 2:
                    children = self._children_of(obj) if children is None else children
                    if chain[0] in children:
                        site = Site(frame.module.rel, n.lineno, n.end_lineno or n.lineno)
                        out.append(Call("data", chain[0], site, 0, (), _cond_text(conds), via, origin=frame.name))

    def _nodes_of(self, node: ast.AST) -> tuple[list[ast.Call], list[ast.Attribute]]:
        """Calls (in source order) and tensor-attribute reads in a statement, cached per node."""
        got = _NODES.get(id(node))
        if got is not None and got[0] is node:
            return got[1], got[2]
        calls: list[ast.Call] = []
        attrs: list[ast.Attribute] = []
        for n in _walk(node):
            t = type(n)
            if t is ast.Call:
                calls.append(n)
            elif t is ast.Attribute and n.attr in _DATA_ATTRS:
                attrs.append(n)
        calls.sort(key=lambda c: (c.end_lineno or c.lineno, c.end_col_offset or 0))
        funcs = {id(c.func) for c in calls}
        data = [a for a in attrs if id(a) not in funcs]
        _NODES[id(node)] = (node, calls, data)
        return calls, data

    def _call(self, c: ast.Call, obj: Obj, frame: Frame, out: list[Call], depth: int, via: str,
              conds: tuple[Cond, ...]) -> None:
        mod = frame.module
        site = Site(mod.rel, c.lineno, c.end_lineno or c.lineno)
        cond = _cond_text(conds) if conds else ""
        f = c.func
        children = self._children_of(obj)
        # self.child(...) / self.child.method(...)
        attr_chain = _self_chain(f) if type(f) is ast.Attribute or type(f) is ast.Subscript else None
        if attr_chain:
            head = attr_chain[0]
            if head in children and (len(attr_chain) == 1 or (len(attr_chain) == 2 and attr_chain[1] not in _DATA_ATTRS)):
                out.append(Call("child", head, site, len(c.args), _keywords(c), cond, via, origin=frame.name))
                return
            if len(attr_chain) == 1:
                found = self.index.find_in_class(obj.cls, head) if isinstance(obj.cls, ClassSym) else None
                if found is not None and isinstance(found[1], (ast.FunctionDef, ast.AsyncFunctionDef)) \
                        and depth < MAX_INLINE:
                    owner, fnode = found
                    fmod = self.index.module(owner.module)
                    if fmod is not None:
                        for k in self._inline(obj, fmod, owner, fnode, depth + 1, f"self.{head}"):
                            out.append(replace(k, condition=_and(cond, k.condition), via=_join(via, k.via)))
                    return
        # an object built from children (self.attn_boundary from append_stages((.., self.norm)))
        if attr_chain and len(attr_chain) == 2 and attr_chain[0] not in children:
            delegated = self.delegates(obj).get(attr_chain[0], [])
            seen = frame.notes.setdefault("delegated", set())
            for child in delegated:
                if child in seen:
                    continue
                seen.add(child)
                out.append(Call("delegate", child, site, -1, (), cond, _join(via, f"self.{'.'.join(attr_chain)}"),
                                origin=frame.name))
        # children handed to another call run inside it
        passed: list[tuple[Any, str]] = []
        if children:
            for pos, a in [*enumerate(c.args), *((k.arg or "", k.value) for k in c.keywords)]:
                ch = _self_chain(a) if type(a) is ast.Attribute or type(a) is ast.Subscript else None
                if ch and len(ch) == 1 and ch[0] in children:
                    passed.append((pos, ch[0]))
        dotted, sym = self._resolve_callee(f, frame)
        if passed and not dotted.startswith("builtins."):
            forms = self._look_through(sym, passed)
            for _pos, child in passed:
                nargs = forms.get(child, -1)
                out.append(Call("delegate", child, site, nargs, (), cond, _join(via, dotted or node_text(f)),
                                origin=frame.name))
        kind = self.kernel_kind(dotted) if dotted else ""
        if kind:
            out.append(Call("kernel", dotted, site, len(c.args), _keywords(c), cond, via, kernel_kind=kind,
                            args_text=[_short(a) for a in c.args][:8], origin=frame.name))
            return
        wrapper = self._wrapper_call(f, frame)
        if wrapper:
            out.append(Call("kernel", wrapper, site, len(c.args), _keywords(c), cond, via, kernel_kind="flashinfer",
                            receiver=node_text(f.value) if isinstance(f, ast.Attribute) else "",
                            args_text=[_short(a) for a in c.args][:8], origin=frame.name))
            return
        if isinstance(sym, FuncSym) and depth < MAX_FOLLOW and sym.module.startswith(tuple(self.catalog.kernels.follow)):
            for k in self._function_kernels(sym, depth + 1):
                out.append(Call(k.kind, k.target, k.site, k.nargs, k.keywords,
                                " and ".join(x for x in (cond, k.condition) if x),
                                _join(via, _join(dotted, k.via)), k.kernel_kind, k.receiver, k.args_text, k.origin))

    def delegates(self, obj: Obj) -> dict[str, list[str]]:
        """attr -> child modules passed into the call that built it (any method of the class)."""
        cls = obj.cls
        if not isinstance(cls, ClassSym):
            return {}
        key = ("delegates", cls)
        if key in self._cache:
            return self._cache[key]  # type: ignore[return-value]
        children = _module_children(obj)
        out: dict[str, list[str]] = {}
        for c in self.index.mro(cls):
            node = self.index.class_node(c) if isinstance(c, ClassSym) else None
            if node is None:
                continue
            for names, self_attrs in _built_attributes(node, children):
                if any(n in children for n in names):
                    continue
                per_arg = [[x for x in attrs if x in children] for attrs in self_attrs]
                if len(names) > 1 and len(names) == len(per_arg):
                    for n, refs in zip(names, per_arg):
                        if refs:
                            out.setdefault(n, []).extend(r for r in refs if r not in out.get(n, []))
                else:
                    refs = [r for group in per_arg for r in group]
                    for n in names:
                        if refs:
                            out.setdefault(n, []).extend(r for r in refs if r not in out.get(n, []))
        self._cache[key] = out  # type: ignore[assignment]
        return out

    # ------------------------------------------------------------------ resolution

    def _resolve_callee(self, f: ast.expr, frame: Frame) -> tuple[str, Any]:
        """The dotted name a call resolves to statically, and its symbol."""
        chain: list[str] = []
        cur = f
        while isinstance(cur, ast.Attribute):
            chain.append(cur.attr)
            cur = cur.value
        if isinstance(cur, ast.Call) and chain:
            # torch.ops.x.y.default(...) style or factory()(...)
            return "", None
        if not isinstance(cur, ast.Name):
            return "", None
        chain.reverse()
        name = cur.id
        if name in frame.locals:
            v = frame.locals[name]
            if isinstance(v, Obj) and chain:
                return self._method_of(v, chain)
            if isinstance(v, (FuncSym, ClassSym, ExternalSym, ModuleSym)):
                sym = v
            else:
                return "", None
        else:
            sym = self.index.resolve(frame.module.name, name)
        if sym is None:
            return "", None
        for part in chain:
            if isinstance(sym, ValueSym):
                val = self.interp.module_value(sym.module, sym.name)
                if isinstance(val, Obj):
                    return self._method_of(val, chain[chain.index(part):])
                if isinstance(val, (FuncSym, ClassSym, ExternalSym, ModuleSym)):
                    sym = val
                else:
                    return f"{sym.dotted}.{'.'.join(chain[chain.index(part):])}", None
            if isinstance(sym, ClassSym):
                if not sym.module.startswith(tuple(self.catalog.kernels.follow)):
                    return f"{sym.dotted}.{'.'.join(chain[chain.index(part):])}", None
                found = self.index.find_in_class(sym, part)
                if found is None:
                    return f"{sym.dotted}.{part}", None
                owner, node = found
                sym = FuncSym(owner.module, f"{owner.qualname}.{part}") if isinstance(
                    node, (ast.FunctionDef, ast.AsyncFunctionDef)) else ClassSym(owner.module, f"{owner.qualname}.{part}")
                continue
            nxt = self.index.attribute(sym, part) if isinstance(sym, (ModuleSym, ExternalSym)) else None
            if nxt is None:
                return "", None
            sym = nxt
        if isinstance(sym, ValueSym):
            val = self.interp.module_value(sym.module, sym.name)
            if isinstance(val, (FuncSym, ClassSym, ExternalSym)):
                sym = val
        return _dotted(sym), sym

    def _method_of(self, obj: Obj, chain: list[str]) -> tuple[str, Any]:
        # walk attributes that hold objects: self.quant_method.apply -> UnquantizedLinearMethod.apply
        while len(chain) > 1:
            nxt = obj.attrs.get(chain[0])
            if not isinstance(nxt, Obj):
                return "", None
            obj, chain = nxt, chain[1:]
        if not chain or not isinstance(obj.cls, ClassSym):
            return "", None
        found = self.index.find_in_class(obj.cls, chain[0])
        if found is None:
            return "", None
        owner, node = found
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return f"{owner.dotted}.{chain[0]}", FuncSym(owner.module, f"{owner.qualname}.{chain[0]}")
        return "", None

    def _children_of(self, obj: Obj) -> set[str]:
        got = self._children.get(id(obj))
        if got is None or got[0] is not obj:
            got = (obj, _module_children(obj))
            self._children[id(obj)] = got
        return got[1]

    def kernel_kind(self, dotted: str) -> str:
        # shared by every reader of the process: the catalog is loaded once (--all reads ~45,000 names)
        owner, kinds = _KINDS.get(id(self.catalog.kernels), (None, {}))
        if owner is not self.catalog.kernels:
            kinds = {}
            _KINDS[id(self.catalog.kernels)] = (self.catalog.kernels, kinds)
        got = kinds.get(dotted)
        if got is None:
            got = kinds[dotted] = self._kernel_kind(dotted)
        return got

    def _kernel_kind(self, dotted: str) -> str:
        cat = self.catalog.kernels
        for pat in cat.ignore:
            if glob_match(dotted, pat):
                return ""
        for rule in cat.kernels:
            if glob_match(dotted, rule.pattern):
                return rule.kind
        return ""

    def _wrapper_call(self, f: ast.expr, frame: Frame) -> str:
        """``<...wrapper...>.forward(...)``: a FlashInfer wrapper run, named by its class."""
        if not isinstance(f, ast.Attribute) or f.attr not in self.catalog.kernels.wrapper_methods:
            return ""
        text = node_text(f.value)
        if isinstance(f.value, ast.Name):
            text = frame.notes.get("aliases", {}).get(text, text)
        low = text.lower()
        if "wrapper" not in low:
            return ""
        wrappers = self.catalog.kernels.flashinfer_wrappers
        known = self._wrapper_types(frame.module)
        for ident in reversed(re.findall(r"[A-Za-z_]\w*", text)):
            if ident in known:
                return f"{known[ident]}.{f.attr}"
        for cls_name, tokens in _WRAPPER_TOKENS:
            if cls_name in wrappers and all(t in low for t in tokens):
                return f"{cls_name}.{f.attr}"
        return f"flashinfer.wrapper.{f.attr}"

    def _wrapper_types(self, mod: ParsedModule) -> dict[str, str]:
        """Names in a module bound to FlashInfer wrapper objects: attribute or variable -> wrapper class."""
        key = ("wrappers", mod.name)
        if key in self._cache:
            return self._cache[key]  # type: ignore[return-value]
        wrappers = self.catalog.kernels.flashinfer_wrappers
        out: dict[str, str] = {}

        def cls_of(v: ast.AST | None) -> str:
            if isinstance(v, ast.Call):
                name = v.func.attr if isinstance(v.func, ast.Attribute) else getattr(v.func, "id", "")
                return name if name in wrappers else ""
            if isinstance(v, (ast.Name, ast.Attribute)):
                name = v.attr if isinstance(v, ast.Attribute) else v.id
                return name if name in wrappers else ""
            if isinstance(v, ast.Subscript):  # Optional[X], List[X]
                return cls_of(v.slice)
            return ""

        def last(t: ast.AST) -> str:
            while isinstance(t, ast.Subscript):
                t = t.value
            return t.attr if isinstance(t, ast.Attribute) else getattr(t, "id", "")

        for name in wrappers:  # only the definitions that name a wrapper class need parsing
            mod.materialize_containing(name)
        for n in lazyparse.walk_lines(ast.Module(body=mod.top_level, type_ignores=[]),
                                     lazyparse.lines_naming(mod.text, wrappers)):
            if isinstance(n, ast.Assign):
                c = cls_of(n.value)
                if c:
                    for t in n.targets:
                        if last(t):
                            out.setdefault(last(t), c)
            elif isinstance(n, ast.AnnAssign):
                c = cls_of(n.value) or cls_of(n.annotation)
                if c and last(n.target):
                    out.setdefault(last(n.target), c)
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "append" and n.args:
                c = cls_of(n.args[0])
                if c and last(n.func.value):
                    out.setdefault(last(n.func.value), c)
        self._cache[key] = out  # type: ignore[assignment]
        return out

    def _function_kernels(self, fsym: FuncSym, depth: int) -> list[Call]:
        key = (fsym, depth)
        if key in self._func_cache:
            kernels, files, warned = self._func_cache[key]
            if self.index.is_recording:  # for a reading being recorded around this one
                self.index.replay(files, warned)
            return kernels
        # A helper function is read with unknown arguments and no instance, so what it finds
        # depends only on the source, the catalog and the layout: --all shares it between the
        # models of a process. Depth only grows along a chain of helpers, so a reading never
        # meets itself.
        got = self._shared(_SHARED_HELPERS, (fsym, depth), lambda: self._read_function(fsym, depth))
        self._func_cache[key] = got
        return got[0]

    def _read_function(self, fsym: FuncSym, depth: int) -> list[Call]:
        node = self.index.node(fsym)
        mod = self.index.module(fsym.module)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or mod is None:
            return []
        params = [a.arg for a in list(node.args.posonlyargs) + list(node.args.args) + list(node.args.kwonlyargs)]
        frame = Frame(module=mod, locals={p: Sym(p) for p in params}, name=fsym.dotted)
        dummy = Obj(cls=ExternalSym("builtins.object"))
        out: list[Call] = []
        self._block(node.body, dummy, frame, out, depth, "", ())
        return [c for c in out if c.kind == "kernel"]

    def _look_through(self, sym: Any, passed: list[tuple[Any, str]]) -> dict[str, int]:
        """How a function calls the children handed to it: argument counts by child."""
        if not isinstance(sym, FuncSym):
            return {}
        node = self.index.node(sym)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return {}
        params = [a.arg for a in list(node.args.posonlyargs) + list(node.args.args)]
        kwonly = [a.arg for a in node.args.kwonlyargs]
        called = _called_names(node)
        out: dict[str, int] = {}
        for pos, child in passed:
            pname = params[pos] if isinstance(pos, int) and pos < len(params) else (
                pos if isinstance(pos, str) and pos in params + kwonly else None)
            if pname is not None and pname in called:
                out[child] = called[pname]
        return out


def _called_names(node: ast.AST) -> dict[str, int]:
    """Each name called in a function (``f(...)``), with the most arguments it is called with (a
    ``residual=`` keyword counting as one), cached per node: a layer-boundary helper is looked
    through for every module handed to it."""
    got = _CALLED.get(id(node))
    if got is not None and got[0] is node:
        return got[1]
    called: dict[str, int] = {}
    for n in ast.walk(node):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
            count = len(n.args) + sum(1 for k in n.keywords if k.arg == "residual")
            called[n.func.id] = max(called.get(n.func.id, -1), count)
    _CALLED[id(node)] = (node, called)
    return called


_DATA_ATTRS = frozenset({"weight", "bias", "weight_scale", "weight_scale_inv", "qweight"})


_WRAPPER_TOKENS = [
    ("BatchMLAPagedAttentionWrapper", ("mla",)),
    ("BatchPrefillWithRaggedKVCacheWrapper", ("ragged",)),
    ("BatchDecodeWithPagedKVCacheWrapper", ("decode",)),
    ("BatchPrefillWithPagedKVCacheWrapper", ("paged",)),
    ("BatchPrefillWithPagedKVCacheWrapper", ("prefill",)),
]


# per-node results shared by every reader in the process (nodes are kept alive by the index)
_NODES: dict[int, tuple[ast.AST, list[ast.Call], list[ast.Attribute]]] = register_node_cache({})
_SIMPLE: dict[int, tuple[ast.AST, bool]] = register_node_cache({})
_CALLED: dict[int, tuple[ast.AST, dict[str, int]]] = register_node_cache({})
# helper-function readings shared by the analyses of a process: (index serial, catalog, layout,
# function, depth) -> (kernel calls, files used, warnings given, catalog); cleared with the node caches
_SHARED_HELPERS: dict[tuple, tuple[list[Call], dict[str, str], list[tuple], Catalog]] = register_node_cache({})
_BUILT: dict[int, tuple[ast.AST, list[tuple[list[str], list[list[str]]]]]] = register_node_cache({})
# leaf readings shared by the analyses of a process: (index serial, catalog, layout, class, state
# key) -> (path, files used, warnings given, catalog); cleared with the node caches
_SHARED_READINGS: dict[tuple, tuple[ForwardPath | None, dict[str, str], list, Catalog]] = register_node_cache({})


class _Unshareable(Exception):
    pass


_PLAIN = (type(None), bool, int, float, str)
_SYMBOLS = (ClassSym, FuncSym, ExternalSym, ModuleSym, ValueSym)


def _value_key(v: Any, depth: int, memo: dict[int, tuple[Any, Any]]) -> Any:
    """A value by its content: plain values, symbolic expressions, enum members, symbols, and
    objects by class and attributes (to ``depth`` levels); anything else is unshareable."""
    t = type(v)
    if t in _PLAIN:
        return (t.__name__, v)
    if isinstance(v, _PLAIN):  # the layer index and prefix as tracked int / str
        return (int.__name__, int(v)) if isinstance(v, int) and not isinstance(v, bool) else ("str", str(v))
    if t is Sym:
        return ("Sym", v.expr, v.why)
    if t in _SYMBOLS:
        return v
    if t is EnumMember:
        return ("Enum", v.cls, v.name, _value_key(v.value, depth, memo))
    if t is list or t is tuple:
        return (t.__name__, tuple(_value_key(x, depth, memo) for x in v))
    if t is dict:
        return ("dict", tuple((_value_key(k, depth, memo), _value_key(x, depth, memo)) for k, x in v.items()))
    if t is Alt:
        return ("Alt", tuple((c, _value_key(x, depth, memo)) for c, x in v.options))
    if t is Obj:
        got = memo.get(id(v))
        if got is not None and got[0] is v:
            if got[1] is None:  # met again while keyed (a cycle), or found unshareable before
                raise _Unshareable
            return got[1]
        if depth <= 0 or v.pending is not None or not isinstance(v.cls, _SYMBOLS):
            raise _Unshareable
        memo[id(v)] = (v, None)
        key = ("Obj", v.cls, v.is_module, v.shallow, v.ctor_raised,
               tuple((k, _value_key(x, depth - 1, memo)) for k, x in v.attrs.items()))
        memo[id(v)] = (v, key)
        return key
    raise _Unshareable


def _keywords(c: ast.Call) -> tuple[str, ...]:
    return tuple(k.arg for k in c.keywords if k.arg)


def _built_attributes(node: ast.ClassDef, children: set[str]) -> list[tuple[list[str], list[list[str]]]]:
    """``self.a[, self.b] = f(arg, ...)`` in a class: the targets, and the ``self.x`` read by each argument.
    A method not parsed yet whose text names none of ``children`` is skipped (only the ``self.x`` among
    them matter to the caller), so looking does not parse every method of the class."""
    names_any = None
    found: list[tuple[list[str], list[list[str]]]] = []
    for st in node.body:
        text = lazyparse.pending_text(st)
        if text is not None:
            if names_any is None:
                names_any = _word_pattern(children)
            if names_any is None or not names_any.search(text):
                continue
        found.extend(_built_in(st))
    return found


def _word_pattern(words: set[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    key = frozenset(words)
    got = _WORDS.get(key)
    if got is None:
        got = _WORDS[key] = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in sorted(words)) + r")\b")
    return got


_WORDS: dict[frozenset[str], re.Pattern[str]] = {}


def _built_in(st: ast.stmt) -> list[tuple[list[str], list[list[str]]]]:
    got = _BUILT.get(id(st))
    if got is not None and got[0] is st:
        return got[1]
    found: list[tuple[list[str], list[list[str]]]] = []
    for inner in _statements([st]):
        if not isinstance(inner, ast.Assign) or not isinstance(inner.value, ast.Call):
            continue
        targets = inner.targets[0].elts if isinstance(inner.targets[0], ast.Tuple) else [inner.targets[0]]
        names = [t.attr for t in targets if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                 and t.value.id == "self"]
        if names:
            found.append((names, [[x.attr for x in _walk(a) if type(x) is ast.Attribute
                                   and isinstance(x.value, ast.Name) and x.value.id == "self"]
                                  for a in inner.value.args]))
    _BUILT[id(st)] = (st, found)
    return found


_NO_WALK = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


def _walk(node: ast.AST) -> list[ast.AST]:
    """``ast.walk`` (the same breadth-first order) without its per-node generator overhead."""
    out = [node]
    i = 0
    while i < len(out):
        n = out[i]
        i += 1
        for f in n._fields:
            v = getattr(n, f, None)
            if type(v) is list:
                out.extend(x for x in v if isinstance(x, ast.AST))
            elif isinstance(v, ast.AST) and not isinstance(v, _NO_WALK):
                out.append(v)
    return out


def _statements(body: list[ast.stmt]):
    """Every statement in a body, nested blocks included, without walking expressions."""
    for st in body:
        yield st
        for name in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(st, name, None)
            if isinstance(inner, list):
                yield from _statements([x for x in inner if isinstance(x, ast.stmt)] if name != "handlers"
                                       else [y for h in inner for y in h.body])


def _module_children(obj: Obj) -> set[str]:
    out = set()
    for k, v in obj.attrs.items():
        vals = v.values() if hasattr(v, "values") and not isinstance(v, dict) else [v]
        for x in vals:
            if getattr(x, "is_module", False):
                out.add(k)
    return out


def _self_chain(e: ast.expr) -> list[str]:
    """``self.a.b`` -> ['a', 'b']; [] when not an attribute chain on ``self``."""
    chain: list[str] = []
    cur = e
    while isinstance(cur, ast.Attribute):
        chain.append(cur.attr)
        cur = cur.value
    if isinstance(cur, ast.Subscript):  # self.layers[i](...)
        inner = _self_chain(cur.value)
        return inner + list(reversed(chain)) if inner else []
    if isinstance(cur, ast.Name) and cur.id == "self" and chain:
        return list(reversed(chain))
    return []


def _dotted(sym: Any) -> str:
    if isinstance(sym, (ClassSym, FuncSym)):
        return sym.dotted
    if isinstance(sym, ExternalSym):
        return sym.dotted
    if isinstance(sym, ModuleSym):
        return sym.name
    if isinstance(sym, ValueSym):
        return sym.dotted
    return ""


def _join(a: str, b: str) -> str:
    return f"{a} > {b}" if a and b else a or b


def _and(a: str, b: str) -> str:
    """Two condition texts, as _cond_text joins the tests of a path."""
    return f"{a} and {b}" if a and b else a or b


def _short(a: ast.expr) -> str:
    s = node_text(a)
    return s if len(s) <= 60 else s[:57] + "..."


def cls_depth(index: Index, cls: ClassSym, owner: ClassSym) -> int:
    mro = index.mro(cls)
    try:
        return mro.index(owner)
    except ValueError:
        return len(mro)


class _Not:
    """The else side of an undecided ``if``: ``not (<test>)``."""

    __slots__ = ("test",)

    def __init__(self, test: ast.expr) -> None:
        self.test = test


Cond = ast.expr | _Not  # an undecided test on the path to a call, as text when a call is recorded


def _cond_text(conds: tuple[Cond, ...]) -> str:
    # the calls of a block share its tuple of tests: its text is made once (--all: ~450,000 texts).
    # The tuple is the key (its tests hash by identity) and is held, so its id is not reused.
    text = _COND_TEXTS.get(conds)
    if text is None:
        if len(_COND_TEXTS) >= 512:  # a reading's blocks; the next reading builds new tuples
            _COND_TEXTS.clear()
        text = _COND_TEXTS[conds] = " and ".join(
            f"not ({node_text(c.test)})" if type(c) is _Not else node_text(c) for c in conds)
    return text


_COND_TEXTS: dict[tuple, str] = {}


def glob_match(name: str, pattern: str) -> bool:
    """``fnmatch.fnmatchcase``, without compiling a regular expression for a pattern whose only
    wildcard is ``*`` (all of the catalog's: ~80 compilations were ~15 ms of a one-model run)."""
    if "?" in pattern or "[" in pattern:
        return fnmatch.fnmatchcase(name, pattern)
    parts = pattern.split("*")
    if len(parts) == 1:
        return name == pattern
    first, last = parts[0], parts[-1]
    if len(name) < len(first) + len(last) or not name.startswith(first) or not name.endswith(last):
        return False
    pos, end = len(first), len(name) - len(last)
    for middle in parts[1:-1]:  # each in order, as early as possible (what backtracking finds)
        pos = name.find(middle, pos, end)
        if pos < 0:
            return False
        pos += len(middle)
    return True


def kernel_rank(dotted: str, patterns: list[str]) -> int | None:
    """Index of the first pattern the kernel name matches (lower is a better match)."""
    key = (dotted, tuple(patterns))
    if key in _RANKS:
        return _RANKS[key]
    low = dotted.lower()
    rank = next((i for i, p in enumerate(patterns) if glob_match(low, p.lower())), None)
    if len(_RANKS) < 100_000:
        _RANKS[key] = rank
    return rank


_RANKS: dict[tuple[str, tuple[str, ...]], int | None] = {}
_KINDS: dict[int, tuple[Any, dict[str, str]]] = {}
