"""Atomic file writes: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

OWNED_FILES = ("sglang_implementation.json", "kernel_calls.json", "model_definition.json", "model_config.json",
               "summary.md")
SNIPPETS = "code_snippets"
MARKER = ".sglang-baseline"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_output_set(output_dir: Path, files: dict[str, str]) -> None:
    """Write an analysis's files: each top-level file atomically, code_snippets/ as one folder swap.

    Files of ours that this run does not produce (model_config.json without --config) are
    removed; anything else in the folder is left alone.  A code_snippets/ folder that this
    tool did not write is never replaced.
    """
    from .errors import OutputError

    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / SNIPPETS
    if final.exists() and not (final / MARKER).is_file() and any(final.iterdir()):
        raise OutputError(f"{final} exists and was not written by sglang-baseline; not replacing it")
    staging = Path(tempfile.mkdtemp(prefix=".code_snippets-", dir=str(output_dir)))
    try:
        for rel, text in files.items():
            if rel.startswith(SNIPPETS + "/"):
                target = staging / rel[len(SNIPPETS) + 1:]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        for rel, text in files.items():
            if not rel.startswith(SNIPPETS + "/") and rel != "summary.md":
                write_atomic(output_dir / rel, text)
        ours = (output_dir / MARKER).is_file() or (final / MARKER).is_file()
        for name in OWNED_FILES:
            if name not in files and ours and (output_dir / name).is_file():
                (output_dir / name).unlink()
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=".old-snippets-", dir=str(output_dir)))
            os.replace(final, old / "x")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # the summary last: an agent that sees it can read everything else
    if "summary.md" in files:
        write_atomic(output_dir / "summary.md", files["summary.md"])
