from pathlib import Path

from tuneladder.stages import logged, overfit_stage

with logged(snakemake.log[0]):
    overfit_stage(
        data_dir=Path(snakemake.input[0]).parent,
        task=snakemake.params.task,
        train=snakemake.params.train,
        seed=snakemake.params.seed,
        overfit=snakemake.params.overfit,
        device=snakemake.params.device,
        threads=snakemake.threads,
        out=snakemake.output[0],
    )
