"""Tiny training runs shared by the training tests: a workspace laid out as the pipeline does, run specs, weights.

Each fixture returns a helper (or a constant), so that test modules receive it
as a parameter rather than importing another test file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mlret.artifacts import write_table
from mlret.data.parallel import build_parallel
from mlret.data.splits import build_splits
from mlret.params import (
    CrossSettings,
    HybridSettings,
    ModelParams,
    MonoSettings,
    MultiSettings,
    Profile,
    SplitParams,
    StrategySettings,
    TrainParams,
)
from mlret.training.loop import Trainer, TrainingInterrupted
from mlret.training.spec import RunSpec

TINY_MODEL = ModelParams("tiny", "mean", "query : ", "passage : ", 16, 16, True, False)
TINY_TRAIN = TrainParams(
    batch_size=4,
    max_steps=6,
    epochs=None,
    learning_rate=1e-3,
    warmup_ratio=0.2,
    weight_decay=0.01,
    max_grad_norm=1.0,
    grad_accumulation=1,
    temperature=0.05,
    symmetric=False,
    sampling_alpha=1.0,
    hard_negatives=1,
    max_query_length=16,
    max_passage_length=16,
    save_every=3,
    precision="fp32",
)
SLOW_TRAINING = Path(__file__).with_name("train_slowly.py")


@pytest.fixture(scope="session")
def tiny_model() -> ModelParams:
    """Prefixes the tiny vocabulary tokenises, short lengths."""
    return TINY_MODEL


@pytest.fixture(scope="session")
def tiny_train() -> TrainParams:
    """Six fp32 steps of four pairs, one hard negative each, a checkpoint every three steps."""
    return TINY_TRAIN


def _split_profile(root: Path, zh_fraction: float) -> None:
    parallel = root / "data" / "parallel" / "tiny-xquad"
    profiles = {"lowres": Profile("lowres", 1.0, {"zh": zh_fraction})}
    build_splits(parallel, SplitParams(0.5, 1 / 6, 1 / 3, 7), profiles, root / "data" / "splits", root / "m.json")


@pytest.fixture(scope="session")
def split_profile() -> Callable[[Path, float], None]:
    """(Re)write the `lowres` profile's training table, keeping ``zh_fraction`` of the Chinese questions."""
    return _split_profile


@pytest.fixture(scope="session")
def build_workspace(write_dataset: Callable[..., object]) -> Callable[..., Path]:
    """data/parallel and data/splits of the tiny three-language dataset, plus models/base (a link to ``checkpoint``)."""

    def build(root: Path, checkpoint: Path, zh_fraction: float = 0.5) -> Path:
        source = write_dataset(root / "raw", "tiny-xquad", ["en", "ru", "zh"])
        data = build_parallel(source, root / "raw" / "tiny-xquad")
        parallel = root / "data" / "parallel" / "tiny-xquad"
        write_table(parallel / "candidates.parquet", data.candidates)
        write_table(parallel / "questions.parquet", data.questions)
        _split_profile(root, zh_fraction)
        (root / "models").mkdir()
        (root / "models" / "base").symlink_to(checkpoint)
        return root

    return build


def strategy_settings(strategy: str, mono_ratio: float = 0.5) -> StrategySettings:
    return {
        "mono": MonoSettings(),
        "cross": CrossSettings(),
        "multi": MultiSettings(),
        "hybrid": HybridSettings(mono_ratio),
    }[strategy]


def _spec_for(root: Path, out: Path, strategy: str = "hybrid", seed: int = 0, mono_ratio: float = 0.5) -> RunSpec:
    run = f"{strategy}/lowres/{seed}"
    return RunSpec(
        settings=strategy_settings(strategy, mono_ratio),
        profile="lowres",
        seed=seed,
        train_table=root / "data" / "splits" / "lowres" / "train.parquet",
        candidates_table=root / "data" / "parallel" / "tiny-xquad" / "candidates.parquet",
        base_model=root / "models" / "base",
        out_dir=out / "models" / run,
        resume_dir=out / "checkpoints" / run,
        log_path=out / "plots" / f"{run}.csv",
        metrics_path=out / "metrics" / f"{run}.json",
    )


@pytest.fixture(scope="session")
def spec_for() -> Callable[..., RunSpec]:
    """The run spec of a workspace's `lowres` run, its outputs under ``out`` (hybrid at mono_ratio 0.5 unless told)."""
    return _spec_for


@pytest.fixture(scope="session")
def weights() -> Callable[[RunSpec], dict[str, torch.Tensor]]:
    """The trained weights a run wrote, from every shard of its folder."""
    return lambda spec: {
        k: v for shard in sorted(spec.out_dir.glob("*.safetensors")) for k, v in load_file(str(shard)).items()
    }


@pytest.fixture(scope="session")
def same_weights() -> Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], bool]:
    return lambda a, b: a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="session")
def interrupt_at() -> Callable[..., None]:
    """Run a trainer that a real SIGINT (as from Ctrl-C) reaches after step ``step``; it stops with a checkpoint
    there."""

    def interrupt(spec: RunSpec, model: ModelParams, train: TrainParams, step: int = 3) -> None:
        class SigintAtStep(Trainer):
            def train_step(self) -> tuple[float, float, int]:
                result = super().train_step()
                if self.step == step:
                    os.kill(os.getpid(), signal.SIGINT)
                return result

        with pytest.raises(TrainingInterrupted, match=f"SIGINT after step {step}"):
            SigintAtStep(spec, model, train).run()

    return interrupt


@pytest.fixture(scope="session")
def slow_training_command() -> Callable[..., list[str]]:
    """The command line of a training that pauses ``delay`` seconds after each step, so a test can stop it mid-run."""

    def command(spec: RunSpec, model: ModelParams, train: TrainParams, delay: float, folder: Path) -> list[str]:
        run = {
            "spec": {
                f.name: str(getattr(spec, f.name))
                for f in dataclasses.fields(spec)
                if f.name not in ("settings", "seed")
            },
            "seed": spec.seed,
            "settings": {"strategy": spec.strategy.value, **dataclasses.asdict(spec.settings)},
            "model": dataclasses.asdict(model),
            "train": dataclasses.asdict(train),
            "delay": delay,
        }
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "run.json").write_text(json.dumps(run), encoding="utf-8")
        return [sys.executable, str(SLOW_TRAINING), str(folder / "run.json"), str(folder / "pid")]

    return command
