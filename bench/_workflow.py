"""The Snakemake command the benches run: the repository's workflow, on a config, in a folder."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def snakemake_command(
    workdir: Path, configfile: Path, cores: int, *targets: str, extra: tuple[str, ...] = ()
) -> list[str]:
    """As a user runs it from a checkout, with the default profile and quiet output."""
    return [
        str(Path(sys.executable).parent / "snakemake"),
        *targets,  # before --quiet, which would take them as its values
        "--snakefile",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        "--workflow-profile",
        str(REPO / "profiles" / "default"),
        "--cores",
        str(cores),
        "--quiet",
        "all",
        *extra,
    ]
