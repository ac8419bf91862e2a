rule prepare:
    input:
        # an edit to the data file re-prepares (a Dataset's own files: --forcerun prepare)
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
        # a fix to the code that reads the data, or an edited image folder, re-prepares
        # (a function: only a DAG with prepare in it walks an image folder)
        reads=lambda wildcards: prepare_trigger_params(),
    script:
        "../scripts/prepare.py"
