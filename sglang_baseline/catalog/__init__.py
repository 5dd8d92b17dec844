"""Model knowledge as data: the catalog, and the classes pydantic validates it against.

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

import hashlib
import json
import pickle
import sys
from dataclasses import field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from .. import records as _records
from ..index import ClassSym, ExternalSym, Index
from ..records import Record, described, record

HERE = Path(__file__).parent

# ----------------------------------------------------------------------------- runtime


@record
class LayerFactory(Record):
    count: str = described(description="parameter holding the number of layers")
    layer_fn: str = described(description="parameter holding the per-layer constructor")
    prefix: str = described(description="parameter holding the weight-name prefix")
    returns: str = described(description="expression for the return value; `modules` is the list built")


@record
class QuantizationBuild(Record):
    module: str = described(description="module in whose scope `build` is evaluated")
    build: str = described(description="expression building the quant config from `method` and `qcfg`")
    fallback_build: str = ""


@record
class RuntimeCatalog(Record):
    description: str = ""
    gpu: str = ""
    functions: dict[str, str] = described(description="function (simple or dotted name) -> value expression")
    call_arguments: dict[str, list[str]] = field(default_factory=dict)
    namespaces: dict[str, str] = described(description="function -> namespace it returns")
    namespace_attributes: dict[str, dict[str, str]]
    unknown_namespace_attribute: Literal["symbolic"] = "symbolic"
    layer_factories: dict[str, LayerFactory]
    module_base_classes: list[str]
    external_modules: dict[str, list[str]]
    container_modules: dict[str, Literal["list", "sequential", "dict"]]
    quantization: QuantizationBuild
    struct_base_classes: list[str] = described(
        default_factory=list, description="external bases whose subclasses take their fields as constructor arguments")
    lazy_import_classes: list[str] = described(
        default_factory=list, description="classes whose (module, name) arguments name an import done later")
    config_defaults: dict[str, object] = described(
        default_factory=dict, description="attributes every transformers PretrainedConfig has, with their defaults")
    module_methods: dict[str, str] = described(
        default_factory=dict, description="torch.nn.Module methods -> value (tensors are not modelled)")
    opaque_packages: list[str] = described(
        default_factory=list,
        description="SGLang packages (or single dotted classes/functions) that are environment, not model "
                    "structure (remote storage, JIT compilation, the server's ModelConfig), or checks that only "
                    "raise: calls into them give an unknown value instead of being interpreted")
    copied_constructions: list[str] = described(
        default_factory=list,
        description="SGLang modules (or single dotted classes) whose classes build the same module from equal "
                    "arguments, reading no state a model changes (rotary embeddings): built once per process "
                    "for each set of plain argument values, and copied after that (see constructions.py)")
    opaque_methods: dict[str, list[str]] = described(
        default_factory=dict,
        description="class name -> methods that compute tensors, not structure (a RoPE cos/sin cache): called on "
                    "the class or a subclass (by class name along the MRO), they give an unknown value instead of "
                    "being interpreted")


# ----------------------------------------------------------------------------- layers


@record
class KernelSource(Record):
    """Where the kernels of a definition are called, when not in the layer's own forward."""

    classes: list[str] = described(description="candidate classes (first found in the tree wins)")
    methods: list[str] = described(description="methods read for kernel calls")


@record
class DefinitionRule(Record):
    """One FlashInfer-Bench definition a layer runs."""

    op_type: str
    name: str = described(description="name template over the axis keys, e.g. rmsnorm_h{hidden_size}")
    axes: dict[str, str | list[str]] = described(
        description="axis key -> expression over the layer's arguments (a list: the first known value wins)")
    when: str = described(default="True", description="expression: emit only when true")
    call: Literal["any", "plain", "residual"] = described(
        default="any", description="for layers called with or without a residual input")
    stage: str = described(default="", description="decode | prefill | mtp | indexer | ''")
    status: Literal["dataset", "proposed"] = described(
        default="dataset", description="dataset: FlashInfer-Bench has this op type and name form")
    varies_with: list[Literal["tp", "ep", "page_size"]] = field(default_factory=list)
    kernels: list[str] = described(default_factory=list, description="kernel patterns that implement it")
    fi_api: str = ""
    note: str = ""
    kernel_source: KernelSource | None = None


@record
class LayerRule(Record):
    """What an SGLang layer class (or any subclass) is and runs."""

    classes: list[str] = described(description="class names matched along the MRO; a dotted entry "
                                           "(`layernorm_gated.RMSNorm`) matches a module-qualified class")
    role: str = described(description="norm | linear | attention | moe | router | rope | embedding | "
                                  "lm_head | logits | linear_attention | mamba | indexer | activation")
    shallow: bool = described(default=False, description="bind the constructor's arguments, do not run it")
    attrs: dict[str, str] = described(default_factory=dict, description="computed attributes (probes)")
    definitions: list[DefinitionRule] = field(default_factory=list)
    note: str = ""

    def matched_class(self, index: Index, cls: ClassSym) -> ClassSym | ExternalSym:
        for c in index.mro(cls):
            if isinstance(c, (ClassSym, ExternalSym)) and (c.name in self.classes or any(
                    "." in k and (c.dotted == k or c.dotted.endswith("." + k)) for k in self.classes)):
                return c
        return cls


@record
class QuantWord(Record):
    method: str = described(description="class name of the layer's quant method")
    when: str = "True"
    word: str
    status: Literal["dataset", "proposed"] = "dataset"


@record
class RoutingWord(Record):
    routing_method: str = described(description="RoutingMethodType member name")
    word: str
    grouped: bool = described(default=False, description="name carries _ng{groups}_kg{topk_groups}")
    status: Literal["dataset", "proposed"] = "dataset"


@record
class LayersCatalog(Record):
    description: str = ""
    layers: list[LayerRule]
    moe_quant_words: list[QuantWord]
    linear_quant_words: list[QuantWord]
    linear_unquantized_methods: list[str]
    routing_words: list[RoutingWord]
    non_text_markers: list[str] = described(description="class-name parts marking vision/audio towers")


# ----------------------------------------------------------------------------- kernels


@record
class KernelRule(Record):
    pattern: str = described(description="dotted prefix or fnmatch pattern of the called function")
    kind: Literal["flashinfer", "sgl_kernel", "torch", "triton", "deep_gemm", "custom", "cuda"]
    op: str = described(default="", description="the op it computes, to link it to definitions")


@record
class KernelsCatalog(Record):
    description: str = ""
    kernels: list[KernelRule]
    flashinfer_wrappers: dict[str, str] = described(
        description="FlashInfer wrapper class -> the op its run/forward computes")
    wrapper_methods: list[str]
    dispatch_methods: list[str] = described(description="platform dispatch, CUDA first")
    ignore: list[str] = described(default_factory=list, description="calls that are never kernels")
    follow: list[str] = described(default_factory=list,
                              description="packages whose helper functions are read for the kernels they call")


# ----------------------------------------------------------------------------- backends


@record
class ArchRule(Record):
    arch: str
    when: str


@record
class BackendChoice(Record):
    when: str
    backend_class: str


@record
class BackendPaths(Record):
    """A backend class and the methods whose kernel calls are its decode/prefill paths."""

    paths: dict[str, list[str]] = described(description="stage -> methods of the backend")
    definitions: list[DefinitionRule] = field(default_factory=list)


@record
class BackendsCatalog(Record):
    description: str = ""
    architectures: list[ArchRule]
    selection: list[BackendChoice]
    backends: dict[str, BackendPaths]
    attention_classes: list[str] = described(description="layer classes that dispatch to the attention backend")


@record
class Catalog(Record):
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


_RULE_CACHE: dict[int, tuple[Catalog, dict[str, LayerRule]]] = {}


def _rules_by_class(cat: Catalog) -> dict[str, LayerRule]:
    got = _RULE_CACHE.get(id(cat))
    if got is not None and got[0] is cat:
        return got[1]
    rules: dict[str, LayerRule] = {}
    for r in cat.layers.layers:
        for c in r.classes:
            rules.setdefault(c, r)
    _RULE_CACHE[id(cat)] = (cat, rules)
    return rules


_PY = f"py{sys.version_info[0]}{sys.version_info[1]}"  # (pickles of one Python version)
PARTS = {"runtime": "runtime.json", "layers": "layers.json", "kernels": "kernels.json", "backends": "backends.json"}


@lru_cache(maxsize=4)
def load_catalog(folder: Path = HERE) -> Catalog:
    """The shipped catalog (or the one in ``folder``), validated by pydantic.

    Validating it means importing pydantic and building its validators (~0.1 s), so it is done
    once per content: the result is kept, pickled, beside the package's bytecode
    (``catalog/__pycache__``) under a digest of the JSON files and of the modules defining its
    classes (this one and ``records``), and later
    runs load that (~1 ms, without importing pydantic).  A changed file or class gives another digest, hence a new
    validation; a missing, unreadable or damaged compiled form is validated again.  Raises
    ``pydantic.ValidationError`` when a file does not fit its class."""
    texts = {part: (folder / name).read_bytes() for part, name in PARTS.items()}
    digest = hashlib.sha256(Path(__file__).read_bytes())  # the classes, and their base
    digest.update(Path(_records.__file__).read_bytes())
    for part in PARTS:
        digest.update(b"\0%s\0%s" % (part.encode(), texts[part]))
    compiled = folder / "__pycache__" / f"catalog-{digest.hexdigest()[:24]}.{_PY}.pickle"
    try:
        cat = pickle.loads(compiled.read_bytes())
        if isinstance(cat, Catalog):
            return cat
    except Exception:  # absent, or damaged: validate again
        pass
    cat = _validate(texts)
    _keep(compiled, cat)
    return cat


def _validate(texts: dict[str, bytes]) -> Catalog:
    from pydantic import TypeAdapter

    return TypeAdapter(Catalog).validate_python({part: json.loads(text) for part, text in texts.items()})


def _keep(compiled: Path, cat: Catalog) -> None:
    """Write the compiled form (atomically), and drop the forms of earlier contents; like
    Python's bytecode, not when Python is told not to write bytecode, nor where the package
    is read-only."""
    from ..fsutil import write_atomic

    if sys.dont_write_bytecode:
        return
    try:
        compiled.parent.mkdir(exist_ok=True)
        write_atomic(compiled, pickle.dumps(cat, protocol=pickle.HIGHEST_PROTOCOL))
        for old in compiled.parent.glob(f"catalog-*.{_PY}.pickle"):
            if old != compiled:
                old.unlink(missing_ok=True)
    except OSError:
        pass
