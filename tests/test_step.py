"""One step function for the trial loop and both sanity rungs."""

from __future__ import annotations

import pytest
import torch

from helpers import needs_cpu_fp16
from tuneladder.core.hparams import TrialConfig
from tuneladder.sanity import lr_range, overfit
from tuneladder.training import runner, step
from tuneladder.training.metrics import make_loss
from tuneladder.training.optimizers import make_optimizer, zero_missing_momentum
from tuneladder.training.runner import TrainingRun

CPU = torch.device("cpu")
MLP = {"arch": "mlp", "width": 16, "num_layers": 1, "channels": 8, "dropout": 0.0}


def run(module, data, task) -> None:
    config = TrialConfig(epochs=1, batch_size=256, lr=1e-3, model=MLP)
    if module is overfit:
        settings = overfit.OverfitSettings(subset=16, max_steps=3, lr=1e-3, loss_ratio=0.05)
        overfit.overfit_check(config, data, task.build_model, settings, device=CPU)
    elif module is lr_range:
        sweep = lr_range.LRRangeSettings(
            start=1e-5, end=1.0, steps=5, smoothing=0.1, diverge_factor=4.0
        )
        lr_range.lr_range_test(config, data, task.build_model, sweep, device=CPU)
    else:
        runner.train(
            TrainingRun(
                config=config, data=data, task=task, metric="accuracy", mode="max", device=CPU
            )
        )


@pytest.mark.parametrize("module", [runner, overfit, lr_range], ids=lambda m: m.__name__)
def test_every_training_path_builds_and_steps_through_the_shared_functions(
    monkeypatch, digits, digits_task, module
) -> None:
    calls = {"setup": 0, "train_step": 0}

    def counted(name):
        def call(*args, **kwargs):
            calls[name] += 1
            return getattr(step, name)(*args, **kwargs)

        return call

    for name in calls:
        monkeypatch.setattr(module, name, counted(name))
    run(module, digits, digits_task)
    assert calls["setup"] == 1 and calls["train_step"] >= 3


def test_setup_is_seeded_and_a_step_reports_the_norm_before_clipping(digits, digits_task):
    config = TrialConfig(seed=3, lr=0.1, optimizer="sgd", weight_decay=0.0, model=MLP)
    model, optimizer = step.setup(config, digits_task.build_model, digits.info, CPU)
    again, _ = step.setup(config, digits_task.build_model, digits.info, CPU)
    pairs = zip(model.parameters(), again.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = digits.train.x[:64], digits.train.y[:64]
    loss_fn = make_loss(digits.info, CPU, None)
    output, loss, norm = step.train_step(model, optimizer, loss_fn, x, y, clip=1e-3)
    assert output.shape == (64, 10) and loss.ndim == 0
    assert norm is not None and float(norm) > 1e-3  # the norm before clipping
    moved = step.global_norm(
        p.detach() - b for p, b in zip(model.parameters(), before, strict=True)
    )
    assert float(moved) <= 0.1 * 1e-3 + 1e-7  # SGD moved by lr x the clipped norm
    assert step.train_step(model, optimizer, loss_fn, x, y)[2] is None
    measured = step.train_step(model, optimizer, loss_fn, x, y, measure_norm=True)[2]
    assert measured is not None and float(measured) > 0


def cpu_fp16() -> torch.autocast:
    """CUDA's fp16 autocast, played by the CPU's (the same autocast, another device)."""
    return torch.autocast("cpu", dtype=torch.float16)


@needs_cpu_fp16
def test_an_fp16_step_unscales_its_norm_and_skips_an_update_that_overflowed(digits, digits_task):
    config = TrialConfig(seed=3, lr=1e-3, optimizer="adam", model=MLP)
    x, y = digits.train.x[:64], digits.train.y[:64]
    loss_fn = make_loss(digits.info, CPU, None)
    plain, _ = step.setup(config, digits_task.build_model, digits.info, CPU)
    model, optimizer = step.setup(config, digits_task.build_model, digits.info, CPU)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    *_, norm = step.train_step(
        model, optimizer, loss_fn, x, y, amp=cpu_fp16(), scaler=scaler, measure_norm=True
    )
    *_, unscaled = step.train_step(
        plain,
        torch.optim.SGD(plain.parameters(), lr=0.0),
        loss_fn,
        x,
        y,
        amp=cpu_fp16(),
        measure_norm=True,
    )
    # the norm of the true gradients, not of the ones 1024 times larger that backward made
    assert norm is not None and unscaled is not None
    assert float(norm) == pytest.approx(float(unscaled), rel=1e-2)
    assert scaler.get_scale() == 2.0**10  # no overflow: the scale stays
    moved = [p.detach().clone() for p in model.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(moved, plain.parameters(), strict=True))
    # a scale that overflows the backward pass: the update is skipped, the scale halved
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127)
    *_, norm = step.train_step(
        model, optimizer, loss_fn, x, y, amp=cpu_fp16(), scaler=scaler, measure_norm=True
    )
    assert norm is not None and not torch.isfinite(norm)
    assert scaler.get_scale() == 2.0**126
    assert all(torch.equal(a, b) for a, b in zip(moved, model.parameters(), strict=True))


class _OnCuda(torch.nn.Parameter):
    """A CPU parameter that says it is on CUDA: the optimizer's choice, without a GPU."""

    @property
    def is_cuda(self) -> bool:
        return True


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw", "radam"])
def test_optimizers_run_fused_on_cuda_and_step_as_unfused_ones_through_skipped_fp16_steps(
    name,
) -> None:
    config = TrialConfig(
        optimizer=name, lr=0.1, momentum=0.9, nesterov=name == "momentum", weight_decay=0.01
    )
    unfused = torch.nn.Parameter(torch.linspace(0.0, 1.0, 64))
    fused = _OnCuda(torch.linspace(0.0, 1.0, 64))
    optimizers = [make_optimizer([unfused], config), make_optimizer([fused], config)]
    assert optimizers[0].param_groups[0].get("fused") in (None, False)  # the CPU's default
    # RAdam has no fused kernel; a fused step takes the loss scaler's overflow flag
    # as a tensor, where the others read it back to the host every step
    assert bool(optimizers[1].param_groups[0].get("fused")) is (name != "radam")
    # an fp16 trial's first step often overflows at the scaler's first scale; fused
    # momentum SGD then left its buffers unwritten, and the next step added garbage
    for scale in (2.0**127, 2.0**4, 2.0**4, 2.0**127, 2.0**4):
        for param, optimizer in zip((unfused, fused), optimizers, strict=True):
            scaler = torch.amp.GradScaler("cpu", init_scale=scale)
            optimizer.zero_grad()
            before = param.detach().clone()
            loss = (param * 1e10).sum() if scale > 1e30 else (param**2).sum()
            scaler.scale(loss).backward()  # 2**127 * 1e10 overflows float32
            scaler.step(optimizer)
            scaler.update()
            skipped = scale > 1e30
            assert torch.equal(before, param.detach()) is skipped
            assert scaler.get_scale() == (scale * 0.5 if skipped else scale)
    torch.testing.assert_close(fused.detach(), unfused.detach())
    # a state saved before the first update has no momentum: loading it must not undo that
    saved = optimizers[1].state_dict()
    optimizers[1].load_state_dict({**saved, "state": {}})
    zero_missing_momentum(optimizers[1])
    buffer = optimizers[1].state[fused].get("momentum_buffer")
    assert (buffer is not None and not buffer.any()) is (name == "momentum")
