"""Every stage answers --help without loading torch (it takes seconds to import, and --help runs nothing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

STAGES = sorted((Path(__file__).resolve().parents[2] / "stages").glob("*.py"))

# Runs the stage as `python stages/X.py --help` would, then reports what was imported.
PROBE = """
import runpy, sys
sys.argv = [{script!r}, "--help"]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as exit:
    code = exit.code
print("torch loaded:", "torch" in sys.modules, "exit:", code, file=sys.stderr)
"""


@pytest.mark.parametrize("script", STAGES, ids=lambda p: p.stem)
def test_help_runs_nothing_and_loads_no_torch(script: Path) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE.format(script=str(script))], capture_output=True, text=True, check=False)
    assert done.stdout.startswith("usage: "), done.stderr
    assert done.stderr.strip().splitlines()[-1] == "torch loaded: False exit: 0"
