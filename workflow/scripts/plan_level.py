from tuneladder.stages import logged, plan_level_stage

with logged(snakemake.log[0]):
    plan_level_stage(
        plan=snakemake.input.plan,
        previous=snakemake.input.get("previous"),
        level=int(snakemake.wildcards.level),
        mode=snakemake.params.mode,
        out=snakemake.output[0],
    )
