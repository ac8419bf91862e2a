"""Shared helpers for the tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tiny_config(**overrides) -> dict:
    """A ladder that runs in well under a minute: few trials, two epochs, MLPs."""
    config = {
        "experiment": "tiny",
        "seed": 0,
        "task": {"name": "digits"},
        "device": "cpu",
        "train": {"epochs": 2, "batch_size": 128, "width": 32, "num_layers": 1},
        "space": {
            "lr": "auto",
            "weight_decay": {"dist": "loguniform", "low": 1e-5, "high": 1e-2},
            "dropout": {"dist": "uniform", "low": 0.0, "high": 0.3},
            "num_layers": {"dist": "int", "low": 1, "high": 2},
            "batch_size": {"dist": "choice", "values": [64, 128]},
        },
        "overfit": {"subset": 32, "max_steps": 300},
        "lr_range": {"steps": 40},
        "coarse": {"trials": 4, "epochs": 2, "sampler": "sobol"},
        "select": {"top_k": 2},
        "fine": {"trials": 3, "epochs": 2},
        "seeds": {"finalists": 2, "seeds": 2, "epochs": 2},
    }
    for key, value in overrides.items():
        config[key] = value
    return config
