"""The training loop on a tiny BertModel and the hand-made three-language dataset."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from tiny_training import MODEL, TRAIN, CrashAfterCheckpoint, Interrupted, build_workspace, spec_for, weights
from transformers import AutoModel

from mlret.training.loop import train_run


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """data/parallel and data/splits of the tiny dataset, plus models/base, laid out as the pipeline does."""
    return build_workspace(tmp_path_factory.mktemp("ws"), tiny_checkpoint)


def test_run_writes_a_loadable_checkpoint_log_and_metrics(workspace: Path, tmp_path: Path) -> None:
    spec = spec_for(workspace, tmp_path)
    metrics = train_run(spec, MODEL, TRAIN, mono_ratio=0.5)
    model, info = AutoModel.from_pretrained(spec.out_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    saved = json.loads((spec.out_dir / "training_params.json").read_text())
    assert saved["strategy"] == "hybrid" and saved["train"] == dataclasses.asdict(TRAIN)
    log = pd.read_csv(spec.log_path)
    assert log.step.tolist() == [1, 2, 3, 4, 5, 6] and log.loss.notna().all()
    assert log.learning_rate.iloc[0] < log.learning_rate.max()  # warm-up, then linear decay
    assert metrics["steps"] == 6 and metrics["pairs_seen"] == 24
    assert set(metrics["language_share"]) == {"en", "ru", "zh"}
    assert json.loads(spec.metrics_path.read_text()) == metrics
    assert not spec.resume_dir.exists()  # removed once the run completes


def test_same_seed_gives_bitwise_identical_weights(workspace: Path, tmp_path: Path) -> None:
    a, b, c = (spec_for(workspace, tmp_path / name, seed=seed) for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    for spec in (a, b, c):
        train_run(spec, MODEL, TRAIN, mono_ratio=0.5)
    wa, wb, wc = weights(a), weights(b), weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_an_interrupted_run_resumes_to_the_same_weights(workspace: Path, tmp_path: Path) -> None:
    straight = spec_for(workspace, tmp_path / "straight")
    train_run(straight, MODEL, TRAIN, mono_ratio=0.5)

    resumed = spec_for(workspace, tmp_path / "resumed")

    with pytest.raises(Interrupted):
        CrashAfterCheckpoint(resumed, MODEL, TRAIN, 0.5).run()
    assert not resumed.out_dir.exists(), "no model may appear before the run completes"
    assert (resumed.resume_dir / "trainer_state.json").is_file() and (resumed.resume_dir / "trainer_state.safetensors").is_file()
    train_run(resumed, MODEL, TRAIN, mono_ratio=0.5)
    ws, wr = weights(straight), weights(resumed)
    assert all(torch.equal(ws[k], wr[k]) for k in ws)
    assert pd.read_csv(resumed.log_path).equals(pd.read_csv(straight.log_path).assign(pairs_per_s=pd.read_csv(resumed.log_path).pairs_per_s))


def test_frozen_word_embeddings_do_not_move(workspace: Path, tmp_path: Path) -> None:
    spec = spec_for(workspace, tmp_path, strategy="cross")
    train_run(spec, MODEL, dataclasses.replace(TRAIN, freeze_word_embeddings=True, max_steps=2), mono_ratio=0.5)
    before = load_file(str(workspace / "models" / "base" / "model.safetensors"))
    after = weights(spec)
    key = next(k for k in after if k.endswith("word_embeddings.weight"))
    assert torch.equal(before[key], after[key])
    moved = [k for k in after if "encoder.layer.0" in k and not torch.equal(before[k], after[k])]
    assert moved


def test_a_checkpoint_from_other_params_restarts_cleanly(workspace: Path, tmp_path: Path) -> None:
    spec = spec_for(workspace, tmp_path)

    with pytest.raises(Interrupted):
        CrashAfterCheckpoint(spec, MODEL, TRAIN, 0.5).run()
    changed = dataclasses.replace(TRAIN, learning_rate=5e-4)
    metrics = train_run(spec, MODEL, changed, mono_ratio=0.5)
    assert metrics["steps"] == 6 and len(pd.read_csv(spec.log_path)) == 6
    assert json.loads((spec.out_dir / "training_params.json").read_text())["train"]["learning_rate"] == 5e-4
