rule prepare:
    output:
        DATA,
    log:
        f"{RESULTS}/logs/prepare.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare.tsv"
    conda:
        CONDA_ENV
    params:
        task=config["task"],
        seed=config["seed"],
    script:
        "../scripts/prepare.py"
