"""A checkpoint is resumed only into the run it belongs to, and never by unpickling."""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from mlret.artifacts import read_table, write_table
from mlret.data.parallel import CANDIDATE_COLUMNS
from mlret.params import HybridSettings, MonoSettings, MultiSettings
from mlret.training.loop import train_run
from mlret.training.state import STATE_FORMAT, STATE_JSON, STATE_TENSORS, file_sha256, run_identity

NOTICE = "discarding the checkpoint"


@pytest.fixture
def workspace(tmp_path: Path, tiny_checkpoint: Path, build_workspace) -> Path:
    """A workspace of its own, with a private copy of the base model, for tests that change the inputs."""
    base = tmp_path / "base-model"
    shutil.copytree(tiny_checkpoint, base)
    return build_workspace(tmp_path / "ws", base)


@pytest.fixture(scope="module")
def fixed_workspace(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, build_workspace) -> Path:
    """A workspace that no test changes."""
    return build_workspace(tmp_path_factory.mktemp("ws"), tiny_checkpoint)


@pytest.fixture(scope="session")
def straight_weights(spec_for, weights, tiny_model, tiny_train):
    """Weights of an uninterrupted run on a workspace as it is now."""

    def run(workspace: Path, out: Path) -> dict[str, torch.Tensor]:
        spec = spec_for(workspace, out)
        train_run(spec, tiny_model, tiny_train)
        return weights(spec)

    return run


@pytest.fixture(scope="module")
def reference(
    fixed_workspace: Path, tmp_path_factory: pytest.TempPathFactory, straight_weights
) -> dict[str, torch.Tensor]:
    """Weights of an uninterrupted run on the fixed workspace."""
    return straight_weights(fixed_workspace, tmp_path_factory.mktemp("straight"))


@pytest.fixture(scope="session")
def interrupt(interrupt_at, tiny_model, tiny_train):
    """Stop the run at step 3, with its checkpoint saved."""

    def stop(spec) -> None:
        interrupt_at(spec, tiny_model, tiny_train, step=3)
        assert json.loads((spec.resume_dir / STATE_JSON).read_text())["step"] == 3

    return stop


# -- what a run identity covers -----------------------------------------------------------------


def test_the_identity_changes_with_every_input_that_decides_the_weights(
    workspace: Path, tmp_path: Path, spec_for, tiny_model, tiny_train
) -> None:
    spec = spec_for(workspace, tmp_path / "out")
    base = run_identity(spec, tiny_model, tiny_train)
    assert run_identity(spec, tiny_model, tiny_train) == base
    changed = {
        "learning_rate": run_identity(spec, tiny_model, dataclasses.replace(tiny_train, learning_rate=5e-4)),
        "save_every": run_identity(spec, tiny_model, dataclasses.replace(tiny_train, save_every=2)),
        "mono_ratio": run_identity(dataclasses.replace(spec, settings=HybridSettings(0.3)), tiny_model, tiny_train),
        "pooling": run_identity(spec, dataclasses.replace(tiny_model, pooling="cls"), tiny_train),
        "query_prefix": run_identity(spec, dataclasses.replace(tiny_model, query_prefix="q: "), tiny_train),
        "passage_prefix": run_identity(spec, dataclasses.replace(tiny_model, passage_prefix="p: "), tiny_train),
        "seed": run_identity(dataclasses.replace(spec, seed=1), tiny_model, tiny_train),
        "strategy": run_identity(dataclasses.replace(spec, settings=MultiSettings()), tiny_model, tiny_train),
        "profile": run_identity(dataclasses.replace(spec, profile="other"), tiny_model, tiny_train),
    }
    for name, path in (
        ("train_table", spec.train_table),
        ("candidates_table", spec.candidates_table),
        ("base_model", spec.base_model / "config.json"),
    ):
        original = path.read_bytes()
        path.write_bytes(original + b" ")
        changed[name] = run_identity(spec, tiny_model, tiny_train)
        path.write_bytes(original)
    assert run_identity(spec, tiny_model, tiny_train) == base
    assert all(value != base for value in changed.values()), [name for name, value in changed.items() if value == base]
    assert len(set(changed.values())) == len(changed)
    # The settings the stage does not depend on leave a checkpoint usable.
    encoding_only = dataclasses.replace(
        tiny_model, name="other", max_query_length=64, max_passage_length=128, normalize=False
    )
    assert run_identity(spec, encoding_only, tiny_train) == base
    assert run_identity(dataclasses.replace(spec, settings=MonoSettings()), tiny_model, tiny_train) != base


def change_training_table(workspace: Path, split_profile) -> None:
    before = len(pd.read_parquet(workspace / "data" / "splits" / "lowres" / "train.parquet"))
    split_profile(workspace, zh_fraction=0.25)  # drops Chinese questions the checkpoint's sampler still queues
    assert len(pd.read_parquet(workspace / "data" / "splits" / "lowres" / "train.parquet")) < before


def change_candidates(workspace: Path, split_profile) -> None:
    path = workspace / "data" / "parallel" / "tiny-xquad" / "candidates.parquet"
    candidates = read_table(path, CANDIDATE_COLUMNS, "parallelise")
    write_table(path, candidates.assign(text=candidates.text + " here"))  # the hard negatives' text


def change_base_model(workspace: Path, split_profile) -> None:
    path = workspace / "models" / "base" / "model.safetensors"
    tensors = load_file(str(path))
    key = next(k for k in tensors if k.endswith("encoder.layer.0.attention.self.query.weight"))
    tensors[key] = tensors[key] * 1.5
    save_file(tensors, str(path), metadata={"format": "pt"})


@pytest.mark.parametrize("change", [change_training_table, change_candidates, change_base_model])
def test_a_checkpoint_of_other_inputs_restarts_cleanly(
    workspace: Path,
    tmp_path: Path,
    change,
    caplog: pytest.LogCaptureFixture,
    spec_for,
    weights,
    same_weights,
    split_profile,
    interrupt,
    straight_weights,
    tiny_model,
    tiny_train,
) -> None:
    spec = spec_for(workspace, tmp_path / "run")
    interrupt(spec)
    change(workspace, split_profile)
    with caplog.at_level(logging.WARNING, logger="mlret.training.loop"):
        metrics = train_run(spec, tiny_model, tiny_train)
    notices = [r.getMessage() for r in caplog.records if NOTICE in r.getMessage()]
    assert len(notices) == 1 and "another run" in notices[0] and "\n" not in notices[0]
    assert not any("resuming" in r.getMessage() for r in caplog.records)
    assert metrics["steps"] == 6 and pd.read_csv(spec.log_path).step.tolist() == [1, 2, 3, 4, 5, 6]
    assert same_weights(weights(spec), straight_weights(workspace, tmp_path / "straight"))


def test_a_checkpoint_of_the_same_inputs_is_resumed(
    fixed_workspace: Path,
    reference: dict[str, torch.Tensor],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    spec_for,
    weights,
    same_weights,
    interrupt,
    tiny_model,
    tiny_train,
) -> None:
    spec = spec_for(fixed_workspace, tmp_path / "run")
    interrupt(spec)
    with caplog.at_level(logging.WARNING, logger="mlret.training.loop"):
        train_run(spec, tiny_model, tiny_train)
    assert [r.getMessage() for r in caplog.records if "resuming" in r.getMessage()] == [
        f"resuming from step 3 ({spec.resume_dir})"
    ]
    assert not any(NOTICE in r.getMessage() for r in caplog.records)
    assert same_weights(weights(spec), reference)


# -- unreadable, corrupt and hostile checkpoints ------------------------------------------------------


class Payload:
    """Unpickling this creates a marker file: proof that the file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def plant_pickle(folder: Path, marker: Path, where: str) -> None:
    payload = pickle.dumps({"format": STATE_FORMAT, "state": Payload(marker)})
    if where == "legacy":  # the pickle file an older version wrote, and nothing else
        for path in folder.iterdir():
            path.unlink()
        (folder / "trainer_state.pt").write_bytes(payload)
    elif where == "json":
        (folder / STATE_JSON).write_bytes(payload)
    else:  # the tensors file, its checksum updated so that only the format can refuse it
        (folder / STATE_TENSORS).write_bytes(payload)
        state = json.loads((folder / STATE_JSON).read_text())
        state["tensors_sha256"] = file_sha256(folder / STATE_TENSORS)
        (folder / STATE_JSON).write_text(json.dumps(state))


@pytest.mark.parametrize("where", ["legacy", "json", "tensors"])
def test_a_pickle_in_the_checkpoint_is_never_unpickled(
    fixed_workspace: Path,
    reference: dict[str, torch.Tensor],
    tmp_path: Path,
    where: str,
    caplog: pytest.LogCaptureFixture,
    spec_for,
    weights,
    same_weights,
    interrupt,
    tiny_model,
    tiny_train,
) -> None:
    marker = tmp_path / "unpickled"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists(), "the payload must work, or the test proves nothing"
    marker.unlink()

    spec = spec_for(fixed_workspace, tmp_path / "run")
    interrupt(spec)
    plant_pickle(spec.resume_dir, marker, where)
    with caplog.at_level(logging.WARNING, logger="mlret.training.loop"):
        train_run(spec, tiny_model, tiny_train)
    assert not marker.exists()
    assert len([r for r in caplog.records if NOTICE in r.getMessage()]) == 1
    assert same_weights(weights(spec), reference)


def break_json(folder: Path) -> None:
    text = (folder / STATE_JSON).read_text()
    (folder / STATE_JSON).write_text(text[: len(text) // 2])


def break_tensors(folder: Path) -> None:
    data = bytearray((folder / STATE_TENSORS).read_bytes())
    data[-1] ^= 0xFF
    (folder / STATE_TENSORS).write_bytes(bytes(data))


def break_sampler(folder: Path) -> None:
    """Well-formed, right identity and checksum, but a sampler state this table cannot hold.

    The weights and optimiser are loaded before the sampler fails, so this
    checks that a half-applied checkpoint is rolled back to the fresh state.
    """
    state = json.loads((folder / STATE_JSON).read_text())
    state["sampler"]["queues"].append(["en", "ru", ["no-such-question"]])
    (folder / STATE_JSON).write_text(json.dumps(state))


def log_damage(edit: Callable[[list], object]) -> Callable[[Path], None]:
    """A checkpoint whose loss log (only) is damaged: identity and tensors still valid, so only the log can tell."""

    def damage(folder: Path) -> None:
        state = json.loads((folder / STATE_JSON).read_text())
        state["log"] = edit(state["log"])
        (folder / STATE_JSON).write_text(json.dumps(state))

    damage.__name__ = f"break_log_{edit.__name__}"
    return damage


def _text(log: list) -> object:
    return "not a log"


def _missing_loss(log: list) -> object:
    return [{k: v for k, v in row.items() if k != "loss"} for row in log]


def _short(log: list) -> object:
    return log[:-1]


@pytest.mark.parametrize(
    "damage", [break_json, break_tensors, break_sampler, *(log_damage(e) for e in (_text, _missing_loss, _short))]
)
def test_a_damaged_checkpoint_restarts_cleanly(
    fixed_workspace: Path,
    reference: dict[str, torch.Tensor],
    tmp_path: Path,
    damage,
    caplog: pytest.LogCaptureFixture,
    spec_for,
    weights,
    same_weights,
    interrupt,
    tiny_model,
    tiny_train,
) -> None:
    spec = spec_for(fixed_workspace, tmp_path / "run")
    interrupt(spec)
    damage(spec.resume_dir)
    with caplog.at_level(logging.WARNING, logger="mlret.training.loop"):
        metrics = train_run(spec, tiny_model, tiny_train)
    assert len([r for r in caplog.records if NOTICE in r.getMessage()]) == 1
    assert metrics["steps"] == 6 and len(pd.read_csv(spec.log_path)) == 6
    assert same_weights(weights(spec), reference)
