"""Which model implementation a name refers to.

SGLang registers a model by listing its classes in ``EntryClass`` (one class or a
list) at the bottom of ``models/<file>.py``; the architecture string a checkpoint
names is the class name.  Registrations are read statically: only the
``EntryClass`` statement of each file is parsed, which keeps ``--list`` and
discovery fast.

Matching order: the ``architectures`` of ``--config`` (nested text configs too),
an ``EntryClass`` class name, a file stem, then a fuzzy keyword.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import lazyparse
from .errors import ModelNotFound
from .index import ClassSym, Index

# No leading ``^`` with re.M: a pattern that starts with a literal is searched for by that literal
# (10x faster over the ~9 MB of model files); matches not at a line start are skipped instead.
_ENTRY_RE = re.compile(r"EntryClass\s*(?::[^=\n]*)?(\+?=)")
_DRAFT_TAGS = ("NextN", "Eagle", "MTP", "Draft", "Medusa")
_SUFFIXES = ("ForConditionalGeneration", "ForCausalLMNextN", "ForCausalLMEagle3", "ForCausalLMEagle",
             "ForCausalLM", "ForSequenceClassification", "ForRewardModel", "ForClassification",
             "ForTokenClassification", "LMHeadModel", "Model")


@dataclass
class Registration:
    """One class a model file registers."""

    class_name: str
    module: str  # sglang.srt.models.llama
    file: str  # models/llama.py
    line: int

    @property
    def stem(self) -> str:
        return self.file.rsplit("/", 1)[-1].removesuffix(".py")


@dataclass
class ModelFileEntry:
    file: str
    module: str
    classes: list[Registration] = field(default_factory=list)
    error: str = ""


@dataclass
class Match:
    chosen: Registration
    how: str  # architecture | class | file | keyword
    score: float
    alternatives: list[Registration]


def norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def base_name(cls: str) -> str:
    for suf in _SUFFIXES:
        if cls.endswith(suf) and len(cls) > len(suf):
            return cls[: -len(suf)]
    return cls


def read_registrations(srt: Path) -> list[ModelFileEntry]:
    """Every ``EntryClass`` of ``models/*.py``, in file order."""
    out: list[ModelFileEntry] = []
    models = srt / "models"
    if not models.is_dir():
        return out
    for path in sorted(models.glob("*.py")):
        if not path.is_file():
            continue
        rel = f"models/{path.name}"
        entry = ModelFileEntry(file=rel, module=f"sglang.srt.models.{path.stem}")
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            entry.error = str(e)
            out.append(entry)
            continue
        names: list[tuple[str, int]] = []
        for m in _ENTRY_RE.finditer(text):
            if m.start() and text[m.start() - 1] != "\n":
                continue
            stmt = _statement_at(text, m.start())
            line = text.count("\n", 0, m.start()) + 1
            try:
                tree = ast.parse(stmt)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                entry.error = f"EntryClass at line {line} could not be parsed"
                continue
            st = tree.body[0] if tree.body else None
            value = getattr(st, "value", None)
            if value is None:
                continue
            if isinstance(st, ast.Assign) or (isinstance(st, ast.AnnAssign)):
                names = []
            elts = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
            for e in elts:
                if isinstance(e, ast.Name):
                    names.append((e.id, line))
                elif isinstance(e, ast.Attribute):
                    names.append((e.attr, line))
        entry.classes = [Registration(n, entry.module, rel, ln) for n, ln in names]
        out.append(entry)
    return out


def _statement_at(text: str, start: int) -> str:
    """The source of the statement starting at ``start`` (bracket-balanced)."""
    depth = 0
    i = start
    n = len(text)
    in_str: str | None = None
    while i < n:
        ch = text[i]
        if in_str:
            if ch == "\\":
                i += 2
                continue
            if text.startswith(in_str, i):
                i += len(in_str)
                in_str = None
                continue
        elif ch in "\"'":
            in_str = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else ch
            i += len(in_str)
            continue
        elif ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "\n" and depth <= 0 and text[i - 1] != "\\":
            return text[start:i]
        i += 1
        if i - start > 100_000:
            break
    return text[start:i]


def all_registrations(entries: list[ModelFileEntry]) -> list[Registration]:
    return [r for e in entries for r in e.classes]


def find_model(name: str, entries: list[ModelFileEntry], architectures: list[str] | None = None) -> Match:
    regs = all_registrations(entries)
    if not regs:
        raise ModelNotFound("no model registrations (EntryClass) found in this SGLang tree")
    by_class: dict[str, list[Registration]] = {}
    for r in regs:
        by_class.setdefault(r.class_name, []).append(r)
    # 1. the config's architectures
    for arch in architectures or []:
        if arch in by_class:
            chosen = by_class[arch][0]
            return Match(chosen, "architecture", 1.0, _others(regs, chosen, name))
    q = norm(name)
    if not q:
        raise ModelNotFound(f"model name {name!r} has no letters or digits")
    # 2. a class name: as written (ExaoneMoeForCausalLM and ExaoneMoEForCausalLM are two
    # classes), else ignoring case and punctuation
    if name in by_class:
        chosen = by_class[name][0]
        return Match(chosen, "class", 1.0, _others(regs, chosen, name))
    for r in regs:
        if norm(r.class_name) == q:
            return Match(r, "class", 1.0, _others(regs, r, name))
    # 3. a file stem
    stems = [r for r in regs if norm(r.stem) == q]
    if stems:
        chosen = max(stems, key=lambda r: (_similarity(q, norm(base_name(r.class_name))), -stems.index(r)))
        return Match(chosen, "file", 1.0, _others(regs, chosen, name))
    # 4. a keyword
    scored = sorted(((_score(q, r), i, r) for i, r in enumerate(regs)), key=lambda t: (-t[0], t[1]))
    best_score, _, best = scored[0]
    if best_score < 0.55:
        raise ModelNotFound(f"no SGLang model matches {name!r}", "closest: " + ", ".join(closest(name, regs)))
    return Match(best, "keyword", best_score, [r for s, _, r in scored[1:] if s >= best_score - 0.15][:8])


def _score(q: str, r: Registration, floor: float = 0.0) -> float:
    """How well ``q`` names ``r`` (0..1).  A score that cannot reach ``floor`` may be returned low
    without its string similarity worked out: the length bound of the similarity rules it out."""
    cls = norm(base_name(r.class_name))
    stem = norm(r.stem)
    best = 0.0
    for cand, weight in ((cls, 1.0), (stem, 0.97)):
        if not cand:
            continue
        if cand == q:
            s = 1.0
        elif cand.startswith(q):
            s = 0.9 - 0.02 * (len(cand) - len(q))
        elif q.startswith(cand):
            s = 0.85 - 0.03 * (len(q) - len(cand))
        elif q in cand:
            s = 0.7 - 0.01 * (len(cand) - len(q))
        elif 0.8 * weight * 2 * min(len(q), len(cand)) / (len(q) + len(cand)) < max(floor, best) - 1e-9:
            continue  # even identical letters (SequenceMatcher's length bound) would score lower
        else:
            s = 0.8 * _similarity(q, cand)
        best = max(best, s * weight)
    if any(tag in r.class_name for tag in _DRAFT_TAGS):  # speculative-decoding drafts come second
        best *= 0.97
    return best


def _similarity(a: str, b: str) -> float:
    import difflib  # (only when a name is matched loosely)

    return difflib.SequenceMatcher(None, a, b).ratio()


def _others(regs: list[Registration], chosen: Registration, name: str) -> list[Registration]:
    q = norm(name)
    same_file = [r for r in regs if r.file == chosen.file and r is not chosen]
    similar = [r for r in regs if r is not chosen and r.file != chosen.file and _score(q, r, 0.75) >= 0.75]
    return (same_file + similar)[:8]


def closest(name: str, regs: list[Registration], n: int = 5) -> list[str]:
    q = norm(name)
    scored = sorted(regs, key=lambda r: -_score(q, r))
    out: list[str] = []
    for r in scored:
        label = f"{r.class_name} ({r.file})"
        if label not in out:
            out.append(label)
        if len(out) == n:
            break
    return out


# ---------------------------------------------------------------------------- config classes


def config_classes(index: Index) -> dict[str, ClassSym]:
    """``model_type`` -> SGLang's config class, from ``sglang/srt/configs/*.py`` (once per index)."""
    return index.shared(("config-classes",), lambda: _config_classes(index))


def _config_classes(index: Index) -> dict[str, ClassSym]:
    out: dict[str, ClassSym] = {}
    folder = index.tree.srt / "configs"
    if not folder.is_dir():
        return out
    # a text scan (no parsing): `class X(...):` followed, in its body, by `model_type = "..."`
    for path in sorted(folder.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "model_type" not in text:
            continue
        module = index.tree.dotted_of(path)
        current = None
        for line in text.splitlines():
            m = _CLASS_LINE.match(line)
            if m:
                current = m.group(1)
                continue
            m = _MODEL_TYPE_LINE.match(line)
            if m and current:
                out.setdefault(m.group(1), ClassSym(module, current))
    return out


_CLASS_LINE = re.compile(r"^class\s+([A-Za-z_]\w*)\s*[(:]")
_MODEL_TYPE_LINE = re.compile(r"^    model_type(?:\s*:\s*\w+)?\s*=\s*[\"']([^\"']+)[\"']\s*$")


# ---------------------------------------------------------------------------- MLA architectures


def mla_architectures(index: Index) -> list[str]:
    """Architectures SGLang's model config marks as MLA (read from configs/model_config.py)."""
    return list(index.shared(("mla-architectures",), lambda: _read_mla_architectures(index)))


def _read_mla_architectures(index: Index) -> list[str]:
    mod = index.module("sglang.srt.configs.model_config")
    if mod is None:
        return []
    # Only the definitions, and of a large class (ModelConfig, 1,700 lines) only the methods,
    # whose lines mention ``attention_arch`` are parsed; the walk passes the others by.
    mod.materialize_containing("attention_arch")
    tree = ast.Module(body=mod.top_level, type_ignores=[])
    return _mla_architectures(lazyparse.walk_lines(tree, lazyparse.lines_naming(mod.text, ["attention_arch"])))


def _mla_architectures(nodes: Iterable[ast.AST]) -> list[str]:
    found: set[str] = set()
    for node in nodes:
        if not isinstance(node, ast.If):
            continue
        sets_mla = any(
            isinstance(st, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "attention_arch"
                                                for t in st.targets)
            and isinstance(st.value, ast.Attribute) and st.value.attr == "MLA"
            for st in node.body
        )
        if not sets_mla:
            continue
        for c in ast.walk(node.test):
            if isinstance(c, ast.Compare) and isinstance(c.left, ast.Constant) and isinstance(c.left.value, str) \
                    and any(isinstance(op, ast.In) for op in c.ops):
                found.add(c.left.value)
    return sorted(found)
