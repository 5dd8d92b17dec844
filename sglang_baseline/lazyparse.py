"""Parse a module's top-level ``class`` and ``def`` bodies only when they are used.

An analysis uses about half of the source of the files it reaches (DeepSeek-V3: 56% of
2.5 MB), and parsing is the largest single cost of a one-model run.  A large file is
split at the lines that start a top-level statement; each top-level ``class``/``def``
(with its decorators) is replaced by a one-line stub, with blank lines keeping every
line number, and the resulting skeleton is parsed.  Imports, assignments and ``if`` /
``try`` blocks are therefore exact from the start; a definition is parsed from its own
lines the first time it is looked up and spliced into the tree in place of its stub.

A line inside a triple-quoted string is never taken for the start of a statement
(``_in_strings``).  A name defined twice at top level stays in the skeleton (every definition of it), as the
full parser reads it.  Anything less plain falls back to parsing the whole file: a quote
that does not close on its line, a continuation line, a stub that is not where it should
be, or a definition whose lines do not parse alone.

A large class is split the same way one level down (``parse_class``): its long methods are
parsed when something reads more of them than their name.
"""

from __future__ import annotations

import ast
import bisect
import itertools
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_HEAD = re.compile(r"(async[ \t]+def|def|class)[ \t]+([A-Za-z_]\w*)")
_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")
_LONE_CR = re.compile(r"\r(?!\n)")
_NOT_A_START = frozenset(" \t#)]}\r\n\x0c")


@dataclass
class Skeleton:
    text: str  # the source with each lazy definition reduced to a stub line
    chunks: dict[str, tuple[int, int, str]]  # name -> (first line, line after the last, kind), 1-based
    offsets: list[int]  # character offset of each line of the source, and of its end


def split(text: str) -> Skeleton | None:
    """The skeleton of ``text``, or None when the file should be parsed whole."""
    if "\x0c" in text or _LONE_CR.search(text):
        return None  # form feeds and bare carriage returns start lines the split would not see
    lines = _lines(text)
    strings = _in_strings(lines)
    if strings is None:
        return None
    starts = [i for i, line in enumerate(lines) if line[0] not in _NOT_A_START]  # (no line is empty)
    if strings:
        starts = [i for i in starts if i not in strings]
    starts.append(len(lines))
    chunks: dict[str, tuple[int, int, str]] = {}
    found = _definitions(lines, starts, _HEAD.match)
    if found is None:
        return None  # decorators not followed by their def at column 0 (a continued decorator)
    twice: set[str] = set()
    for begin, end, m in found:
        kind, name = m.group(1), m.group(2)
        if "".join(lines[begin:end]).rstrip().endswith("\\"):
            return None  # a continued line
        if name in chunks or name in twice:  # defined twice: all of them stay in the skeleton, parsed
            chunks.pop(name, None)
            twice.add(name)
            continue
        chunks[name] = (begin + 1, end + 1, "class" if kind == "class" else "async def" if kind != "def" else "def")
    if not chunks:
        return None
    out = list(lines)
    for name, (begin, end, kind) in chunks.items():
        out[begin - 1] = f"{kind} {name}{'' if kind == 'class' else '()'}: pass\n"
        for i in range(begin, end - 1):
            out[i] = "\n"
    return Skeleton("".join(out), chunks, list(itertools.accumulate(map(len, lines), initial=0)))


def _definitions(lines: list[str], starts: list[int], head) -> list[tuple[int, int, re.Match[str]]] | None:
    """The definitions among the statement-start lines ``starts`` (the last entry: the end):
    (first line, decorators included; the line after the last; ``head``'s match of the def line).
    None when decorators are not followed by a definition."""
    out = []
    k = 0
    while k < len(starts) - 1:
        first = k
        while k < len(starts) - 1 and lines[starts[k]].lstrip(" \t").startswith("@"):  # decorators go with their def
            k += 1
        if k == len(starts) - 1:
            break
        m = head(lines[starts[k]])
        if m is None:
            if k > first:
                return None
            k += 1
            continue
        out.append((starts[first], starts[k + 1], m))
        k += 1
    return out


def stub_positions(tree: ast.Module, skeleton: Skeleton) -> dict[str, int] | None:
    """Where each stub sits in the skeleton's body; None when one is missing or a name is also
    defined by the eagerly parsed code (nested in ``if``/``try``)."""
    by_line = {st.lineno: i for i, st in enumerate(tree.body)}
    out: dict[str, int] = {}
    for name, (begin, _end, _kind) in skeleton.chunks.items():
        i = by_line.get(begin)
        st = tree.body[i] if i is not None else None
        if not isinstance(st, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) or st.name != name:
            return None
        out[name] = i
    stubs = {id(tree.body[i]) for i in out.values()}
    return None if any(name in out for name in _defined_in_blocks(tree.body, stubs)) else out


def _defined_in_blocks(stmts: list[ast.stmt], stubs: set[int]):
    """Names defined by module-level statements (inside ``if``/``try``/``with`` too), stubs aside."""
    for st in stmts:
        if isinstance(st, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            if id(st) not in stubs:
                yield st.name
            continue
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(st, field, None)
            if isinstance(inner, list):
                yield from _defined_in_blocks(inner, stubs)
        for handler in getattr(st, "handlers", None) or []:
            yield from _defined_in_blocks(handler.body, stubs)


def parse_chunk(text: str, begin: int, end: int, name: str, filename: str,
                offsets: list[int]) -> ast.stmt | None:
    """The definition on lines ``begin``..``end - 1`` parsed alone (exact line numbers), or None."""
    source = "\n" * (begin - 1) + text[offsets[begin - 1]:offsets[end - 1]]
    try:
        sub = ast.parse(source, filename=filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if len(sub.body) != 1:
        return None
    node = sub.body[0]
    if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) or node.name != name:
        return None
    return node


_TOKEN = re.compile("|".join((
    r"(#)",  # a comment
    r"('''|\"\"\")",  # a triple quote
    r"""('(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")""",  # a one-line string
    r"""([^#'"]+)""",  # anything else
)))


def _in_strings(lines: list[str]) -> set[int] | None:
    """The lines that begin inside a triple-quoted string (so cannot start a statement); None when
    a line is doubtful (a one-quote string continued with a backslash, an unmatched quote).

    Only lines holding a triple quote can open or close one, so only they are scanned, from the
    state the previous such line left: comments and one-line strings (where a triple quote is
    just text) are skipped."""
    inside: set[int] = set()
    quote = ""  # the triple quote we are inside, or ""
    opened = 0  # the line where it opened
    for i in [i for i, line in enumerate(lines) if '"""' in line or "'''" in line]:
        line = lines[i]
        pos = 0
        while pos < len(line):
            if quote:
                end = line.find(quote, pos)
                while end > 0 and (end - len(line[:end].rstrip("\\"))) % 2:  # an escaped quote
                    end = line.find(quote, end + 1)
                if end < 0:
                    break
                inside.update(range(opened + 1, i + 1))
                pos, quote = end + 3, ""
                continue
            m = _TOKEN.match(line, pos)
            if m is None:
                return None  # a quote that does not close on its line
            if m.group(1):
                break  # a comment
            if m.group(2):
                quote, opened = m.group(2), i
            pos = m.end()
    return None if quote else inside


def _lines(text: str) -> list[str]:
    """Lines with their ends, split at ``\n`` only (as the parser counts them; not at form feeds)."""
    if not any(c in text for c in _OTHER_BREAKS) and ("\r" not in text or not _LONE_CR.search(text)):
        return text.splitlines(True)  # it splits where the parser does here, and faster
    return _LINE.findall(text)


_OTHER_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # where str.splitlines also breaks, with a lone \r


# ---------------------------------------------------------------------------- methods
#
# A large class is parsed the same way one level down: its methods become stubs, and a method
# is parsed from its own lines when anything but its name is read (an analysis uses about a
# third of the method lines of the classes it reaches).  The stub is a subclass of
# ``ast.FunctionDef`` whose fields are properties: the first read parses the method, turns the
# node into a plain ``ast.FunctionDef`` and fills it in, so no reader needs to know (a method
# that does not parse turns into a ``Broken`` stub instead: an empty method that reports itself).

CLASS_SPLIT_MIN_LINES = 80  # smaller classes are parsed whole
METHOD_MIN_LINES = 8  # shorter methods stay in their class's parse

_METHOD_HEAD = re.compile(r"([ \t]+)(async[ \t]+def|def)[ \t]+([A-Za-z_]\w*)")
_CLASS_HEAD = re.compile(r"class[ \t]+([A-Za-z_]\w*)")


class _LazyMethod:
    """What the lazy subclasses share (see ``_stub_class``)."""

    __slots__ = ()

    def _load(self) -> None:
        state = self.__dict__.get("_lazy")
        if state is None:
            return
        text, begin, end, filename, offsets, whole_class, on_broken = state
        node = _parse_method(text, begin, end, self.name, filename, offsets) or whole_class()
        base = type(self).__bases__[0]
        del self.__dict__["_lazy"]
        if node is None or type(node) is not base:
            # A syntax error in this method: it stands as an empty one that reports the error each
            # time it is read (in every analysis that reads it, as when that analysis runs alone).
            self.__dict__["_broken"] = (on_broken, begin)
            self.__dict__["_values"] = _empty_function(base, begin, end)
            self.__class__ = _BROKEN[base]
            return
        self.__class__ = base
        self.__dict__.update(node.__dict__)


def _empty_function(base: type, begin: int, end: int) -> dict:
    values = {"args": ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None,
                                    defaults=[]),
              "body": [ast.Pass(lineno=begin, col_offset=0, end_lineno=begin, end_col_offset=0)],
              "decorator_list": [], "returns": None, "type_comment": None, "type_params": [],
              "lineno": begin, "col_offset": 0, "end_lineno": end - 1, "end_col_offset": 0}
    return {f: values.get(f) for f in (*base._fields, *base._attributes) if f != "name"}


def _stub_class(base: type, prefix: str) -> type:
    """A subclass of ``base`` whose fields (all but ``name``) are properties: a pending method
    (``Lazy``) parses itself on the first read; a broken one (``Broken``) reports itself on each."""
    ns: dict = {"__slots__": ()}
    for f in (*base._fields, *base._attributes):
        if f == "name":
            continue
        if prefix == "Lazy":
            def get(self, f=f):
                self._load()
                return getattr(self, f)

            def put(self, value, f=f):
                self._load()
                setattr(self, f, value)
        else:
            def get(self, f=f):
                on_broken, line = self.__dict__["_broken"]
                on_broken(self.name, line)
                return self.__dict__["_values"][f]

            def put(self, value, f=f):
                self.__dict__["_values"][f] = value
        ns[f] = property(get, put)
    bases = (base, _LazyMethod) if prefix == "Lazy" else (base,)
    # named as its base, so that ``ast.NodeVisitor`` (and ``ast.unparse``) dispatch on it as on the
    # def it stands for, and then read its fields
    stub = type(base.__name__, bases, ns)
    stub.__qualname__ = f"{prefix}{base.__name__}"
    return stub


_BASES = {"def": ast.FunctionDef, "async def": ast.AsyncFunctionDef}
_LAZY = {kind: _stub_class(base, "Lazy") for kind, base in _BASES.items()}
_BROKEN = {base: _stub_class(base, "Broken") for base in _BASES.values()}
LAZY_TYPES = tuple(_LAZY.values())
STUB_TYPES = LAZY_TYPES + tuple(_BROKEN.values())  # each stands for its first base class


def pending_lines(node: object) -> tuple[int, int] | None:
    """For a method not parsed yet: the first and last line it may span (its decorators, and any
    blank or comment lines after it, included); None for any other node."""
    state = node.__dict__.get("_lazy") if type(node) in LAZY_TYPES else None
    return (state[1], state[2] - 1) if state else None


def pending_text(node: object) -> str | None:
    """For a method not parsed yet: its source lines; None for any other node."""
    state = node.__dict__.get("_lazy") if type(node) in LAZY_TYPES else None
    if not state:
        return None
    text, begin, end, _filename, offsets = state[:5]
    return text[offsets[begin - 1]:offsets[end - 1]]


def _parse_method(text: str, begin: int, end: int, name: str, filename: str,
                  offsets: list[int]) -> ast.stmt | None:
    """The method on lines ``begin``..``end - 1`` parsed alone, at its own lines and columns."""
    source = "\n" * (begin - 2) + "if 1:\n" + text[offsets[begin - 1]:offsets[end - 1]]
    try:
        sub = ast.parse(source, filename=filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if len(sub.body) != 1 or len(sub.body[0].body) != 1:  # type: ignore[attr-defined]
        return None
    node = sub.body[0].body[0]  # type: ignore[attr-defined]
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name != name:
        return None
    return node


def parse_class(text: str, begin: int, end: int, name: str, filename: str, offsets: list[int],
                on_broken) -> ast.ClassDef | None:
    """The class on lines ``begin``..``end - 1`` with its long methods left for when they are used;
    None when it should be parsed whole (small, or anything doubtful about the split).

    ``on_broken(method, line)`` is called when a method, once needed, does not parse."""
    if end - begin < CLASS_SPLIT_MIN_LINES:
        return None
    lines = _lines(text[offsets[begin - 1]:offsets[end - 1]])
    strings = _in_strings(lines)
    header = next((i for i, line in enumerate(lines) if _CLASS_HEAD.match(line)), None)
    if header is None or strings is None:
        return None
    heads = [(i, m) for i in range(header + 1, len(lines)) if (m := _METHOD_HEAD.match(lines[i])) and i not in strings]
    if not heads:
        return None
    indent = min(heads, key=lambda h: len(h[1].group(1)))[1].group(1)
    starts = []
    for i in range(header + 1, len(lines)):
        line = lines[i]
        body = line.lstrip(" \t")
        if not body or body[0] in _NOT_A_START or i in strings:
            continue
        ws = line[:len(line) - len(body)]
        if len(ws) < len(indent) or ws == indent:
            starts.append(i)
        elif not ws.startswith(indent) and len(ws) >= len(indent):
            return None  # tabs and spaces mixed differently: let the parser decide
    starts.append(len(lines))
    methods: dict[str, tuple[int, int, str]] = {}
    seen: set[str] = set()
    found = _definitions(lines, starts, lambda line: m if (m := _METHOD_HEAD.match(line)) and m.group(1) == indent
                         else None)
    if found is None:
        return None  # decorators not followed by a method
    for b, e, m in found:
        method = m.group(3)
        if method in seen:
            return None  # defined twice: parse the class whole
        seen.add(method)
        if "".join(lines[b:e]).rstrip().endswith("\\"):
            return None
        if e - b >= METHOD_MIN_LINES and e < len(lines):  # (the last one ends the class: its end positions)
            methods[method] = (b, e, "def" if m.group(2) == "def" else "async def")
    if not methods:
        return None
    out = list(lines)
    for method, (b, e, kind) in methods.items():
        out[b] = f"{indent}{kind} {method}(): pass\n"
        for i in range(b + 1, e):
            out[i] = "\n"
    try:
        tree = ast.parse("\n" * (begin - 1) + "".join(out), filename=filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.ClassDef) or tree.body[0].name != name:
        return None
    cls = tree.body[0]
    where = {st.lineno: i for i, st in enumerate(cls.body) if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for method, (b, _e, _kind) in methods.items():
        i = where.get(begin + b)  # a method of the class itself (not in an ``if``), followed by more of it
        if i is None or i == len(cls.body) - 1 or cls.body[i].name != method or cls.body[i].decorator_list:
            return None
    for method, (b, e, kind) in methods.items():
        i = where[begin + b]
        lazy = _LAZY[kind].__new__(_LAZY[kind])
        lazy.__dict__["name"] = method
        lazy.__dict__["_lazy"] = (text, begin + b, begin + e, filename, offsets,
                                  lambda b=b: _from_whole_class(text, begin, end, filename, offsets, begin + b),
                                  on_broken)
        cls.body[i] = lazy
    return cls


def _from_whole_class(text: str, begin: int, end: int, filename: str, offsets: list[int],
                      line: int) -> ast.stmt | None:
    """The method that starts on ``line``, from a parse of its whole class (when it would not parse alone)."""
    try:
        tree = ast.parse("\n" * (begin - 1) + text[offsets[begin - 1]:offsets[end - 1]], filename=filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    cls = tree.body[0] if tree.body and isinstance(tree.body[0], ast.ClassDef) else None
    return definition_at(cls.body, line) if cls is not None else None


def definition_at(stmts: list[ast.stmt], line: int, name: str | None = None) -> ast.stmt | None:
    """The ``class``/``def`` among ``stmts`` whose first line (its first decorator's) is ``line``."""
    for st in stmts:
        if isinstance(st, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and name in (None, st.name) \
                and min([st.lineno] + [d.lineno for d in st.decorator_list]) == line:
            return st
    return None


# ---------------------------------------------------------------------------- reading without parsing


def lines_naming(text: str, names: Iterable[str]) -> list[int] | None:
    """The (1-based, sorted) lines of ``text`` that contain one of ``names``; None without text."""
    if not text or _LONE_CR.search(text):
        return None  # (a bare carriage return also ends a line for the parser)
    names = sorted(names, key=len, reverse=True)
    if not names:
        return []
    pattern = re.compile("|".join(re.escape(n) for n in names))
    breaks = [m.start() for m in re.finditer("\n", text)]  # lines as the parser counts them
    return sorted({bisect.bisect_left(breaks, m.start()) + 1 for m in pattern.finditer(text)})


def walk_lines(root: ast.AST, lines: list[int] | None) -> Iterator[ast.AST]:
    """``ast.walk`` (same order) without the subtrees whose lines include none of ``lines``
    (a method not parsed yet is judged by its line range, and stays unparsed when skipped)."""
    if lines is None:
        yield from ast.walk(root)
        return
    todo = deque([root])
    while todo:
        node = todo.popleft()
        for child in ast.iter_child_nodes(node):
            span = pending_lines(child)
            if span is None:
                first, last = getattr(child, "lineno", None), getattr(child, "end_lineno", None)
                decorators = getattr(child, "decorator_list", None) if first is not None else None
                if decorators:  # a definition's lines start at its first decorator
                    first = min([first] + [d.lineno for d in decorators])
            else:
                first, last = span
            if first is not None and last is not None:
                i = bisect.bisect_left(lines, first)
                if i == len(lines) or lines[i] > last:
                    continue
            todo.append(child)
        yield node
