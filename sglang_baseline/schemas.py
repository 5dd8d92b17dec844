"""Output contracts: ``sglang_implementation.json`` and ``kernel_calls.json``.

Field names from the original skill (``model_name``, ``model_file``,
``class_name``, ``forward_pass_structure``, ``kernel_calls``, ``module``,
``kernel``, ``baseline_impl``, ``flashinfer_equivalent``, ``code_location``) are
kept; everything else is added.  Every value computed from source is a
:class:`Value`: the expression that computes it and, when known, its value.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = "1.0"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Value(_M):
    expr: str = Field(description="the expression that computes it (source text or derived)")
    value: Any = Field(default=None, description="the value, when known")
    concrete: bool = Field(description="true when `value` is known")


class Variant(_M):
    tp: int = Field(description="tensor-parallel size")
    ep: int = Field(description="expert-parallel size")
    page_size: int = Field(description="KV-cache page size")


class Coverage(_M):
    dataset: Literal["existing", "new", "unknown"] = Field(
        default="unknown", description="in the --definitions-dir dataset (unknown without it)")
    flashinfer: Literal["supported", "missing", "unknown"] = Field(
        default="unknown", description="the FlashInfer API exists in --flashinfer-path (unknown without it)")
    trace_template: bool | None = Field(
        default=None, description="the API is decorated with @flashinfer_api(trace=...)")
    trace: Literal["matched", "predicted-not-seen", "unknown"] = Field(
        default="unknown", description="seen in --trace-dump-dir")


class KernelCall(_M):
    """One entry of kernel_calls.json: a module, a definition it runs, a layout."""

    module: str = Field(description="module path in the model (``model.layers.*.input_layernorm``)")
    module_class: str = Field(description="class of the module")
    kernel: str = Field(description="the kernel function that runs it, dotted; empty when not found")
    kernel_kind: str = Field(description="flashinfer | sgl_kernel | torch | triton | deep_gemm | custom | ''")
    baseline_impl: str = Field(description="the SGLang code that runs the kernel (class.method)")
    flashinfer_equivalent: str = Field(
        description="FlashInfer-Bench definition name; a template with {config_field} placeholders when "
                    "a dimension is not known")
    code_location: str = Field(description="kernel call site, relative to sglang/srt: layers/layernorm.py:628-628")
    module_location: str = Field(description="where the module is built: models/llama.py:345-345")
    op_type: str
    status: Literal["dataset", "proposed"] = Field(
        description="dataset: FlashInfer-Bench has this op type and name form; proposed: a name this tool "
                    "proposes for something FlashInfer-Bench has no definition for")
    concrete: bool = Field(description="every axis of the name is known")
    axes: dict[str, Value]
    variant: Variant
    stage: str = Field(default="", description="decode | prefill | mtp | indexer | ''")
    count: int | str = Field(description="instances of the module in the whole model (an expression when unknown)")
    layer_ids: list[int] = Field(default_factory=list, description="decoder layers it covers, when grouped")
    condition: str = Field(default="", description="undecided condition under which the module exists")
    call_form: str = Field(default="", description="plain | residual, for norms")
    evidence: str = Field(default="", description="how the call form was decided")
    fi_api: str = Field(default="", description="the FlashInfer API that implements the definition")
    coverage: Coverage = Field(default_factory=Coverage)
    notes: list[str] = Field(default_factory=list)


class CallSite(_M):
    kind: str = Field(description="child | kernel | delegate | data")
    target: str
    code_location: str
    condition: str = ""
    via: str = ""
    arguments: int = 0


class ForwardInfo(_M):
    class_name: str
    method: str = Field(description="the method read: forward, or forward_cuda on platform-dispatching layers")
    defined_in: str = Field(description="dotted class that defines the method")
    code_location: str
    calls: list[CallSite]
    alternatives: list[str] = Field(default_factory=list, description="other platform paths (not followed)")


class TreeNode(_M):
    name: str
    path: str = Field(description="dotted path from the root; * stands for a group of layers")
    class_name: str
    class_dotted: str
    type: Literal["block", "layer"]
    count: int | str = Field(description="instances in the whole model")
    layer_ids: list[int] = Field(default_factory=list)
    condition: str = ""
    code_location: str = Field(description="where it is built (relative to sglang/srt)")
    role: str = ""
    scope: Literal["text", "vision"] = "text"
    alias_of: str = ""
    helper: bool = Field(default=False, description="a module SGLang adds that the forward pass never calls")
    constructor: dict[str, Value] = Field(default_factory=dict)
    definitions: list[str] = Field(default_factory=list)
    children: list[TreeNode] = Field(default_factory=list)


class ForwardLayer(_M):
    name: str
    type: str
    class_name: str = ""
    kernel: str | None = None
    kernels: list[str] | None = None
    definitions: list[str] = Field(default_factory=list)


class ForwardPassStructure(_M):
    embedding: str | None
    layers: list[ForwardLayer]
    final_norm: str | None
    lm_head: str | None
    layer_class: str | None = None
    layer_count: int | str | None = None


class SourceOut(_M):
    kind: str = Field(description="path | git | clone | pypi")
    location: str
    version: str | None
    commit: str | None
    ref: str | None
    note: str = ""


class ConfigOut(_M):
    path: str
    architectures: list[str]
    model_type: str | None
    text_config_key: str | None
    quantization: str
    not_converted: list[str] = Field(default_factory=list)


class MatchOut(_M):
    how: str = Field(description="architecture | class | file | keyword")
    alternatives: list[str] = Field(default_factory=list, description="other registrations that also matched")


class Warning_(_M):
    kind: str
    message: str
    location: str = ""
    detail: str = ""


class KernelSite(_M):
    function: str
    kind: str
    code_location: str
    reached_by: list[str] = Field(description="module paths whose forward reaches it")
    parameters: dict[str, Value] = Field(default_factory=dict)
    condition: str = ""
    via: str = ""


class DefinitionSummary(_M):
    name: str
    op_type: str
    status: Literal["dataset", "proposed"]
    concrete: bool
    modules: list[str]
    variants: list[Variant]
    fi_api: str = ""
    coverage: Coverage = Field(default_factory=Coverage)


class AttentionOut(_M):
    architecture: str
    backend_class: str
    requested_backend: str
    reason: str


class TraceComparison(_M):
    matched: list[str]
    predicted_not_seen: list[str]
    seen_not_predicted: list[str]


class Implementation(_M):
    schema_version: str = SCHEMA_VERSION
    tool: dict[str, str]
    model_name: str
    model_file: str = Field(description="python/sglang/srt/models/<file>.py")
    model_file_srt: str = Field(description="models/<file>.py, relative to sglang/srt")
    class_name: str
    match: MatchOut
    source: SourceOut
    config: ConfigOut | None
    variants: list[Variant]
    attention: AttentionOut | None
    forward_pass_structure: ForwardPassStructure
    module_tree: TreeNode
    forward: list[ForwardInfo]
    kernel_calls: list[KernelSite]
    definitions: list[DefinitionSummary]
    trace_comparison: TraceComparison | None = None
    warnings: list[Warning_]
    stats: dict[str, Any] = Field(default_factory=dict)


KernelCalls = TypeAdapter(list[KernelCall])


def json_schemas() -> dict[str, Any]:
    """The JSON Schemas of both output files."""
    return {
        "sglang_implementation.json": Implementation.model_json_schema(),
        "kernel_calls.json": KernelCalls.json_schema(),
    }
