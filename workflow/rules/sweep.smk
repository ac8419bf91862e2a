rule plan_coarse:
    input:
        unpack(lr_range_input),
        overfit=f"{RESULTS}/sanity/overfit.json",
        data=DATA,
    output:
        f"{RESULTS}/coarse/plan.json",
    log:
        f"{RESULTS}/logs/plan_coarse.log",
    benchmark:
        f"{RESULTS}/benchmarks/plan_coarse.tsv"
    conda:
        CONDA_ENV
    params:
        space=config["space"],
        task=config["task"],
        train=config["train"],
        sweep=config["coarse"],
        seed=config["seed"],
        data_dir=data_dir,
    script:
        "../scripts/plan_coarse.py"


# A tpe fine sweep's studies start from the coarse trials inside the fine space.
rule plan_fine:
    input:
        space=f"{RESULTS}/fine/space.json",
        coarse=f"{RESULTS}/coarse/results.json",
    output:
        f"{RESULTS}/fine/plan.json",
    log:
        f"{RESULTS}/logs/plan_fine.log",
    benchmark:
        f"{RESULTS}/benchmarks/plan_fine.tsv"
    conda:
        CONDA_ENV
    params:
        task=config["task"],
        train=config["train"],
        sweep=config["fine"],
        seed=config["seed"],
    script:
        "../scripts/plan_fine.py"


# A sweep that halves (tuneladder.search.halving) trains its levels inside the same workers:
# each worker plans the next level itself when a level is done, so no level starts a job.
# A worker claims trials of its rung one at a time; trial files are not outputs,
# so a killed worker never takes finished trials with it.
rule sweep_worker:
    input:
        unpack(gpu_probe_input),
        data=DATA,
        plan=f"{RESULTS}/{{rung}}/plan.json",
    output:
        f"{RESULTS}/{{rung}}/workers/{{w}}-of-{{n}}.json",
    log:
        f"{RESULTS}/logs/{{rung}}/worker-{{w}}-of-{{n}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{rung}}/worker-{{w}}-of-{{n}}.tsv"
    # before any job that could wait: the report's sweep part fills a slot a worker left
    priority: 1
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
        tracking=live_tracking_params(),
        # not read by the job: a code fix changes it, so the workers rerun (and -n says so)
        code=code_params(),
    script:
        "../scripts/sweep_worker.py"


rule collect_rung:
    input:
        workers=worker_markers,
        data=DATA,
        plan=f"{RESULTS}/{{rung}}/plan.json",
    output:
        f"{RESULTS}/{{rung}}/results.json",
    log:
        f"{RESULTS}/logs/{{rung}}/collect.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{rung}}/collect.tsv"
    conda:
        CONDA_ENV
    params:
        data_dir=data_dir,
        metric=config["metric"],
        precision=config["precision"],
    script:
        "../scripts/collect_rung.py"
