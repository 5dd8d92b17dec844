"""Model knowledge as data: the catalog and the pydantic models that validate it.

The JSON files next to this module say
- ``runtime.json``: what the evaluator assumes about the machine and the run;
- ``layers.json``: which SGLang layer classes run which FlashInfer-Bench
  definitions, with name templates and axis expressions;
- ``kernels.json``: which called functions are kernels, and of what kind;
- ``backends.json``: attention architectures, backends, and what each backend's
  paths run.

No model name appears in any of them: rules match SGLang *layer* classes (by class
name along the MRO), kernel functions and config fields.  Adding an op type means
adding entries here, not code.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..index import ClassSym, ExternalSym, Index

HERE = Path(__file__).parent


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------- runtime


class LayerFactory(_Model):
    count: str = Field(description="parameter holding the number of layers")
    layer_fn: str = Field(description="parameter holding the per-layer constructor")
    prefix: str = Field(description="parameter holding the weight-name prefix")
    returns: str = Field(description="expression for the return value; `modules` is the list built")


class QuantizationBuild(_Model):
    module: str = Field(description="module in whose scope `build` is evaluated")
    build: str = Field(description="expression building the quant config from `method` and `qcfg`")
    fallback_build: str = ""


class RuntimeCatalog(_Model):
    description: str = ""
    gpu: str = ""
    functions: dict[str, str] = Field(description="function (simple or dotted name) -> value expression")
    call_arguments: dict[str, list[str]] = Field(default_factory=dict)
    namespaces: dict[str, str] = Field(description="function -> namespace it returns")
    namespace_attributes: dict[str, dict[str, str]]
    unknown_namespace_attribute: Literal["symbolic"] = "symbolic"
    layer_factories: dict[str, LayerFactory]
    module_base_classes: list[str]
    external_modules: dict[str, list[str]]
    container_modules: dict[str, Literal["list", "sequential", "dict"]]
    quantization: QuantizationBuild
    struct_base_classes: list[str] = Field(
        default_factory=list, description="external bases whose subclasses take their fields as constructor arguments")
    lazy_import_classes: list[str] = Field(
        default_factory=list, description="classes whose (module, name) arguments name an import done later")
    config_defaults: dict[str, object] = Field(
        default_factory=dict, description="attributes every transformers PretrainedConfig has, with their defaults")
    module_methods: dict[str, str] = Field(
        default_factory=dict, description="torch.nn.Module methods -> value (tensors are not modelled)")
    opaque_packages: list[str] = Field(
        default_factory=list,
        description="SGLang packages (or single dotted classes/functions) that are environment, not model "
                    "structure (remote storage, JIT compilation, the server's ModelConfig), or checks that only "
                    "raise: calls into them give an unknown value instead of being interpreted")
    copied_constructions: list[str] = Field(
        default_factory=list,
        description="SGLang modules (or single dotted classes) whose classes build the same module from equal "
                    "arguments, reading no state a model changes (rotary embeddings): built once per process "
                    "for each set of plain argument values, and copied after that (see constructions.py)")
    opaque_methods: dict[str, list[str]] = Field(
        default_factory=dict,
        description="class name -> methods that compute tensors, not structure (a RoPE cos/sin cache): called on "
                    "the class or a subclass (by class name along the MRO), they give an unknown value instead of "
                    "being interpreted")


# ----------------------------------------------------------------------------- layers


class KernelSource(_Model):
    """Where the kernels of a definition are called, when not in the layer's own forward."""

    classes: list[str] = Field(description="candidate classes (first found in the tree wins)")
    methods: list[str] = Field(description="methods read for kernel calls")


class DefinitionRule(_Model):
    """One FlashInfer-Bench definition a layer runs."""

    op_type: str
    name: str = Field(description="name template over the axis keys, e.g. rmsnorm_h{hidden_size}")
    axes: dict[str, str | list[str]] = Field(
        description="axis key -> expression over the layer's arguments (a list: the first known value wins)")
    when: str = Field(default="True", description="expression: emit only when true")
    call: Literal["any", "plain", "residual"] = Field(
        default="any", description="for layers called with or without a residual input")
    stage: str = Field(default="", description="decode | prefill | mtp | indexer | ''")
    status: Literal["dataset", "proposed"] = Field(
        default="dataset", description="dataset: FlashInfer-Bench has this op type and name form")
    varies_with: list[Literal["tp", "ep", "page_size"]] = Field(default_factory=list)
    kernels: list[str] = Field(default_factory=list, description="kernel patterns that implement it")
    fi_api: str = ""
    note: str = ""
    kernel_source: KernelSource | None = None


class LayerRule(_Model):
    """What an SGLang layer class (or any subclass) is and runs."""

    classes: list[str] = Field(description="class names matched along the MRO; a dotted entry "
                                           "(`layernorm_gated.RMSNorm`) matches a module-qualified class")
    role: str = Field(description="norm | linear | attention | moe | router | rope | embedding | "
                                  "lm_head | logits | linear_attention | mamba | indexer | activation")
    shallow: bool = Field(default=False, description="bind the constructor's arguments, do not run it")
    attrs: dict[str, str] = Field(default_factory=dict, description="computed attributes (probes)")
    definitions: list[DefinitionRule] = Field(default_factory=list)
    note: str = ""

    def matched_class(self, index: Index, cls: ClassSym) -> ClassSym | ExternalSym:
        for c in index.mro(cls):
            if isinstance(c, (ClassSym, ExternalSym)) and (c.name in self.classes or any(
                    "." in k and (c.dotted == k or c.dotted.endswith("." + k)) for k in self.classes)):
                return c
        return cls


class QuantWord(_Model):
    method: str = Field(description="class name of the layer's quant method")
    when: str = "True"
    word: str
    status: Literal["dataset", "proposed"] = "dataset"


class RoutingWord(_Model):
    routing_method: str = Field(description="RoutingMethodType member name")
    word: str
    grouped: bool = Field(default=False, description="name carries _ng{groups}_kg{topk_groups}")
    status: Literal["dataset", "proposed"] = "dataset"


class LayersCatalog(_Model):
    description: str = ""
    layers: list[LayerRule]
    moe_quant_words: list[QuantWord]
    linear_quant_words: list[QuantWord]
    linear_unquantized_methods: list[str]
    routing_words: list[RoutingWord]
    non_text_markers: list[str] = Field(description="class-name parts marking vision/audio towers")


# ----------------------------------------------------------------------------- kernels


class KernelRule(_Model):
    pattern: str = Field(description="dotted prefix or fnmatch pattern of the called function")
    kind: Literal["flashinfer", "sgl_kernel", "torch", "triton", "deep_gemm", "custom", "cuda"]
    op: str = Field(default="", description="the op it computes, to link it to definitions")


class KernelsCatalog(_Model):
    description: str = ""
    kernels: list[KernelRule]
    flashinfer_wrappers: dict[str, str] = Field(
        description="FlashInfer wrapper class -> the op its run/forward computes")
    wrapper_methods: list[str]
    dispatch_methods: list[str] = Field(description="platform dispatch, CUDA first")
    ignore: list[str] = Field(default_factory=list, description="calls that are never kernels")
    follow: list[str] = Field(default_factory=list,
                              description="packages whose helper functions are read for the kernels they call")


# ----------------------------------------------------------------------------- backends


class ArchRule(_Model):
    arch: str
    when: str


class BackendChoice(_Model):
    when: str
    backend_class: str


class BackendPaths(_Model):
    """A backend class and the methods whose kernel calls are its decode/prefill paths."""

    paths: dict[str, list[str]] = Field(description="stage -> methods of the backend")
    definitions: list[DefinitionRule] = Field(default_factory=list)


class BackendsCatalog(_Model):
    description: str = ""
    architectures: list[ArchRule]
    selection: list[BackendChoice]
    backends: dict[str, BackendPaths]
    attention_classes: list[str] = Field(description="layer classes that dispatch to the attention backend")


class Catalog(_Model):
    runtime: RuntimeCatalog
    layers: LayersCatalog
    kernels: KernelsCatalog
    backends: BackendsCatalog

    def layer_rule_for(self, index: Index, cls: ClassSym | ExternalSym) -> LayerRule | None:
        """The first rule matching ``cls`` along its MRO (most specific class first)."""
        mro = index.mro(cls) if isinstance(cls, ClassSym) else [cls]
        by_name = _rules_by_class(self)
        dotted_keys = [k for k in by_name if "." in k]
        for c in mro:
            if isinstance(c, (ClassSym, ExternalSym)):
                dotted = c.dotted
                # a rule naming a module-qualified class (`fla.layernorm_gated.RMSNorm`) wins over the bare name
                for k in dotted_keys:
                    if dotted == k or dotted.endswith("." + k):
                        return by_name[k]
                rule = by_name.get(c.name)
                if rule is not None:
                    return rule
        return None


_RULE_CACHE: dict[int, dict[str, LayerRule]] = {}


def _rules_by_class(cat: Catalog) -> dict[str, LayerRule]:
    got = _RULE_CACHE.get(id(cat))
    if got is None:
        got = {}
        for r in cat.layers.layers:
            for c in r.classes:
                got.setdefault(c, r)
        _RULE_CACHE[id(cat)] = got
    return got


def _read(name: str) -> dict:
    return json.loads((HERE / name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """Load and validate the shipped catalog (raises pydantic.ValidationError if broken)."""
    return Catalog(
        runtime=RuntimeCatalog.model_validate(_read("runtime.json")),
        layers=LayersCatalog.model_validate(_read("layers.json")),
        kernels=KernelsCatalog.model_validate(_read("kernels.json")),
        backends=BackendsCatalog.model_validate(_read("backends.json")),
    )
