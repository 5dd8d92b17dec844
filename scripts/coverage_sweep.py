#!/usr/bin/env python3
"""Run the analysis over every registered model of SGLang releases and write docs/COVERAGE.md.

For each release (fetched from PyPI into the cache): how many registered classes were analysed,
how many have a complete module tree (the entry class was built without a constructor failing,
without running out of budget, and without an unresolved class), how many have warnings, and
the ten most common things that could not be resolved.  Crashes are counted and listed: a crash
is a bug in this tool.

Usage: python scripts/coverage_sweep.py [--releases 0.4.6 0.5.6 0.5.23] [--sample N] [--output FILE]
"""

from __future__ import annotations

import argparse
import collections
import gc
import re
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sglang_baseline.analysis import analyse  # noqa: E402
from sglang_baseline.discovery import Match, read_registrations  # noqa: E402
from sglang_baseline.index import Index, SourceTree  # noqa: E402
from sglang_baseline.report import build_implementation, build_kernel_calls  # noqa: E402
from sglang_baseline.source import SourceInfo, fetch_pypi_release  # noqa: E402

INCOMPLETE = {"constructor-raised", "budget-exhausted", "recursion-limit", "unresolved-class"}
# without a config, sizes are templates by design: counted, not listed as unresolved constructs
EXPECTED_WITHOUT_CONFIG = {"missing-dimension", "config"}


def construct_key(kind: str, message: str) -> str:
    """A warning reduced to its construct: no numbers, paths or long expressions."""
    m = re.sub(r"`[^`]*`", "…", message)
    m = re.sub(r"\b\d+\b", "N", m)
    m = re.sub(r"\([^()]{40,}\)", "(…)", m)
    return f"{kind}: {m[:110]}"


def sweep_release(version: str, cache: Path, sample: int | None) -> dict:
    root = fetch_pypi_release(version, cache, lambda m: print(m, file=sys.stderr))
    source = SourceInfo(kind="pypi", root=root, location=str(root), version=version)
    entries = read_registrations(source.srt)
    regs = [r for e in entries for r in e.classes]
    if sample:
        step = max(1, len(regs) // sample)
        regs = regs[::step][:sample]
    index = Index(SourceTree(root))
    stats = {"version": version, "classes": len(regs), "analysed": 0, "complete": 0, "with_warnings": 0,
             "crashed": [], "constructs": collections.Counter(), "seconds": 0.0, "definitions": 0, "symbolic": 0}
    t0 = time.perf_counter()
    for r in regs:
        try:
            a = analyse(source, r.class_name, None, [1], [1], [1], "flashinfer", entries=entries,
                        match=Match(r, "class", 1.0, []), index=index)
            calls = build_kernel_calls(a)
            impl = build_implementation(a, calls)
        except Exception as e:  # a crash is a bug: recorded, never hidden
            stats["crashed"].append(f"{r.class_name} ({r.file}): {type(e).__name__}: {e}"[:200])
            traceback.print_exc(file=sys.stderr)
            continue
        finally:
            gc.collect()
            gc.freeze()
        stats["analysed"] += 1
        kinds = {w.kind for w in impl.warnings}
        if a.primary.tree is not None and not kinds & INCOMPLETE:
            stats["complete"] += 1
        if any(w.kind not in EXPECTED_WITHOUT_CONFIG for w in impl.warnings):
            stats["with_warnings"] += 1
        stats["definitions"] += len({k.flashinfer_equivalent for k in calls})
        for w in impl.warnings:
            if w.kind in EXPECTED_WITHOUT_CONFIG:
                stats["symbolic"] += 1
                continue
            stats["constructs"][construct_key(w.kind, w.message)] += 1
    stats["seconds"] = time.perf_counter() - t0
    return stats


def render(results: list[dict], sample: int | None) -> str:
    lines = ["# Coverage", "",
             f"Written by `scripts/coverage_sweep.py` on {time.strftime('%Y-%m-%d')}"
             + (f", on a sample of {sample} classes per release" if sample else ", over every registered class")
             + ". Each class is analysed without a config (sizes stay symbolic), TP 1, EP 1, page size 1.",
             "A tree is *complete* when the entry class was built without a constructor failing, without "
             "running out of evaluation budget and without an unresolved class.", "",
             "| release | classes | analysed | complete tree | with warnings | crashed | definitions | "
             "symbolic sizes | seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in results:
        lines.append(f"| {s['version']} | {s['classes']} | {s['analysed']} | {s['complete']} | {s['with_warnings']} | "
                     f"{len(s['crashed'])} | {s['definitions']} | {s['symbolic']} | {s['seconds']:.0f} |")
    lines += ["", "*Symbolic sizes*: names left as templates because no config was given (expected; not "
              "listed below). *With warnings* counts classes with any other warning."]
    for s in results:
        lines += ["", f"## SGLang {s['version']}: the ten most common unresolved constructs", "",
                  "| count | construct |", "|---|---|"]
        for key, n in s["constructs"].most_common(10):
            lines.append(f"| {n} | {key.replace('|', '/')} |")
        if s["crashed"]:
            lines += ["", "Crashed (bugs):", ""] + [f"- {c}" for c in s["crashed"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--releases", nargs="+", default=["0.4.6", "0.5.6", "0.5.23"])
    ap.add_argument("--sample", type=int, default=None, help="analyse only N classes per release")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "sglang-baseline")
    ap.add_argument("--output", type=Path, default=REPO / "docs" / "COVERAGE.md")
    args = ap.parse_args(argv)
    gc.disable()
    results = [sweep_release(v, args.cache, args.sample) for v in args.releases]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(results, args.sample))
    print(f"wrote {args.output}", file=sys.stderr)
    return 1 if any(s["crashed"] for s in results) else 0


if __name__ == "__main__":
    sys.exit(main())
