#!/usr/bin/env bash
# The GPU checks as one command, for a machine with a GPU and no package index.
#
#   bench/gpu_check.sh wheels DIR [--python 3.12]       # first, where pip reaches an index
#   bench/gpu_check.sh run [--wheels DIR] [--out DIR] [--dry] [--budget-s S] [--only CHECK ...]
#
# `wheels` fills DIR with this project's wheel and what Snakemake, Optuna and
# jsonschema need beyond torch, numpy, scipy, pandas, pyyaml, scikit-learn and
# matplotlib (x86-64 Linux, CPython 3.12 or the GPU machine's --python; this
# machine's, for a rehearsal of the install). `run --wheels DIR` installs from it,
# into a folder of its own, this project's wheel and every wheel whose package the
# machine lacks, then runs bench/gpu_check.py: one line per check (PASS, FAIL or
# SKIP with its figure), everything measured in DIR (default gpu-check-out/). All checks share
# 450 s on a GPU (`--budget-s`): one that hangs is ended with everything it started,
# and those with no time left print SKIP. `--dry` runs the same code on the CPU
# with a fake GPU and tiny sizes; CI runs it.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

usage() { sed -n '4,5p' "$0" | sed 's/^#  */usage: /' >&2; }
case "${1:-}" in
    wheels)
        [ $# -eq 2 ] || [ $# -eq 4 ] || { usage; exit 2; }
        shift; exec "$PY" bench/gpu_check.py wheels "$@" ;;
    run) shift ;;
    *) usage; exit 2 ;;
esac

wheels="" out="gpu-check-out" dry=() only=() budget=()
while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) wheels=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --dry) dry=(--dry); shift ;;
        --budget-s) budget=(--budget-s "$2"); shift 2 ;;
        --only) shift; while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do only+=("$1"); shift; done ;;
        *) usage; exit 2 ;;
    esac
done

if [ -n "$wheels" ]; then
    site=$(mktemp -d)/site
    "$PY" - "$wheels" "$site" <<'PYTHON' || { echo "FAIL install: from $wheels" >&2; exit 1; }
import subprocess
import sys
from importlib import metadata
from pathlib import Path

folder, site = Path(sys.argv[1]), sys.argv[2]
missing = []
for wheel in sorted(folder.glob("*.whl")):
    name = wheel.name.split("-")[0]
    if name == "tuneladder":  # always this checkout's: an older copy would be measured
        missing.append(str(wheel))
        continue
    try:
        metadata.version(name)  # the machine's own copy stays
    except metadata.PackageNotFoundError:
        missing.append(str(wheel))
if missing:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
         "--no-compile", "--target", site, *missing],
        check=True,
    )
print(f"PASS install: {len(missing)} wheels into {site}")
PYTHON
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PATH="$site/bin:$PATH"
fi
[ ${#only[@]} -gt 0 ] && only=(--only "${only[@]}")
# ${a[@]+"${a[@]}"}: an empty array under set -u, which bash before 4.4 calls unbound
exec "$PY" bench/gpu_check.py run --out "$out" ${dry[@]+"${dry[@]}"} ${only[@]+"${only[@]}"} \
    ${budget[@]+"${budget[@]}"}
