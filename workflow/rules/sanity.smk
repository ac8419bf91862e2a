rule overfit_check:
    input:
        data=DATA,
    output:
        f"{RESULTS}/sanity/overfit.json",
    log:
        f"{RESULTS}/logs/overfit_check.log",
    benchmark:
        f"{RESULTS}/benchmarks/overfit_check.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=1 if uses_gpu() else 0,
    params:
        data_dir=data_dir,
        task=config["task"],
        train=config["train"],
        seed=config["seed"],
        overfit=config["overfit"],
        runtime=runtime_params(),
        # a fix to the model or the training code reruns the check (params changed)
        code=code_params(),
    script:
        "../scripts/overfit_check.py"


# Side by side with the overfit check when there are two slots: the coarse plan
# waits for both, so a failed check still stops the ladder before any sweep.
rule lr_range_test:
    input:
        data=DATA,
    output:
        json=f"{RESULTS}/sanity/lr_range.json",
        csv=f"{RESULTS}/sanity/lr_range.csv",
    log:
        f"{RESULTS}/logs/lr_range_test.log",
    benchmark:
        f"{RESULTS}/benchmarks/lr_range_test.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=1 if uses_gpu() else 0,
    params:
        data_dir=data_dir,
        task=config["task"],
        train=config["train"],
        seed=config["seed"],
        lr_range=config["lr_range"],
        runtime=runtime_params(),
        # a fix to the model or the training code reruns the check (params changed)
        code=code_params(),
    script:
        "../scripts/lr_range_test.py"


# trials_per_gpu: auto on a run that uses GPUs: how many trials one GPU trains side by
# side best, measured once on the default config, before the sweeps' workers start.
rule gpu_probe:
    input:
        data=DATA,
    output:
        f"{RESULTS}/{rungs.GPU_PROBE_FILE}",
    log:
        f"{RESULTS}/logs/gpu_probe.log",
    benchmark:
        f"{RESULTS}/benchmarks/gpu_probe.tsv"
    conda:
        CONDA_ENV
    threads: probe_threads()
    resources:
        gpu=1 if uses_gpu() else 0,
    params:
        data_dir=data_dir,
        task=config["task"],
        train=config["train"],
        seed=config["seed"],
        gpu=config["gpu"],
        runtime=runtime_params(),
    script:
        "../scripts/gpu_probe.py"
