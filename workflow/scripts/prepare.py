from pathlib import Path

from tuneladder.stages import logged, prepare_stage

with logged(snakemake.log[0]):
    prepare_stage(
        task=snakemake.params.task,
        seed=snakemake.params.seed,
        out_dir=Path(snakemake.output[0]).parent,
    )
