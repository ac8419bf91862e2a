from tuneladder.stages import logged, plan_seeds_stage

with logged(snakemake.log[0]):
    plan_seeds_stage(
        sweeps=list(snakemake.input.sweeps),
        task=snakemake.params.task,
        train=snakemake.params.train,
        seeds=snakemake.params.seeds,
        seed=snakemake.params.seed,
        mode=snakemake.params.mode,
        out=snakemake.output[0],
    )
