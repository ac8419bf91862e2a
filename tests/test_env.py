"""A trial's record says exactly which torch build trained it, and on what."""

from __future__ import annotations

import torch

from tuneladder.env import package_versions, provenance, torch_build


def test_the_torch_version_keeps_its_build_tag() -> None:
    # torch.__version__ is e.g. 2.14.1+cu130 or 2.13.0+cpu; the distribution's
    # metadata says 2.14.1, which hides the CUDA it was built for
    assert package_versions()["torch"] == torch.__version__


def test_the_build_names_cuda_and_cudnn_it_was_built_with() -> None:
    build = torch_build(torch.device("cpu"))
    assert build["torch"] == torch.__version__
    assert build["cuda_built"] == torch.version.cuda
    if torch.version.cuda:  # a CUDA wheel ships cuDNN: its version is an integer like 91002
        assert isinstance(build["cudnn_built"], int) and build["cudnn_built"] > 0
    else:
        assert build["cudnn_built"] is None
    assert build["device"] == "cpu"
    assert "device_name" not in build  # only a GPU has a name and a driver to record


def test_provenance_carries_the_build() -> None:
    record = provenance(torch.device("cpu"))
    assert record["build"] == torch_build(torch.device("cpu"))
    assert record["versions"]["torch"] == torch.__version__


def test_process_start_is_before_now_and_after_boot() -> None:
    import time

    from tuneladder.env import process_started_at

    started = process_started_at()
    assert started is not None  # Linux: /proc is there
    # this process started within the last hour, and before this line ran
    assert time.time() - 3600 < started <= time.time()


def test_process_start_is_exact_to_a_few_clock_ticks() -> None:
    """A child started just after a mark reports a start just after it, not a second early
    (the boot time in /proc/stat is in whole seconds)."""
    import subprocess
    import sys
    import time

    code = "from tuneladder.env import process_started_at; print(repr(process_started_at()))"
    before = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    after = time.time()
    started = float(out.stdout)
    assert before - 0.05 <= started <= after  # clock ticks are 0.01 s
