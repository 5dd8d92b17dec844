"""Coverage: which predicted names a FlashInfer-Bench dataset already has, which
FlashInfer supports, and what a real trace dump saw.

- ``--definitions-dir``: a flashinfer-trace ``definitions/`` folder (``<op_type>/<name>.json``).
- ``--flashinfer-path``: a FlashInfer source tree or installed package; an API is
  *supported* when its ``def``/``class`` exists, and *traced* when it carries
  ``@flashinfer_api(trace=...)``.  Read as text: nothing is imported.
- ``--trace-dump-dir``: the Definition JSON files ``FLASHINFER_TRACE_DUMP=1`` writes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError
from .schemas import KernelCall, TraceComparison

MAX_JSON = 4 * 1024 * 1024
MAX_FILES = 200_000


def read_definition_names(folder: Path) -> dict[str, str]:
    """name -> op_type for every Definition JSON below ``folder``."""
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    names: dict[str, str] = {}
    n = 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for f in sorted(files):
            if not f.endswith(".json"):
                continue
            n += 1
            if n > MAX_FILES:
                return names
            p = Path(root) / f
            name, op = p.stem, Path(root).name
            try:
                if p.stat().st_size <= MAX_JSON:
                    data = json.loads(p.read_text(encoding="utf-8"))
                    if isinstance(data, dict) and isinstance(data.get("name"), str):
                        name = data["name"]
                        op = data.get("op_type") if isinstance(data.get("op_type"), str) else op
            except (OSError, ValueError, RecursionError):
                pass
            names[name] = op
    return names


@dataclass
class FlashInferIndex:
    root: Path
    defined: set[str] = field(default_factory=set)
    traced: set[str] = field(default_factory=set)
    version: str | None = None


_DEF_RE = re.compile(r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+([A-Za-z_]\w*)", re.M)
_DECO_RE = re.compile(r"@flashinfer_(?:experimental_)?api\s*\(([^)]*)\)\s*\n(?:[ \t]*@[^\n]*\n)*[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)")


def index_flashinfer(path: Path) -> FlashInferIndex:
    pkg = flashinfer_package(path)
    if pkg is None:
        raise UsageError(f"--flashinfer-path {path}: no flashinfer package (flashinfer/__init__.py) found there")
    idx = FlashInferIndex(root=pkg)
    for root, dirs, files in os.walk(pkg, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in ("data", "csrc", "include", "__pycache__", "jit_cache"))
        for f in files:
            if not f.endswith(".py"):
                continue
            try:
                text = (Path(root) / f).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            idx.defined.update(_DEF_RE.findall(text))
            for args, name in _DECO_RE.findall(text):
                if "trace" in args:
                    idx.traced.add(name)
    for cand in (pkg / "_build_meta.py", pkg / "version.py", pkg / "__init__.py"):
        try:
            m = re.search(r'__version__\s*=\s*["\']([^"\']+)', cand.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
        if m:
            idx.version = m.group(1)
            break
    return idx


def flashinfer_package(path: Path) -> Path | None:
    for c in (path, path / "flashinfer", path / "python" / "flashinfer"):
        if (c / "__init__.py").is_file() and c.name == "flashinfer":
            return c
    return None


def api_status(fi: FlashInferIndex, api: str) -> tuple[str, bool | None]:
    """(supported|missing, traced) for a dotted API such as flashinfer.decode.BatchDecodeWithPagedKVCacheWrapper."""
    if not api:
        return "missing", None
    name = api.rsplit(".", 1)[-1]
    if name not in fi.defined:
        return "missing", False
    if name in fi.traced:
        return "supported", True
    # a wrapper class: traced when its run/forward is
    return "supported", (("run" in fi.traced or "forward" in fi.traced) if name.endswith("Wrapper") else False)


def apply_coverage(calls: list[KernelCall], definitions_dir: Path | None = None, flashinfer_path: Path | None = None,
                   trace_dump_dir: Path | None = None,
                   progress: Callable[[str], None] = lambda m: None) -> TraceComparison | None:
    if definitions_dir is not None:
        names = read_definition_names(definitions_dir)
        progress(f"dataset: {len(names)} definitions in {definitions_dir}")
        for k in calls:
            if not k.concrete:
                k.coverage.dataset = "unknown"
            else:
                k.coverage.dataset = "existing" if k.flashinfer_equivalent in names else "new"
    if flashinfer_path is not None:
        fi = index_flashinfer(flashinfer_path)
        progress(f"FlashInfer {fi.version or ''} at {fi.root}: {len(fi.defined)} names, {len(fi.traced)} traced APIs")
        for k in calls:
            status, traced = api_status(fi, k.fi_api)
            k.coverage.flashinfer = status  # type: ignore[assignment]
            k.coverage.trace_template = traced
    if trace_dump_dir is not None:
        seen = set(read_definition_names(trace_dump_dir))
        predicted = {k.flashinfer_equivalent for k in calls if k.concrete}
        for k in calls:
            if k.concrete:
                k.coverage.trace = "matched" if k.flashinfer_equivalent in seen else "predicted-not-seen"
        return TraceComparison(matched=sorted(predicted & seen), predicted_not_seen=sorted(predicted - seen),
                               seen_not_predicted=sorted(seen - predicted))
    return None
