"""The JSON outputs, from the output records, by pydantic: validated, then serialised.

A one-model run does this in its helper process (see prefetch), which imports pydantic and
builds these validators while the main process analyses; the main process does it itself when
there is no helper, and so does each ``--all`` worker.  A record that does not fit its class
(a bug) raises ``pydantic.ValidationError``.
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from pydantic import TypeAdapter

from .schemas import Implementation, KernelCall

IMPLEMENTATION = TypeAdapter(Implementation)
KERNEL_CALLS = TypeAdapter(list[KernelCall])


def json_outputs(impl: Implementation, calls: list[KernelCall], data: dict[str, Any]
                 ) -> tuple[Implementation, list[KernelCall], dict[str, str]]:
    """``impl`` and ``calls`` validated (copies), and the JSON files: sglang_implementation.json,
    kernel_calls.json, and each of ``data`` (plain data by file name)."""
    impl = IMPLEMENTATION.validate_python(impl)
    calls = KERNEL_CALLS.validate_python(calls)
    files = {"sglang_implementation.json": IMPLEMENTATION.dump_json(impl, indent=2).decode("utf-8") + "\n",
             "kernel_calls.json": KERNEL_CALLS.dump_json(calls, indent=2).decode("utf-8") + "\n"}
    for name, value in data.items():
        files[name] = dump(value)
    return impl, calls, files


def dump(obj: Any) -> str:
    # pydantic-core's serializer: the same layout as json.dumps(indent=2, ensure_ascii=False),
    # several times faster (floats are written shortest-form: 1e-6, not 1e-06)
    return pydantic_core.to_json(obj, indent=2).decode("utf-8") + "\n"


def json_schemas() -> dict[str, Any]:
    """The JSON Schemas of both output files."""
    return {
        "sglang_implementation.json": IMPLEMENTATION.json_schema(),
        "kernel_calls.json": KERNEL_CALLS.json_schema(),
    }
