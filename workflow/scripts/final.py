from pathlib import Path

from tuneladder.stages import final_stage, logged

with logged(snakemake.log[0]):
    final_stage(
        seeds=snakemake.input.seeds,
        sweeps=list(snakemake.input.sweeps),
        tracking=snakemake.params.tracking,
        data_dir=Path(snakemake.input[0]).parent,
        task=snakemake.params.task,
        metric=snakemake.params.metric,
        device=snakemake.params.device,
        threads=snakemake.threads,
        experiment=snakemake.params.experiment,
        out_dir=Path(snakemake.output.summary).parent,
    )
