from tuneladder.stages import logged, prepare_stage

with logged(snakemake.log[0]):
    prepare_stage(
        task=snakemake.params.task,
        seed=snakemake.params.seed,
        data_dir=snakemake.params.data_dir,
        data=snakemake.params.data,
        # read here, not as a param: params are rerun triggers, and a change of a
        # fixed hyperparameter must not re-prepare the data (and so rerun every rung)
        train=snakemake.config["train"],
    )
