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

from mlret.models.encoder import Encoder
from mlret.training.loop import Trainer, train_run


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, build_workspace) -> Path:
    """data/parallel and data/splits of the tiny dataset, plus models/base, laid out as the pipeline does."""
    return build_workspace(tmp_path_factory.mktemp("ws"), tiny_checkpoint)


def test_run_writes_a_loadable_checkpoint_log_and_metrics(
    workspace: Path, tmp_path: Path, spec_for, tiny_model, tiny_train
) -> None:
    spec = spec_for(workspace, tmp_path, mono_ratio=0.3)
    metrics = train_run(spec, tiny_model, tiny_train)
    _, info = AutoModel.from_pretrained(spec.out_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    saved = json.loads((spec.out_dir / "training_params.json").read_text())
    assert saved == {
        "strategy": "hybrid",
        "profile": "lowres",
        "seed": 0,
        "hybrid": {"mono_ratio": 0.3},
        "model": json.loads(json.dumps(dataclasses.asdict(tiny_model))),
        "train": json.loads(json.dumps(dataclasses.asdict(tiny_train))),
    }
    log = pd.read_csv(spec.log_path)
    assert log.step.tolist() == [1, 2, 3, 4, 5, 6] and log.loss.notna().all()
    assert log.learning_rate.iloc[0] < log.learning_rate.max()  # warm-up, then linear decay
    assert metrics["steps"] == 6 and metrics["pairs_seen"] == 24
    assert set(metrics["language_share"]) == {"en", "ru", "zh"}
    assert json.loads(spec.metrics_path.read_text()) == metrics
    assert not spec.resume_dir.exists()  # removed once the run completes


@pytest.mark.parametrize("strategy", ["mono", "cross", "multi"])
def test_a_run_records_its_own_strategy_settings_only(
    workspace: Path, tmp_path: Path, strategy: str, spec_for, tiny_model, tiny_train
) -> None:
    spec = spec_for(workspace, tmp_path, strategy=strategy)
    train_run(spec, tiny_model, dataclasses.replace(tiny_train, max_steps=1))
    saved = json.loads((spec.out_dir / "training_params.json").read_text())
    assert saved["strategy"] == strategy and saved[strategy] == {}
    assert not {"hybrid", "mono_ratio"} & set(saved)


def test_same_seed_gives_bitwise_identical_weights(
    workspace: Path, tmp_path: Path, spec_for, weights, tiny_model, tiny_train
) -> None:
    a, b, c = (spec_for(workspace, tmp_path / name, seed=seed) for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    for spec in (a, b, c):
        train_run(spec, tiny_model, tiny_train)
    wa, wb, wc = weights(a), weights(b), weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_the_mono_ratio_reaches_the_sampler(workspace: Path, tmp_path: Path, spec_for, tiny_model, tiny_train) -> None:
    """All-mono and all-cross hybrid runs build only the batches their ratio asks for."""
    longer = dataclasses.replace(tiny_train, max_steps=12)
    kinds = {
        ratio: train_run(spec_for(workspace, tmp_path / str(ratio), mono_ratio=ratio), tiny_model, longer)[
            "batch_kinds"
        ]
        for ratio in (0.0, 1.0)
    }
    assert kinds == {0.0: {"cross": 12}, 1.0: {"mono": 12}}


def test_training_embeds_as_the_encoder_does(workspace: Path, tmp_path: Path, spec_for, tiny_model, tiny_train) -> None:
    """Prefix, truncation to the train.* lengths, padding and pooling: the trainer's vectors are the encoder's."""
    short = dataclasses.replace(tiny_train, max_query_length=5, max_passage_length=6)
    trainer = Trainer(spec_for(workspace, tmp_path), dataclasses.replace(tiny_model, normalize=False), short)
    trainer.net.eval()
    texts = ["river a1 p0 s1 ends here .", "where", "the cat sat on the mat in the house"]
    lengths = dataclasses.replace(tiny_model, max_query_length=5, max_passage_length=6)
    encoder = Encoder.from_model(
        trainer.net, trainer.tokenizer, lengths, device="cpu", precision="fp32", show_progress=False
    )
    for side in ("query", "passage"):
        with torch.no_grad():
            trained = trainer.embed(texts, side).numpy()
        assert trained.tobytes() == encoder.encode(texts, side).tobytes()


def test_a_batch_packed_as_one_row_gives_each_sides_own_vectors(
    workspace: Path, tmp_path: Path, spec_for, tiny_model, tiny_train
) -> None:
    """Packed, queries and passages share one forward; each side's vectors are still its own (prefix, length, order)."""
    trainer = Trainer(spec_for(workspace, tmp_path), dataclasses.replace(tiny_model, normalize=False), tiny_train)
    assert trainer.packed
    trainer.net.eval()
    queries, passages = trainer.batch_texts(trainer.sampler.next_batch())
    with torch.no_grad():
        together = trainer.embed_pair(queries, passages)
        apart = trainer.embed(queries, "query"), trainer.embed(passages, "passage")
    assert [len(v) for v in together] == [len(queries), len(passages)] and len(queries) < len(passages)
    for joint, own in zip(together, apart, strict=True):
        torch.testing.assert_close(joint, own, atol=1e-5, rtol=1e-5)
        assert not torch.equal(joint[0], joint[1])


def test_an_interrupted_run_resumes_to_the_same_weights(
    workspace: Path, tmp_path: Path, spec_for, weights, interrupt_at, tiny_model, tiny_train
) -> None:
    straight = spec_for(workspace, tmp_path / "straight")
    train_run(straight, tiny_model, tiny_train)

    resumed = spec_for(workspace, tmp_path / "resumed")
    interrupt_at(resumed, tiny_model, tiny_train, step=3)
    assert not resumed.out_dir.exists(), "no model may appear before the run completes"
    assert (resumed.resume_dir / "trainer_state.json").is_file() and (
        resumed.resume_dir / "trainer_state.safetensors"
    ).is_file()
    train_run(resumed, tiny_model, tiny_train)
    ws, wr = weights(straight), weights(resumed)
    assert all(torch.equal(ws[k], wr[k]) for k in ws)
    assert pd.read_csv(resumed.log_path).equals(
        pd.read_csv(straight.log_path).assign(pairs_per_s=pd.read_csv(resumed.log_path).pairs_per_s)
    )


def test_frozen_word_embeddings_do_not_move(
    workspace: Path, tmp_path: Path, spec_for, weights, tiny_model, tiny_train
) -> None:
    spec = spec_for(workspace, tmp_path, strategy="cross")
    frozen = dataclasses.replace(tiny_model, freeze_word_embeddings=True)
    train_run(spec, frozen, dataclasses.replace(tiny_train, max_steps=2))
    before = load_file(str(workspace / "models" / "base" / "model.safetensors"))
    after = weights(spec)
    key = next(k for k in after if k.endswith("word_embeddings.weight"))
    assert torch.equal(before[key], after[key])
    moved = [k for k in after if "encoder.layer.0" in k and not torch.equal(before[k], after[k])]
    assert moved


def test_a_checkpoint_from_other_params_restarts_cleanly(
    workspace: Path, tmp_path: Path, spec_for, interrupt_at, tiny_model, tiny_train
) -> None:
    spec = spec_for(workspace, tmp_path)
    interrupt_at(spec, tiny_model, tiny_train, step=3)
    changed = dataclasses.replace(tiny_train, learning_rate=5e-4)
    metrics = train_run(spec, tiny_model, changed)
    assert metrics["steps"] == 6 and len(pd.read_csv(spec.log_path)) == 6
    assert json.loads((spec.out_dir / "training_params.json").read_text())["train"]["learning_rate"] == 5e-4


@pytest.mark.parametrize(
    ("table", "edit", "message"),
    [
        ("train", lambda f: f.assign(query=range(len(f))), "column 'query' should hold text, but holds int64"),
        ("train", lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True), "the row with qid = "),
        ("candidates", lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True), "the row with candidate_id = "),
    ],
)
def test_a_damaged_training_or_candidate_table_is_named_before_training(
    workspace: Path, tmp_path: Path, table: str, edit, message: str, spec_for, tiny_model, tiny_train
) -> None:
    """Numbers for query text were a TypeError traceback mid-step; a repeated candidate was trained on silently."""
    from mlret.artifacts import write_table
    from mlret.errors import MlretError

    spec = spec_for(workspace, tmp_path)
    source = spec.train_table if table == "train" else spec.candidates_table
    damaged = tmp_path / f"{table}.parquet"
    write_table(damaged, edit(pd.read_parquet(source)))
    spec = dataclasses.replace(spec, **{"train_table" if table == "train" else "candidates_table": damaged})
    with pytest.raises(MlretError, match=f"{damaged}: {message}"):
        train_run(spec, tiny_model, tiny_train)
    assert not spec.out_dir.exists()
