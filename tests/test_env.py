"""A trial's record says exactly which torch build trained it, and on what."""

from __future__ import annotations

import torch

from tuneladder.infra.env import package_versions, provenance, torch_build


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

    from tuneladder.infra.env import process_started_at

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

    code = "from tuneladder.infra.env import process_started_at; print(repr(process_started_at()))"
    before = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    after = time.time()
    started = float(out.stdout)
    assert before - 0.05 <= started <= after  # clock ticks are 0.01 s


def test_provenance_survives_a_torch_without_its_cuda_functions(monkeypatch) -> None:
    """Recording where a trial ran never fails it: a torch release that drops a function
    (as 2.11 dropped torch._C._cuda_getDriverVersion) leaves that field unknown."""
    from types import SimpleNamespace

    from tuneladder.infra import env

    bare = SimpleNamespace(
        __version__="9.9.0+cu999",
        version=SimpleNamespace(cuda="99.0"),
        backends=SimpleNamespace(cudnn=SimpleNamespace()),  # no version()
        device=torch.device,
        cuda=SimpleNamespace(),  # no get_device_name, no current_device
        _C=SimpleNamespace(),  # none of torch's private functions
    )
    monkeypatch.setitem(__import__("sys").modules, "torch", bare)
    monkeypatch.setattr(env, "_nvidia_driver", lambda: None)  # no nvidia-smi
    monkeypatch.setattr(env, "_cuda_driver_api", lambda: None)  # no libcuda
    record = provenance(torch.device("cuda", 0))
    build = record["build"]
    assert build["torch"] == "9.9.0+cu999" and build["cuda_built"] == "99.0"
    assert build["device"] == "cuda:0"
    unknown_fields = ["cudnn_built", "device_name", "driver", "cuda_driver_api"]
    for unknown in [*unknown_fields, "matmul_fp32", "cudnn_tf32"]:
        assert build[unknown] is None, unknown


def test_a_missing_libcuda_leaves_the_driver_api_unknown(monkeypatch) -> None:
    import ctypes

    from tuneladder.infra import env

    def no_library(name: str):
        raise OSError(f"{name}: cannot open shared object file")

    env._cuda_driver_api.cache_clear()
    monkeypatch.setattr(ctypes, "CDLL", no_library)
    try:
        assert env._cuda_driver_api() is None
    finally:
        env._cuda_driver_api.cache_clear()


def test_no_private_torch_api_in_the_library() -> None:
    """``torch._anything`` as code (not in a string or comment) anywhere in src/."""
    import io
    import tokenize
    from pathlib import Path

    import tuneladder

    found = []
    for path in Path(tuneladder.__file__).parent.rglob("*.py"):
        tokens = [
            t
            for t in tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
            if t.type in (tokenize.NAME, tokenize.OP)
        ]
        for a, dot, b in zip(tokens, tokens[1:], tokens[2:], strict=False):
            private = b.string.startswith("_") and not b.string.startswith("__")
            if a.string == "torch" and dot.string == "." and private:
                found.append(f"{path.name}:{a.start[0]} torch.{b.string}")
    assert not found, found
