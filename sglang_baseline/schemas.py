"""Output contracts: ``sglang_implementation.json`` and ``kernel_calls.json``.

Field names from the original skill (``model_name``, ``model_file``,
``class_name``, ``forward_pass_structure``, ``kernel_calls``, ``module``,
``kernel``, ``baseline_impl``, ``flashinfer_equivalent``, ``code_location``) are
kept; everything else is added.  Every value computed from source is a
:class:`Value`: the expression that computes it and, when known, its value.

The classes are dataclasses (see records); ``serialize`` validates them and writes the JSON.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Literal

from .records import Record, described, record

SCHEMA_VERSION = "1.0"


@record
class Value(Record):
    expr: str = described(description="the expression that computes it (source text or derived)")
    value: Any = described(default=None, description="the value, when known")
    concrete: bool = described(description="true when `value` is known")


@record
class Variant(Record):
    tp: int = described(description="tensor-parallel size")
    ep: int = described(description="expert-parallel size")
    page_size: int = described(description="KV-cache page size")


@record
class Coverage(Record):
    dataset: Literal["existing", "new", "unknown"] = described(
        default="unknown", description="in the --definitions-dir dataset (unknown without it)")
    flashinfer: Literal["supported", "missing", "unknown"] = described(
        default="unknown", description="the FlashInfer API exists in --flashinfer-path (unknown without it)")
    trace_template: bool | None = described(
        default=None, description="the API is decorated with @flashinfer_api(trace=...)")
    trace: Literal["matched", "predicted-not-seen", "unknown"] = described(
        default="unknown", description="seen in --trace-dump-dir")


@record
class KernelCall(Record):
    """One entry of kernel_calls.json: a module, a definition it runs, a layout."""

    module: str = described(description="module path in the model (``model.layers.*.input_layernorm``)")
    module_class: str = described(description="class of the module")
    kernel: str = described(description="the kernel function that runs it, dotted; empty when not found")
    kernel_kind: str = described(description="flashinfer | sgl_kernel | torch | triton | deep_gemm | custom | ''")
    baseline_impl: str = described(description="the SGLang code that runs the kernel (class.method)")
    flashinfer_equivalent: str = described(
        description="FlashInfer-Bench definition name; a template with {config_field} placeholders when "
                    "a dimension is not known")
    code_location: str = described(description="kernel call site, relative to sglang/srt: layers/layernorm.py:628-628")
    module_location: str = described(description="where the module is built: models/llama.py:345-345")
    op_type: str
    status: Literal["dataset", "proposed"] = described(
        description="dataset: FlashInfer-Bench has this op type and name form; proposed: a name this tool "
                    "proposes for something FlashInfer-Bench has no definition for")
    concrete: bool = described(description="every axis of the name is known")
    axes: dict[str, Value]
    variant: Variant
    stage: str = described(default="", description="decode | prefill | mtp | indexer | ''")
    count: int | str = described(description="instances of the module in the whole model (an expression when unknown)")
    layer_ids: list[int] = described(default_factory=list, description="decoder layers it covers, when grouped")
    condition: str = described(default="", description="undecided condition under which the module exists")
    call_form: str = described(default="", description="plain | residual, for norms")
    evidence: str = described(default="", description="how the call form was decided")
    fi_api: str = described(default="", description="the FlashInfer API that implements the definition")
    coverage: Coverage = field(default_factory=Coverage)
    notes: list[str] = field(default_factory=list)


@record
class CallSite(Record):
    kind: str = described(description="child | kernel | delegate | data")
    target: str
    code_location: str
    condition: str = ""
    via: str = ""
    arguments: int = 0


@record
class ForwardInfo(Record):
    class_name: str
    method: str = described(description="the method read: forward, or forward_cuda on platform-dispatching layers")
    defined_in: str = described(description="dotted class that defines the method")
    code_location: str
    calls: list[CallSite]
    alternatives: list[str] = described(default_factory=list, description="other platform paths (not followed)")


@record
class TreeNode(Record):
    name: str
    path: str = described(description="dotted path from the root; * stands for a group of layers")
    class_name: str
    class_dotted: str
    type: Literal["block", "layer"]
    count: int | str = described(description="instances in the whole model")
    layer_ids: list[int] = field(default_factory=list)
    condition: str = ""
    code_location: str = described(description="where it is built (relative to sglang/srt)")
    role: str = ""
    scope: Literal["text", "vision"] = "text"
    alias_of: str = ""
    helper: bool = described(default=False, description="a module SGLang adds that the forward pass never calls")
    constructor: dict[str, Value] = field(default_factory=dict)
    definitions: list[str] = field(default_factory=list)
    children: list[TreeNode] = field(default_factory=list)


@record
class ForwardLayer(Record):
    name: str
    type: str
    class_name: str = ""
    kernel: str | None = None
    kernels: list[str] | None = None
    definitions: list[str] = field(default_factory=list)


@record
class ForwardPassStructure(Record):
    embedding: str | None
    layers: list[ForwardLayer]
    final_norm: str | None
    lm_head: str | None
    layer_class: str | None = None
    layer_count: int | str | None = None


@record
class SourceOut(Record):
    kind: str = described(description="path | git | clone | pypi")
    location: str
    version: str | None
    commit: str | None
    ref: str | None
    note: str = ""


@record
class ConfigOut(Record):
    path: str
    architectures: list[str]
    model_type: str | None
    text_config_key: str | None
    quantization: str
    not_converted: list[str] = field(default_factory=list)


@record
class MatchOut(Record):
    how: str = described(description="architecture | class | file | keyword")
    alternatives: list[str] = described(default_factory=list, description="other registrations that also matched")


@record
class Warning_(Record):
    kind: str
    message: str
    location: str = ""
    detail: str = ""


@record
class KernelSite(Record):
    function: str
    kind: str
    code_location: str
    reached_by: list[str] = described(description="module paths whose forward reaches it")
    parameters: dict[str, Value] = field(default_factory=dict)
    condition: str = ""
    via: str = ""


@record
class DefinitionSummary(Record):
    name: str
    op_type: str
    status: Literal["dataset", "proposed"]
    concrete: bool
    modules: list[str]
    variants: list[Variant]
    fi_api: str = ""
    coverage: Coverage = field(default_factory=Coverage)


@record
class AttentionOut(Record):
    architecture: str
    backend_class: str
    requested_backend: str
    reason: str


@record
class TraceComparison(Record):
    matched: list[str]
    predicted_not_seen: list[str]
    seen_not_predicted: list[str]


@record
class Implementation(Record):
    schema_version: str = SCHEMA_VERSION
    tool: dict[str, str]
    model_name: str
    model_file: str = described(description="python/sglang/srt/models/<file>.py")
    model_file_srt: str = described(description="models/<file>.py, relative to sglang/srt")
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
    stats: dict[str, Any] = field(default_factory=dict)
