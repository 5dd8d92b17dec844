"""``--all``: every registered model, in worker processes."""

from __future__ import annotations

from typing import Any


def run_all(source: Any, args: Any, cache_dir: Any, report: Any) -> int:  # pragma: no cover - replaced below
    raise NotImplementedError
