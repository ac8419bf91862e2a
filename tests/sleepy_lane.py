"""A lane that only waits, for the tests of tuneladder.execution.lanes.

python -m sleepy_lane SPEC
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tuneladder.execution.lanes import lane_main


def run(spec: dict) -> None:
    Path(spec["pid_file"]).write_text(str(os.getpid()))
    if spec.get("fail"):
        raise RuntimeError("this lane fails")
    time.sleep(float(spec.get("sleep", 60)))


if __name__ == "__main__":
    lane_main(sys.argv, run)
