# The report: one self-contained page, its numbers as JSON, and the figures as
# PNGs marked for `snakemake --report report.zip` (captions in workflow/report/).
REPORT_FIGURES = {
    "ladder": "1. Ladder",
    "overfit": "2. Sanity checks",
    "lr_range": "2. Sanity checks",
    "learning_curves": "3. Learning curves",
    "hyperparameters": "4. Hyperparameters",
    "parallel": "4. Hyperparameters",
    "importance": "4. Hyperparameters",
    "seeds": "5. Seed variance",
    "best_so_far": "6. Diminishing returns",
}


rule report:
    input:
        DATA,
        overfit=f"{RESULTS}/sanity/overfit.json",
        lr_range=f"{RESULTS}/sanity/lr_range.json",
        plans=[f"{RESULTS}/{rung}/plan.json" for rung in RUNGS],
        results=[f"{RESULTS}/{rung}/results.json" for rung in RUNGS],
        topk=f"{RESULTS}/coarse/topk.json",
        space=f"{RESULTS}/fine/space.json",
        final=f"{RESULTS}/final/summary.json",
    output:
        html=report(
            f"{RESULTS}/report/index.html",
            caption="../report/index.rst",
            category="0. Report",
        ),
        summary=f"{RESULTS}/report/summary.json",
        figures=[
            report(
                f"{RESULTS}/report/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category=category,
            )
            for name, category in REPORT_FIGURES.items()
        ],
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    conda:
        CONDA_ENV
    params:
        seed=config["seed"],
        config=config,
        configfiles=CONFIGFILES,
        config_args=list(workflow.config_settings.config_args or []),
    script:
        "../scripts/report.py"
