from tuneladder.stages import Runtime, logged, lr_range_test_stage

with logged(snakemake.log[0]):
    lr_range_test_stage(
        data_dir=snakemake.params.data_dir,
        task=snakemake.params.task,
        train=snakemake.params.train,
        seed=snakemake.params.seed,
        lr_range=snakemake.params.lr_range,
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
        out=snakemake.output.json,
        csv_out=snakemake.output.csv,
    )
