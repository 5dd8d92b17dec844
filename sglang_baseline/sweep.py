"""``--all``: analyse every registered model in worker processes.

Each worker keeps one index of the source tree for all the models it analyses (a
file parsed for one model is reused by the next) and all workers share the parse
cache on disk.  Each model's outputs go to ``<output-dir>/<ClassName>/``; the run
ends with ``index.json`` and ``index.md``: one row per model.  A model that fails
is recorded with its error; it does not stop the others.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.util
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .cache import ParseCache
from .discovery import Match, ModelFileEntry, Registration, read_registrations
from .errors import EXIT_OK, UserError
from .fsutil import usable_cores
from .hfconfig import ModelConfig, load_config
from .resultcache import tree_stamp
from .source import SourceInfo


@dataclass
class Row:
    model: str
    file: str
    classes: list[str]
    status: str = "ok"  # ok | error
    error: str = ""
    config: str = ""
    op_types: list[str] = field(default_factory=list)
    definitions: int = 0
    dataset_names: int = 0
    proposed_names: int = 0
    warnings: int = 0
    seconds: float = 0.0
    output: str = ""


# ---------------------------------------------------------------------------- configs


def load_config_dir(folder: Path) -> dict[str, ModelConfig]:
    """architecture -> config, for every config.json (or *.json) in ``folder``."""
    if not folder.is_dir():
        raise UserError(f"--config-dir {folder} is not a folder")
    out: dict[str, ModelConfig] = {}
    files = sorted(list(folder.glob("*.json")) + list(folder.glob("*/config.json")))
    for f in files:
        try:
            cfg = load_config(f)
        except UserError:
            continue  # not a model config (or a broken one): skipped, not fatal
        archs = list(cfg.architectures) + [a for a in cfg.text.get("architectures", []) if isinstance(a, str)]
        for a in archs:
            out.setdefault(a, cfg)
    return out


# ---------------------------------------------------------------------------- workers

_STATE: dict[str, Any] = {}


def _init_worker(state: dict[str, Any]) -> None:
    _STATE.clear()
    _STATE.update(state)
    if state.get("worker"):  # imported now, while the main process stamps the tree (see run_all)
        from . import analysis, report, serialize, summary  # noqa: F401


def _file_digest(path: str) -> str:
    import hashlib

    return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


def _file_group(task: tuple[list[tuple[str, str, str | None]], str]) -> list[dict[str, Any]]:
    """Analyse the registrations of one model file, in one worker: they share its parse and readings.
    ``task``: those registrations, and the tree's stamp (see ``resultcache.tree_stamp``)."""
    registrations, stamp = task
    _STATE["tree_stamp"] = stamp
    return [_one(t) for t in registrations]


def _one(task: tuple[str, str, str | None]) -> dict[str, Any]:
    """Analyse one registration; never raise (errors become rows)."""
    module, class_name, config_path = task
    from .analysis import analyse
    from .fsutil import encode_outputs, write_output_set
    from .index import Index, SourceTree
    from .report import build_implementation, build_kernel_calls, render_outputs

    source: SourceInfo = _STATE["source"]
    entries: list[ModelFileEntry] = _STATE["entries"]
    reg = next(r for e in entries for r in e.classes if r.module == module and r.class_name == class_name)
    row = Row(model=class_name, file=reg.file, classes=[r.class_name for e in entries if e.module == module
                                                          for r in e.classes])
    t0 = time.perf_counter()
    out_dir = Path(_STATE["output_dir"]) / _STATE["names"][(module, class_name)]
    row.output = str(out_dir)
    try:
        results = key = None
        if _STATE["cache_dir"]:
            from .resultcache import ResultCache

            results = ResultCache(Path(_STATE["cache_dir"]))
            key = results.key({"all": True, "module": module, "model": class_name, "config": config_path and [
                config_path, _file_digest(config_path)], "tp": _STATE["tp"], "ep": _STATE["ep"],
                "page_size": _STATE["page_size"], "backend": _STATE["attention_backend"], "output_dir": str(out_dir),
                "source": [source.kind, str(source.root), source.version, source.commit],
                "tree": _STATE["tree_stamp"]})
            entry = results.lookup(key, source.srt, source.root)
            if entry is not None and results.restore(key, entry, out_dir, write_output_set):
                row = Row(**entry["row"])
                row.seconds = round(time.perf_counter() - t0, 3)
                return asdict(row)
        index = _STATE.get("index")
        if index is None:
            # Deferred writes: large files are then parsed lazily (cheaper than whole pickled
            # trees); the small files' trees are written when the worker exits, from a detached
            # process (_flush_at_exit), so no model waits on pickling.
            cache = ParseCache(Path(_STATE["cache_dir"]), defer_writes=True) if _STATE["cache_dir"] else None
            index = Index(SourceTree(source.root), None, cache)
            _STATE["index"] = index
            if cache is not None and _STATE.get("worker"):
                multiprocessing.util.Finalize(cache, cache.flush, kwargs={"background": True, "after_exit": True},
                                            exitpriority=10)
        config = load_config(Path(config_path)) if config_path else None
        row.config = config_path or ""
        match = Match(chosen=reg, how="class", score=1.0, alternatives=[])
        a = analyse(source, class_name, config, _STATE["tp"], _STATE["ep"], _STATE["page_size"],
                    _STATE["attention_backend"], entries=entries, match=match, index=index)
        calls = build_kernel_calls(a)
        impl = build_implementation(a, calls)
        files = encode_outputs(render_outputs(a, out_dir, impl, calls))  # encoded once: hashed, written, cached
        digest = write_output_set(out_dir, files)
        names = {k.flashinfer_equivalent: k.status for k in calls}
        row.op_types = sorted({k.op_type for k in calls})
        row.definitions = len(names)
        row.dataset_names = sum(1 for s in names.values() if s == "dataset")
        row.proposed_names = sum(1 for s in names.values() if s == "proposed")
        row.warnings = len(impl.warnings)
        if results is not None and key:
            entry_row = asdict(row)
            results.store(key, dict(a.index.files_read), files, "", extra={"row": entry_row}, digest=digest,
                          keep_outputs=False)  # the output folder holds them
    except Exception as e:  # one model's failure is a row, not a crash
        row.status = "error"
        row.error = f"{type(e).__name__}: {e}"[:400]
        if _STATE.get("verbose"):
            traceback.print_exc()
    row.seconds = round(time.perf_counter() - t0, 3)
    # No collection between models: the analysis runs with the cyclic collector off, and a
    # worker's cycles (~0.25 MB a model) are left to its exit; collecting after each model
    # scanned every object the model added to the shared index (~0.5 s of each worker).
    return asdict(row)


# ---------------------------------------------------------------------------- driver


class _Bar:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.done = 0
        self.enabled = enabled and sys.stderr.isatty()
        self.t0 = time.perf_counter()

    def step(self, label: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        rate = self.done / max(time.perf_counter() - self.t0, 1e-6)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                         f"{rate:4.1f}/s {label[:40]:<40}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _dir_names(regs: list[Registration]) -> dict[tuple[str, str], str]:
    names: dict[tuple[str, str], str] = {}
    seen: dict[str, int] = {}
    for r in regs:
        seen[r.class_name] = seen.get(r.class_name, 0) + 1
    for r in regs:
        names[(r.module, r.class_name)] = r.class_name if seen[r.class_name] == 1 else f"{r.class_name}__{r.stem}"
    return names


def run_all(source: SourceInfo, args: argparse.Namespace, cache_dir: Path, report: Any) -> int:
    entries = read_registrations(source.srt)
    regs = [r for e in entries for r in e.classes]
    if not regs:
        raise UserError(f"no model registrations (EntryClass) found under {source.srt / 'models'}")
    configs = load_config_dir(args.config_dir) if args.config_dir else {}
    # larger model files first: better load balance across workers
    sizes = {e.file: (source.srt / e.file).stat().st_size for e in entries}
    regs.sort(key=lambda r: (-sizes.get(r.file, 0), r.file, r.class_name))
    tasks = [(r.module, r.class_name, str(configs[r.class_name].path) if r.class_name in configs else None)
             for r in regs]
    jobs = args.jobs or usable_cores()
    out_dir: Path = args.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {
        "source": source, "entries": entries, "output_dir": str(out_dir),
        "cache_dir": None if args.no_cache else str(cache_dir), "tp": args.tp, "ep": args.ep,
        "page_size": args.page_size, "attention_backend": args.attention_backend,
        "names": _dir_names(regs), "verbose": args.verbose,
    }
    report(f"analysing {len(tasks)} registered models with {jobs} worker process{'es' if jobs > 1 else ''}"
           + (f"; {len(configs)} configs from {args.config_dir}" if configs else ""))
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    bar = _Bar(len(tasks), not args.quiet)

    def stamp() -> str:  # every result-cache key holds it; ~60 ms of stat calls
        return tree_stamp(source.root / "sglang") if not args.no_cache else ""

    if jobs == 1:
        _init_worker(state)
        _STATE["tree_stamp"] = stamp()
        for t in tasks:
            rows.append(_one(t))
            bar.step(rows[-1]["model"])
        index = _STATE.get("index")
        if index is not None and index.cache is not None:
            index.cache.flush(background=True, after_exit=True)
    else:
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        # the pool first: its workers import the analysis while this process stamps the tree
        with ctx.Pool(jobs, initializer=_init_worker, initargs=({**state, "worker": True},),
                      maxtasksperchild=400) as pool:
            # one task per model file (tasks are in file order): the classes of a file share the
            # worker's parse of it and its readings, instead of alternating between workers
            groups: dict[str, list[tuple[str, str, str | None]]] = {}
            for t in tasks:
                groups.setdefault(t[0], []).append(t)
            stamped = stamp()
            for done in pool.imap_unordered(_file_group, [(g, stamped) for g in groups.values()], chunksize=1):
                for row in done:
                    rows.append(row)
                    bar.step(row["model"])
            pool.close()  # let the workers exit normally: they flush their parse-cache writes
            pool.join()
    bar.close()
    rows.sort(key=lambda r: (r["file"], r["model"]))
    seconds = time.perf_counter() - t0
    write_index(out_dir, rows, source, seconds)
    failed = [r for r in rows if r["status"] != "ok"]
    report(f"{len(rows) - len(failed)} of {len(rows)} models analysed in {seconds:.1f}s"
           + (f"; {len(failed)} failed (see index.md)" if failed else ""))
    if not args.quiet:
        print(f"wrote {out_dir / 'index.md'} ({len(rows)} models)")
    return EXIT_OK


def write_index(out_dir: Path, rows: list[dict[str, Any]], source: SourceInfo, seconds: float) -> None:
    from .fsutil import write_atomic

    doc = {"source": {"kind": source.kind, "location": source.location, "version": source.version,
                      "commit": source.commit}, "seconds": round(seconds, 2), "models": rows}
    write_atomic(out_dir / "index.json", json.dumps(doc, indent=2) + "\n")
    lines = [f"# SGLang models: {source.describe()}", "",
             f"{len(rows)} registered classes; {sum(1 for r in rows if r['status'] == 'ok')} analysed.", "",
             "| model | file | classes in file | op types | definitions (dataset / proposed) | warnings | status |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        status = "ok" if r["status"] == "ok" else f"error: {r['error'][:80]}"
        lines.append(f"| [{r['model']}]({Path(r['output']).name}/summary.md) | `{r['file']}` | "
                     f"{', '.join(r['classes'])} | {', '.join(r['op_types'])} | {r['definitions']} "
                     f"({r['dataset_names']} / {r['proposed_names']}) | {r['warnings']} | {status} |")
    write_atomic(out_dir / "index.md", "\n".join(lines) + "\n")
