"""The report rung: one self-contained HTML page, its numbers as JSON, and its figures as PNGs.

``report_stage`` loads a finished ladder (``_load``), computes every number and
verdict (``_analysis``, ``_importance``, assembled by ``_summary``), draws the
figures (``_figures``) and renders the page (``_html``). The page's sections and
figures are listed once, in ``_contents``; the files it reads, in ``_load``.
The part that reads only the sanity checks and the sweeps (fANOVA, the rank
trends and the figures ``from_sweeps``) is ``report_sweeps_stage``, a job of its
own that runs while the seed reruns finish; ``report_stage`` runs it first when
it is not given its output. docs/report.md says what each section shows and states
the rules.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneladder.report._contents import (
    FIGURE_NAMES,
    FIGURES,
    PROBE_INPUT,
    READS,
    SECTIONS,
    SWEEP_READS,
    SWEEPS_FILE,
    Figure,
    figures_for,
    report_inputs,
)
from tuneladder.store.io import atomic_open, read_json, write_json, write_text

if TYPE_CHECKING:
    from tuneladder.report._load import RunData

__all__ = [
    "FIGURES",
    "FIGURE_NAMES",
    "PROBE_INPUT",
    "READS",
    "SECTIONS",
    "SWEEPS_FILE",
    "SWEEP_READS",
    "Figure",
    "draw_figures",
    "figures_for",
    "report_inputs",
    "report_stage",
    "report_sweeps_stage",
]

log = logging.getLogger("tuneladder")


def draw_figures(
    run: RunData, summary: Mapping[str, Any], figures: Sequence[Figure] = FIGURES
) -> dict[str, bytes]:
    """The ``figures`` (by default all of :data:`FIGURES`) as PNG bytes, keyed by name.

    ``summary`` needs the parts those figures show: for the figures ``from_sweeps``,
    those of ``_summary.sweep_summary``.
    """
    from optuna.distributions import FloatDistribution

    from tuneladder.report import _figures as figs
    from tuneladder.report._summary import curve_panels, equal_epochs

    metric, mode = summary["metric"]["name"], summary["metric"]["mode"]
    sweep = run.sweep_rows()
    space = run.coarse_space
    classes = summary["failures"]["classes"]

    def panels() -> list[dict[str, Any]]:
        out = []
        for p in curve_panels(sweep, classes, mode):
            row = p["row"]
            value = row["best_val_metric"]
            title = f"{p['role']}: {row['rung']} #{row['name']}"
            if value is not None:
                title += f" ({metric} {value:.3g})"
            out.append({"title": title, "history": row["history"], "note": row.get("reason")})
        return out

    coarse_lr = space.get("lr")
    lr_bounds = (
        (coarse_lr.low, coarse_lr.high) if isinstance(coarse_lr, FloatDistribution) else None
    )
    # built only when asked for: the summary of the report_sweeps job has no final parts
    draw = {
        "ladder": lambda: figs.ladder_figure(summary["ladder"]["rungs"]),
        "halving": lambda: figs.halving_figure(
            [
                {**summary["halving"][rung], "rung": rung, "rows": run.rows[rung]}
                for rung in summary["halving"]
            ],
            metric=metric,
            mode=mode,
        ),
        "overfit": lambda: figs.overfit_figure(run.overfit),
        "lr_range": lambda: figs.lr_range_figure(run.lr_range, lr_bounds),
        "learning_curves": lambda: figs.curves_figure(panels()),
        # a sweep that halves: each config at its first level, as fANOVA and the trends
        # see it, so a config's later epochs do not count as its hyperparameters' doing
        "hyperparameters": lambda: figs.hyperparameters_figure(
            equal_epochs(sweep),
            [c["mode"] for c in classes],
            space,
            chosen=summary["headline"]["params"],
            metric=metric,
            mode=mode,
        ),
        "parallel": lambda: figs.parallel_figure(
            equal_epochs(sweep), space, metric=metric, mode=mode
        ),
        "importance": lambda: figs.importance_figure(summary["importance"]),
        "seeds": lambda: figs.seeds_figure(summary["seeds"]["groups"], metric=metric),
        "sensitivity": lambda: figs.sensitivity_figure(summary["sensitivity"], metric=metric),
        "best_so_far": lambda: figs.best_so_far_figure(
            sweep,
            summary["diminishing_returns"]["best_so_far"],
            window=summary["diminishing_returns"]["window"],
            metric=metric,
            mode=mode,
        ),
    }
    return {f.name: figs.png_bytes(draw[f.name]()) for f in figures}


def reproduce_command(configfiles: Sequence[str], config_args: Sequence[str] = ()) -> str:
    """The command that climbs this ladder again, pasted where the run started."""
    words = ["snakemake", "--cores", "all"]
    for path in configfiles:
        words += ["--configfile", path]
    if config_args:
        words += ["--config", *config_args]
    return shlex.join(words)


def report_sweeps_stage(
    *,
    inputs: Mapping[str, str | Path],
    out_dir: str | Path,
    seed: int,
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """Write ``sweeps.json`` and the figures ``from_sweeps`` into ``out_dir``.

    The part of the report that reads only the sanity checks and the sweeps, so
    that it runs before the final rung is done instead of after it:
    ``report_stage`` reads what it wrote.

    Args:
        inputs: the files it reads, named as ``report_inputs(results_dir, config,
            SWEEP_READS)`` names them.
        out_dir: where the report goes (``results/<experiment>/report``).
        seed: seeds fANOVA's forest.
        config: the resolved experiment config (its metric and whether a sweep halves).

    Returns:
        What ``sweeps.json`` holds: ``_summary.sweep_numbers``.
    """
    from tuneladder.report._load import load_run

    run = load_run(inputs, reads=SWEEP_READS, trial_results=False)
    return _draw_sweeps(run, Path(out_dir), seed=seed, config=config, metric=config["metric"])


def _draw_sweeps(
    run: RunData,
    out_dir: Path,
    *,
    seed: int,
    config: Mapping[str, Any],
    metric: Mapping[str, str],
) -> dict[str, Any]:
    from tuneladder.report._summary import sweep_numbers, sweep_summary

    numbers = sweep_numbers(run, mode=metric["mode"], seed=seed)
    shown = [f for f in figures_for(config) if f.from_sweeps]
    summary = sweep_summary(run, metric=metric["name"], mode=metric["mode"], sweeps=numbers)
    figures = draw_figures(run, summary, shown)
    for f in shown:
        with atomic_open(out_dir / f.path, "wb") as handle:
            handle.write(figures[f.name])
    write_json(out_dir / SWEEPS_FILE, numbers)
    return numbers


def report_stage(
    *,
    inputs: Mapping[str, str | Path],
    benchmarks_dir: str | Path | None,
    out_dir: str | Path,
    seed: int,
    config: Mapping[str, Any],
    configfiles: Sequence[str] = (),
    config_args: Sequence[str] = (),
    sweeps: str | Path | None = None,
) -> dict[str, Any]:
    """Write ``index.html``, ``summary.json`` and ``figures/*.png`` into ``out_dir``.

    Args:
        inputs: the files it reads, named as :func:`report_inputs` names them
            (``report_inputs(results_dir)`` for a finished ladder's folder).
        benchmarks_dir: Snakemake's benchmark files, for the ladder's timings (None: none).
        out_dir: where the report goes (``results/<experiment>/report``).
        seed: seeds fANOVA's forest.
        config: the resolved experiment config, shown and hashed on the page.
        configfiles: the config files of the run (relative to where it ran), and
        config_args: its ``--config`` overrides, for the reproducing command.
        sweeps: the ``sweeps.json`` that :func:`report_sweeps_stage` wrote, with the
            figures ``from_sweeps`` beside it; None: run it here first, into ``out_dir``.

    Returns:
        The summary, as written to ``summary.json``.
    """
    from importlib import metadata

    import tuneladder
    from tuneladder.infra.env import git_commit, package_versions
    from tuneladder.report._html import render
    from tuneladder.report._load import load_run
    from tuneladder.report._summary import Provenance, build_summary, finite_or_none

    out_dir = Path(out_dir)
    # given the report_sweeps job's numbers, it reads no history: they hold what those say
    run = load_run(inputs, benchmarks_dir, histories=sweeps is None)
    if sweeps is None:
        metric = {"name": run.final["metric"], "mode": run.final["mode"]}
        _draw_sweeps(run, out_dir, seed=seed, config=config, metric=metric)
        sweeps = out_dir / SWEEPS_FILE
    sweeps_dir = Path(sweeps).parent
    versions = dict(package_versions())
    for name in ("matplotlib", "scikit-learn", "scipy"):
        versions[name] = metadata.version(name)
    source = Path(tuneladder.__file__).resolve().parent
    provenance = Provenance(
        command=reproduce_command(configfiles, config_args),
        versions=versions,
        source_commit=git_commit(str(source)),
    )
    summary = build_summary(
        run, seed=seed, config=config, provenance=provenance, sweeps=read_json(sweeps)
    )
    shown = figures_for(config)
    here = [f for f in shown if not f.from_sweeps]
    drawn = draw_figures(run, summary, here)
    for f in here:
        with atomic_open(out_dir / f.path, "wb") as handle:
            handle.write(drawn[f.name])
    # in page order, the report_sweeps job's figures read back from where it wrote them
    figures = {
        f.name: drawn[f.name] if f.name in drawn else (sweeps_dir / f.path).read_bytes()
        for f in shown
    }
    summary["figures"] = {f.name: f.path for f in shown}
    summary = finite_or_none(summary)
    write_json(out_dir / "summary.json", summary)
    write_text(out_dir / "index.html", render(summary, figures))
    log.info(
        "report: %d sections, %d figures; %s",
        len(SECTIONS),
        len(figures),
        "; ".join(
            f"{i['question']} {'yes' if i['answer'] else 'no'}" for i in summary["checklist"]
        ),
    )
    return summary
