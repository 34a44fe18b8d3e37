"""SIGTERM, SIGINT and a vanished `dvc` stop training with a resumable checkpoint, never an orphan or a lost run."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_training import MODEL, TRAIN, build_workspace, same_weights, spec_for, weights

from mlret.training.loop import STATE_JSON, Trainer, TrainingInterrupted, train_run

STEPS = 30
SCRIPT = Path(__file__).with_name("tiny_training.py")
LONG = dataclasses.replace(TRAIN, max_steps=STEPS)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    return build_workspace(tmp_path_factory.mktemp("ws"), tiny_checkpoint)


@pytest.fixture(scope="module")
def reference(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """Weights of the same run, never interrupted."""
    spec = spec_for(workspace, tmp_path_factory.mktemp("straight"))
    train_run(spec, MODEL, LONG, mono_ratio=0.5)
    return weights(spec)


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def saved_step(out: Path) -> int:
    return json.loads((spec_for(Path("."), out).resume_dir / STATE_JSON).read_text())["step"]


def resume_and_compare(workspace: Path, out: Path, reference: dict[str, torch.Tensor], caplog: pytest.LogCaptureFixture) -> None:
    stopped_at = saved_step(out)
    spec = spec_for(workspace, out)
    with caplog.at_level(logging.WARNING, logger="mlret.training.loop"):
        metrics = train_run(spec, MODEL, LONG, mono_ratio=0.5)
    assert f"resuming from step {stopped_at} " in caplog.text
    assert metrics["steps"] == STEPS
    assert same_weights(weights(spec), reference)


def test_sigterm_saves_a_checkpoint_exits_non_zero_and_the_run_resumes(workspace: Path, reference: dict[str, torch.Tensor], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "run"
    first = spec_for(workspace, out).resume_dir / STATE_JSON
    with subprocess.Popen([sys.executable, str(SCRIPT), str(workspace), str(out), str(STEPS), "0.1"], stderr=subprocess.PIPE, text=True) as proc:
        wait_for(lambda: first.is_file() or proc.poll() is not None, "the first checkpoint")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "error: training stopped by SIGTERM after step" in stderr and "Traceback" not in stderr
    assert 3 <= saved_step(out) < STEPS, "stopped mid-run, after the first checkpoint"
    assert not spec_for(workspace, out).out_dir.exists()
    resume_and_compare(workspace, out, reference, caplog)


class SigintAtStep(Trainer):
    """The real trainer; at step 5 a real SIGINT arrives, as from Ctrl-C in the terminal."""

    def train_step(self) -> tuple[float, float, int]:
        result = super().train_step()
        if self.step == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return result


def test_sigint_stops_after_the_current_step_with_a_checkpoint(workspace: Path, reference: dict[str, torch.Tensor], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "run"
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(TrainingInterrupted, match="SIGINT after step 5"):
        SigintAtStep(spec_for(workspace, out), MODEL, LONG, 0.5).run()
    assert {signum: signal.getsignal(signum) for signum in previous} == previous, "the handlers are put back"
    assert saved_step(out) == 5
    resume_and_compare(workspace, out, reference, caplog)
    assert {signum: signal.getsignal(signum) for signum in previous} == previous, "and after a run that completes"


def process_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_training_under_dvc_stops_when_dvc_is_killed(workspace: Path, reference: dict[str, torch.Tensor], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """DVC does not pass a SIGTERM on to its stage command; the run notices that its launcher is gone."""
    out = tmp_path / "run"
    first = spec_for(workspace, out).resume_dir / STATE_JSON
    launcher = "import subprocess, sys; subprocess.run(sys.argv[1:])"  # stands in for `dvc repro`
    env = {**os.environ, "DVC_STAGE": "train@hybrid-lowres-0"}
    with open(tmp_path / "stderr", "w") as stderr:
        dvc = subprocess.Popen([sys.executable, "-c", launcher, sys.executable, str(SCRIPT), str(workspace), str(out), str(STEPS), "0.1"], env=env, stderr=stderr)
    wait_for(lambda: first.is_file() or dvc.poll() is not None, "the first checkpoint")
    pid = int((out / "pid").read_text())
    dvc.kill()
    dvc.wait()
    wait_for(lambda: process_gone(pid), "the orphaned training to stop")
    assert "error: training stopped by the exit of the process that started it" in (tmp_path / "stderr").read_text()
    assert 3 <= saved_step(out) < STEPS
    resume_and_compare(workspace, out, reference, caplog)
