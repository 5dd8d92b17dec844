"""sglang-baseline: find a model's SGLang implementation and name its kernels as FlashInfer-Bench Definitions.

Static analysis only: SGLang's source is parsed, never imported or run.
"""

__version__ = "0.1.0"
