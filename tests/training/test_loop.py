"""The training loop on a tiny BertModel and the hand-made three-language dataset."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

from mlret.artifacts import write_table
from mlret.data.parallel import build_parallel
from mlret.data.splits import build_splits
from mlret.params import ModelParams, Profile, SplitParams, TrainParams
from mlret.training.loop import RunSpec, Trainer, train_run
from mlret.training.samplers import Sampling

MODEL = ModelParams("tiny", "mean", "query : ", "passage : ", 16, 16, True)
TRAIN = TrainParams(
    batch_size=4, max_steps=6, epochs=None, learning_rate=1e-3, warmup_ratio=0.2, weight_decay=0.01,
    max_grad_norm=1.0, grad_accumulation=1, temperature=0.05, symmetric=False, sampling_alpha=1.0,
    hard_negatives=1, freeze_word_embeddings=False, max_query_length=16, max_passage_length=16,
    save_every=3, precision="fp32",
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """data/parallel and data/splits of the tiny dataset, plus models/base, laid out as the pipeline does."""
    from conftest import write_dataset

    root = tmp_path_factory.mktemp("ws")
    source = write_dataset(root / "raw", "tiny-xquad", ["en", "ru", "zh"])
    data = build_parallel(source, root / "raw" / "tiny-xquad")
    parallel = root / "data" / "parallel" / "tiny-xquad"
    write_table(parallel / "candidates.parquet", data.candidates)
    write_table(parallel / "questions.parquet", data.questions)
    build_splits(parallel, SplitParams(0.5, 1 / 6, 1 / 3, 7), {"lowres": Profile("lowres", 1.0, {"zh": 0.5})}, root / "data" / "splits", root / "m.json")
    (root / "models").mkdir()
    (root / "models" / "base").symlink_to(tiny_checkpoint)
    return root


def spec_for(root: Path, out: Path, strategy: str = "hybrid", seed: int = 0) -> RunSpec:
    run = f"{strategy}/lowres/{seed}"
    return RunSpec(
        strategy=Sampling(strategy), profile="lowres", seed=seed,
        train_table=root / "data" / "splits" / "lowres" / "train.parquet",
        candidates_table=root / "data" / "parallel" / "tiny-xquad" / "candidates.parquet",
        base_model=root / "models" / "base",
        out_dir=out / "models" / run, resume_dir=out / "checkpoints" / run,
        log_path=out / "plots" / f"{run}.csv", metrics_path=out / "metrics" / f"{run}.json",
    )


def weights(spec: RunSpec) -> dict[str, torch.Tensor]:
    return load_file(str(spec.out_dir / "model.safetensors"))


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


class Interrupted(Exception):
    pass


class CrashAfterCheckpoint(Trainer):
    """The real trainer, stopped right after its first resumable checkpoint (a simulated kill)."""

    def _save_resume(self) -> None:
        super()._save_resume()
        raise Interrupted


def test_an_interrupted_run_resumes_to_the_same_weights(workspace: Path, tmp_path: Path) -> None:
    straight = spec_for(workspace, tmp_path / "straight")
    train_run(straight, MODEL, TRAIN, mono_ratio=0.5)

    resumed = spec_for(workspace, tmp_path / "resumed")

    with pytest.raises(Interrupted):
        CrashAfterCheckpoint(resumed, MODEL, TRAIN, 0.5).run()
    assert not resumed.out_dir.exists(), "no model may appear before the run completes"
    assert (resumed.resume_dir / "trainer_state.pt").is_file()
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
