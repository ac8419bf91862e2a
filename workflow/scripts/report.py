from pathlib import Path

from tuneladder.report import report_stage
from tuneladder.stages import logged

with logged(snakemake.log[0]):
    report_stage(
        inputs=dict(snakemake.input.items()),
        benchmarks_dir=snakemake.params.benchmarks_dir,
        seed=snakemake.params.seed,
        config=snakemake.params.config,
        configfiles=snakemake.params.configfiles,
        config_args=snakemake.params.config_args,
        out_dir=Path(snakemake.output.html).parent,
        sweeps=snakemake.input.sweeps,
    )
