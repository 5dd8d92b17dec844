"""Parse a module's top-level ``class`` and ``def`` bodies only when they are used.

An analysis uses about half of the source of the files it reaches (DeepSeek-V3: 56% of
2.5 MB), and parsing is the largest single cost of a one-model run.  A large file is
split at the lines that start a top-level statement; each top-level ``class``/``def``
(with its decorators) is replaced by a one-line stub, with blank lines keeping every
line number, and the resulting skeleton is parsed.  Imports, assignments and ``if`` /
``try`` blocks are therefore exact from the start; a definition is parsed from its own
lines the first time it is looked up and spliced into the tree in place of its stub.

Anything less plain falls back to parsing the whole file: a split that may fall inside
a string (an odd number of triple quotes) or a continuation line, a name defined twice,
a stub that is not where it should be, or a definition whose lines do not parse alone.
"""

from __future__ import annotations

import ast
import itertools
import re
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
    starts = [i for i, line in enumerate(lines) if line[:1] and line[:1] not in _NOT_A_START]
    starts.append(len(lines))
    chunks: dict[str, tuple[int, int, str]] = {}
    seen: set[str] = set()
    k = 0
    while k < len(starts) - 1:
        first = k
        while k < len(starts) - 1 and lines[starts[k]].startswith("@"):  # decorators go with their def
            k += 1
        if k == len(starts) - 1:
            break
        m = _HEAD.match(lines[starts[k]])
        if m is None:
            if k > first:
                return None  # decorators not followed by their def at column 0 (a continued decorator)
            k += 1
            continue
        kind, name = m.group(1), m.group(2)
        begin, end = starts[first], starts[k + 1]
        k += 1
        if "".join(lines[begin:end]).rstrip().endswith("\\"):
            return None  # a continued line
        if name in seen:
            return None  # defined twice: which one wins is for the full parser to say
        seen.add(name)
        chunks[name] = (begin + 1, end + 1, "class" if kind == "class" else "async def" if kind != "def" else "def")
    if not chunks:
        return None
    # Each definition, and the code between two definitions (kept as it is), must hold whole
    # triple-quoted strings: otherwise a split may fall inside one (a heuristic: a quote
    # character inside a comment or another string can fool it).
    bounds = sorted((b - 1, e - 1) for b, e, _k in chunks.values())
    pieces = [piece for (b, e), nxt in zip(bounds, [*(x[0] for x in bounds[1:]), len(lines)])
              for piece in ((b, e), (e, nxt))]
    if bounds[0][0] > 0:
        pieces.append((0, bounds[0][0]))
    for a, b in pieces:
        text_piece = "".join(lines[a:b])
        if text_piece.count('"""') % 2 or text_piece.count("'''") % 2:
            return None
    out = list(lines)
    for name, (begin, end, kind) in chunks.items():
        out[begin - 1] = f"{kind} {name}{'' if kind == 'class' else '()'}: pass\n"
        for i in range(begin, end - 1):
            out[i] = "\n"
    return Skeleton("".join(out), chunks, list(itertools.accumulate(map(len, lines), initial=0)))


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


def _lines(text: str) -> list[str]:
    """Lines with their ends, split at ``\n`` only (as the parser counts them; not at form feeds)."""
    return _LINE.findall(text)
