from tuneladder.stages import Runtime, logged, sweep_worker_stage

with logged(snakemake.log[0]):
    sweep_worker_stage(
        plan=snakemake.input.plan,
        data_dir=snakemake.params.data_dir,
        task=snakemake.params.task,
        worker=int(snakemake.wildcards.w),
        workers=int(snakemake.wildcards.n),
        metric=snakemake.params.metric,
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
        tracking=snakemake.params.tracking,
        out=snakemake.output[0],
        probe=snakemake.input.get("probe"),
        log_path=snakemake.log[0],
    )
