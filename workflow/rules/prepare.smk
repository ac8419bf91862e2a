rule prepare:
    output:
        DATA,
    log:
        f"{RESULTS}/logs/prepare.log",
    conda:
        CONDA_ENV
    params:
        task=config["task"],
        seed=config["seed"],
    script:
        "../scripts/prepare.py"
