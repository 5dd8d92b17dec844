"""Output sets: atomic replacement, and identical sets left untouched."""

from __future__ import annotations

import os

from sglang_baseline.fsutil import write_output_set

FILES = {
    "kernel_calls.json": "[]\n",
    "summary.md": "# summary\n",
    "code_snippets/INDEX.md": "- a.py\n",
    "code_snippets/modules/a.py": "x = 1\n",
    "code_snippets/.sglang-baseline": "ours\n",
}


def _mtimes(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.name != ".sglang-baseline"}


def test_identical_set_is_not_rewritten(tmp_path):
    out = tmp_path / "out"
    write_output_set(out, FILES)
    before = _mtimes(out)
    write_output_set(out, FILES)
    assert _mtimes(out) == before


def test_a_touched_file_triggers_a_rewrite(tmp_path):
    out = tmp_path / "out"
    write_output_set(out, FILES)
    os.utime(out / "summary.md", ns=(1, 1))
    write_output_set(out, FILES)
    assert (out / "summary.md").stat().st_mtime_ns != 1


def test_edited_missing_or_extra_files_trigger_a_rewrite(tmp_path):
    out = tmp_path / "out"
    write_output_set(out, FILES)
    (out / "kernel_calls.json").write_text("[1]\n")
    (out / "code_snippets" / "modules" / "a.py").unlink()
    (out / "code_snippets" / "stray.py").write_text("junk\n")
    write_output_set(out, FILES)
    assert (out / "kernel_calls.json").read_text() == "[]\n"
    assert (out / "code_snippets" / "modules" / "a.py").read_text() == "x = 1\n"
    assert not (out / "code_snippets" / "stray.py").exists()


def test_a_changed_set_replaces_the_old_one(tmp_path):
    out = tmp_path / "out"
    write_output_set(out, FILES)
    changed = dict(FILES)
    del changed["code_snippets/modules/a.py"]
    changed["code_snippets/modules/b.py"] = "y = 2\n"
    write_output_set(out, changed)
    assert not (out / "code_snippets" / "modules" / "a.py").exists()
    assert (out / "code_snippets" / "modules" / "b.py").read_text() == "y = 2\n"
