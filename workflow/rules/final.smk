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


# Off the critical path: one job mirrors every trial and the final model into MLflow,
# beside the report, which does not wait for it (asked for by rule all only while
# mlflow.enabled; with mlflow.live the workers have mirrored the trials already).
rule log_mlflow:
    input:
        data=DATA,
        tables=trial_tables(),
        summary=f"{RESULTS}/final/summary.json",
        config=f"{RESULTS}/final/best_config.json",
        model=f"{RESULTS}/final/model.pt",
    output:
        f"{RESULTS}/{rungs.MLFLOW_MARKER}",
    log:
        f"{RESULTS}/logs/log_mlflow.log",
    benchmark:
        f"{RESULTS}/benchmarks/log_mlflow.tsv"
    conda:
        CONDA_ENV
    params:
        data_dir=data_dir,
        task=config["task"],
        tracking=tracking_params(),
        trial_runs=config["mlflow"]["trial_runs"],
    script:
        "../scripts/log_mlflow.py"
