"""tuneladder: a reproducible hyperparameter-tuning ladder for PyTorch.

The package is importable without Snakemake; the workflow's rules call its
functions. Importing it is cheap: submodules load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
