rule select_top_k:
    input:
        coarse=f"{RESULTS}/coarse/results.json",
        plan=f"{RESULTS}/coarse/plan.json",
    output:
        topk=f"{RESULTS}/coarse/topk.json",
        space=f"{RESULTS}/fine/space.json",
    log:
        f"{RESULTS}/logs/select_top_k.log",
    benchmark:
        f"{RESULTS}/benchmarks/select_top_k.tsv"
    conda:
        CONDA_ENV
    params:
        top_k=config["select"]["top_k"],
        mode=config["metric"]["mode"],
    script:
        "../scripts/select_top_k.py"


rule plan_seeds:
    input:
        sweeps=sweep_results(),
    output:
        f"{RESULTS}/seeds/plan.json",
    log:
        f"{RESULTS}/logs/plan_seeds.log",
    benchmark:
        f"{RESULTS}/benchmarks/plan_seeds.tsv"
    conda:
        CONDA_ENV
    params:
        task=config["task"],
        train=config["train"],
        seeds=config["seeds"],
        seed=config["seed"],
        mode=config["metric"]["mode"],
    script:
        "../scripts/plan_seeds.py"
