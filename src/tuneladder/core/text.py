"""Words for numbers in the lines the ladder prints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["counted", "mean_std"]


def counted(n: int, noun: str) -> str:
    """``1 seed``, ``5 seeds``: a count with its noun, plural unless it is one.

    Example:
        >>> counted(1, "seed"), counted(0, "GPU")
        ('1 seed', '0 GPUs')
    """
    return f"{n} {noun}{'s' if n != 1 else ''}"


def mean_std(values: Mapping[str, Any] | None) -> str:
    """``0.9972 ± 0.002`` of a ``{"mean", "std"}`` mapping; ``n/a`` without a mean."""
    if not values or values.get("mean") is None:
        return "n/a"
    std = values.get("std")
    return f"{values['mean']:.4g}" + (f" ± {std:.2g}" if std is not None else "")
