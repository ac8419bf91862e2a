from pathlib import Path

from tuneladder.stages import collect_stage, logged

with logged(snakemake.log[0]):
    collect_stage(
        plan=snakemake.input.plan,
        data_dir=Path(snakemake.input[0]).parent,
        metric=snakemake.params.metric,
        out=snakemake.output[0],
    )
