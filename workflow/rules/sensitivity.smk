# The optional sensitivity rung (sensitivity.enabled): after the final choice, each
# searched hyperparameter over a few values around the chosen one, the rest held
# fixed. Its trials run on the {rung} rules of sweep.smk and see the val split only.
rule plan_sensitivity:
    input:
        summary=f"{RESULTS}/final/summary.json",
        seeds=f"{RESULTS}/seeds/plan.json",
        space=f"{RESULTS}/fine/space.json",
    output:
        f"{RESULTS}/sensitivity/plan.json",
    log:
        f"{RESULTS}/logs/plan_sensitivity.log",
    benchmark:
        f"{RESULTS}/benchmarks/plan_sensitivity.tsv"
    conda:
        CONDA_ENV
    params:
        sensitivity=config["sensitivity"],
        seed=config["seed"],
    script:
        "../scripts/plan_sensitivity.py"
