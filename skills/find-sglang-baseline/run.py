#!/usr/bin/env python3
"""Entry script the /find-sglang-baseline skill runs: the installed package, or this checkout's copy."""

import sys
from pathlib import Path

try:
    from sglang_baseline.cli import entry
except ImportError:  # running from a checkout without `pip install`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from sglang_baseline.cli import entry

entry()
