"""An on-disk cache of parsed files, keyed by file content.

The key is a hash of the file's bytes (plus the Python version, since ASTs differ
between versions), so a changed file is never served stale.  Entries are written
to a temporary file and renamed into place, so two runs sharing the cache never
see half an entry; a corrupt or unreadable entry is treated as a miss.
"""

from __future__ import annotations

import ast
import os
import pickle
import sys
from pathlib import Path

from .fsutil import run_detached, write_atomic

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sglang-baseline"


class ParseCache:
    def __init__(self, root: Path, defer_writes: bool = False) -> None:
        self.dir = root / f"ast-py{sys.version_info.major}{sys.version_info.minor}-v{CACHE_FORMAT}"
        self.hits = 0
        self.misses = 0
        self.writable = True
        self.defer_writes = defer_writes
        self._pending: list[tuple[str, ast.Module]] = []

    def _path(self, digest: str) -> Path:
        return self.dir / digest[:2] / f"{digest}.pickle"

    def get(self, digest: str) -> ast.Module | None:
        if not digest:
            return None
        p = self._path(digest)
        try:
            with open(p, "rb") as fh:
                tree = pickle.load(fh)
        except FileNotFoundError:
            self.misses += 1
            return None
        except Exception:  # corrupt entry: ignore it, it will be rewritten
            self.misses += 1
            return None
        if not isinstance(tree, ast.Module):
            self.misses += 1
            return None
        self.hits += 1
        return tree

    def put(self, digest: str, tree: ast.Module) -> None:
        if not digest or not self.writable:
            return
        if self.defer_writes:
            self._pending.append((digest, tree))
            return
        self._write(digest, tree)

    def flush(self, background: bool = False, after_exit: bool = False) -> None:
        """Write deferred entries; with ``background``, from a detached process when the platform can fork,
        which with ``after_exit`` starts once this process has exited (see ``fsutil.run_detached``)."""
        pending, self._pending = self._pending, []
        if not pending:
            return

        def work() -> None:
            for digest, tree in pending:
                self._write(digest, tree)

        if not (background and run_detached(work, after_exit=after_exit)):
            work()

    def _write(self, digest: str, tree: ast.Module) -> None:
        if not self.writable:
            return
        try:
            write_atomic(self._path(digest), pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, RecursionError, pickle.PicklingError):
            self.writable = False  # read-only or full disk: keep working without writing
