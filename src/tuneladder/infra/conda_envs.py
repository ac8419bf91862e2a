"""Conda environments that install this project from the checkout the workflow runs from.

Snakemake copies a rule's environment file before it creates the environment, so a
relative pip entry (``..``) in ``envs/*.yaml`` would point at Snakemake's own
folder, not at the repository. The workflow therefore writes the file it hands
Snakemake: the template's packages, plus this checkout as an absolute, editable
pip entry, so jobs run the checkout's code and a moved checkout gets a new
environment (the file's content, and so its hash, changes).
"""

from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["CHECKOUT_ENTRY", "write_env_file"]

CHECKOUT_ENTRY = "<checkout>"  # the template's placeholder for the repository


def write_env_file(template: str | Path, checkout: str | Path, out_dir: str | Path) -> Path:
    """Write ``template`` with its checkout placeholder resolved; return the new file.

    The file is rewritten only when its content changes, so parsing the Snakefile
    again (every cluster job does) leaves it alone.
    """
    template = Path(template)
    spec = yaml.safe_load(template.read_text())
    checkout = str(Path(checkout).resolve())
    found = False
    for entry in spec.get("dependencies", []):
        if isinstance(entry, dict) and "pip" in entry:
            pip = entry["pip"]
            found = CHECKOUT_ENTRY in pip or found
            entry["pip"] = [f"-e {checkout}" if item == CHECKOUT_ENTRY else item for item in pip]
    if not found:
        raise ValueError(f"{template}: no pip entry {CHECKOUT_ENTRY!r} to install the checkout")
    header = f"# written by the workflow from {template.name}; edit that file instead\n"
    text = header + yaml.safe_dump(spec, sort_keys=False)
    out = Path(out_dir) / template.name
    if not out.is_file() or out.read_text() != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return out
