from pathlib import Path

from tuneladder.stages import logged, lr_range_stage

with logged(snakemake.log[0]):
    lr_range_stage(
        data_dir=Path(snakemake.input[0]).parent,
        task=snakemake.params.task,
        train=snakemake.params.train,
        seed=snakemake.params.seed,
        lr_range=snakemake.params.lr_range,
        device=snakemake.params.device,
        threads=snakemake.threads,
        out=snakemake.output.json,
    )
