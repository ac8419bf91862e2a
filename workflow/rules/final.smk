# The only rule that reads the test split.
rule final:
    input:
        data=DATA,
        seeds=f"{RESULTS}/seeds/results.json",
        sweeps=sweep_results(),
    output:
        summary=f"{RESULTS}/final/summary.json",
        markdown=f"{RESULTS}/final/summary.md",
        config=f"{RESULTS}/final/best_config.json",
        model=f"{RESULTS}/final/model.pt",
        metrics=f"{RESULTS}/final/metrics.json",
        best_so_far=f"{RESULTS}/final/best_so_far.csv",
        history=f"{RESULTS}/final/history.csv",
    log:
        f"{RESULTS}/logs/final.log",
    benchmark:
        f"{RESULTS}/benchmarks/final.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=1 if uses_gpu() else 0,
    params:
        data_dir=data_dir,
        task=config["task"],
        metric=config["metric"],
        runtime=runtime_params(),
        experiment=config["experiment"],
        tracking=tracking_params(),
    script:
        "../scripts/final.py"
