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
    script:
        "../scripts/final.py"


# Off the critical path: the report does not wait for MLflow (asked for by rule all
# only while mlflow.enabled).
rule log_final_model:
    input:
        data=DATA,
        summary=f"{RESULTS}/final/summary.json",
        config=f"{RESULTS}/final/best_config.json",
        model=f"{RESULTS}/final/model.pt",
    output:
        f"{RESULTS}/{rungs.FINAL_MLFLOW}",
    log:
        f"{RESULTS}/logs/log_final_model.log",
    benchmark:
        f"{RESULTS}/benchmarks/log_final_model.tsv"
    conda:
        CONDA_ENV
    params:
        data_dir=data_dir,
        task=config["task"],
        tracking=tracking_params(),
    script:
        "../scripts/log_final_model.py"
