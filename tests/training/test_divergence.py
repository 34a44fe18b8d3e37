"""A run whose loss or gradients turn NaN stops with an error instead of writing a model of NaN weights."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mlret.training.divergence import TrainingDiverged
from mlret.training.loop import train_run
from mlret.training.state import STATE_JSON, STATE_TENSORS


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, build_workspace) -> Path:
    return build_workspace(tmp_path_factory.mktemp("ws"), tiny_checkpoint)


def test_a_vanishing_temperature_stops_at_the_first_step_without_a_model(
    workspace: Path, tmp_path: Path, spec_for, tiny_model, tiny_train
) -> None:
    """temperature 1e-300 turns every similarity into +-inf, so the very first loss is NaN."""
    spec = spec_for(workspace, tmp_path)
    with pytest.raises(TrainingDiverged) as caught:
        train_run(spec, tiny_model, dataclasses.replace(tiny_train, temperature=1e-300))
    assert caught.value.what.startswith("training diverged at step 1: the loss is nan (train.temperature = 1e-300")
    assert "train.learning_rate" in caught.value.what and "train.temperature" in caught.value.fix
    assert not spec.out_dir.exists() and not spec.metrics_path.exists() and not spec.log_path.exists()


def test_a_huge_learning_rate_stops_and_keeps_the_last_finite_checkpoint(
    workspace: Path, tmp_path: Path, spec_for, tiny_model, tiny_train
) -> None:
    """learning_rate 1e4 blows the weights up within a few steps; the checkpoints saved before that stay, finite."""
    spec = spec_for(workspace, tmp_path)
    train = dataclasses.replace(tiny_train, learning_rate=1e4, warmup_ratio=0.0, max_steps=50, save_every=1)
    with pytest.raises(
        TrainingDiverged, match=r"^training diverged at step (\d+): .*train.learning_rate = 10000"
    ) as caught:
        train_run(spec, tiny_model, train)
    step = int(caught.value.what.split("step ")[1].split(":")[0])
    assert 1 < step < 50 and not spec.out_dir.exists()
    state = json.loads((spec.resume_dir / STATE_JSON).read_text(encoding="utf-8"))
    assert state["step"] == step - 1 and all(math.isfinite(row["loss"]) for row in state["log"])
    tensors = load_file(str(spec.resume_dir / STATE_TENSORS))
    assert all(torch.isfinite(t).all() for name, t in tensors.items() if name.startswith("model/"))


def test_the_progress_bar_is_closed_so_the_error_line_starts_a_line(
    workspace: Path, tmp_path: Path, spec_for, tiny_model, tiny_train, capsys
) -> None:
    """The stage prints `error: ...` after the bar: an open bar would leave it glued to the bar's last line."""
    try:
        train_run(spec_for(workspace, tmp_path), tiny_model, dataclasses.replace(tiny_train, temperature=1e-300))
    except TrainingDiverged:
        err = (
            capsys.readouterr().err
        )  # read while the error is being handled, as cli_errors prints it (the loop's frame still alive)
    assert "0/" in err and err.endswith("\n"), repr(err[-200:])
