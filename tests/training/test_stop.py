"""Stages without training steps (encode, evaluate) stop with the `dvc repro` that started them, leaving no partial
file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# A stage body that never ends by itself: it keeps rewriting an output atomically, as encode and evaluate write theirs.
STAGE = """
import os, sys
from pathlib import Path
from mlret.artifacts import write_bytes
from mlret.errors import cli_errors
from mlret.stop import stop_with_launcher

@cli_errors
def main() -> None:
    out = Path(sys.argv[1])
    (out / "pid").write_text(str(os.getpid()))
    with stop_with_launcher("evaluate", poll_s=0.1):
        while True:
            write_bytes(out / "per_query.parquet", bytes(1 << 20))

main()
"""


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _under_fake_dvc(stage: str, tmp_path: Path, sigint_ignored: bool = False) -> subprocess.Popen:
    """Run ``stage`` (Python code) as `dvc repro` runs a stage: a child of a launcher process, DVC_STAGE set.

    ``sigint_ignored``: the stage starts with SIGINT ignored, as a background job of a
    non-interactive shell (or nohup) does.
    """
    launcher = "import subprocess, sys; subprocess.run(sys.argv[1:])"  # stands in for `dvc repro`
    if sigint_ignored:
        launcher = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); " + launcher
    env = {**os.environ, "DVC_STAGE": "evaluate@hybrid-lowres-0"}
    with open(tmp_path / "stderr", "w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-c", launcher, sys.executable, "-c", stage, str(tmp_path)], env=env, stderr=stderr
        )


def _wait_for(path: Path, dvc: subprocess.Popen, tmp_path: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.is_file():
        assert time.monotonic() < deadline and dvc.poll() is None, (tmp_path / "stderr").read_text()
        time.sleep(0.02)


def _assert_stops_soon(pid: int) -> None:
    # The watcher polls every 0.1 s, so the stage stops within a second; the bound leaves room for a busy machine.
    deadline = time.monotonic() + 10
    try:
        while _running(pid):
            assert time.monotonic() < deadline, "the orphaned stage kept running"
            time.sleep(0.02)
    finally:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["sigint-handled", "sigint-ignored"])
def test_a_stage_under_dvc_stops_when_dvc_is_killed(tmp_path: Path, sigint_ignored: bool) -> None:
    dvc = _under_fake_dvc(STAGE, tmp_path, sigint_ignored)
    _wait_for(tmp_path / "per_query.parquet", dvc, tmp_path)
    pid = int((tmp_path / "pid").read_text())
    dvc.kill()
    dvc.wait()
    _assert_stops_soon(pid)
    err = (tmp_path / "stderr").read_text()
    assert "error: evaluate stopped by the exit of the process that started it" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "per_query.parquet",
        "pid",
        "stderr",
    ]  # no temporary file left


# The same stage, but its launcher dies while it is still loading (before the watch is set up).
SLOW_START = STAGE.replace(
    '    with stop_with_launcher("evaluate", poll_s=0.1):',
    '    while not (out / "launcher-gone").exists():\n        time.sleep(0.02)\n'
    '    with stop_with_launcher("evaluate", poll_s=0.1):',
).replace("import os, sys", "import os, sys, time")


def test_a_stage_whose_launcher_died_while_it_was_loading_stops_too(tmp_path: Path) -> None:
    dvc = _under_fake_dvc(SLOW_START, tmp_path)
    _wait_for(tmp_path / "pid", dvc, tmp_path)
    pid = int((tmp_path / "pid").read_text())
    dvc.kill()
    dvc.wait()
    (tmp_path / "launcher-gone").touch()
    _assert_stops_soon(pid)
    err = (tmp_path / "stderr").read_text()
    assert "error: evaluate stopped by the exit of the process that started it" in err and "Traceback" not in err
