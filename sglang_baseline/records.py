"""The catalog's and the outputs' classes: standard dataclasses that pydantic validates.

They are declared as dataclasses, not pydantic ``BaseModel``s, so that a run can build, read
and pass them without importing pydantic: its import and its schema building took ~0.15 s of
a ~0.7 s one-model run (see docs/DESIGN.md, Speed).  Pydantic validates them all the same,
through ``TypeAdapter`` (which reads ``__pydantic_config__`` and each field's ``description``
metadata): the catalog when its compiled form is made (``catalog.load_catalog``), the outputs
before they are written (``serialize``).  Every field is keyword-only, as a model's are.
"""

from __future__ import annotations

import dataclasses
from typing import Any

record = dataclasses.dataclass(kw_only=True)


class Record:
    """Base of every record: no field outside the declared ones; an instance handed to the
    validator is checked field by field (``revalidate_instances``), not trusted."""

    __pydantic_config__ = {"extra": "forbid", "revalidate_instances": "always"}


def described(description: str, **kwargs: Any) -> Any:
    """A field with its description (shown in the JSON Schema); ``default`` or ``default_factory``
    as for ``dataclasses.field``; neither: required."""
    return dataclasses.field(metadata={"description": description}, **kwargs)
