rule prepare:
    output:
        DATA,
    params:
        task=config["task"],
        seed=config["seed"],
    log:
        f"{RESULTS}/logs/prepare.log",
    script:
        "../scripts/prepare.py"
