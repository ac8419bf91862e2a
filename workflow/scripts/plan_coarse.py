from tuneladder.stages import logged, plan_coarse_stage

with logged(snakemake.log[0]):
    plan_coarse_stage(
        space=snakemake.params.space,
        lr_range=snakemake.input.get("lr_range"),
        task=snakemake.params.task,
        train=snakemake.params.train,
        sweep=snakemake.params.sweep,
        seed=snakemake.params.seed,
        out=snakemake.output[0],
        data_dir=snakemake.params.data_dir,
    )
