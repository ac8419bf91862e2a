from tuneladder.stages import Runtime, WorkerJob, logged, sweep_worker_stage

with logged(snakemake.log[0]):
    sweep_worker_stage(
        plan=snakemake.input.plan,
        data_dir=snakemake.params.data_dir,
        task=snakemake.params.task,
        metric=snakemake.params.metric,
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
        job=WorkerJob(
            worker=int(snakemake.wildcards.w),
            workers=int(snakemake.wildcards.n),
            out=snakemake.output[0],
            log=snakemake.log[0],
        ),
        tracking=snakemake.params.tracking,
        probe=snakemake.input.get("probe"),
    )
