"""The command line as a user meets it: real releases, outputs, schemas, bad input."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from sglang_baseline.serialize import json_schemas

from .conftest import DATA, RELEASES, REPO, release_root, run_cli

OUTPUTS = ("sglang_implementation.json", "kernel_calls.json", "model_definition.json", "summary.md")


@pytest.mark.parametrize("version", RELEASES)
def test_llama_outputs_validate_and_name_the_implementation(analysed, version):
    r = analysed(version, "llama")
    for name in OUTPUTS:
        assert (r.output_dir / name).is_file(), name
    # every module class's source is in the snippet file of the file that defines it, listed in INDEX.md
    snippets = r.output_dir / "code_snippets"
    llama = (snippets / "modules" / "models.llama.py").read_text()
    for cls in ("LlamaForCausalLM", "LlamaModel", "LlamaDecoderLayer", "LlamaAttention", "LlamaMLP"):
        assert f"\nclass {cls}(" in llama, cls
        assert f"sglang.srt.models.llama.{cls}" in (snippets / "INDEX.md").read_text(), cls
    assert "\nclass RMSNorm(" in (snippets / "modules" / "layers.layernorm.py").read_text()
    # every kernel call site's exact source lines are in the snippet file of its source file
    srt = release_root(version) / "sglang" / "srt"
    for k in r.json("kernel_calls.json"):
        rel, start, end = re.fullmatch(r"(.+):(\d+)-(\d+)", k["code_location"]).groups()
        snippet = r.output_dir / "code_snippets" / "kernels" / (rel.removesuffix(".py").replace("/", ".") + ".py")
        lines = (srt / rel).read_text().splitlines()[int(start) - 1:int(end)]
        assert "\n".join(lines) in snippet.read_text(), k["code_location"]
    schemas = json_schemas()
    jsonschema.validate(r.json("sglang_implementation.json"), schemas["sglang_implementation.json"])
    jsonschema.validate(r.json("kernel_calls.json"), schemas["kernel_calls.json"])
    summary = (r.output_dir / "summary.md").read_text()
    assert "models/llama.py" in summary and "LlamaForCausalLM" in summary
    # without --config no model_config.json is written, so the handoff must not name one
    handoff = next(line for line in summary.splitlines() if line.startswith("/generate-model-definition"))
    assert not (r.output_dir / "model_config.json").exists() and "model_config.json" not in handoff
    impl = r.json("sglang_implementation.json")
    assert impl["model_file"] == "python/sglang/srt/models/llama.py"
    assert impl["class_name"] == "LlamaForCausalLM"
    assert impl["source"]["version"] == version
    # without a config every name is a template over config fields, never a guessed number
    names = r.names
    assert "rmsnorm_h{hidden_size}" in names
    assert all("{" in n for n in names if n.startswith(("rmsnorm", "gemm", "gqa")))


def test_kimi_k2_config_resolves_to_deepseek_v3(cli, release):
    r = cli("--model-name", "kimi-k2", "--config", str(DATA / "moonshotai--Kimi-K2-Instruct.json"),
            "--sglang-path", str(release("0.5.23")), "-q")
    assert r.code == 0, r.err
    impl = r.json("sglang_implementation.json")
    assert impl["class_name"] == "DeepseekV3ForCausalLM"
    assert impl["model_file_srt"] == "models/deepseek_v2.py"
    assert impl["match"]["how"] == "architecture"


@pytest.mark.parametrize("name,cls,file", [
    ("llama", "LlamaForCausalLM", "models/llama.py"),
    ("deepseek-v3", "DeepseekV3ForCausalLM", "models/deepseek_v2.py"),
    ("Qwen3MoeForCausalLM", "Qwen3MoeForCausalLM", "models/qwen3_moe.py"),
    ("qwen3_moe", "Qwen3MoeForCausalLM", "models/qwen3_moe.py"),
    # two registered classes whose names differ only in case: the one named exactly
    ("ExaoneMoeForCausalLM", "ExaoneMoeForCausalLM", "models/exaone_moe.py"),
    ("ExaoneMoEForCausalLM", "ExaoneMoEForCausalLM", "models/exaone_moe.py"),
    ("BailingMoeForCausalLM", "BailingMoeForCausalLM", "models/bailing_moe.py"),
])
def test_discovery_by_keyword_class_and_file(release, name, cls, file):
    from sglang_baseline.discovery import find_model, read_registrations

    entries = read_registrations(release("0.5.23") / "sglang" / "srt")
    m = find_model(name, entries)
    assert (m.chosen.class_name, m.chosen.file) == (cls, file)


@pytest.mark.parametrize("name", ["deepseek-v3", "llama", "qwen3", "kimi", "mixtral", "gemma3", "xyzzy"])
def test_a_score_floor_leaves_every_verdict_against_it_unchanged(release, name):
    """``_score(q, r, floor)`` skips similarities that cannot reach the floor: whether a
    registration reaches it must not change (the alternatives listed beside the model)."""
    from sglang_baseline.discovery import _score, all_registrations, norm, read_registrations

    regs = all_registrations(read_registrations(release("0.5.23") / "sglang" / "srt"))
    q = norm(name)
    for floor in (0.5, 0.75, 0.9):
        assert [r for r in regs if _score(q, r, floor) >= floor] == [r for r in regs if _score(q, r) >= floor]
    assert [_score(q, r, 0.0) for r in regs] == [_score(q, r) for r in regs]


@pytest.mark.parametrize("version", RELEASES)
def test_list_shows_every_entry_class(cli, release, version):
    root = release(version)
    r = cli("--list", "--sglang-path", str(root), "-q", out=None)
    assert r.code == 0, r.err
    listed = re.search(r"# (\d+) registered classes", r.out)
    assert listed
    # a plain AST count of EntryClass registrations
    count = 0
    for p in sorted((root / "sglang" / "srt" / "models").glob("*.py")):
        tree = ast.parse(p.read_bytes())
        for st in tree.body:
            if isinstance(st, (ast.Assign, ast.AnnAssign)):
                targets = st.targets if isinstance(st, ast.Assign) else [st.target]
                if any(isinstance(t, ast.Name) and t.id == "EntryClass" for t in targets):
                    v = st.value
                    count += len(v.elts) if isinstance(v, (ast.List, ast.Tuple)) else 1
    assert int(listed.group(1)) == count
    assert "models/llama.py" in r.out and "LlamaForCausalLM" in r.out


def test_unknown_model_exits_3_with_five_closest(cli, release):
    r = cli("--model-name", "zzqxw-not-a-model", "--sglang-path", str(release("0.4.6")), out=None)
    assert r.code == 3
    lines = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.err
    assert lines[0].count("(models/") == 5


def _one_line_error(r, code: int) -> None:
    assert r.code == code, (r.code, r.err)
    errors = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    others = [ln for ln in r.err.splitlines() if ln.strip() and not ln.startswith(("error:", "["))]
    assert len(errors) == 1 and not others, r.err  # one error line; the rest is progress
    assert "Traceback" not in r.err


def test_missing_path_with_no_clone_exits_4(cli, tmp_path):
    r = cli("--model-name", "llama", "--sglang-path", str(tmp_path / "nope"), "--no-clone", out=None)
    _one_line_error(r, 4)
    assert "--no-clone" in r.err


def test_folder_that_is_not_sglang_exits_4(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    r = cli("--model-name", "llama", "--sglang-path", str(tmp_path / "empty"), out=None)
    _one_line_error(r, 4)
    assert "not an SGLang source tree" in r.err


def test_failed_clone_and_failed_fallback_exit_4(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SGLANG_BASELINE_REPO_URL", f"file://{tmp_path}/no-such-repo.git")
    r = cli("--model-name", "llama", "--sglang-path", str(tmp_path / "sglang"), "--ref", "v0.0.987",
            "--cache-dir", str(tmp_path / "cache"), out=None)
    _one_line_error(r, 4)
    assert "PyPI fallback failed" in r.err


@pytest.mark.parametrize("content,needle", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"hidden_size": "big"}', "must be an integer"),
    ('{"num_hidden_layers": -4}', "must be positive"),
])
def test_bad_config_exits_2(cli, release, tmp_path, content, needle):
    cfg = tmp_path / "config.json"
    cfg.write_text(content)
    r = cli("--model-name", "llama", "--config", str(cfg), "--sglang-path", str(release("0.4.6")), out=None)
    _one_line_error(r, 2)
    assert needle in r.err


def test_unreadable_config_exits_2(cli, release, tmp_path):
    r = cli("--model-name", "llama", "--config", str(tmp_path / "missing.json"),
            "--sglang-path", str(release("0.4.6")), out=None)
    _one_line_error(r, 2)


@pytest.mark.parametrize("flag,value", [("--tp", "two"), ("--ep", "1,x"), ("--page-size", "0")])
def test_non_integer_sizes_exit_2(cli, flag, value):
    r = cli("--model-name", "llama", flag, value, out=None)
    _one_line_error(r, 2)


def test_model_name_is_required(cli):
    r = cli(out=None)
    _one_line_error(r, 2)


def test_syntax_error_in_model_file_exits_5(cli, release, tmp_path):
    import shutil

    tree = tmp_path / "tree"
    shutil.copytree(release("0.4.6") / "sglang", tree / "sglang")
    bad = tree / "sglang" / "srt" / "models" / "llama.py"
    text = bad.read_text()
    bad.write_text("def broken(:\n    pass\n" + text)
    r = cli("--model-name", "llama", "--sglang-path", str(tree), out=None)
    _one_line_error(r, 5)
    assert "models/llama.py" in r.err


def test_outputs_replace_ours_and_keep_other_files(cli, release, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "kernel_calls.json").write_text("stale")
    r = cli("--model-name", "llama", "--sglang-path", str(release("0.4.6")), "-q", out="out")
    assert r.code == 0, r.err
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "kernel_calls.json").read_text())
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".code_snippets")]


def test_output_dir_that_is_a_file_exits_6(cli, release, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    r = run_cli("--model-name", "llama", "--sglang-path", str(release("0.4.6")), "--output-dir", str(f))
    _one_line_error(r, 6)


def test_schema_flag_prints_both_schemas(cli):
    r = cli("--schema", out=None)
    assert r.code == 0
    schemas = json.loads(r.out)
    assert set(schemas) == {"sglang_implementation.json", "kernel_calls.json"}
    item = schemas["kernel_calls.json"]["items"]["$ref"].rsplit("/", 1)[-1]
    fields = schemas["kernel_calls.json"]["$defs"][item]["required"]
    for f in ("module", "kernel", "baseline_impl", "flashinfer_equivalent", "code_location"):
        assert f in fields


def test_help_shows_an_example_for_every_flag():
    from sglang_baseline.cli import build_parser

    p = build_parser()
    text = p.format_help()
    flags = [a.option_strings[0] for a in p._actions if a.option_strings and a.option_strings[0].startswith("--")]
    examples = text.split("examples:", 1)[1]
    for f in flags:
        if f in ("--help", "--version"):
            continue
        assert f in examples, f"no example for {f}"


def test_entry_points(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for cmd in ([sys.executable, "-m", "sglang_baseline", "--version"],
                [sys.executable, str(REPO / "skills" / "find-sglang-baseline" / "run.py"), "--version"]):
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert p.returncode == 0, p.stderr
        assert "find-sglang-baseline" in p.stdout
    script = Path(sys.executable).parent / "find-sglang-baseline"
    if script.exists():  # installed console script
        p = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0


def test_skill_files_are_one_and_have_frontmatter():
    root = (REPO / "SKILL.md").read_text()
    plugin = (REPO / "skills" / "find-sglang-baseline" / "SKILL.md").read_text()
    assert root == plugin
    m = re.match(r"---\nname: find-sglang-baseline\ndescription: (.+?)\n---\n", root, re.S)
    assert m and "Use it when" in m.group(1)
    for section in ("## Usage", "## Parameters", "## Outputs", "generate-model-definition"):
        assert section in root
    manifest = json.loads((REPO / ".claude-plugin" / "plugin.json").read_text())
    assert manifest["name"] == "sglang-baseline"
    for rel in manifest["commands"] + manifest["skills"]:
        assert (REPO / rel).exists(), rel


def test_slash_command_runs_and_writes_outputs(release, tmp_path):
    text = (REPO / ".claude" / "commands" / "find-sglang-baseline.md").read_text()
    assert "summary.md" in text
    block = re.search(r"```bash\n(.+?)\n```", text, re.S).group(1).strip()
    out = tmp_path / "slash_out"
    arguments = (f"--model-name llama --sglang-path {release('0.4.6')} --output-dir {out} "
                 f"--cache-dir {tmp_path / 'cache'} --quiet")
    cmd = shlex.split(block.replace("$ARGUMENTS", arguments))
    cmd[0] = sys.executable if cmd[0] in ("python3", "python") else cmd[0]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert (out / "summary.md").is_file() and (out / "kernel_calls.json").is_file()


def test_console_entry_skips_pydantic_plugin_lookup_and_pydantic_still_validates():
    """The console entry spares its process importlib.metadata (pydantic's plugin lookup);
    pydantic must still build, validate and reject as usual, and its real loader stays reachable."""
    code = (
        "import sys\n"
        "from sglang_baseline import cli\n"
        "cli._no_pydantic_plugins()\n"
        "import pydantic\n"
        "from sglang_baseline.schemas import Value\n"
        "from pydantic import TypeAdapter\n"
        "adapter = TypeAdapter(Value)\n"
        "assert adapter.validate_python(Value(expr='x', value=1, concrete=True)).value == 1\n"
        "try:\n"
        "    adapter.validate_python(Value(expr='x', concrete='maybe'))\n"
        "except pydantic.ValidationError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('not validated')\n"
        "assert 'importlib.metadata' not in sys.modules, 'plugin lookup ran'\n"
        "from pydantic.plugin import _loader\n"
        "assert _loader.PYDANTIC_ENTRY_POINT_GROUP == 'pydantic'\n"  # any other name: the real module
        "print('ok')\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok"
