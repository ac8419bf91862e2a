"""From an experiment config to the configs of individual trials."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from tuneladder.hparams import TrialConfig

__all__ = ["base_params", "derive_seed", "make_trial_config"]


def base_params(train: Mapping[str, Any], default_model: Mapping[str, Any]) -> dict[str, Any]:
    """Fixed hyperparameters: the task's default model, then the config's ``train``."""
    params = {**default_model, **train}
    params.pop("epochs", None)
    return params


def make_trial_config(
    base: Mapping[str, Any], sampled: Mapping[str, Any], *, epochs: int, seed: int
) -> TrialConfig:
    """Sampled values win over fixed ones; the result is saved with the trial."""
    return TrialConfig.from_flat({**base, **sampled}, epochs=epochs, seed=seed)


def derive_seed(ladder_seed: int, rung: str, index: int) -> int:
    """A trial's training seed: distinct per trial, a pure function of the ladder's seed."""
    entropy = [ladder_seed, zlib.crc32(rung.encode()), index]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] % (2**31 - 1))
