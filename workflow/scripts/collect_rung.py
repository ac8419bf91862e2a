from tuneladder.stages import collect_rung_stage, logged

with logged(snakemake.log[0]):
    collect_rung_stage(
        plan=snakemake.input.plan,
        data_dir=snakemake.params.data_dir,
        metric=snakemake.params.metric,
        precision=snakemake.params.precision,
        out=snakemake.output[0],
    )
