"""One lane of a sweep worker job (:mod:`tuneladder.execution.lanes`), as its own process.

    python -m tuneladder.stages.sweep_lane SPEC.json

The spec says which worker of the rung the lane is, and its runtime; the lane
writes what it did to the spec's ``report`` for the job to merge.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from tuneladder.execution.lanes import lane_main
from tuneladder.store.io import write_json


def run(spec: Mapping[str, Any]) -> None:
    from tuneladder.infra.startup import freeze_at_exit
    from tuneladder.stages import Runtime, sweep_lane_stage

    freeze_at_exit()
    runtime = Runtime(**spec["runtime"])
    write_json(spec["report"], sweep_lane_stage(spec, runtime))


if __name__ == "__main__":
    lane_main(sys.argv, run)
