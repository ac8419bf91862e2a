from pathlib import Path

from tuneladder.report import report_sweeps_stage
from tuneladder.stages import logged

with logged(snakemake.log[0]):
    report_sweeps_stage(
        inputs=dict(snakemake.input.items()),
        seed=snakemake.params.seed,
        config=snakemake.params.config,
        out_dir=Path(snakemake.output.sweeps).parent,
    )
