from pathlib import Path

from tuneladder.stages import log_mlflow_stage, logged

with logged(snakemake.log[0]):
    log_mlflow_stage(
        tables=snakemake.input.tables,
        final_dir=Path(snakemake.input.summary).parent,
        data_dir=snakemake.params.data_dir,
        task=snakemake.params.task,
        tracking=snakemake.params.tracking,
        trial_runs=snakemake.params.trial_runs,
        marker=snakemake.output[0],
    )
