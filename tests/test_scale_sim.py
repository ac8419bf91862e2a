"""bench/scale_sim.py drives the real claims, levels and promotion log: at a small scale,
with workers killed mid-trial, no mode loses a training or trains one twice, and a
growing sweep keeps its workers busier than one that does not grow."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "scale_sim.py"


@pytest.fixture(scope="module")
def scale_sim():
    spec = importlib.util.spec_from_file_location("scale_sim", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["scale_sim"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["scale_sim"]


def test_no_mode_loses_or_repeats_a_training_and_growth_fills_idle_workers(scale_sim) -> None:
    runs = {
        name: scale_sim.simulate(16, 128, mode, kill=0.25, seed=1, sigma=1.0, grow=grow)
        for name, mode, grow in (
            ("sync", "sync", 0.0),
            ("async", "async", 0.0),
            ("grow", "async", 4.0),
        )
    }
    for name, out in runs.items():
        assert out["killed"] == 4, name
        assert (out["lost"], out["twice"]) == (0, 0), name
    assert runs["grow"]["grown"] > 0 and runs["async"]["grown"] == 0
    assert runs["grow"]["utilization"] > runs["async"]["utilization"]


def test_the_asks_bench_serves_a_whole_sweep_through_the_real_log(tmp_path: Path) -> None:
    """bench/async_asks.py at a small size: its replicas ask every training the rule has
    (a sweep of 30 configs, eta 3: at least 30 + 10 + 3 asks; ASHA may promote a config
    that later falls out of the best third) and time each, the same with level plans."""
    spec = importlib.util.spec_from_file_location("async_asks", BENCH.parent / "async_asks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runs = [module.measure(30, workers=3, asks=100, level_plans=lp, warm=5) for lp in (0, 1)]
    assert runs[0]["asks"] == runs[1]["asks"] >= 43 - 5
    for figures in runs:
        assert figures["next_mean_s"] > 0 and figures["next_p99_s"] > 0
