"""Getting SGLang's source: an existing tree, a shallow sparse clone, or PyPI.

``--sglang-path`` may be a git checkout (``python/sglang/srt/...``) or a folder
holding the package (``sglang/srt/...``: an unpacked wheel, a site-packages).  When
it does not exist the repository is cloned with GitPython: shallow (depth 1),
blobs fetched on demand, and only ``python/sglang`` checked out.  When that fails
(no network, no GitHub) the release is taken from PyPI (``pip download --no-deps
--only-binary``: wheels only, so nothing is built or run) and unpacked into the
cache.  Every outcome says which source was used and its version or commit.

Git is only ever driven through GitPython with validated arguments.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import SourceError

SGLANG_URL = "https://github.com/sgl-project/sglang.git"
DEFAULT_RELEASE = "0.5.23"  # the release the catalog is checked against; used offline
SPARSE_PATH = "python/sglang"
_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,200}$")
_VERSION_RE = re.compile(r"^v?(\d+(?:\.\d+)*(?:(?:rc|post|\.post|a|b|\.dev)\d+)?)$")

Progress = Callable[[str], None]


@dataclass
class SourceInfo:
    kind: str  # path | git | clone | pypi
    root: Path  # folder that contains the `sglang` package
    location: str  # what the user pointed at (or where it was put)
    version: str | None = None
    commit: str | None = None
    ref: str | None = None
    note: str = ""

    @property
    def srt(self) -> Path:
        return self.root / "sglang" / "srt"

    def describe(self) -> str:
        bits = [f"SGLang {self.version or 'unknown version'}"]
        if self.commit:
            bits.append(f"commit {self.commit[:12]}")
        bits.append({"path": "from", "git": "from git checkout", "clone": "cloned into",
                     "pypi": "PyPI release in"}.get(self.kind, "from") + f" {self.location}")
        return " ".join(bits)


def validate_ref(ref: str) -> str:
    if not _REF_RE.match(ref) or ".." in ref or ref.endswith((".lock", "/")) or "@{" in ref:
        raise SourceError(f"--ref {ref!r} is not a valid git ref or tag")
    return ref


def validate_url(url: str) -> str:
    if url.startswith("-") or not re.match(r"^(https://|http://|file://|ssh://|git@)[^\s]+$", url):
        raise SourceError(f"refusing repository URL {url!r}")
    return url


def locate(path: Path) -> Path | None:
    """The folder holding ``sglang/srt/models`` for a checkout, a wheel, or the package itself."""
    path = path.resolve()
    candidates = [path / "python", path]
    if path.name == "sglang":
        candidates.append(path.parent)
    if path.name == "srt" and path.parent.name == "sglang":
        candidates.append(path.parent.parent)
    if path.name == "python":
        candidates.append(path)
    for c in candidates:
        if (c / "sglang" / "srt" / "models").is_dir():
            return c
    return None


def detect_version(root: Path) -> str | None:
    """Read the version statically: _version.py, version.py, dist-info, pyproject."""
    for name in ("_version.py", "version.py"):
        f = root / "sglang" / name
        v = _literal_version(f)
        if v:
            return v
    for meta in sorted(root.glob("sglang-*.dist-info/METADATA")):
        try:
            for line in meta.read_text(encoding="utf-8", errors="replace").splitlines()[:40]:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            continue
    for py in (root / "pyproject.toml", root.parent / "python" / "pyproject.toml"):
        try:
            m = re.search(r'^version\s*=\s*"([^"]+)"', py.read_text(encoding="utf-8"), re.M)
        except OSError:
            continue
        if m:
            return m.group(1)
    return None


def _literal_version(f: Path) -> str | None:
    try:
        tree = ast.parse(f.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError, RecursionError):
        return None
    for st in tree.body:
        if isinstance(st, (ast.Assign, ast.AnnAssign)):
            targets = st.targets if isinstance(st, ast.Assign) else [st.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id in ("__version__", "version") and \
                        isinstance(st.value, ast.Constant) and isinstance(st.value.value, str):
                    return st.value.value
    return None


def _git_repo(path: Path):
    if not (path / ".git").exists():
        return None  # not a checkout: no need to load GitPython
    try:
        import git  # GitPython
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    try:
        return git.Repo(path, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def prepare_source(path: Path, *, ref: str | None = None, update: bool = False, no_clone: bool = False,
                   cache_dir: Path, url: str = SGLANG_URL, progress: Progress = lambda m: None,
                   allow_pypi: bool = True) -> SourceInfo:
    """Find, clone or fetch the SGLang tree the analysis reads."""
    if ref is not None:
        validate_ref(ref)
    validate_url(url)
    if path.exists():
        root = locate(path)
        if root is None:
            raise SourceError(f"{path} is not an SGLang source tree (no sglang/srt/models below it)",
                              "point --sglang-path at a git checkout, an unpacked wheel or site-packages")
        repo = _git_repo(path)
        if repo is not None and (update or ref):
            _sync(repo, url, ref or _recorded_ref(repo), progress)
        info = SourceInfo(kind="git" if repo is not None else "path", root=root, location=str(path),
                          version=detect_version(root), ref=ref)
        if repo is not None:
            info.commit = _head(repo)
        elif update or ref:
            info.note = f"{path} is not a git checkout: --update/--ref were not applied"
        return info
    if no_clone:
        raise SourceError(f"{path} does not exist and --no-clone was given",
                          "drop --no-clone to clone SGLang or fetch it from PyPI")
    try:
        repo = clone(url, path, ref, progress)
        root = locate(path)
        if root is None:
            raise SourceError(f"the clone in {path} has no python/sglang/srt/models")
        return SourceInfo(kind="clone", root=root, location=str(path), version=detect_version(root),
                          commit=_head(repo), ref=ref)
    except SourceError as e:
        clone_error = str(e)
    if not allow_pypi:
        raise SourceError(f"cloning {url} failed: {clone_error}")
    version = version_for_ref(ref)
    progress(f"clone failed ({clone_error}); using SGLang {version} from PyPI instead")
    try:
        root = fetch_pypi_release(version, cache_dir, progress)
    except SourceError as e:
        raise SourceError(f"cloning {url} failed ({clone_error}) and the PyPI fallback failed too: {e.message}",
                          "pass --sglang-path to an existing SGLang checkout or unpacked wheel") from None
    return SourceInfo(kind="pypi", root=root, location=str(root), version=detect_version(root) or version,
                      ref=ref, note=f"cloning failed ({clone_error}); used the PyPI release {version}")


def version_for_ref(ref: str | None) -> str:
    """``v0.5.6`` -> ``0.5.6``; other refs (branches, commits) fall back to the default release."""
    if ref:
        m = _VERSION_RE.match(ref)
        if m:
            return m.group(1)
    return DEFAULT_RELEASE


# ---------------------------------------------------------------------------- git


class _GitProgress:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.last = ""

    def __call__(self, op_code: int, cur_count, max_count=None, message: str = "") -> None:
        pct = f"{int(100 * cur_count / max_count)}%" if max_count else f"{cur_count}"
        line = f"git: {pct} {message}".strip()
        if line != self.last:
            self.last = line
            self.progress(line)


def clone(url: str, path: Path, ref: str | None, progress: Progress):
    """Shallow (depth 1), blob-less, sparse (python/sglang) fetch of one ref into ``path``."""
    import git

    validate_url(url)
    if ref is not None:
        validate_ref(ref)
    tmp = Path(tempfile.mkdtemp(prefix=".sglang-clone-", dir=str(path.parent if path.parent.exists() else Path.cwd())))
    try:
        repo = git.Repo.init(tmp)
        origin = repo.create_remote("origin", url)
        repo.git.sparse_checkout("set", "--cone", SPARSE_PATH)
        progress(f"cloning {url} ({ref or 'default branch'}), shallow and sparse ({SPARSE_PATH}) ...")
        target = ref or "HEAD"
        origin.fetch(target, depth=1, filter="blob:none", progress=_GitProgress(progress))
        repo.git.checkout("--detach", "FETCH_HEAD")
        with repo.config_writer() as cw:
            cw.set_value("sglang-baseline", "ref", target)
        repo.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
    except git.GitCommandError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SourceError(_git_error(e)) from None
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SourceError(f"cannot create {path}: {e.strerror or e}") from None
    return git.Repo(path)


def _sync(repo, url: str, ref: str | None, progress: Progress) -> None:
    import git

    target = ref or "HEAD"
    validate_ref(target) if target != "HEAD" else None
    try:
        origin = repo.remotes.origin if "origin" in [r.name for r in repo.remotes] else repo.create_remote("origin", url)
        progress(f"updating {repo.working_tree_dir} to the latest {target} ...")
        origin.fetch(target, depth=1, filter="blob:none", progress=_GitProgress(progress))
        repo.git.checkout("--detach", "FETCH_HEAD")
        with repo.config_writer() as cw:
            cw.set_value("sglang-baseline", "ref", target)
    except git.GitCommandError as e:
        raise SourceError(f"updating {repo.working_tree_dir} failed: {_git_error(e)}") from None


def _recorded_ref(repo) -> str | None:
    try:
        return repo.config_reader().get_value("sglang-baseline", "ref", None)
    except Exception:
        return None


def _head(repo) -> str | None:
    try:
        return repo.head.commit.hexsha
    except Exception:
        return None


def _git_error(e) -> str:
    text = (getattr(e, "stderr", "") or str(e)).strip().replace("\n", " ")
    text = re.sub(r"\s+", " ", text)
    m = re.search(r"(fatal: .*|error: .*)", text)
    msg = m.group(1) if m else text
    return msg.strip("' ")[:240]


# ---------------------------------------------------------------------------- PyPI


def fetch_pypi_release(version: str, cache_dir: Path, progress: Progress) -> Path:
    """Download the ``sglang==version`` wheel (no dependencies, no build) and unpack its Python files."""
    if not _VERSION_RE.match(version):
        raise SourceError(f"{version!r} is not a release version")
    dest = cache_dir / "sources" / f"sglang-{version}"
    if (dest / ".complete").is_file() and (dest / "sglang" / "srt" / "models").is_dir():
        progress(f"using cached SGLang {version} from {dest}")
        return dest
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sglang-dl-", dir=str(cache_dir)) as tmp:
        progress(f"downloading sglang=={version} from PyPI (wheel only, no dependencies) ...")
        wheel = _pip_download(version, Path(tmp))
        progress(f"unpacking {wheel.name} ...")
        staging = Path(tempfile.mkdtemp(prefix=f".sglang-{version}-", dir=str(cache_dir)))
        try:
            _unpack_python(wheel, staging)
            (staging / ".complete").write_text(wheel.name + "\n", encoding="utf-8")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                shutil.rmtree(dest, ignore_errors=True)
            os.replace(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return dest


def _pip_download(version: str, into: Path) -> Path:
    base = [sys.executable, "-m", "pip", "download", f"sglang=={version}", "--no-deps",
            "--only-binary=:all:", "--disable-pip-version-check", "-d", str(into), "-q"]
    attempts = [
        base,
        # a wheel for another CPython: we only read its Python files
        base + ["--implementation", "cp", "--python-version", "3.11", "--abi", "cp311", "--abi", "none",
                "--platform", "manylinux_2_34_x86_64", "--platform", "any"],
        base + ["--implementation", "cp", "--python-version", "3.12", "--abi", "cp312", "--abi", "none",
                "--platform", "manylinux_2_34_x86_64", "--platform", "any"],
    ]
    import subprocess  # (only for a download: ~3 ms of every run's imports otherwise)

    last = ""
    for cmd in attempts:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            last = str(e)
            continue
        wheels = sorted(into.glob("sglang-*.whl"))
        if r.returncode == 0 and wheels:
            return wheels[0]
        last = (r.stderr or r.stdout).strip().splitlines()[-1:] and (r.stderr or r.stdout).strip().splitlines()[-1]
    raise SourceError(f"pip could not download sglang=={version}: {last or 'no wheel found'}")


def _unpack_python(wheel: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                name = info.filename
                if not (name.startswith("sglang/") or (name.startswith("sglang-") and ".dist-info/" in name)):
                    continue
                if not (name.endswith(".py") or name.endswith("METADATA")):
                    continue
                parts = Path(name).parts
                if name.startswith("/") or ".." in parts:
                    continue
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
    except (zipfile.BadZipFile, OSError) as e:
        raise SourceError(f"cannot unpack {wheel.name}: {e}") from None
