from pathlib import Path

from tuneladder.stages import Runtime, final_stage, logged

with logged(snakemake.log[0]):
    final_stage(
        seeds=snakemake.input.seeds,
        sweeps=list(snakemake.input.sweeps),
        data_dir=snakemake.params.data_dir,
        task=snakemake.params.task,
        metric=snakemake.params.metric,
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
        experiment=snakemake.params.experiment,
        out_dir=Path(snakemake.output.summary).parent,
    )
