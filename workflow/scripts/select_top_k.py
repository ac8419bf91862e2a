from tuneladder.stages import logged, select_top_k_stage

with logged(snakemake.log[0]):
    select_top_k_stage(
        coarse=snakemake.input.coarse,
        plan=snakemake.input.plan,
        top_k=snakemake.params.top_k,
        mode=snakemake.params.mode,
        topk_out=snakemake.output.topk,
        space_out=snakemake.output.space,
    )
