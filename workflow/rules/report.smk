# The report: one self-contained page, its numbers as JSON, and the figures as PNGs
# marked for `snakemake --report report.zip` (figures, captions in workflow/report/ and
# categories from tuneladder.report.FIGURES).
rule report:
    input:
        unpack(report_files),
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
