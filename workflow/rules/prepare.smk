rule prepare:
    input:
        # an edit to the data file re-prepares (a Dataset's files: --forcerun prepare)
        data_files(),
    output:
        data=DATA,
    log:
        f"{RESULTS}/logs/prepare.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare.tsv"
    conda:
        CONDA_ENV
    params:
        task=config["task"],
        seed=config["seed"],
        data=prepare_params(),
        data_dir=data_dir,
    script:
        "../scripts/prepare.py"
