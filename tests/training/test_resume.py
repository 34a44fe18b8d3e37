"""A checkpoint is resumed only into the run it belongs to, and never by unpickling."""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_training import MODEL, TRAIN, CrashAfterCheckpoint, Interrupted, build_workspace, same_weights, spec_for, split_profile, weights

from mlret.artifacts import read_table, write_table
from mlret.data.parallel import CANDIDATE_COLUMNS
from mlret.training.loop import STATE_JSON, STATE_TENSORS, RunSpec, file_sha256, run_identity, train_run
from mlret.training.samplers import Sampling

NOTICE = "discarding the checkpoint"


@pytest.fixture
def workspace(tmp_path: Path, tiny_checkpoint: Path) -> Path:
    """A workspace of its own, with a private copy of the base model, for tests that change the inputs."""
    base = tmp_path / "base-model"
    shutil.copytree(tiny_checkpoint, base)
    return build_workspace(tmp_path / "ws", base)


@pytest.fixture(scope="module")
def fixed_workspace(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """A workspace that no test changes."""
    return build_workspace(tmp_path_factory.mktemp("ws"), tiny_checkpoint)


@pytest.fixture(scope="module")
def reference(fixed_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """Weights of an uninterrupted run on the fixed workspace."""
    return straight_weights(fixed_workspace, tmp_path_factory.mktemp("straight"))


def interrupt(spec: RunSpec) -> None:
    with pytest.raises(Interrupted):
        CrashAfterCheckpoint(spec, MODEL, TRAIN, 0.5).run()
    assert json.loads((spec.resume_dir / STATE_JSON).read_text())["step"] == 3


def straight_weights(workspace: Path, out: Path) -> dict[str, torch.Tensor]:
    """Weights of an uninterrupted run on the workspace as it is now."""
    spec = spec_for(workspace, out)
    train_run(spec, MODEL, TRAIN, mono_ratio=0.5)
    return weights(spec)


# -- what a run identity covers -----------------------------------------------------------------


def test_the_identity_changes_with_every_input_that_decides_the_weights(workspace: Path, tmp_path: Path) -> None:
    spec = spec_for(workspace, tmp_path / "out")
    base = run_identity(spec, MODEL, TRAIN, 0.5)
    assert run_identity(spec, MODEL, TRAIN, 0.5) == base
    changed = {
        "learning_rate": run_identity(spec, MODEL, dataclasses.replace(TRAIN, learning_rate=5e-4), 0.5),
        "save_every": run_identity(spec, MODEL, dataclasses.replace(TRAIN, save_every=2), 0.5),
        "mono_ratio": run_identity(spec, MODEL, TRAIN, 0.3),
        "pooling": run_identity(spec, dataclasses.replace(MODEL, pooling="cls"), TRAIN, 0.5),
        "query_prefix": run_identity(spec, dataclasses.replace(MODEL, query_prefix="q: "), TRAIN, 0.5),
        "passage_prefix": run_identity(spec, dataclasses.replace(MODEL, passage_prefix="p: "), TRAIN, 0.5),
        "seed": run_identity(dataclasses.replace(spec, seed=1), MODEL, TRAIN, 0.5),
        "strategy": run_identity(dataclasses.replace(spec, strategy=Sampling.MULTI), MODEL, TRAIN, 0.5),
        "profile": run_identity(dataclasses.replace(spec, profile="other"), MODEL, TRAIN, 0.5),
    }
    for name, path in (("train_table", spec.train_table), ("candidates_table", spec.candidates_table), ("base_model", spec.base_model / "config.json")):
        original = path.read_bytes()
        path.write_bytes(original + b" ")
        changed[name] = run_identity(spec, MODEL, TRAIN, 0.5)
        path.write_bytes(original)
    assert run_identity(spec, MODEL, TRAIN, 0.5) == base
    assert all(value != base for value in changed.values()), [name for name, value in changed.items() if value == base]
    assert len(set(changed.values())) == len(changed)
    # The settings the stage does not depend on leave a checkpoint usable.
    encoding_only = dataclasses.replace(MODEL, name="other", max_query_length=64, max_passage_length=128, normalize=False)
    assert run_identity(spec, encoding_only, TRAIN, 0.5) == base
    mono = dataclasses.replace(spec, strategy=Sampling.MONO)
    assert run_identity(mono, MODEL, TRAIN, 0.3) == run_identity(mono, MODEL, TRAIN, 0.5)  # mono ignores mono_ratio


def change_training_table(workspace: Path) -> None:
    before = len(pd.read_parquet(workspace / "data" / "splits" / "lowres" / "train.parquet"))
    split_profile(workspace, zh_fraction=0.25)  # drops Chinese questions the checkpoint's sampler still queues
    assert len(pd.read_parquet(workspace / "data" / "splits" / "lowres" / "train.parquet")) < before


def change_candidates(workspace: Path) -> None:
    path = workspace / "data" / "parallel" / "tiny-xquad" / "candidates.parquet"
    candidates = read_table(path, CANDIDATE_COLUMNS, "parallelise")
    write_table(path, candidates.assign(text=candidates.text + " here"))  # the hard negatives' text


def change_base_model(workspace: Path) -> None:
    path = workspace / "models" / "base" / "model.safetensors"
    tensors = load_file(str(path))
    key = next(k for k in tensors if k.endswith("encoder.layer.0.attention.self.query.weight"))
    tensors[key] = tensors[key] * 1.5
    save_file(tensors, str(path), metadata={"format": "pt"})


@pytest.mark.parametrize("change", [change_training_table, change_candidates, change_base_model])
def test_a_checkpoint_of_other_inputs_restarts_cleanly(workspace: Path, tmp_path: Path, change, caplog: pytest.LogCaptureFixture) -> None:
    spec = spec_for(workspace, tmp_path / "run")
    interrupt(spec)
    change(workspace)
    with caplog.at_level(logging.WARNING, logger="mlret.training.loop"):
        metrics = train_run(spec, MODEL, TRAIN, mono_ratio=0.5)
    notices = [r.getMessage() for r in caplog.records if NOTICE in r.getMessage()]
    assert len(notices) == 1 and "another run" in notices[0] and "\n" not in notices[0]
    assert not any("resuming" in r.getMessage() for r in caplog.records)
    assert metrics["steps"] == 6 and pd.read_csv(spec.log_path).step.tolist() == [1, 2, 3, 4, 5, 6]
    assert same_weights(weights(spec), straight_weights(workspace, tmp_path / "straight"))


def test_a_checkpoint_of_the_same_inputs_is_resumed(fixed_workspace: Path, reference: dict[str, torch.Tensor], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = spec_for(fixed_workspace, tmp_path / "run")
    interrupt(spec)
    with caplog.at_level(logging.WARNING, logger="mlret.training.loop"):
        train_run(spec, MODEL, TRAIN, mono_ratio=0.5)
    assert [r.getMessage() for r in caplog.records if "resuming" in r.getMessage()] == [f"resuming from step 3 ({spec.resume_dir})"]
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
    payload = pickle.dumps({"format": 2, "state": Payload(marker)})
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
def test_a_pickle_in_the_checkpoint_is_never_unpickled(fixed_workspace: Path, reference: dict[str, torch.Tensor], tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "unpickled"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists(), "the payload must work, or the test proves nothing"
    marker.unlink()

    spec = spec_for(fixed_workspace, tmp_path / "run")
    interrupt(spec)
    plant_pickle(spec.resume_dir, marker, where)
    with caplog.at_level(logging.WARNING, logger="mlret.training.loop"):
        train_run(spec, MODEL, TRAIN, mono_ratio=0.5)
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


@pytest.mark.parametrize("damage", [break_json, break_tensors, break_sampler])
def test_a_damaged_checkpoint_restarts_cleanly(fixed_workspace: Path, reference: dict[str, torch.Tensor], tmp_path: Path, damage, caplog: pytest.LogCaptureFixture) -> None:
    spec = spec_for(fixed_workspace, tmp_path / "run")
    interrupt(spec)
    damage(spec.resume_dir)
    with caplog.at_level(logging.WARNING, logger="mlret.training.loop"):
        metrics = train_run(spec, MODEL, TRAIN, mono_ratio=0.5)
    assert len([r for r in caplog.records if NOTICE in r.getMessage()]) == 1
    assert metrics["steps"] == 6 and len(pd.read_csv(spec.log_path)) == 6
    assert same_weights(weights(spec), reference)
