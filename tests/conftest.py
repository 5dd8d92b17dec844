"""Shared fixtures: real SGLang releases fetched from PyPI at test time, and a CLI runner.

Releases are downloaded once into a cache (``$SGLANG_BASELINE_TEST_CACHE``, default
``~/.cache/sglang-baseline-tests``) with the tool's own PyPI fetcher and unpacked
(Python files only).  Nothing of SGLang is committed to this repository.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from sglang_baseline.cli import main
from sglang_baseline.source import fetch_pypi_release

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
RELEASES = ("0.4.6", "0.5.6", "0.5.23")


def cache_root() -> Path:
    return Path(os.environ.get("SGLANG_BASELINE_TEST_CACHE", Path.home() / ".cache" / "sglang-baseline-tests"))


_RELEASE_ROOTS: dict[str, Path] = {}


def release_root(version: str) -> Path:
    """The unpacked release (folder holding ``sglang/``), downloaded on first use."""
    if version not in _RELEASE_ROOTS:
        _RELEASE_ROOTS[version] = fetch_pypi_release(version, cache_root(), lambda m: None)
    return _RELEASE_ROOTS[version]


@pytest.fixture(scope="session")
def release():
    return release_root


@dataclass
class Result:
    code: int
    out: str
    err: str
    output_dir: Path | None = None

    def json(self, name: str):
        assert self.output_dir is not None
        return json.loads((self.output_dir / name).read_text(encoding="utf-8"))

    @property
    def names(self) -> set[str]:
        return {k["flashinfer_equivalent"] for k in self.json("kernel_calls.json")}


def run_cli(*args: str, output_dir: Path | None = None) -> Result:
    argv = list(args)
    if output_dir is not None:
        argv += ["--output-dir", str(output_dir)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return Result(code, out.getvalue(), err.getvalue(), output_dir)


@pytest.fixture
def cli(tmp_path):
    """Run the CLI in-process; outputs go to a fresh folder; the parse cache is per test session."""
    cache = tmp_path.parent / "parse-cache"

    def go(*args: str, out: str | None = "out") -> Result:
        extra = ["--cache-dir", str(cache)] if "--cache-dir" not in args else []
        return run_cli(*args, *extra, output_dir=(tmp_path / out) if out else None)

    return go


_ANALYSES: dict[tuple, Result] = {}


@pytest.fixture(scope="session")
def analysed(tmp_path_factory):
    """Run an analysis once per session and share its outputs (read-only) between tests."""
    base = tmp_path_factory.mktemp("analyses")

    def go(version: str, model: str, config: str | None = None, *extra: str) -> Result:
        key = (version, model, config, extra)
        if key not in _ANALYSES:
            out = base / f"run{len(_ANALYSES)}"
            args = ["--model-name", model, "--sglang-path", str(release_root(version)), "--quiet",
                    "--cache-dir", str(base / "cache")]
            if config:
                args += ["--config", str(DATA / config)]
            r = run_cli(*args, *extra, output_dir=out)
            assert r.code == 0, r.err
            _ANALYSES[key] = r
        return _ANALYSES[key]

    return go


@pytest.fixture
def tree(tmp_path, release) -> Path:
    """A copy of SGLang 0.4.6 that a test may edit."""
    root = tmp_path / "tree"
    shutil.copytree(release("0.4.6") / "sglang", root / "sglang")
    return root


def synthetic_tree(root: Path, files: dict[str, str]) -> Path:
    """A minimal SGLang tree at ``root``: the ``sglang.srt.models`` and ``.layers`` packages and
    ``files`` (paths relative to ``sglang/srt``)."""
    srt = root / "sglang" / "srt"
    for d in (srt / "models", srt / "layers"):
        d.mkdir(parents=True, exist_ok=True)
    for d in (srt.parent, srt, srt / "models", srt / "layers"):
        (d / "__init__.py").write_text("")
    for rel, text in files.items():
        (srt / rel).write_text(text)
    return root


def norm_model(name: str, norm_module: str) -> str:
    """A model file: ``<name>ForCausalLM`` holding one ``RMSNorm`` imported from ``norm_module``."""
    return (f"from torch import nn\nfrom {norm_module} import RMSNorm\n\n\nclass {name}ForCausalLM(nn.Module):\n"
            "    def __init__(self, config, quant_config=None, prefix=''):\n        super().__init__()\n"
            "        self.norm = RMSNorm(config.hidden_size)\n\n    def forward(self, x):\n        return self.norm(x)\n\n\n"
            f"EntryClass = {name}ForCausalLM\n")
