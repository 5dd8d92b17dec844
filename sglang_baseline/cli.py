"""Command line: arguments, exit codes and progress.  The work is done elsewhere."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

from . import __version__, deepstack
from .errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    OutputError,
    UsageError,
    UserError,
)

EXAMPLES = """\
examples:
  find-sglang-baseline --model-name llama
        analyse Llama from ./sglang (cloned, or fetched from PyPI when offline)
  find-sglang-baseline --model-name llama --sglang-path ~/repos/sglang --output-dir ./llama_analysis
        use an existing checkout (or an unpacked wheel / site-packages) and write elsewhere
  find-sglang-baseline --model-name deepseek-v3 --config DeepSeek-V3/config.json --tp 8 --ep 8
        real dimensions from a Hugging Face config, per tensor/expert-parallel layout
  find-sglang-baseline --model-name kimi-k2 --config moonshotai--Kimi-K2-Instruct.json
        the config's architectures decide the class (DeepseekV3ForCausalLM)
  find-sglang-baseline --model-name llama --config llama.json --tp 1,2,4 --page-size 1,64
        one kernel_calls.json entry per module, kernel and layout
  find-sglang-baseline --model-name llama --attention-backend triton
        name attention for another backend
  find-sglang-baseline --model-name llama --ref v0.5.6
        clone (or fetch from PyPI) a given tag; with an existing checkout, check it out
  find-sglang-baseline --model-name llama --update
        bring an existing clone to the latest commit first
  find-sglang-baseline --model-name llama --no-clone --sglang-path ./sglang
        never clone: fail if the path does not exist
  find-sglang-baseline --list --sglang-path ./sglang --quiet
        every model the source registers: file, classes, architectures (no progress lines)
  find-sglang-baseline --model-name qwen3-moe --config qwen3.json --definitions-dir flashinfer-trace/definitions
        mark each name as existing in a FlashInfer-Bench dataset or new
  find-sglang-baseline --model-name qwen3-moe --flashinfer-path ~/repos/flashinfer
        say whether FlashInfer supports each new definition (and has a trace template)
  find-sglang-baseline --model-name llama --trace-dump-dir ./fi_trace_dump
        compare the prediction with what FlashInfer's trace dump saw on a GPU
  find-sglang-baseline --all --config-dir ./hf_configs --jobs 2 --output-dir ./all_models
        analyse every registered model, in parallel worker processes
  find-sglang-baseline --schema
        print the JSON Schemas of the two output files
  find-sglang-baseline --model-name llama --cache-dir /tmp/sgb-cache --no-cache --verbose
        cache location, bypass the cache, show tracebacks on errors

exit codes: 0 ok, 2 bad argument or config, 3 no such model, 4 SGLang source unusable,
            5 model source cannot be analysed, 6 output folder unusable, 130 interrupted
"""


def _int_list(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            v = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not an integer (expected e.g. 1,2,4)") from None
        if v <= 0 or v > 4096:
            raise argparse.ArgumentTypeError(f"{v} is out of range (1..4096)")
        if v not in out:
            out.append(v)
    if not out:
        raise argparse.ArgumentTypeError("expected a comma-separated list of integers, e.g. 1,2,4")
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise UsageError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="find-sglang-baseline",
        description="Find a model's implementation in SGLang's source (statically: no GPU, no weights, no import "
                    "of SGLang), its module tree, forward pass and every kernel it runs, and name each as a "
                    "FlashInfer-Bench Definition.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-name", help="model to analyse: an architecture class, a model file stem or a keyword "
                                        "(llama, deepseek-v3, kimi-k2); required unless --list/--all/--schema")
    p.add_argument("--sglang-path", default="./sglang", type=Path,
                   help="SGLang git checkout, unpacked wheel or site-packages (default ./sglang; cloned when missing)")
    p.add_argument("--output-dir", default="./model_analysis", type=Path, help="where outputs go (default ./model_analysis)")
    p.add_argument("--config", type=Path, help="Hugging Face config.json (or a folder holding one) for real dimensions")
    p.add_argument("--tp", type=_int_list, default=[1], help="tensor-parallel sizes, comma-separated (default 1)")
    p.add_argument("--ep", type=_int_list, default=[1], help="expert-parallel sizes, comma-separated (default 1)")
    p.add_argument("--page-size", type=_int_list, default=[1], help="KV-cache page sizes, comma-separated (default 1)")
    p.add_argument("--attention-backend", default="flashinfer",
                   help="attention backend SGLang would use (default flashinfer; MLA models get its MLA backend)")
    p.add_argument("--ref", help="git ref or tag to check out (for a clone, or the PyPI release v0.5.6 -> 0.5.6)")
    p.add_argument("--update", action="store_true", help="bring an existing clone to the latest commit")
    p.add_argument("--no-clone", action="store_true", help="never clone or download; fail if --sglang-path is missing")
    p.add_argument("--list", action="store_true", help="list every model the source registers and exit")
    p.add_argument("--all", action="store_true", help="analyse every registered model into <output-dir>/<model>/")
    p.add_argument("--jobs", type=int, default=0, help="worker processes for --all (default: every core this process may use)")
    p.add_argument("--config-dir", type=Path, help="with --all: configs whose architectures pick each model")
    p.add_argument("--definitions-dir", type=Path, help="a flashinfer-trace definitions/ folder: mark names existing or new")
    p.add_argument("--flashinfer-path", type=Path, help="FlashInfer source tree or installed package: classify new names")
    p.add_argument("--trace-dump-dir", type=Path, help="Definition JSON files from FLASHINFER_TRACE_DUMP=1 on a GPU")
    p.add_argument("--cache-dir", type=Path, help="cache for parsed files, finished results and PyPI downloads "
                                                  "(default $XDG_CACHE_HOME/sglang-baseline)")
    p.add_argument("--no-cache", action="store_true",
                   help="analyse afresh: do not read or write the parse and result caches")
    p.add_argument("--schema", action="store_true", help="print the JSON Schemas of the outputs and exit")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    g.add_argument("--verbose", "-v", action="store_true", help="more progress; tracebacks on errors")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


class Reporter:
    def __init__(self, quiet: bool, verbose: bool) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:5.1f}s] {msg}", file=sys.stderr, flush=True)


def entry() -> None:
    """Console entry point: run, flush, and leave without tearing the heap down.

    A finished analysis holds millions of small objects; freeing them one by one at
    interpreter exit costs about half a second and achieves nothing; so does the first
    pass of the cyclic collector if it is switched back on (~50 ms for DeepSeek-V3,
    ~1.3 s for a one-worker ``--all``).  Every file we
    write is closed (atomically renamed) before ``main`` returns.
    """
    gc.disable()  # and left off: switched back on, its first pass would scan all the run still holds
    _no_pydantic_plugins()
    code = _run(None)  # (not main: the parse-cache writer waits for this exit, see ParseCache.flush)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _no_pydantic_plugins() -> None:
    """Spare this process pydantic's plugin lookup, which it does when it builds its first
    validator: importing ``importlib.metadata`` (and the ``email`` package) and reading the
    entry points of every installed distribution, ~20 ms of each run's ~0.2 s of imports.
    The tool uses no pydantic plugin, and a plugin installed for other programs (an
    observability hook) has nothing to observe here but the tool's own models.  Only the
    console entry does this: it owns its process, whereas a program calling ``main`` may
    want its plugins."""
    if "pydantic" not in sys.modules:
        import types

        stub = types.ModuleType("pydantic.plugin._loader")
        stub.get_plugins = lambda: ()  # what pydantic's loader returns when no plugin is installed
        stub.__getattr__ = _real_plugin_loader  # anything else a later pydantic asks of it
        sys.modules.setdefault("pydantic.plugin._loader", stub)


def _real_plugin_loader(name: str):
    if name.startswith("__"):  # the import system's own questions (``__path__``, ...)
        raise AttributeError(name)
    import importlib

    sys.modules.pop("pydantic.plugin._loader", None)
    return getattr(importlib.import_module("pydantic.plugin._loader"), name)


def main(argv: list[str] | None = None) -> int:
    """Run the tool in this process, which lives on (``entry`` is the console script's)."""
    try:
        return _run(argv)
    finally:
        from .fsutil import release_detached

        release_detached()  # the parse-cache writer need not wait for this process to exit


def _run(argv: list[str] | None) -> int:
    verbose = "--verbose" in (argv or sys.argv[1:]) or "-v" in (argv or sys.argv[1:])
    # a short-lived process that allocates millions of small objects and frees them by
    # reference counting: the cyclic collector only costs time here (see analysis.analyse)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return deepstack.call(_main, argv, verbose)
    finally:
        if gc_was_enabled:
            gc.enable()


def _main(argv: list[str] | None, verbose: bool) -> int:
    try:
        args = build_parser().parse_args(argv)
        return run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        if verbose:
            import traceback  # (only here: ~3 ms of every run's imports otherwise)

            traceback.print_exc()
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        try:
            sys.stdout.close()
        except Exception:
            pass
        return EXIT_OK
    except Exception as e:  # a bug: one line unless --verbose
        print(f"error: internal error: {type(e).__name__}: {e} (rerun with --verbose for the traceback)",
              file=sys.stderr)
        if verbose:
            import traceback

            traceback.print_exc()
        return EXIT_INTERNAL


def run(args: argparse.Namespace) -> int:
    from .cache import ParseCache, default_cache_dir

    report = Reporter(args.quiet, args.verbose)
    if args.schema:
        from .serialize import json_schemas

        print(json.dumps(json_schemas(), indent=2))
        return EXIT_OK
    if not (args.list or args.all or args.model_name):
        raise UsageError("--model-name is required (or use --list, --all or --schema)")
    if args.jobs < 0:
        raise UsageError("--jobs must be 0 (every usable core) or positive")
    if args.config_dir is not None and not args.all:
        raise UsageError("--config-dir goes with --all")
    for flag, path in (("--definitions-dir", args.definitions_dir), ("--trace-dump-dir", args.trace_dump_dir),
                       ("--flashinfer-path", args.flashinfer_path), ("--config-dir", args.config_dir)):
        if path is not None and not path.is_dir():
            raise UsageError(f"{flag} {path} is not a folder")
    if args.flashinfer_path is not None:
        from .coverage import flashinfer_package

        if flashinfer_package(args.flashinfer_path) is None:
            raise UsageError(f"--flashinfer-path {args.flashinfer_path}: no flashinfer package "
                             f"(flashinfer/__init__.py) found there")
    cache_dir = args.cache_dir or default_cache_dir()
    cache = None if args.no_cache else ParseCache(cache_dir, defer_writes=True)

    from .source import SGLANG_URL, prepare_source

    url = os.environ.get("SGLANG_BASELINE_REPO_URL", SGLANG_URL)  # a mirror (or a test repository)
    source = prepare_source(args.sglang_path, ref=args.ref, update=args.update, no_clone=args.no_clone,
                            cache_dir=cache_dir, url=url, progress=report)
    if source.note and source.kind != "pypi":
        report(source.note)
    report(f"source: {source.describe()}")

    if args.list:
        return _list_models(source)

    config = None
    if args.config is not None:
        from .hfconfig import load_config

        config = load_config(args.config)
        for w in config.warnings:
            report(f"config: {w}")

    if args.all:
        from .sweep import run_all

        check_output_dir(args.output_dir, source.root)
        return run_all(source, args, cache_dir, report)

    check_output_dir(args.output_dir, source.root)
    from .fsutil import encode_outputs, write_output_set

    results, key = _result_cache(args, cache_dir, source, config)
    if results is not None:
        entry = results.lookup(key, source.srt, source.root)
        if entry is not None and results.restore(key, entry, args.output_dir,
                                                 lambda d, f: _write(write_output_set, d, f)):
            report("unchanged sources, config and arguments: outputs from the result cache")
            if not args.quiet:
                print(entry["line"])
            return EXIT_OK

    # forked before the analysis is imported: see prefetch
    from .prefetch import start as start_prefetch

    prefetch = start_prefetch(source.root, None if args.no_cache else cache_dir,
                              (args.tp[0], args.ep[0], args.page_size[0], args.attention_backend),
                              config.raw if config is not None else None)

    try:
        from .analysis import analyse

        a = analyse(source, args.model_name, config, args.tp, args.ep, args.page_size, args.attention_backend,
                    cache=cache, progress=report, prefetch=prefetch)
        from .coverage import apply_coverage
        from .report import build_implementation, build_kernel_calls, render_outputs

        calls = build_kernel_calls(a)
        trace = apply_coverage(calls, definitions_dir=args.definitions_dir, flashinfer_path=args.flashinfer_path,
                               trace_dump_dir=args.trace_dump_dir, progress=report)
        impl = build_implementation(a, calls, trace)
        # the helper makes the JSON files and summary.md meanwhile; encoded once: hashed, written, cached
        files = encode_outputs(render_outputs(a, args.output_dir, impl, calls,
                                              serialize=prefetch.serialize if prefetch is not None else None))
    finally:  # the helper stops with the run's outputs, however that ends
        if prefetch is not None:
            prefetch.close()
    if prefetch is not None and prefetch.trouble and args.verbose:
        report(f"helper process {prefetch.trouble}; its work was done here")
    digest = _write(write_output_set, args.output_dir, files)
    names = sorted({k.flashinfer_equivalent for k in calls})
    report(f"{impl.class_name} ({impl.model_file_srt}): {len(names)} definitions, {len(calls)} kernel_calls "
           f"entries, {len(impl.warnings)} warnings, {a.seconds:.2f}s")
    line = (f"wrote {args.output_dir}/summary.md ({impl.class_name} in {impl.model_file_srt}; "
            f"{len(names)} definitions)")
    if results is not None:
        results.store(key, dict(a.index.files_read), files, line, digest=digest)
    if not args.quiet:
        print(line)
    if cache is not None:
        cache.flush(background=True, after_exit=True)
    return EXIT_OK


def _write(writer, output_dir: Path, files: dict[str, bytes]) -> str:
    try:
        return writer(output_dir, files)
    except OSError as e:
        raise OutputError(f"cannot write to {output_dir}: {e.strerror or e}") from None


def _result_cache(args: argparse.Namespace, cache_dir: Path, source, config):
    """The result cache and this run's key; (None, '') when results must be computed."""
    if args.no_cache or args.definitions_dir or args.flashinfer_path or args.trace_dump_dir:
        return None, ""
    from .resultcache import ResultCache, models_stamp

    material = {
        "model": args.model_name, "tp": args.tp, "ep": args.ep, "page_size": args.page_size,
        "backend": args.attention_backend, "output_dir": str(args.output_dir),
        "config": None if config is None else [str(config.path), config.digest],
        "source": [source.kind, str(source.root), source.location, source.version, source.commit, source.ref,
                   source.note],
        "models": models_stamp(source.srt),
    }
    results = ResultCache(cache_dir)
    return results, results.key(material)


def _list_models(source) -> int:
    from .discovery import read_registrations

    entries = read_registrations(source.srt)
    total = 0
    print(f"# {source.describe()}")
    print(f"{'file':<40} {'classes (architectures)'}")
    for e in entries:
        if not e.classes:
            continue
        total += len(e.classes)
        print(f"{e.file:<40} {', '.join(r.class_name for r in e.classes)}")
    print(f"# {total} registered classes in {sum(1 for e in entries if e.classes)} files")
    return EXIT_OK


def check_output_dir(out: Path, sglang_root: Path) -> None:
    """Refuse output folders that are files, unwritable, or inside the SGLang tree."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--output-dir {out} exists and is not a folder")
    try:
        resolved = out.resolve()
        tree = sglang_root.resolve()
    except OSError as e:
        raise OutputError(f"--output-dir {out}: {e.strerror or e}") from None
    sg = tree / "sglang"
    if resolved == sg or sg in resolved.parents:
        raise OutputError(f"--output-dir {out} is inside the SGLang tree ({sg}); choose another folder")
    probe = resolved
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"--output-dir {out}: {probe} is not writable")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
