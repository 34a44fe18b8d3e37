"""Tiny training runs shared by the training tests: a workspace laid out as the pipeline does, and run specs.

Also a script: ``python tiny_training.py ROOT OUT STEPS DELAY`` trains the tiny
hybrid run of ``spec_for(ROOT, OUT)`` for STEPS steps, sleeping DELAY seconds
after each so that a test can interrupt it mid-run, and fails as the stage does
(``error: ...``, exit status 1).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from mlret.artifacts import write_table
from mlret.data.parallel import build_parallel
from mlret.data.splits import build_splits
from mlret.params import ModelParams, Profile, SplitParams, TrainParams
from mlret.training.loop import RunSpec, Trainer
from mlret.training.samplers import Sampling

MODEL = ModelParams("tiny", "mean", "query : ", "passage : ", 16, 16, True)
TRAIN = TrainParams(
    batch_size=4, max_steps=6, epochs=None, learning_rate=1e-3, warmup_ratio=0.2, weight_decay=0.01,
    max_grad_norm=1.0, grad_accumulation=1, temperature=0.05, symmetric=False, sampling_alpha=1.0,
    hard_negatives=1, freeze_word_embeddings=False, max_query_length=16, max_passage_length=16,
    save_every=3, precision="fp32",
)


def build_workspace(root: Path, checkpoint: Path, zh_fraction: float = 0.5) -> Path:
    """data/parallel and data/splits of the tiny three-language dataset, plus models/base (a link to ``checkpoint``)."""
    from conftest import write_dataset

    source = write_dataset(root / "raw", "tiny-xquad", ["en", "ru", "zh"])
    data = build_parallel(source, root / "raw" / "tiny-xquad")
    parallel = root / "data" / "parallel" / "tiny-xquad"
    write_table(parallel / "candidates.parquet", data.candidates)
    write_table(parallel / "questions.parquet", data.questions)
    split_profile(root, zh_fraction)
    (root / "models").mkdir()
    (root / "models" / "base").symlink_to(checkpoint)
    return root


def split_profile(root: Path, zh_fraction: float) -> None:
    """(Re)write the `lowres` profile's training table, keeping ``zh_fraction`` of the Chinese questions."""
    parallel = root / "data" / "parallel" / "tiny-xquad"
    profiles = {"lowres": Profile("lowres", 1.0, {"zh": zh_fraction})}
    build_splits(parallel, SplitParams(0.5, 1 / 6, 1 / 3, 7), profiles, root / "data" / "splits", root / "m.json")


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


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Interrupted(Exception):
    pass


class CrashAfterCheckpoint(Trainer):
    """The real trainer, stopped right after its first resumable checkpoint (a simulated kill)."""

    def _save_resume(self) -> None:
        super()._save_resume()
        raise Interrupted


class Throttled(Trainer):
    """The real trainer, pausing after each step so that a test can signal it mid-run (numbers unchanged)."""

    delay = 0.0

    def train_step(self) -> tuple[float, float, int]:
        result = super().train_step()
        time.sleep(self.delay)
        return result


def main() -> None:
    from mlret.errors import cli_errors

    root, out, steps, delay = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    (out / "pid").parent.mkdir(parents=True, exist_ok=True)
    (out / "pid").write_text(str(os.getpid()))
    Throttled.delay = delay
    cli_errors(lambda: Throttled(spec_for(root, out), MODEL, dataclasses.replace(TRAIN, max_steps=steps), 0.5).run())()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for conftest
    main()
