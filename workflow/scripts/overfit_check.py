from tuneladder.stages import Runtime, logged, overfit_check_stage

with logged(snakemake.log[0]):
    overfit_check_stage(
        data_dir=snakemake.params.data_dir,
        task=snakemake.params.task,
        train=snakemake.params.train,
        seed=snakemake.params.seed,
        overfit=snakemake.params.overfit,
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
        out=snakemake.output[0],
    )
