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

from mlret.training.loop import train_run
from mlret.training.state import STATE_JSON

STEPS = 30


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, build_workspace) -> Path:
    return build_workspace(tmp_path_factory.mktemp("ws"), tiny_checkpoint)


@pytest.fixture(scope="module")
def long_train(tiny_train):
    return dataclasses.replace(tiny_train, max_steps=STEPS)


@pytest.fixture(scope="module")
def reference(
    workspace: Path, tmp_path_factory: pytest.TempPathFactory, spec_for, weights, tiny_model, long_train
) -> dict[str, torch.Tensor]:
    """Weights of the same run, never interrupted."""
    spec = spec_for(workspace, tmp_path_factory.mktemp("straight"))
    train_run(spec, tiny_model, long_train)
    return weights(spec)


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def saved_step(spec) -> int:
    return json.loads((spec.resume_dir / STATE_JSON).read_text())["step"]


@pytest.fixture
def resume_and_compare(
    reference: dict[str, torch.Tensor], caplog: pytest.LogCaptureFixture, weights, same_weights, tiny_model, long_train
):
    """Resume the stopped run; it must continue from its checkpoint and end with the uninterrupted run's weights."""

    def resume(spec) -> None:
        stopped_at = saved_step(spec)
        with caplog.at_level(logging.WARNING, logger="mlret.training.loop"):
            metrics = train_run(spec, tiny_model, long_train)
        assert f"resuming from step {stopped_at} " in caplog.text
        assert metrics["steps"] == STEPS
        assert same_weights(weights(spec), reference)

    return resume


def test_sigterm_saves_a_checkpoint_exits_non_zero_and_the_run_resumes(
    workspace: Path, tmp_path: Path, spec_for, slow_training_command, resume_and_compare, tiny_model, long_train
) -> None:
    spec = spec_for(workspace, tmp_path / "run")
    first = spec.resume_dir / STATE_JSON
    command = slow_training_command(spec, tiny_model, long_train, 0.1, tmp_path / "slow")
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as proc:
        wait_for(lambda: first.is_file() or proc.poll() is not None, "the first checkpoint")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "error: training stopped by SIGTERM after step" in stderr and "Traceback" not in stderr
    assert 3 <= saved_step(spec) < STEPS, "stopped mid-run, after the first checkpoint"
    assert not spec.out_dir.exists()
    resume_and_compare(spec)


def test_sigint_stops_after_the_current_step_with_a_checkpoint(
    workspace: Path, tmp_path: Path, spec_for, interrupt_at, resume_and_compare, tiny_model, long_train
) -> None:
    spec = spec_for(workspace, tmp_path / "run")
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    interrupt_at(spec, tiny_model, long_train, step=5)
    assert {signum: signal.getsignal(signum) for signum in previous} == previous, "the handlers are put back"
    assert saved_step(spec) == 5
    resume_and_compare(spec)
    assert {signum: signal.getsignal(signum) for signum in previous} == previous, "and after a run that completes"


def process_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_training_under_dvc_stops_when_dvc_is_killed(
    workspace: Path, tmp_path: Path, spec_for, slow_training_command, resume_and_compare, tiny_model, long_train
) -> None:
    """DVC does not pass a SIGTERM on to its stage command; the run notices that its launcher is gone."""
    spec = spec_for(workspace, tmp_path / "run")
    first = spec.resume_dir / STATE_JSON
    launcher = "import subprocess, sys; subprocess.run(sys.argv[1:])"  # stands in for `dvc repro`
    env = {**os.environ, "DVC_STAGE": "train@hybrid-lowres-0"}
    command = slow_training_command(spec, tiny_model, long_train, 0.1, tmp_path / "slow")
    with open(tmp_path / "stderr", "w") as stderr:
        dvc = subprocess.Popen([sys.executable, "-c", launcher, *command], env=env, stderr=stderr)
    wait_for(lambda: first.is_file() or dvc.poll() is not None, "the first checkpoint")
    pid = int((tmp_path / "slow" / "pid").read_text())
    dvc.kill()
    dvc.wait()
    wait_for(lambda: process_gone(pid), "the orphaned training to stop")
    assert "error: training stopped by the exit of the process that started it" in (tmp_path / "stderr").read_text()
    assert 3 <= saved_step(spec) < STEPS
    resume_and_compare(spec)
