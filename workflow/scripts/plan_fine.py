from tuneladder.stages import logged, plan_fine_stage

with logged(snakemake.log[0]):
    plan_fine_stage(
        space=snakemake.input.space,
        coarse=snakemake.input.coarse,
        task=snakemake.params.task,
        train=snakemake.params.train,
        sweep=snakemake.params.sweep,
        seed=snakemake.params.seed,
        out=snakemake.output[0],
    )
