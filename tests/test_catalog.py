"""The catalog is validated by pydantic once per content; later runs load the validated form."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from sglang_baseline import catalog

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A copy of the shipped catalog's JSON files, nothing compiled yet; Python may write bytecode."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    for name in catalog.PARTS.values():
        shutil.copy(catalog.HERE / name, tmp_path / name)
    return tmp_path


def _load(folder: Path) -> catalog.Catalog:
    return catalog.load_catalog.__wrapped__(folder)  # (not the per-process memo)


def _compiled(folder: Path) -> list[Path]:
    return sorted((folder / "__pycache__").glob("catalog-*.pickle"))


def test_the_compiled_catalog_is_the_validated_one_and_loads_without_pydantic(folder):
    validated = catalog._validate({part: (folder / name).read_bytes() for part, name in catalog.PARTS.items()})
    first = _load(folder)
    assert len(_compiled(folder)) == 1
    assert dataclasses.asdict(first) == dataclasses.asdict(validated)
    code = ("import sys\n"
            "from pathlib import Path\n"
            "from sglang_baseline.catalog import load_catalog\n"
            f"cat = load_catalog(Path({str(folder)!r}))\n"
            "assert 'pydantic' not in sys.modules, 'validated again'\n"
            "print(len(cat.layers.layers), cat.kernels.kernels[0].pattern)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [str(len(validated.layers.layers)), validated.kernels.kernels[0].pattern]


def test_a_changed_catalog_is_validated_again(folder):
    _load(folder)
    old = _compiled(folder)
    data = json.loads((folder / "kernels.json").read_text())
    data["kernels"][0]["op"] = "changed"
    (folder / "kernels.json").write_text(json.dumps(data))
    assert _load(folder).kernels.kernels[0].op == "changed"
    assert len(_compiled(folder)) == 1 and _compiled(folder) != old  # the earlier form is dropped
    data["kernels"][0]["colour"] = "blue"  # not a field of KernelRule
    (folder / "kernels.json").write_text(json.dumps(data))
    with pytest.raises(pydantic.ValidationError, match="colour"):
        _load(folder)
    data["kernels"][0].pop("colour")
    data["kernels"][0]["kind"] = "gpu"  # not one of the kinds
    (folder / "kernels.json").write_text(json.dumps(data))
    with pytest.raises(pydantic.ValidationError, match="kind"):
        _load(folder)


def test_a_damaged_or_foreign_compiled_catalog_is_validated_again(folder):
    first = _load(folder)
    (compiled,) = _compiled(folder)
    compiled.write_bytes(b"not a pickle")
    assert dataclasses.asdict(_load(folder)) == dataclasses.asdict(first)
    assert compiled.read_bytes() != b"not a pickle"
    compiled.write_bytes(__import__("pickle").dumps({"runtime": None}))  # loads, but is no Catalog
    assert dataclasses.asdict(_load(folder)) == dataclasses.asdict(first)


def test_a_package_where_nothing_can_be_written_still_gets_its_catalog(folder):
    (folder / "__pycache__").write_text("")  # a file where the folder would be: no write can succeed
    assert _load(folder).layers.layers
    assert (folder / "__pycache__").read_text() == ""


def test_nothing_is_written_when_python_writes_no_bytecode(folder, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert _load(folder).layers.layers
    assert not (folder / "__pycache__").exists()
