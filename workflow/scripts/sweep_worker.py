from pathlib import Path

from tuneladder.stages import logged, worker_stage

with logged(snakemake.log[0]):
    worker_stage(
        plan=snakemake.input.plan,
        data_dir=Path(snakemake.input[0]).parent,
        task=snakemake.params.task,
        worker=int(snakemake.wildcards.w),
        workers=int(snakemake.wildcards.n),
        metric=snakemake.params.metric,
        threads=snakemake.threads,
        out=snakemake.output[0],
        tracking=snakemake.params.tracking,
        **snakemake.params.runtime,
    )
