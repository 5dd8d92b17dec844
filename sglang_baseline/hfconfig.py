"""Loading a Hugging Face ``config.json``: validated, bounded, never guessed.

A config may be flat or wrap the language model (``text_config``, ``llm_config``,
``language_config``, ...) as multimodal models do.  The quantisation settings
(``quantization_config``) are read from wherever they are.  Bad input (not JSON,
not an object, sizes that are not positive integers) raises :class:`ConfigError`
with one clear line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

MAX_CONFIG_BYTES = 8 * 1024 * 1024
TEXT_CONFIG_KEYS = ("text_config", "llm_config", "language_config", "language_model_config", "thinker_config")
# fields that, when present, must be positive integers
SIZE_FIELDS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
    "vocab_size", "head_dim", "moe_intermediate_size", "num_experts", "n_routed_experts", "num_local_experts",
    "num_experts_per_tok", "kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
    "n_group", "topk_group", "max_position_embeddings",
)
IGNORE_KEYS = ("modules_to_not_convert", "ignored_layers", "ignore", "exclude_modules")


@dataclass
class QuantInfo:
    """What ``quantization_config`` says, in the terms the rest of the tool uses."""

    method: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    weight_block_size: list[int] | None = None
    activation_scheme: str | None = None
    not_converted: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if not self.method:
            return "none (bf16/fp16 weights)"
        parts = [self.method]
        if self.weight_block_size:
            parts.append(f"block {self.weight_block_size[0]}x{self.weight_block_size[-1]}")
        if self.activation_scheme:
            parts.append(f"{self.activation_scheme} activations")
        if self.not_converted:
            parts.append(f"{len(self.not_converted)} modules not converted")
        return ", ".join(parts)


@dataclass
class ModelConfig:
    path: Path
    raw: dict[str, Any]  # the file as given
    text: dict[str, Any]  # the language model's config (== raw when flat)
    text_key: str | None  # where the language model config was nested
    architectures: list[str]
    model_type: str | None
    quant: QuantInfo
    warnings: list[str] = field(default_factory=list)
    digest: str = ""  # of the file's bytes


def find_config_file(path: Path) -> Path:
    if path.is_dir():
        cand = path / "config.json"
        if cand.is_file():
            return cand
        raise ConfigError(f"--config {path}: folder has no config.json")
    if not path.exists():
        raise ConfigError(f"--config {path}: no such file")
    if not path.is_file():
        raise ConfigError(f"--config {path}: not a regular file")
    return path


def load_config(path: Path) -> ModelConfig:
    """Read and validate a config.json (or a folder holding one)."""
    file = find_config_file(path)
    try:
        size = file.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"--config {file}: {size} bytes is too large for a config.json "
                              f"(limit {MAX_CONFIG_BYTES // (1024 * 1024)} MiB)")
        with file.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"--config {file}: cannot read ({e.strerror or e})") from None
    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"--config {file}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"--config {file}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise ConfigError(f"--config {file}: JSON nested too deeply") from None
    cfg = config_from_dict(raw, file)
    cfg.digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    return cfg


def config_from_dict(raw: Any, file: Path) -> ModelConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {file}: expected a JSON object, found a {type(raw).__name__} "
                          f"({_json_kind(raw)})")
    text, key = _text_config(raw)
    warnings: list[str] = []
    for where, d in (("", raw), (f"{key}.", text) if key else ("", {})):
        for f in SIZE_FIELDS:
            if f in d:
                _check_size(file, f"{where}{f}", d[f])
    archs = raw.get("architectures")
    if archs is None:
        archs = text.get("architectures") or []
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise ConfigError(f"--config {file}: 'architectures' must be a list of class names, got {archs!r}")
    model_type = raw.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise ConfigError(f"--config {file}: 'model_type' must be a string, got {model_type!r}")
    quant = _quant(file, raw, text)
    if "hidden_size" not in text and "d_model" not in text:
        warnings.append("config has no hidden_size: sizes that depend on it stay symbolic")
    return ModelConfig(path=file, raw=raw, text=text, text_key=key, architectures=list(archs),
                       model_type=model_type, quant=quant, warnings=warnings)


def _text_config(raw: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    for key in TEXT_CONFIG_KEYS:
        v = raw.get(key)
        if isinstance(v, dict) and ("hidden_size" in v or "num_hidden_layers" in v):
            return v, key
    return raw, None


def _check_size(file: Path, name: str, v: Any) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"--config {file}: '{name}' must be an integer, got {v!r}")
    if v <= 0 and not name.endswith(("q_lora_rank", "qk_rope_head_dim")):
        raise ConfigError(f"--config {file}: '{name}' must be positive, got {v}")
    if v < 0:
        raise ConfigError(f"--config {file}: '{name}' must not be negative, got {v}")


def _quant(file: Path, raw: dict[str, Any], text: dict[str, Any]) -> QuantInfo:
    q = raw.get("quantization_config")
    if q is None:
        q = text.get("quantization_config")
    if q is None:
        return QuantInfo()
    if not isinstance(q, dict):
        raise ConfigError(f"--config {file}: 'quantization_config' must be an object, got {_json_kind(q)}")
    method = q.get("quant_method")
    if method is not None and not isinstance(method, str):
        raise ConfigError(f"--config {file}: 'quantization_config.quant_method' must be a string")
    wbs = q.get("weight_block_size")
    if wbs is not None and not (isinstance(wbs, list) and all(isinstance(x, int) and x > 0 for x in wbs)):
        raise ConfigError(f"--config {file}: 'quantization_config.weight_block_size' must be a list of "
                          f"positive integers, got {wbs!r}")
    ignored: list[str] = []
    for k in IGNORE_KEYS:
        v = q.get(k)
        if isinstance(v, list):
            ignored.extend(x for x in v if isinstance(x, str))
    return QuantInfo(method=method, raw=q, weight_block_size=wbs, activation_scheme=q.get("activation_scheme"),
                     not_converted=ignored)


def _json_kind(v: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null", dict: "object"}.get(type(v), type(v).__name__)
