"""The report's table of contents: what it reads, its sections, and its figures.

The page (``_html``), the drawing (``draw_figures``) and the workflow's report
rules (each PNG marked for ``snakemake --report`` with its caption file and
category) all read :data:`FIGURES`; no other list of figures exists. The report
rules' inputs are :func:`report_inputs`, which ``_load`` reads by name: the
``report_sweeps`` job reads :data:`SWEEP_READS` and draws the figures marked
``from_sweeps``, the ``report`` job reads :data:`READS` and the rest. This
module stays cheap to import: the workflow reads it while parsing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneladder.ladder.rungs import (
    FINAL,
    LR_RANGE,
    OVERFIT,
    PREPARE,
    SEARCH_RUNGS,
    SELECT,
    TRIAL_RUNGS,
    Rung,
    active,
)
from tuneladder.search.halving import Halving

__all__ = [
    "FIGURES",
    "FIGURE_NAMES",
    "PROBE_INPUT",
    "READS",
    "SECTIONS",
    "SWEEPS_FILE",
    "SWEEP_READS",
    "Figure",
    "figure",
    "figures_for",
    "halves",
    "input_name",
    "report_inputs",
]

# The rung outputs the report reads, as (rung, role); every rung of trials gives its plan
# (which lists its trial folders) and its results table. An optional rung's are read when
# the config runs it (see report_inputs).
READS: tuple[tuple[Rung, str], ...] = (
    (PREPARE, "meta"),
    (OVERFIT, "json"),
    (LR_RANGE, "json"),
    *((rung, role) for rung in TRIAL_RUNGS for role in ("plan", "results")),
    (SELECT, "topk"),
    (SELECT, "space"),
    (FINAL, "summary"),
)
# What the `report_sweeps` job reads: the rungs up to the sweeps' end, so that it can run
# while the seed reruns and the final rung do.
SWEEP_READS = tuple(
    (rung, role)
    for rung, role in READS
    if rung in (PREPARE, OVERFIT, LR_RANGE, *SEARCH_RUNGS, SELECT)
)
# The GPU probe's result, where the run measured its trials per GPU: the report rule reads
# it under this name, as the sweep workers do (the workflow's gpu_probe_input)
PROBE_INPUT = "probe"
# What it leaves for the report job besides its figures, relative to the report's folder:
# the numbers it computed from the sweeps (fANOVA, rank trends).
SWEEPS_FILE = "sweeps.json"


def input_name(rung: Rung, role: str) -> str:
    """The report rule's name for a rung's output: ``<rung>_<role>`` (``coarse_plan``)."""
    return f"{rung.name}_{role}"


def report_inputs(
    results_dir: str | Path,
    config: Mapping[str, Any] | None = None,
    reads: tuple[tuple[Rung, str], ...] = READS,
) -> dict[str, str]:
    """The files the report reads (``reads``: by default all of them), by input name.

    Optional rungs (the sensitivity rung) are read when the resolved ``config``
    runs them; without a config, only the rungs that always run are.
    """
    on = {rung.name for rung in active(config)}
    return {
        input_name(rung, role): f"{results_dir}/{rung.outputs[role]}"
        for rung, role in reads
        if rung.name in on
    }


# id -> heading, in page order
SECTIONS = {
    "headline": "Headline",
    "ladder": "The ladder",
    "halving": "Successive halving",
    "sanity": "Sanity checks",
    "learning-curves": "Learning curves",
    "hyperparameters": "Hyperparameters against the val metric",
    "parallel": "Parallel coordinates",
    "importance": "Parameter importance",
    "analysis": "What the sweep says",
    "seeds": "Seed variance",
    "sensitivity": "Sensitivity, one at a time",
    "diminishing-returns": "Diminishing returns",
    "failures": "Failures",
    "checklist": "Checklist",
    "pitfalls": "Pitfalls",
    "reproducibility": "Reproducibility",
}


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One figure of the report.

    Attributes:
        name: the file ``figures/<name>.png``; its caption for ``snakemake --report``
            is ``workflow/report/<name>.rst``.
        section: the id of the page section that shows it.
        category: its category in ``snakemake --report``.
        caption: its caption on the page.
        needs_halving: drawn only when a sweep halves (its section is shown only then).
        from_sweeps: it shows only the sanity checks and the sweeps, so the
            ``report_sweeps`` job draws it before the final rung has run.
    """

    name: str
    section: str
    category: str
    caption: str
    needs_halving: bool = False
    from_sweeps: bool = False

    def __post_init__(self) -> None:
        if self.section not in SECTIONS:
            raise ValueError(f"no such section, got {self.name=}, {self.section=}")

    @property
    def path(self) -> str:
        """Where it is written, relative to the report's folder."""
        return f"figures/{self.name}.png"

    @property
    def caption_file(self) -> str:
        """Its caption file for ``snakemake --report``, in ``workflow/report/``."""
        return f"{self.name}.rst"


FIGURES = (
    Figure(
        name="ladder",
        section="ladder",
        category="1. Ladder",
        caption="Wall-clock seconds per rung, from Snakemake's benchmark files.",
    ),
    Figure(
        name="halving",
        section="halving",
        category="1. Ladder",
        caption="Val metric per epoch of every config of each sweep that halves: a line ends"
        " where its config stopped; the dotted lines are the levels' epochs.",
        needs_halving=True,
        from_sweeps=True,
    ),
    Figure(
        name="overfit",
        section="sanity",
        category="2. Sanity checks",
        caption="Overfit check: training loss on a small subset, and its threshold.",
        from_sweeps=True,
    ),
    Figure(
        name="lr_range",
        section="sanity",
        category="2. Sanity checks",
        caption="LR range test: loss against an exponentially rising LR, with the suggestion,"
        " the minimum, the divergence point and the derived range marked.",
        from_sweeps=True,
    ),
    Figure(
        name="learning_curves",
        section="learning-curves",
        category="3. Learning curves",
        caption="Train and val loss per epoch of the top trials and of one trial per failure"
        " mode.",
        from_sweeps=True,
    ),
    Figure(
        name="hyperparameters",
        section="hyperparameters",
        category="4. Hyperparameters",
        caption="Each searched parameter against the trial's best val metric (in a sweep that"
        " halves, at its first level's epochs, which every config trained); coarse and fine"
        " trials told apart, log parameters on log axes, diverged/failed trials as crosses.",
    ),
    Figure(
        name="parallel",
        section="parallel",
        category="4. Hyperparameters",
        caption="Parallel coordinates of all coarse and fine trials, coloured by the best val"
        " metric (in a sweep that halves, at its first level's epochs).",
        from_sweeps=True,
    ),
    Figure(
        name="importance",
        section="importance",
        category="4. Hyperparameters",
        caption="fANOVA main effects of the searched parameters.",
        from_sweeps=True,
    ),
    Figure(
        name="seeds",
        section="seeds",
        category="5. Seed variance",
        caption="Val metric of each finalist over seeds, and test where measured.",
    ),
    Figure(
        name="sensitivity",
        section="sensitivity",
        category="7. Sensitivity",
        caption="The val metric as each hyperparameter alone moves around the chosen value:"
        " mean ± std over seeds, each seed a dot, the chosen value dotted, the searched range"
        " shaded; a value whose seeds all failed is a red cross.",
    ),
    Figure(
        name="best_so_far",
        section="diminishing-returns",
        category="6. Diminishing returns",
        caption="Best val metric so far against trial number; the shaded band is the rule's"
        " window.",
        from_sweeps=True,
    ),
)
FIGURE_NAMES = tuple(f.name for f in FIGURES)


def halves(config: Mapping[str, Any]) -> bool:
    """Whether a sweep of the (resolved) config halves (tuneladder.search.halving)."""
    return any(Halving.from_sweep(config.get(r.name) or {}) for r in SEARCH_RUNGS)


def figures_for(config: Mapping[str, Any]) -> tuple[Figure, ...]:
    """The figures a run of ``config`` draws: the halving one only when a sweep halves."""
    return tuple(f for f in FIGURES if halves(config) or not f.needs_halving)


def figure(name: str) -> Figure:
    """The figure called ``name``."""
    for row in FIGURES:
        if row.name == name:
            return row
    raise ValueError(f"no figure called {name!r}; the figures are {list(FIGURE_NAMES)}")
