"""``summary.md``: the human-readable summary, rendered with jinja2 from the output models.

Its own module so that a one-model run's main process need not import jinja2 (~20 ms): the
prefetch helper, idle by then, renders the summary from the JSON outputs (see prefetch).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jinja2
import jinja2.bccache

from .schemas import Implementation, KernelCall, TreeNode

_ENV: list[jinja2.Environment] = []


def _env() -> jinja2.Environment:
    if _ENV:
        return _ENV[0]
    _ENV.append(_make_env())
    return _ENV[0]


class _CompiledTemplates(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept beside the package's own bytecode (``templates/__pycache__``).

    Compiling summary.md.j2 takes ~25 ms of every run; loading its compiled code, ~1 ms.
    jinja2 checks each entry against the template's checksum and its own format and
    Python version; the file name carries jinja2's version.  Nothing is written when
    Python is told not to write bytecode, or where the package folder is read-only; an
    unreadable entry is compiled again.
    """

    def __init__(self, folder: Path | None = None) -> None:
        super().__init__(str(folder or Path(__file__).parent / "templates" / "__pycache__"),
                         f"%s.jinja2-{jinja2.__version__}.cache")

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # damaged (the checksum is a pickle): compile again
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if sys.dont_write_bytecode:
            return
        try:
            Path(self.directory).mkdir(exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            pass


def _make_env(compiled: Path | None = None) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("sglang_baseline", "templates"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, autoescape=False,
                             bytecode_cache=_CompiledTemplates(compiled))
    return env


def compile_templates() -> None:
    """Compile the summary template into the package's cache (what the first run does)."""
    _env().get_template("summary.md.j2")


def render_summary(impl: Implementation, calls: list[KernelCall], output_dir: Path, config_written: bool) -> str:
    defs = impl.definitions
    text_defs = [d for d in defs]
    inventory = {
        "existing": [d for d in text_defs if d.coverage.dataset == "existing"],
        "new_supported": [d for d in text_defs if d.coverage.dataset == "new" and d.coverage.flashinfer == "supported"],
        "new_missing": [d for d in text_defs if d.coverage.dataset == "new" and d.coverage.flashinfer == "missing"],
        "new_unknown": [d for d in text_defs if d.coverage.dataset == "new" and d.coverage.flashinfer == "unknown"],
    }
    tmpl = _env().get_template("summary.md.j2")
    config_arg = output_dir / "model_config.json" if config_written else "<the model's config.json>"
    next_cmd = (f"/generate-model-definition --config {config_arg} "
                f"--sglang-impl {output_dir / 'sglang_implementation.json'} --model-name {impl.model_name}")
    return tmpl.render(impl=impl, calls=calls, defs=defs, inventory=inventory, next_cmd=next_cmd,
                       config_written=config_written, render_tree=_render_tree(impl.module_tree),
                       has_dataset=any(d.coverage.dataset != "unknown" for d in defs))


def _render_tree(node: TreeNode, depth: int = 0, limit: int = 400) -> str:
    lines: list[str] = []

    def walk(n: TreeNode, d: int) -> None:
        if len(lines) >= limit:
            return
        count = f" ×{n.count}" if n.count != 1 else ""
        cond = f"  (if {n.condition})" if n.condition else ""
        alias = f"  (same module as {n.alias_of})" if n.alias_of else ""
        helper = "  (helper, not called in forward)" if n.helper else ""
        scope = "  [vision]" if n.scope != "text" and d and n.scope != "text" else ""
        defs = f"  → {', '.join(n.definitions)}" if n.definitions else ""
        lines.append(f"{'  ' * d}{n.name}: {n.class_name}{count}{defs}{cond}{alias}{helper}{scope}")
        for c in n.children:
            walk(c, d + 1)

    walk(node, depth)
    if len(lines) >= limit:
        lines.append("  ... (tree truncated; see sglang_implementation.json)")
    return "\n".join(lines)
