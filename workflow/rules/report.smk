# The report: one self-contained page, its numbers as JSON, and the figures as PNGs
# marked for `snakemake --report report.zip` (figures, captions in workflow/report/ and
# categories from tuneladder.report.FIGURES).


# Its part that reads only the sanity checks and the sweeps: fANOVA, the rank trends
# and the figures marked `from_sweeps`. It can start once the seed reruns are planned
# (it reads none of their files), but workers go first (their `priority`), so it takes
# the core the first seed worker to finish leaves idle, and the report job then has
# only the final rung's part left to do.
rule report_sweeps:
    input:
        unpack(report_sweeps_files),
        after_seeds=f"{RESULTS}/{rungs.SEEDS.outputs['plan']}",
    output:
        sweeps=f"{RESULTS}/report/{SWEEPS_FILE}",
        figures=[
            report(
                f"{RESULTS}/report/{figure.path}",
                caption=f"../report/{figure.caption_file}",
                category=figure.category,
            )
            for figure in figures_for(config)
            if figure.from_sweeps
        ],
    log:
        f"{RESULTS}/logs/report_sweeps.log",
    benchmark:
        f"{RESULTS}/benchmarks/report_sweeps.tsv"
    conda:
        CONDA_ENV
    params:
        seed=config["seed"],
        config=config,
    script:
        "../scripts/report_sweeps.py"


rule report:
    input:
        unpack(report_files),
        unpack(gpu_probe_input),
        sweeps=f"{RESULTS}/report/{SWEEPS_FILE}",
        sweep_figures=[
            f"{RESULTS}/report/{figure.path}"
            for figure in figures_for(config)
            if figure.from_sweeps
        ],
    output:
        html=report(
            f"{RESULTS}/report/index.html",
            caption="../report/index.rst",
            category="0. Report",
        ),
        summary=f"{RESULTS}/report/summary.json",
        figures=[
            report(
                f"{RESULTS}/report/{figure.path}",
                caption=f"../report/{figure.caption_file}",
                category=figure.category,
            )
            for figure in figures_for(config)
            if not figure.from_sweeps
        ],
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    conda:
        CONDA_ENV
    params:
        benchmarks_dir=f"{RESULTS}/benchmarks",
        seed=config["seed"],
        config=config,
        configfiles=CONFIGFILES,
        config_args=list(workflow.config_settings.config_args or []),
    script:
        "../scripts/report.py"
