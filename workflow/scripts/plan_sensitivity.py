from tuneladder.stages import logged, plan_sensitivity_stage

with logged(snakemake.log[0]):
    plan_sensitivity_stage(
        summary=snakemake.input.summary,
        seeds=snakemake.input.seeds,
        space=snakemake.input.space,
        sensitivity=snakemake.params.sensitivity,
        seed=snakemake.params.seed,
        out=snakemake.output[0],
    )
