"""A lazy, static index of an SGLang source tree.

Files are parsed only when a name in them is needed.  The index knows, for every
parsed module, its top-level bindings (imports, classes, functions, assignments,
each with the ``if``/``try`` guards it sits under), resolves names across modules
(relative, aliased and re-exported imports, ``import a.b as c``, star imports),
and linearises class hierarchies (C3, with cycles reported rather than followed).

Nothing here imports or executes the code it reads.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import itertools
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import lazyparse
from .diagnostics import Diagnostics

MAX_FILE_BYTES = 4 * 1024 * 1024  # larger files are reported, not parsed
LAZY_MIN_CHARS = 8_000  # smaller files are parsed whole (see lazyparse)
INTERNAL_PACKAGES = ("sglang",)
BUILTIN_NAMES = frozenset(dir(builtins))
ENUM_BASES = ("Enum", "IntEnum", "StrEnum", "Flag", "IntFlag")
_SERIALS = itertools.count()
NODE_CACHES: list[dict] = []  # module-level caches that hold AST nodes: emptied when parsed files are dropped


def register_node_cache(cache: dict) -> dict:
    NODE_CACHES.append(cache)
    return cache


_NODE_TEXTS: dict[int, tuple[ast.AST, str]] = register_node_cache({})


def node_text(node: ast.AST) -> str:
    """``ast.unparse(node)``, cached per node: the evaluator and the forward reader ask for the
    same texts model after model (nodes are kept alive by the index while cached here)."""
    got = _NODE_TEXTS.get(id(node))
    if got is None or got[0] is not node:
        got = _NODE_TEXTS[id(node)] = (node, ast.unparse(node))
    return got[1]


# Column-0 statements, matched after a newline (run on "\n" + text): a pattern that starts with a
# literal is searched for by it, ~4x faster than ``^`` with re.M; the lookahead consumes nothing
# past the newline, so consecutive lines match as with ``^``.
# a line at column 0 that defines (1: kind, 2: name), assigns (3: name) or imports from (4: names);
# one scan of the text for the three (a lookahead: nothing is consumed past the line's start)
_TOP_LINE = re.compile(r"\n(?=(?:(class|def|async def)\s+([A-Za-z_]\w*)|([A-Za-z_]\w*)\s*(?::[^=\n]*)?=[^=]"
                       r"|from\s+\S+\s+import\s+(\([^)]*\)|[^\n]*)))")
_WORD = re.compile(r"[A-Za-z_]\w*")
_NOT_UTF8 = "not valid UTF-8; undecodable bytes were replaced"


# --------------------------------------------------------------------------- symbols


@dataclass(frozen=True)
class ModuleSym:
    """A module; ``internal`` when its source is in the tree."""

    name: str
    internal: bool


@dataclass(frozen=True)
class ClassSym:
    module: str
    qualname: str

    @property
    def name(self) -> str:
        return self.qualname.rsplit(".", 1)[-1]

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.qualname}"


@dataclass(frozen=True)
class FuncSym:
    module: str
    qualname: str

    @property
    def name(self) -> str:
        return self.qualname.rsplit(".", 1)[-1]

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.qualname}"


@dataclass(frozen=True)
class ValueSym:
    """A module-level assignment (evaluated lazily by the evaluator)."""

    module: str
    name: str

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class ExternalSym:
    """Something defined outside the tree (torch, flashinfer, sgl_kernel, ...)."""

    dotted: str

    @property
    def name(self) -> str:
        return self.dotted.rsplit(".", 1)[-1]


Symbol = ModuleSym | ClassSym | FuncSym | ValueSym | ExternalSym


# --------------------------------------------------------------------------- bindings

# A guard is (test expression, polarity) for ``if``; ("try", True) for a try body,
# ("except", False) for a handler, ("else", True) for a try/else.
Guard = tuple[object, bool]


@dataclass(frozen=True)
class Binding:
    kind: str  # import | importfrom | class | def | assign | star
    node: ast.AST
    guards: tuple[Guard, ...]
    target: str = ""  # module for imports
    attr: str | None = None  # imported attribute
    level: int = 0


@dataclass
class ParsedModule:
    name: str
    path: Path
    rel: str
    is_package: bool
    digest: str = ""
    _tree: ast.Module | None = None
    error: str | None = None
    text: str = ""
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    stars: list[Binding] = field(default_factory=list)
    defs: dict[str, ast.AST] = field(default_factory=dict)  # qualname -> Class/FunctionDef
    _lines: list[str] | None = None
    # top-level definitions not parsed yet (lazyparse): name -> (index in the body, first line, line after)
    lazy: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    _offsets: list[int] | None = None
    _whole: ast.Module | None = None
    on_late_error: Callable[[str, str], None] | None = None  # (location, why) -> a warning now
    broken: dict[str, tuple[str, str]] = field(default_factory=dict)  # lazy definition -> (location, why)
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, location, why) of reading it

    @property
    def tree(self) -> ast.Module | None:
        """The whole module (any definition not parsed yet is parsed now)."""
        while self.lazy:
            self.materialize(next(iter(self.lazy)))
        return self._tree

    @tree.setter
    def tree(self, tree: ast.Module | None) -> None:
        self._tree = tree

    @property
    def top_level(self) -> list[ast.stmt]:
        """The top-level statements; a ``class``/``def`` among them may be a stub not parsed yet.
        For readers of imports, assignments and ``if``/``try`` blocks only."""
        return self._tree.body if self._tree is not None else []

    def materialize(self, name: str) -> None:
        """Parse the top-level definition ``name`` and put it in place of its stub."""
        got = self.lazy.pop(name, None)
        if got is None or self._tree is None:
            return
        index, begin, end = got
        assert self._offsets is not None  # set with ``lazy``
        node = None
        if isinstance(self._tree.body[index], ast.ClassDef):
            node = lazyparse.parse_class(self.text, begin, end, name, str(self.path), self._offsets,
                                         lambda method, line, cls=name: self._broken_method(f"{cls}.{method}", line))
        if node is None:
            node = lazyparse.parse_chunk(self.text, begin, end, name, str(self.path), self._offsets)
        if node is None:
            node = self._from_whole_file(name, begin)
        if node is None:  # a syntax error inside this definition: it stays an empty stub
            self.broken[name] = self.broken.get(name) or (f"{self.rel}:{begin}", "invalid syntax")
            self.report_broken(name)
            return
        stub = self._tree.body[index]
        self._tree.body[index] = node
        if dict.get(self.defs, name) is stub:
            dict.__setitem__(self.defs, name, node)
        _collect_defs(self, [node], "", 0)

    def materialize_containing(self, needle: str) -> None:
        """Parse the definitions not parsed yet whose source contains ``needle``."""
        for name, (_index, begin, end) in list(self.lazy.items()):
            if needle in self.text[self._offsets[begin - 1]:self._offsets[end - 1]]:  # type: ignore[index]
                self.materialize(name)

    def check_parses(self) -> None:
        """Parse the whole text once, as Python would import it (for a module that must parse: the
        model's own file, read lazily for another model first); a syntax error sets ``error``."""
        if self.text:
            self._parse_whole("<module>", 0)

    @property
    def parsed_lazily(self) -> bool:
        return self._offsets is not None

    def _parse_whole(self, name: str, begin: int) -> ast.Module:
        """The whole file's tree, parsed once; a syntax error is recorded against ``name``."""
        if self._whole is None:
            try:
                self._whole = ast.parse(self.text, filename=str(self.path))
            except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
                self._whole = ast.Module(body=[], type_ignores=[])
                line = getattr(e, "lineno", None) or begin
                why = getattr(e, "msg", None) or type(e).__name__
                self.error = f"line {line}: {why}"  # Python could not import this module
                self.broken[name] = (f"{self.rel}:{line}", why)
        return self._whole

    def _from_whole_file(self, name: str, begin: int) -> ast.stmt | None:
        return lazyparse.definition_at(self._parse_whole(name, begin).body, begin, name)

    def _broken_method(self, qualname: str, line: int) -> None:
        self.broken[qualname] = (f"{self.rel}:{line}", "invalid syntax")
        self.report_broken(qualname)

    def report_broken(self, name: str) -> None:
        """A definition that does not parse is reported to each analysis that looks it up."""
        if name in self.broken and self.on_late_error is not None:
            self.on_late_error(*self.broken[name])

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.splitlines()
        return self._lines

    def snippet(self, start: int, end: int) -> str:
        return "\n".join(self.lines[max(start - 1, 0) : end])


# --------------------------------------------------------------------------- tree


class SourceTree:
    """Where the ``sglang`` package lives: ``root/sglang/srt/...``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.srt = self.root / "sglang" / "srt"
        self._root, self._srt = str(self.root), str(self.srt)
        # answers kept for the life of the tree (an --all worker asks the same ones for every model)
        self._files: dict[str, tuple[Path, bool] | None] = {}
        self._rels: dict[Path, str] = {}
        self._dotted: dict[Path, str] = {}
        self._real_dirs: dict[str, str] = {}

    def module_file(self, dotted: str) -> tuple[Path, bool] | None:
        """The file of an internal module: (path, is_package); None when absent."""
        try:
            return self._files[dotted]
        except KeyError:
            found = self._files[dotted] = self._module_file(dotted)
            return found

    def _module_file(self, dotted: str) -> tuple[Path, bool] | None:
        # (string paths and os.path: pathlib's objects cost more than the stat calls here)
        if dotted.split(".", 1)[0] not in INTERNAL_PACKAGES:
            return None
        base = os.path.join(self._root, *dotted.split("."))
        try:
            if os.path.isfile(init := base + "/__init__.py"):
                return Path(init), True
            if os.path.isfile(py := base + ".py"):
                return Path(py), False
            if os.path.isdir(base):  # namespace package
                return Path(base), True
        except (OSError, ValueError):
            return None
        return None

    def rel(self, path: Path) -> str:
        """``models/llama.py`` for files under ``sglang/srt``, else from the root."""
        got = self._rels.get(path)
        if got is None:
            got = self._rels[path] = self._rel(path)
        return got

    def _rel(self, path: Path) -> str:
        real = self._resolved(os.fspath(path))
        for base in (self._srt, self._root):
            if real.startswith(base) and real[len(base):len(base) + 1] in ("/", ""):
                return real[len(base) + 1:] or "."
        return path.as_posix()

    def resolve(self, path: Path) -> Path:
        """``path.resolve()``, with each folder resolved once (files of a folder share its answer;
        a file that is itself a symbolic link is resolved in full)."""
        return Path(self._resolved(os.fspath(path)))

    def _resolved(self, path: str) -> str:
        head, name = os.path.split(path)
        if name in ("", ".", "..") or os.path.islink(path):
            return os.path.realpath(path)
        folder = self._real_dirs.get(head)
        if folder is None:
            folder = self._real_dirs[head] = os.path.realpath(head)
        return os.path.join(folder, name)

    def dotted_of(self, path: Path) -> str:
        got = self._dotted.get(path)
        if got is None:
            got = self._dotted[path] = self._dotted_of(path)
        return got

    def _dotted_of(self, path: Path) -> str:
        rel = self.resolve(path).relative_to(self.root).with_suffix("")
        parts = list(rel.parts)
        if parts and parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts)

    def model_files(self) -> list[Path]:
        models = self.srt / "models"
        if not models.is_dir():
            return []
        return sorted(p for p in models.glob("*.py") if p.is_file())


# --------------------------------------------------------------------------- index


def _collect(tree: ast.Module, mod: ParsedModule) -> None:
    """Record top-level bindings with their guards, and every class/def by qualname."""

    def add(name: str, b: Binding) -> None:
        mod.bindings.setdefault(name, []).append(b)

    def walk(stmts: list[ast.stmt], guards: tuple[Guard, ...]) -> None:
        for st in stmts:
            if isinstance(st, ast.Import):
                for a in st.names:
                    if a.asname:
                        add(a.asname, Binding("import", st, guards, target=a.name))
                    else:
                        top = a.name.split(".", 1)[0]
                        add(top, Binding("import", st, guards, target=top))
            elif isinstance(st, ast.ImportFrom):
                for a in st.names:
                    if a.name == "*":
                        mod.stars.append(
                            Binding("star", st, guards, target=st.module or "", level=st.level)
                        )
                        continue
                    add(
                        a.asname or a.name,
                        Binding("importfrom", st, guards, target=st.module or "",
                                attr=a.name, level=st.level),
                    )
            elif isinstance(st, ast.ClassDef):
                add(st.name, Binding("class", st, guards))
            elif isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)):
                add(st.name, Binding("def", st, guards))
            elif isinstance(st, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = st.targets if isinstance(st, ast.Assign) else [st.target]
                for t in targets:
                    for name in _target_names(t):
                        add(name, Binding("assign", st, guards))
            elif isinstance(st, ast.If):
                walk(st.body, guards + ((st.test, True),))
                walk(st.orelse, guards + ((st.test, False),))
            elif isinstance(st, ast.Try) or type(st).__name__ == "TryStar":
                walk(st.body, guards + (("try", True),))
                for h in st.handlers:
                    walk(h.body, guards + (("except", False),))
                walk(st.orelse, guards + (("else", True),))
                walk(st.finalbody, guards)
            elif isinstance(st, (ast.With, ast.AsyncWith)):
                walk(st.body, guards)

    walk(tree.body, ())
    _collect_defs(mod, tree.body, "", 0)


def _collect_defs(mod: ParsedModule, stmts: list[ast.stmt], prefix: str, depth: int) -> None:
    """Every class/def by qualname (the first definition of a name wins)."""
    if depth > 20:
        return
    for st in stmts:
        if isinstance(st, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            q = f"{prefix}{st.name}"
            mod.defs.setdefault(q, st)
            if isinstance(st, ast.ClassDef):
                _collect_defs(mod, st.body, q + ".", depth + 1)
        elif isinstance(st, ast.If):
            _collect_defs(mod, st.body, prefix, depth + 1)
            _collect_defs(mod, st.orelse, prefix, depth + 1)
        elif isinstance(st, ast.Try):
            _collect_defs(mod, st.body, prefix, depth + 1)
            for h in st.handlers:
                _collect_defs(mod, h.body, prefix, depth + 1)


class _LazyDefs(dict):
    """``ParsedModule.defs`` of a lazily parsed module: looking up ``X`` or ``X.y`` parses ``X``."""

    def __init__(self, mod: ParsedModule) -> None:
        super().__init__()
        self.mod = mod

    def _ensure(self, key: str) -> None:
        mod = self.mod
        if mod.lazy or mod.broken:
            top = key.partition(".")[0]
            if top in mod.lazy:
                mod.materialize(top)
            elif top in mod.broken:
                mod.report_broken(top)
            if key != top and key in mod.broken:  # a method that does not parse
                mod.report_broken(key)

    def get(self, key, default=None):  # type: ignore[override]
        self._ensure(key)
        return dict.get(self, key, default)

    def __getitem__(self, key):  # type: ignore[override]
        self._ensure(key)
        return dict.__getitem__(self, key)

    def __contains__(self, key) -> bool:  # type: ignore[override]
        self._ensure(key)
        return dict.__contains__(self, key)


def _target_names(t: ast.AST) -> Iterator[str]:
    if isinstance(t, ast.Name):
        yield t.id
    elif isinstance(t, (ast.Tuple, ast.List)):
        for e in t.elts:
            yield from _target_names(e)
    elif isinstance(t, ast.Starred):
        yield from _target_names(t.value)


GuardEvaluator = Callable[[ParsedModule, object, bool], "bool | None"]


class Index:
    """Lazy parse and name resolution over one :class:`SourceTree`."""

    def __init__(self, tree: SourceTree, diagnostics: Diagnostics | None = None,
                 cache: object | None = None) -> None:
        self.tree = tree
        self.serial = next(_SERIALS)  # a key for caches outside the index (an id() can be reused)
        self.diagnostics = diagnostics if diagnostics is not None else Diagnostics()
        self.cache = cache  # ParseCache-like: get(digest) / put(digest, tree)
        self._modules: dict[str, ParsedModule | None] = {}
        self._mro: dict[ClassSym, list[Symbol]] = {}
        self._mro_notes: dict[ClassSym, list[tuple[str, str, str]]] = {}
        self.guard_evaluator: GuardEvaluator | None = None
        self.files_read: dict[str, str] = {}  # rel path -> digest (for result caches)
        self._texts: dict[str, str] = {}
        self._top_defs: dict[str, dict[str, str]] = {}
        self._guards: dict[tuple[str, int, bool], tuple[bool | None, dict[str, str]]] = {}  # verdict, files
        self._guarding: set[tuple[str, int, bool]] = set()
        # (module, name) -> symbol, files read, [the files_read dict they were last replayed into]
        self._resolved: dict[tuple[str, str], tuple[Symbol | None, dict[str, str], list[dict[str, str]]]] = {}
        self._recording = 0  # open recording() blocks
        self._by_rel: dict[str, ParsedModule] = {}
        self._text_files: dict[str, tuple[str, str]] = {}  # module -> (rel, digest) of a text-scanned file
        self._undecodable: set[str] = set()  # text-scanned modules whose bytes are not valid UTF-8
        self._mro_files: dict[ClassSym, dict[str, str]] = {}
        self._mro_replayed: dict[ClassSym, dict[str, str]] = {}  # the files_read dict last replayed into
        self._mro_name_sets: dict[ClassSym, frozenset[str]] = {}
        self._members_found: dict[tuple[ClassSym, str], tuple[tuple[ClassSym, ast.AST] | None, list[ClassSym]]] = {}
        self._shared: dict[tuple, tuple[Any, dict[str, str]]] = {}  # see shared()
        self.prefetch: Any = None  # a prefetch.Prefetch: shared() results a helper reads meanwhile
        # modules always parsed whole (the model's own file: a syntax error anywhere in it is an error)
        self.parse_whole: set[str] = set()

    # ----------------------------------------------------------------- parsing

    def begin_analysis(self, diagnostics: Diagnostics, max_modules: int = 1500) -> None:
        """Reuse this index (and what it has parsed) for another analysis of the same tree."""
        if len(self._modules) > max_modules:  # bound memory in long sweeps
            self._modules.clear()
            self._mro.clear()
            self._mro_notes.clear()
            self._mro_files.clear()
            self._mro_replayed.clear()
            self._mro_name_sets.clear()
            self._members_found.clear()
            self._by_rel.clear()
            self._text_files.clear()
            self._undecodable.clear()
            self._shared.clear()
            self._texts.clear()
            self._top_defs.clear()
            self._guards.clear()
            self._resolved.clear()
            for cache in NODE_CACHES:
                cache.clear()
        self.diagnostics = diagnostics
        self.files_read = {}

    @contextmanager
    def recording(self) -> Iterator[dict[str, str]]:
        """Collect every file used inside the block (rel path -> digest), for a result cached
        beyond this analysis; the files are also kept for the analysis itself."""
        outer = self._begin_recording()
        try:
            yield self.files_read
        finally:
            self._end_recording(outer)

    def _begin_recording(self) -> dict[str, str]:
        outer, self.files_read = self.files_read, {}
        self._recording += 1
        return outer

    def _end_recording(self, outer: dict[str, str]) -> dict[str, str]:
        inner, self.files_read = self.files_read, outer
        self._recording -= 1
        for rel, digest in inner.items():
            outer.setdefault(rel, digest)
        return inner

    # A result reused by other analyses (or reused inside such a result) must give them the files
    # it used and the warnings it gave: these record both, and ``replay`` gives them again.
    def begin_events(self) -> tuple[dict[str, str], Diagnostics, list[tuple]]:
        """Start recording files and warnings (without a context manager: for a memo's misses)."""
        diags = self.diagnostics
        return self._begin_recording(), diags, diags.capture()

    def end_events(self, token: tuple[dict[str, str], Diagnostics, list[tuple]]) -> tuple[dict[str, str], list[tuple]]:
        """The files used and the warnings given since ``begin_events``."""
        outer, diags, log = token
        diags.end_capture(log)
        return self._end_recording(outer), log

    def with_events(self, compute: Callable[[], Any]) -> tuple[Any, dict[str, str], list[tuple]]:
        """``compute()``, with the files it used and the warnings it gave."""
        token = self.begin_events()
        try:
            value = compute()
        finally:
            files, warned = self.end_events(token)
        return value, files, warned

    @property
    def is_recording(self) -> bool:
        """A result is being recorded for reuse: what cached answers used must be replayed."""
        return bool(self._recording) or self.diagnostics.capturing

    def replay(self, files: dict[str, str], warned: Iterable[tuple] = ()) -> None:
        """A cached result is used: its files count as read by this analysis (with their read
        errors), and the warnings it gave are given again."""
        for rel, digest in files.items():
            if rel not in self.files_read:
                self.files_read[rel] = digest
                mod = self._by_rel.get(rel)
                if mod is not None:
                    self._report(mod)
        self.diagnostics.replay(warned)

    def shared(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """A result every analysis of this index may reuse (a backend's calls, the config classes):
        computed once, recording the files it used, which each reuse replays."""
        hit = self._shared.get(key)
        if hit is not None:
            self.replay(hit[1])
            return hit[0]
        got = self.prefetch.take(key) if self.prefetch is not None else None
        if got is not None:  # read by the helper (see prefetch): as if read here
            value, files, warned = got
            self._shared[key] = (value, files)
            self.replay(files, warned)
            return value
        with self.recording() as files:
            value = compute()
        self._shared[key] = (value, files)
        return value

    def module(self, dotted: str) -> ParsedModule | None:
        if dotted in self._modules:
            mod = self._modules[dotted]
            if mod is not None and mod.rel not in self.files_read:
                if mod.digest:
                    self.files_read[mod.rel] = mod.digest
                if mod.problems:  # (a file that could not be read has no digest: reported at each use)
                    self._report(mod)
            return mod
        found = self.tree.module_file(dotted)
        if found is None:
            self._modules[dotted] = None
            return None
        path, is_pkg = found
        mod = ParsedModule(dotted, path, self.tree.rel(path), is_pkg)
        self._modules[dotted] = mod
        self._by_rel[mod.rel] = mod
        if path.is_dir():
            mod.tree = ast.Module(body=[], type_ignores=[])
            return mod
        self._parse(mod)
        return mod

    def _problem(self, mod: ParsedModule, kind: str, location: str, why: str) -> None:
        """A problem reading or parsing a file: reported now, and again to each analysis that uses it."""
        mod.problems.append((kind, location, why))
        self.diagnostics.add(kind, location, what=mod.rel, why=why)

    def _report(self, mod: ParsedModule) -> None:
        for kind, location, why in mod.problems:
            self.diagnostics.add(kind, location, what=mod.rel, why=why)

    def _parse(self, mod: ParsedModule) -> None:
        text = self._texts.get(mod.name)
        if text is not None:  # read for a text scan already (_top_level_def): not read again
            mod.text = text
            mod.digest = self._text_files[mod.name][1]
            self.files_read[mod.rel] = mod.digest
            if mod.name in self._undecodable:
                self._problem(mod, "unreadable-file", mod.rel, _NOT_UTF8)
        elif not self._read(mod):
            return
        # lazily first: the skeleton parses faster than a whole pickled tree loads
        tree = self._skeleton(mod) or (self.cache.get(mod.digest) if self.cache is not None else None)
        if tree is None:
            try:
                tree = ast.parse(mod.text, filename=str(mod.path))
            except SyntaxError as e:
                mod.error = f"line {e.lineno}: {e.msg}"
                self._problem(mod, "syntax-error", f"{mod.rel}:{e.lineno or 0}", e.msg or "invalid syntax")
                tree = None
            except (RecursionError, MemoryError, ValueError) as e:
                mod.error = f"{type(e).__name__}: {e}"
                self._problem(mod, "syntax-error", mod.rel, f"{type(e).__name__} while parsing")
                tree = None
            if tree is not None and self.cache is not None:
                self.cache.put(mod.digest, tree)
        if tree is None:
            tree = ast.Module(body=[], type_ignores=[])
        mod.tree = tree
        try:
            _collect(tree, mod)
        except RecursionError:
            self._problem(mod, "syntax-error", mod.rel, "nesting too deep to index")

    def _read(self, mod: ParsedModule) -> bool:
        """Read a module's file (its text, digest and read problems); False when it cannot be read."""
        try:
            size = mod.path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise ValueError(f"{size} bytes, over the {MAX_FILE_BYTES}-byte limit")
            data = mod.path.read_bytes()
        except (OSError, ValueError) as e:
            mod.error = str(e)
            self._problem(mod, "unreadable-file", mod.rel, str(e))
            mod.tree = ast.Module(body=[], type_ignores=[])
            return False
        mod.digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        self.files_read[mod.rel] = mod.digest
        try:
            mod.text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            mod.text = data.decode("utf-8-sig", errors="replace")
            self._problem(mod, "unreadable-file", mod.rel, _NOT_UTF8)
        return True

    def _skeleton(self, mod: ParsedModule) -> ast.Module | None:
        """A large module's skeleton, its top-level definitions left for when they are used
        (and ``mod`` set up to parse them); None when the module should be parsed whole.
        Such a module is not put in the parse cache."""
        if len(mod.text) < LAZY_MIN_CHARS or mod.name in self.parse_whole:
            return None
        skeleton = lazyparse.split(mod.text)
        if skeleton is None:
            return None
        try:
            tree = ast.parse(skeleton.text, filename=str(mod.path))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None  # the full parse reports it
        positions = lazyparse.stub_positions(tree, skeleton)
        if positions is None:
            return None
        mod.defs = _LazyDefs(mod)
        mod.lazy = {name: (positions[name], begin, end) for name, (begin, end, _kind) in skeleton.chunks.items()}
        mod._offsets = skeleton.offsets
        mod.on_late_error = lambda location, why: self.diagnostics.add("syntax-error", location, what=mod.rel, why=why)
        return tree

    def _top_level_def(self, dotted: str, name: str) -> Symbol | None:
        """``class name`` / ``def name`` at column 0 of a not-yet-parsed module, found by a text scan.

        Resolving a name imported from a module does not need the module's AST when the
        module defines it plainly at top level; the file is parsed later only if the class
        or function is actually used.  Anything less plain falls back to parsing.
        """
        found = self.tree.module_file(dotted)
        if found is None or found[0].is_dir():
            return None
        text = self._texts.get(dotted)
        if text is None:
            try:
                if found[0].stat().st_size > MAX_FILE_BYTES:
                    return None
                data = found[0].read_bytes()
            except OSError:
                return None
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = data.decode("utf-8-sig", errors="replace")
                self._undecodable.add(dotted)
            self._texts[dotted] = text
            self._text_files[dotted] = (self.tree.rel(found[0]), hashlib.blake2b(data, digest_size=16).hexdigest())
        rel, digest = self._text_files[dotted]
        self.files_read.setdefault(rel, digest)
        defs = self._top_defs.get(dotted)
        if defs is None:
            defs = {}
            assigned: list[str] = []
            imported: list[str] = []
            for m in _TOP_LINE.finditer("\n" + text):
                kind = m.group(1)
                if kind is not None:
                    n = m.group(2)
                    defs[n] = "many" if n in defs else kind
                elif m.group(3) is not None:
                    assigned.append(m.group(3))
                else:
                    imported.append(m.group(4))
            # names also bound at top level by an assignment or an import: let the parser decide
            for n in assigned:
                defs[n] = "many"
            for names in imported:
                for n in _WORD.findall(names):
                    if n in defs:
                        defs[n] = "many"
            self._top_defs[dotted] = defs
        kind = defs.get(name)
        if kind not in ("class", "def", "async def"):
            return None
        return ClassSym(dotted, name) if kind == "class" else FuncSym(dotted, name)

    def module_of_path(self, path: Path) -> ParsedModule | None:
        return self.module(self.tree.dotted_of(path))

    def parsed_module_rel(self, rel: str) -> ParsedModule | None:
        """The module already read whose relative path is ``rel`` (never reads or parses anything)."""
        mod = self._by_rel.get(rel)
        return mod if mod is not None and mod.digest else None

    # ----------------------------------------------------------------- names

    def absolute(self, mod: ParsedModule, target: str, level: int) -> str:
        """The absolute module name of ``from <level dots><target> import ...``."""
        if level == 0:
            return target
        parts = mod.name.split(".")
        if not mod.is_package:
            parts = parts[:-1]
        if level > 1:
            parts = parts[: len(parts) - (level - 1)]
        base = ".".join(parts)
        return f"{base}.{target}" if target else base

    def is_internal(self, dotted: str) -> bool:
        return dotted.split(".", 1)[0] in INTERNAL_PACKAGES

    def choose(self, mod: ParsedModule, bindings: list[Binding]) -> Binding:
        """Pick the binding that holds on the assumed platform (CUDA, imports succeed)."""
        if len(bindings) == 1 and not bindings[0].guards:
            return bindings[0]
        best_true = None
        best_maybe = None
        for b in bindings:
            verdicts = [self._guard(mod, g) for g in b.guards]
            if all(v is True for v in verdicts):
                best_true = b
            elif not any(v is False for v in verdicts):
                best_maybe = b
        return best_true or best_maybe or bindings[-1]

    def _guard(self, mod: ParsedModule, guard: Guard) -> bool | None:
        test, polarity = guard
        if test == "try" or test == "else":
            return True
        if test == "except":
            return False
        if self.guard_evaluator is None:
            return None
        key = (mod.name, id(test), polarity)
        if key in self._guards:
            verdict, files = self._guards[key]
            self.replay(files)
            return verdict
        if key in self._guarding:  # a guard that needs itself (module-level cycles): undecided
            return None
        self._guarding.add(key)
        try:
            with self.recording() as used:
                verdict = self.guard_evaluator(mod, test, polarity)
        finally:
            self._guarding.discard(key)
        self._guards[key] = (verdict, used)
        return verdict

    def resolve(self, module: str, name: str, _seen: frozenset = frozenset()) -> Symbol | None:
        """Resolve ``name`` as seen at the top level of ``module``."""
        key = (module, name)
        if not _seen:  # outermost lookups are memoised for every analysis of this index
            hit = self._resolved.get(key)
            if hit is not None:
                # the files the lookup read count as read here too: replayed once per files_read
                # dict, as a class hierarchy's are (a new analysis and every recording start one)
                if hit[1] and hit[2][0] is not self.files_read:
                    self.replay(hit[1])
                    hit[2][0] = self.files_read
                return hit[0]
            with self.recording() as used:
                sym = self._resolve(module, name, _seen)
            if not self._guarding:  # an answer given while a guard is being decided may be provisional
                self._resolved[key] = (sym, used, [self.files_read])
            return sym
        return self._resolve(module, name, _seen)

    def _resolve(self, module: str, name: str, _seen: frozenset) -> Symbol | None:
        key = (module, name)
        if key in _seen or len(_seen) > 60:
            return None
        seen = _seen | {key}
        if not self.is_internal(module):
            if module.startswith("<"):  # catalog expressions: builtins only
                return ExternalSym(f"builtins.{name}") if name in BUILTIN_NAMES else None
            return ExternalSym(f"{module}.{name}")
        mod = self.module(module)
        if mod is None:
            return None
        bs = mod.bindings.get(name)
        if bs:
            b = self.choose(mod, bs)
            return self._from_binding(mod, name, b, seen)
        for star in mod.stars:
            target = self.absolute(mod, star.target, star.level)
            if not self.is_internal(target):
                continue
            sym = self.resolve(target, name, seen)
            if sym is not None:
                return sym
        if mod.is_package:  # a submodule of a package
            sub = f"{module}.{name}"
            if self.tree.module_file(sub) is not None:
                return ModuleSym(sub, True)
        if name in BUILTIN_NAMES:
            return ExternalSym(f"builtins.{name}")
        return None

    def _from_binding(self, mod: ParsedModule, name: str, b: Binding, seen: frozenset) -> Symbol | None:
        if b.kind == "class":
            return ClassSym(mod.name, name)
        if b.kind == "def":
            return FuncSym(mod.name, name)
        if b.kind == "assign":
            return ValueSym(mod.name, name)
        if b.kind == "import":
            return self.module_symbol(b.target)
        if b.kind == "importfrom":
            target = self.absolute(mod, b.target, b.level)
            return self.import_from(target, b.attr or name, seen)
        return None

    def module_symbol(self, dotted: str) -> Symbol:
        if self.is_internal(dotted):
            return ModuleSym(dotted, True)
        return ModuleSym(dotted, False)

    def import_from(self, target: str, attr: str, seen: frozenset = frozenset()) -> Symbol | None:
        if not self.is_internal(target):
            return ExternalSym(f"{target}.{attr}")
        sub = f"{target}.{attr}"
        if target not in self._modules:
            quick = self._top_level_def(target, attr)
            if quick is not None:
                return quick
        mod = self.module(target)
        if mod is not None and attr in mod.bindings:
            return self.resolve(target, attr, seen)
        if self.tree.module_file(sub) is not None:
            return ModuleSym(sub, True)
        if mod is None:
            return None
        return self.resolve(target, attr, seen)

    def attribute(self, sym: Symbol, attr: str) -> Symbol | None:
        """``sym.attr`` for module and external symbols (classes are the evaluator's)."""
        if isinstance(sym, ModuleSym):
            if not sym.internal:
                return ExternalSym(f"{sym.name}.{attr}")
            return self.import_from(sym.name, attr)
        if isinstance(sym, ExternalSym):
            return ExternalSym(f"{sym.dotted}.{attr}")
        return None

    def lookup_dotted(self, dotted: str) -> Symbol | None:
        """Resolve a fully dotted name such as ``sglang.srt.layers.layernorm.RMSNorm``."""
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            modname = ".".join(parts[:i])
            if self.is_internal(modname) and self.tree.module_file(modname) is not None:
                sym: Symbol | None = ModuleSym(modname, True)
                for p in parts[i:]:
                    if isinstance(sym, ClassSym):
                        q = f"{sym.qualname}.{p}"
                        mod = self.module(sym.module)
                        sym = ClassSym(sym.module, q) if mod and isinstance(mod.defs.get(q), ast.ClassDef) else None
                    else:
                        sym = self.attribute(sym, p) if sym is not None else None
                    if sym is None:
                        return None
                return sym
        return ExternalSym(dotted) if not self.is_internal(dotted) else None

    # ----------------------------------------------------------------- nodes

    def node(self, sym: ClassSym | FuncSym) -> ast.AST | None:
        mod = self.module(sym.module)
        if mod is None:
            return None
        return mod.defs.get(sym.qualname)

    def class_node(self, sym: ClassSym) -> ast.ClassDef | None:
        n = self.node(sym)
        return n if isinstance(n, ast.ClassDef) else None

    def value_node(self, sym: ValueSym) -> ast.AST | None:
        mod = self.module(sym.module)
        if mod is None or sym.name not in mod.bindings:
            return None
        b = self.choose(mod, mod.bindings[sym.name])
        return b.node

    # ----------------------------------------------------------------- classes

    def base_symbols(self, sym: ClassSym) -> list[Symbol]:
        node = self.class_node(sym)
        if node is None:
            return []
        out: list[Symbol] = []
        for b in node.bases:
            if isinstance(b, ast.Subscript):  # Generic[T], nn.Module[...]
                b = b.value
            s = self.resolve_expr(sym.module, b)
            if isinstance(s, ValueSym):
                s = self._alias_value(s)
            if s is not None:
                out.append(s)
        return out

    def _alias_value(self, s: ValueSym, depth: int = 0) -> Symbol | None:
        """``Base = OtherClass`` at module level: follow the alias."""
        node = self.value_node(s)
        if depth > 10 or not isinstance(node, ast.Assign):
            return s
        target = self.resolve_expr(s.module, node.value)
        if isinstance(target, ValueSym):
            return self._alias_value(target, depth + 1)
        return target

    def resolve_expr(self, module: str, expr: ast.AST) -> Symbol | None:
        """A Name or dotted Attribute expression as seen at module level."""
        if isinstance(expr, ast.Name):
            return self.resolve(module, expr.id)
        if isinstance(expr, ast.Attribute):
            base = self.resolve_expr(module, expr.value)
            if base is None:
                return None
            if isinstance(base, ClassSym):
                q = f"{base.qualname}.{expr.attr}"
                mod = self.module(base.module)
                if mod is not None and q in mod.defs:
                    n = mod.defs[q]
                    return ClassSym(base.module, q) if isinstance(n, ast.ClassDef) else FuncSym(base.module, q)
                return None
            return self.attribute(base, expr.attr)
        return None

    def mro(self, sym: ClassSym) -> list[Symbol]:
        """C3 linearisation; on a cycle or conflict, a depth-first order and a warning."""
        return self._mro_of(sym, ())

    def _mro_of(self, sym: ClassSym, stack: tuple[ClassSym, ...]) -> list[Symbol]:
        out = self._mro.get(sym)
        if out is not None:
            # The files are replayed once per files_read dict: a new analysis and every recording
            # start a new one.
            for note in self._mro_notes.get(sym, ()):  # the warnings belong to every analysis that uses it
                self._mro_note(note, stack)
            if self._mro_replayed.get(sym) is not self.files_read:
                self.replay(self._mro_files.get(sym, {}))
                self._mro_replayed[sym] = self.files_read
            return out
        with self.recording() as used:
            out = self._compute_mro(sym, stack)
        if sym in self._mro:
            self._mro_files[sym] = used
        return out

    def _compute_mro(self, sym: ClassSym, stack: tuple[ClassSym, ...]) -> list[Symbol]:
        where = self.module(sym.module)
        rel = where.rel if where else sym.module
        if len(stack) > 50:
            return [sym]
        building = stack + (sym,)
        bases: list[Symbol] = []
        for b in self.base_symbols(sym):
            if isinstance(b, ClassSym) and (b == sym or b in stack):
                self._mro_note((rel, sym.dotted, f"inherits from itself through {b.dotted}"), building)
                continue
            bases.append(b)
        seqs = [self._mro_of(b, stack + (sym,)) if isinstance(b, ClassSym) else [b] for b in bases]
        seqs = [list(s) for s in seqs + [list(bases)] if s]
        out: list[Symbol] = [sym]
        while seqs:
            head = next((s[0] for s in seqs if not any(s[0] in t[1:] for t in seqs)), None)
            if head is None:  # inconsistent: depth-first without repeats
                self._mro_note((rel, sym.dotted, "no consistent method resolution order"), building)
                for s in seqs:
                    out.extend(h for h in s if h not in out)
                break
            out.append(head)
            seqs = [t for t in ([x for x in s if x != head] for s in seqs) if t]
        self._mro[sym] = out
        return out

    def _mro_note(self, note: tuple[str, str, str], building: tuple[ClassSym, ...]) -> None:
        """An ``mro-error`` warning, remembered with every class whose MRO it was found computing."""
        rel, what, why = note
        self.diagnostics.add("mro-error", rel, what=what, why=why)
        for s in building:
            notes = self._mro_notes.setdefault(s, [])
            if note not in notes:
                notes.append(note)

    def find_in_class(self, sym: ClassSym, name: str) -> tuple[ClassSym, ast.AST] | None:
        """The first definition of ``name`` (method or class attribute) along the MRO."""
        mro = self.mro(sym)  # (replays the files of every class on it: all that the answer read)
        key = (sym, name)
        got = self._members_found.get(key)
        if got is not None:
            found, looked_at = got
            for c in looked_at:  # a definition that does not parse is reported at each lookup
                mod = self._modules.get(c.module)
                if mod is not None and mod.broken:
                    mod.defs.get(c.qualname)
            return found
        looked_at = []
        found = None
        for c in mro:
            if not isinstance(c, ClassSym):
                continue
            looked_at.append(c)
            node = self.class_node(c)
            if node is None:
                continue
            member = class_member(node, name)
            if member is not None:
                found = (c, member)
                break
        self._members_found[key] = (found, looked_at)
        return found

    def is_enum(self, sym: ClassSym) -> bool:
        return not self._mro_names(sym).isdisjoint(ENUM_BASES)

    def is_subclass_of(self, sym: ClassSym, dotted_or_name: str) -> bool:
        return dotted_or_name in self._mro_names(sym)

    def _mro_names(self, sym: ClassSym) -> frozenset[str]:
        """The dotted and simple names of every class on ``sym``'s MRO."""
        mro = self.mro(sym)  # (replays the files it read)
        names = self._mro_name_sets.get(sym)
        if names is None:
            dotted = [c.dotted for c in mro if isinstance(c, (ClassSym, ExternalSym))]
            names = frozenset(dotted) | {d.rsplit(".", 1)[-1] for d in dotted}
            self._mro_name_sets[sym] = names
        return names

    # ----------------------------------------------------------------- EntryClass

    def entry_classes(self, mod: ParsedModule) -> list[tuple[str, ast.AST]]:
        """Names registered by ``EntryClass = X`` or ``EntryClass = [X, Y]`` (with +=)."""
        out: list[tuple[str, ast.AST]] = []
        for st in mod.top_level:
            targets: list[ast.AST] = []
            value = None
            if isinstance(st, ast.Assign):
                targets, value = st.targets, st.value
            elif isinstance(st, (ast.AnnAssign, ast.AugAssign)):
                targets, value = [st.target], st.value
            if value is None or not any(isinstance(t, ast.Name) and t.id == "EntryClass" for t in targets):
                continue
            if isinstance(st, ast.Assign):
                out = []
            elts = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
            for e in elts:
                if isinstance(e, ast.Name):
                    out.append((e.id, e))
                elif isinstance(e, ast.Attribute):
                    out.append((e.attr, e))
        return out


_MEMBERS: dict[int, tuple[ast.ClassDef, dict[str, ast.AST]]] = register_node_cache({})


def class_member(node: ast.ClassDef, name: str) -> ast.AST | None:
    """A method or class-level assignment named ``name`` directly in ``node``."""
    got = _MEMBERS.get(id(node))
    if got is None or got[0] is not node:
        got = (node, _members(node))
        _MEMBERS[id(node)] = got
    return got[1].get(name)


def _members(node: ast.ClassDef) -> dict[str, ast.AST]:
    out: dict[str, ast.AST] = {}
    for st in node.body:
        if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[st.name] = st
        elif isinstance(st, ast.Assign):
            for t in st.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = st
        elif isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name):
            out[st.target.id] = st
    return out


def _class_member_slow(node: ast.ClassDef, name: str) -> ast.AST | None:
    found = None
    for st in node.body:
        if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)) and st.name == name:
            found = st
        elif isinstance(st, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in st.targets):
                found = st
        elif isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) and st.target.id == name:
            found = st
        elif isinstance(st, ast.ClassDef) and st.name == name:
            found = st
    return found


def iter_tree(folder: Path, follow_symlinks: bool = False, max_depth: int = 30) -> Iterator[os.DirEntry]:
    """Every entry below ``folder`` (by name; a folder before what it holds). Symlinked folders
    are entered only with ``follow_symlinks``, and then each real folder once (no loops)."""
    stack = [(str(folder), 0)]
    seen: set[tuple[int, int]] = set()
    while stack:
        d, depth = stack.pop()
        if depth > max_depth:
            continue
        if follow_symlinks:  # a real folder is its device and inode (a stat: realpath takes one per path part)
            try:
                st = os.stat(d)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=follow_symlinks):
                    stack.append((e.path, depth + 1))
                yield e
            except OSError:
                continue


def iter_python_files(folder: Path, max_depth: int = 30) -> Iterator[Path]:
    """Every ``*.py`` below ``folder``, not following symlinked folders (no loops)."""
    for e in iter_tree(folder, max_depth=max_depth):
        try:
            if e.name.endswith(".py") and e.is_file():
                yield Path(e.path)
        except OSError:
            continue
