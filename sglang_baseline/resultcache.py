"""A cache of finished analyses, checked against the content of every file they read.

The key covers everything an analysis depends on besides the source files: the tool
and catalog, the arguments, the config's content, the source's identity and the set
of model files (names, sizes, modification times: what model discovery reads).  The
entry records the content digest of every source file the analysis read; it is used
only if each of those files still has that content, so an edited file is never served
stale.  Entries are written atomically; a damaged entry is a miss.

An entry is two files: a small head (file digests, the summary line, the digest of
the outputs) and the outputs themselves, read only when the output folder does not
already hold them, so a warm ``--all`` reads a few kilobytes per model.  The outputs are
stored as written: a JSON line naming each file and its length in bytes, then the
files' bytes one after another (a ``--all`` run stores ~180 MB, which JSON string
escaping made cost twice as much).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import __version__
from .fsutil import encode_outputs, is_current, output_set_digest, write_atomic
from .index import iter_tree

FORMAT = 3


def _digest_bytes(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


_CATALOG_DIGEST: list[str] = []
_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def catalog_digest() -> str:
    if _CATALOG_DIGEST:
        return _CATALOG_DIGEST[0]
    h = hashlib.blake2b(digest_size=16)
    folder = Path(__file__).parent / "catalog"
    for p in sorted(folder.glob("*.json")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    tmpl = Path(__file__).parent / "templates" / "summary.md.j2"
    h.update(tmpl.read_bytes())
    _CATALOG_DIGEST.append(h.hexdigest())
    return _CATALOG_DIGEST[0]


def models_stamp(srt: Path) -> str:
    """Names, sizes and change times of models/*.py (what discovery reads).

    The inode change time is included because ``touch``/``utime`` can restore a
    modification time after an edit, but nothing restores ``st_ctime``.
    """
    h = hashlib.blake2b(digest_size=16)
    models = srt / "models"
    try:
        entries = sorted(os.scandir(models), key=lambda e: e.name)
    except OSError:
        return "none"
    for e in entries:
        if e.name.endswith(".py"):
            try:
                st = e.stat()
            except OSError:
                continue
            h.update(f"{e.name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns};".encode())
    return h.hexdigest()


def tree_stamp(package: Path) -> str:
    """Names, sizes and change times of every ``.py`` file under the ``sglang`` package.

    The key of an ``--all`` entry: its models share one index per worker, whose caches
    (class hierarchies, import guards, helper readings) were filled by whichever model
    came first, so a model's own list of files read can miss a file its result depends
    on.  Any change anywhere in the tree therefore invalidates every ``--all`` entry.
    """
    h = hashlib.blake2b(digest_size=16)
    for e in iter_tree(package, follow_symlinks=True):
        try:
            if e.is_dir():
                h.update(f"{e.path}/;".encode())  # a folder without .py files is still a package
            elif e.name.endswith(".py"):
                st = e.stat()
                h.update(f"{e.path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns};".encode())
        except OSError:
            continue
    return h.hexdigest()


class ResultCache:
    def __init__(self, root: Path) -> None:
        self.dir = root / f"results-v{FORMAT}"
        self._seen: dict[tuple[str, int, int, int, int], str] = _DIGESTS

    def key(self, material: dict[str, Any]) -> str:
        material = dict(material, tool=__version__, python=sys.version_info[:2], catalog=catalog_digest())
        return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:40]

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.dir / key[:2]
        return folder / f"{key}.json", folder / f"{key}.outputs"

    def lookup(self, key: str, srt: Path, root: Path) -> dict[str, Any] | None:
        p = self._paths(key)[0]
        try:
            entry = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("format") != FORMAT or \
                not isinstance(entry.get("outputs_digest"), str):
            return None
        for rel, digest in entry.get("files", {}).items():
            path = srt / rel if not rel.startswith("sglang/") else root / rel
            try:
                if self._digest(path) != digest:
                    return None
            except OSError:
                return None
        return entry

    def _digest(self, path: Path) -> str:
        """Content digest, computed once per file state (size, mtime, ctime, inode) in this process."""
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        got = self._seen.get(key)
        if got is None:
            got = _digest_bytes(path.read_bytes())
            self._seen[key] = got
        return got

    def restore(self, key: str, entry: dict[str, Any], output_dir: Path, write) -> bool:
        """Make ``output_dir`` hold the entry's outputs (``write(output_dir, files)`` only if it does
        not already); False when the stored outputs are missing (not kept) or damaged."""
        if is_current(output_dir, entry["outputs_digest"]):
            return True
        try:
            files = _unpack(self._paths(key)[1].read_bytes())
        except (OSError, ValueError):
            return False
        if files is None or output_set_digest(files) != entry["outputs_digest"]:
            return False
        write(output_dir, files)
        return True

    def store(self, key: str, files_read: dict[str, str], outputs: Mapping[str, str | bytes], line: str,
              extra: dict[str, Any] | None = None, digest: str | None = None, keep_outputs: bool = True) -> None:
        """Keep an analysis's outputs (``digest``: their ``output_set_digest``, when known).
        Without ``keep_outputs`` only their digest is kept: the entry then serves only while the
        output folder still holds them (``restore``); an ``--all`` run does this, rather than
        write its ~190 MB of outputs a second time."""
        data = encode_outputs(outputs)
        entry = {"format": FORMAT, "files": files_read, "outputs_digest": digest or output_set_digest(data),
                 "line": line, **(extra or {})}
        head, body = self._paths(key)
        try:  # the outputs first: a head is never visible without them
            if keep_outputs:
                write_atomic(body, _pack(data))
            else:
                body.unlink(missing_ok=True)  # (an earlier run's, which restore would otherwise use)
            write_atomic(head, json.dumps(entry))
        except OSError:
            pass  # a read-only cache only costs speed


def _pack(files: dict[str, bytes]) -> bytes:
    index = json.dumps([[rel, len(data)] for rel, data in files.items()]).encode() + b"\n"
    return b"".join([index, *files.values()])


def _unpack(blob: bytes) -> dict[str, bytes] | None:
    """The files of a stored entry; None when the entry is damaged."""
    head, sep, rest = blob.partition(b"\n")
    index = json.loads(head) if sep else None
    if not isinstance(index, list):
        return None
    files: dict[str, bytes] = {}
    at = 0
    for item in index:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                and type(item[1]) is int and item[1] >= 0):
            return None
        files[item[0]] = rest[at:at + item[1]]
        at += item[1]
    return files if at == len(rest) else None
