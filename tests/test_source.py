"""Getting SGLang: a shallow, sparse clone over file://, reuse, --ref, and the PyPI fallback."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import git
import pytest

from sglang_baseline.errors import SourceError
from sglang_baseline.source import locate, prepare_source, validate_ref, version_for_ref

from .conftest import run_cli


@pytest.fixture(scope="module")
def bare_repo(tmp_path_factory, release):
    """A bare repository in the GitHub layout (python/sglang/...) built from a real release, two commits deep."""
    base = tmp_path_factory.mktemp("upstream")
    work = base / "work"
    (work / "python").mkdir(parents=True)
    shutil.copytree(release("0.4.6") / "sglang", work / "python" / "sglang")
    (work / "docs").mkdir()
    (work / "docs" / "index.md").write_text("docs are not part of the sparse checkout\n")
    (work / "sgl-kernel").mkdir()
    (work / "sgl-kernel" / "big.txt").write_text("x" * 100_000)
    repo = git.Repo.init(work, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "test")
        cw.set_value("user", "email", "test@example.invalid")
    repo.git.add("-A")
    repo.git.commit("-m", "first")
    (work / "README.md").write_text("second commit\n")
    repo.git.add("-A")
    repo.git.commit("-m", "second")
    repo.create_tag("v0.4.6")
    bare = base / "sglang.git"
    git.Repo.clone_from(str(work), str(bare), bare=True)
    with git.Repo(bare).config_writer() as cw:
        cw.set_value("uploadpack", "allowFilter", "true")
    return bare


def test_clone_is_shallow_sparse_and_reused(bare_repo, tmp_path, monkeypatch):
    monkeypatch.setenv("SGLANG_BASELINE_REPO_URL", f"file://{bare_repo}")
    target = tmp_path / "sglang"
    r = run_cli("--model-name", "llama", "--sglang-path", str(target), "--cache-dir", str(tmp_path / "c"),
                output_dir=tmp_path / "out")
    assert r.code == 0, r.err
    assert "cloning" in r.err
    repo = git.Repo(target)
    assert repo.git.rev_list("--count", "HEAD") == "1"  # shallow: one commit of two
    assert (target / ".git" / "shallow").is_file()
    assert (target / "python" / "sglang" / "srt" / "models" / "llama.py").is_file()
    assert not (target / "docs").exists() and not (target / "sgl-kernel").exists()  # sparse
    assert repo.git.config("core.sparseCheckout") == "true"
    impl = r.json("sglang_implementation.json")
    assert impl["source"]["kind"] == "clone" and impl["source"]["commit"] == repo.head.commit.hexsha
    head = repo.head.commit.hexsha
    # a second run reuses the clone: no new clone, same commit
    r2 = run_cli("--model-name", "llama", "--sglang-path", str(target), "--cache-dir", str(tmp_path / "c"),
                 output_dir=tmp_path / "out2")
    assert r2.code == 0, r2.err
    assert "cloning" not in r2.err
    assert r2.json("sglang_implementation.json")["source"]["kind"] == "git"
    assert git.Repo(target).head.commit.hexsha == head


def test_clone_honours_ref(bare_repo, tmp_path):
    info = prepare_source(tmp_path / "sg", ref="v0.4.6", cache_dir=tmp_path / "c", url=f"file://{bare_repo}")
    assert info.kind == "clone" and info.ref == "v0.4.6"
    assert locate(tmp_path / "sg") is not None
    tagged = git.Repo(bare_repo).tags["v0.4.6"].commit.hexsha
    assert info.commit == tagged


def test_update_brings_clone_to_latest(bare_repo, tmp_path):
    target = tmp_path / "sg"
    prepare_source(target, cache_dir=tmp_path / "c", url=f"file://{bare_repo}")
    # a new upstream commit
    work = tmp_path / "w"
    git.Repo.clone_from(str(bare_repo), str(work))
    w = git.Repo(work)
    with w.config_writer() as cw:
        cw.set_value("user", "name", "t")
        cw.set_value("user", "email", "t@example.invalid")
    (work / "python" / "sglang" / "NEW.txt").write_text("new\n")
    w.git.add("-A")
    w.git.commit("-m", "third")
    w.git.push("origin", "HEAD:main")
    info = prepare_source(target, update=True, cache_dir=tmp_path / "c", url=f"file://{bare_repo}")
    assert info.commit == w.head.commit.hexsha
    assert (target / "python" / "sglang" / "NEW.txt").is_file()


def test_pypi_fallback_when_clone_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("SGLANG_BASELINE_REPO_URL", f"file://{tmp_path}/missing.git")
    cache = tmp_path / "cache"
    r = run_cli("--model-name", "llama", "--sglang-path", str(tmp_path / "sglang"), "--ref", "v0.4.6",
                "--cache-dir", str(cache), output_dir=tmp_path / "out")
    assert r.code == 0, r.err
    assert "PyPI" in r.err
    impl = r.json("sglang_implementation.json")
    assert impl["source"]["kind"] == "pypi" and impl["source"]["version"] == "0.4.6"
    assert "cloning failed" in impl["source"]["note"]
    assert (cache / "sources" / "sglang-0.4.6" / "sglang" / "srt" / "models" / "llama.py").is_file()
    # no SGLang binary or non-Python file was unpacked
    assert not [p for p in (cache / "sources" / "sglang-0.4.6").rglob("*.so")]


@pytest.mark.parametrize("ref", ["--upload-pack=x", "-x", "a..b", "x y", "", "refs/heads/x.lock"])
def test_refs_that_look_like_options_are_refused(ref):
    with pytest.raises(SourceError):
        validate_ref(ref)


def test_urls_that_look_like_options_are_refused(tmp_path):
    with pytest.raises(SourceError):
        prepare_source(tmp_path / "x", cache_dir=tmp_path, url="--upload-pack=touch /tmp/pwned")


def test_version_for_ref():
    assert version_for_ref("v0.5.6") == "0.5.6"
    assert version_for_ref("0.4.6") == "0.4.6"
    assert version_for_ref("main") == version_for_ref(None)


def test_git_is_not_run_through_a_shell(monkeypatch, tmp_path, bare_repo):
    """Every git process gets an argument list, never a shell string."""
    calls = []
    real = subprocess.Popen.__init__

    def spy(self, args, *a, **kw):
        calls.append((args, kw.get("shell", False)))
        return real(self, args, *a, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", spy)
    prepare_source(tmp_path / "sg", cache_dir=tmp_path / "c", url=f"file://{bare_repo}")
    git_calls = [c for c in calls if isinstance(c[0], (list, tuple)) and "git" in str(c[0][0])]
    assert git_calls and all(isinstance(a, (list, tuple)) and not shell for a, shell in git_calls)


def test_locate_accepts_checkout_wheel_and_package(release):
    root = release("0.4.6")
    assert locate(root) == root.resolve()
    assert locate(root / "sglang") == root.resolve()
    assert locate(root / "sglang" / "srt") == root.resolve()
    assert locate(Path("/nonexistent-path-xyz")) is None
