"""The numbers of one optimiser step: decay groups, accumulation, clipping, schedule and step count."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from mlret.training.loop import Trainer, planned_steps


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, build_workspace) -> Path:
    return build_workspace(tmp_path_factory.mktemp("ws"), tiny_checkpoint)


@pytest.fixture(scope="module")
def trainer(workspace: Path, spec_for, tiny_model, tiny_train):
    """A fresh trainer of the tiny hybrid run, its train params changed as given."""

    def build(out: Path, **changes: object) -> Trainer:
        return Trainer(spec_for(workspace, out), tiny_model, dataclasses.replace(tiny_train, **changes))

    return build


def grads(t: Trainer) -> dict[str, torch.Tensor]:
    """Every gradient, dense (the trained word embeddings' gradient is row-sparse)."""
    return {
        n: p.grad.to_dense() if p.grad.is_sparse else p.grad.clone()
        for n, p in t.net.named_parameters()
        if p.grad is not None
    }


def first_moments(t: Trainer) -> dict[str, torch.Tensor]:
    """Adam's first moment after one step is (1 - beta1) times the gradient the step used (both optimisers)."""
    optimizers = [o for o in (t.optimizer, t.embedding_optimizer) if o is not None]
    return {n: o.state[p]["exp_avg"] / 0.1 for n, p in t.net.named_parameters() for o in optimizers if p in o.state}


def hand_gradients(trainer, out: Path, micro_batches: int, **changes: object) -> tuple[dict[str, torch.Tensor], float]:
    """The gradient of the mean of the micro-batches' InfoNCE losses, computed in one graph.

    A fresh trainer of the same run draws the same micro-batches; each keeps
    its own in-batch negatives, which is what accumulation means here (one
    batch of k*b pairs would have more negatives, hence another loss). Torch's
    RNG is put back afterwards, so the trainer under test draws the same
    dropout masks.
    """
    ref = trainer(out, **changes)
    state = torch.get_rng_state()
    ref.optimizer.zero_grad(set_to_none=True)
    losses = []
    for _ in range(micro_batches):
        queries, passages = ref.batch_texts(ref.sampler.next_batch())
        losses.append(ref.loss_fn(*ref.embed_pair(queries, passages)))
    total = torch.stack(losses).mean()
    total.backward()
    torch.set_rng_state(state)
    return grads(ref), total.detach().item()


def one_step_and_reference(trainer, tmp_path: Path, micro_batches: int, **changes: object):
    """(trainer after one train_step, its mean loss, hand-made gradients at the same weights, batches and dropout)."""
    t = trainer(tmp_path / "t", grad_accumulation=micro_batches, **changes)
    expected, expected_loss = hand_gradients(
        trainer, tmp_path / "r", micro_batches, grad_accumulation=micro_batches, **changes
    )
    # Both trainers seeded torch alike, and hand_gradients put the RNG back: t draws the same dropout masks.
    loss, _, pairs = t.train_step()
    assert pairs == micro_batches * t.train.batch_size
    return t, loss, expected, expected_loss


def assert_close(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        # atol 1e-7: accumulated and one-graph gradients round differently (seen: 7e-8 on 4 of 2,752 embedding
        # entries); a wrong scale of the accumulation (sum for mean) is off by the factor of the micro-batches.
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-5, atol=1e-7, msg=name)


def test_weight_decay_applies_to_weights_only(trainer, tmp_path: Path) -> None:
    t = trainer(tmp_path)
    names = {id(p): n for n, p in t.net.named_parameters()}
    groups = {g["weight_decay"]: {names[id(p)] for p in g["params"]} for g in t.optimizer.param_groups}
    assert set(groups) == {t.train.weight_decay, 0.0}
    decayed, exempt = groups[t.train.weight_decay], groups[0.0]
    # The trained word embeddings are updated row by row by their own optimiser, without decay.
    assert not t.model.freeze_word_embeddings and t.embedding_optimizer is not None
    lazy = {names[id(p)] for g in t.embedding_optimizer.param_groups for p in g["params"]}
    assert lazy == {"embeddings.word_embeddings.weight"}
    assert decayed | exempt | lazy == {n for n, p in t.net.named_parameters() if p.requires_grad}
    assert not decayed & exempt and not (decayed | exempt) & lazy
    assert exempt == {n for n in names.values() if n.endswith(".bias") or ".LayerNorm." in n}
    assert {
        "encoder.layer.0.attention.self.query.bias",
        "encoder.layer.1.output.LayerNorm.weight",
        "embeddings.LayerNorm.bias",
    } <= exempt
    assert {
        "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.1.output.dense.weight",
        "embeddings.position_embeddings.weight",
    } <= decayed


def test_accumulated_micro_batches_give_the_gradient_of_their_mean_loss(trainer, tmp_path: Path) -> None:
    # No clipping (a huge norm scales gradients by exactly 1), so the step's gradients stay in .grad.
    t, loss, expected, expected_loss = one_step_and_reference(trainer, tmp_path, micro_batches=3, max_grad_norm=1e9)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    assert_close(grads(t), expected)
    assert_close(first_moments(t), expected)  # and the optimiser stepped with them


def test_clipping_scales_the_gradient_to_max_grad_norm_before_the_step(trainer, tmp_path: Path) -> None:
    max_norm = 0.05
    t, _, unclipped, _ = one_step_and_reference(trainer, tmp_path, micro_batches=2, max_grad_norm=max_norm)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in unclipped.values()]))
    assert norm > 2 * max_norm, "the gradient must be large enough for clipping to act"
    clipped = {n: g * (max_norm / (norm + 1e-6)) for n, g in unclipped.items()}
    assert_close(grads(t), clipped)
    assert_close(first_moments(t), clipped)  # clipped before the optimiser used them
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads(t).values()]))
    assert float(total) == pytest.approx(max_norm, rel=1e-4)


def test_learning_rate_warms_up_linearly_then_decays_linearly_to_zero(trainer, tmp_path: Path) -> None:
    # 10 steps, 20% warm-up: step s (1-based) uses the rate of schedule position s - 1.
    t = trainer(tmp_path, max_steps=10, warmup_ratio=0.2, save_every=100)
    t.run()
    lr = [row["learning_rate"] for row in t.log]
    peak = t.train.learning_rate
    assert lr[:3] == pytest.approx([0.0, peak / 2, peak], rel=1e-12, abs=1e-15)  # the end of warm-up is the peak
    assert lr[3] == pytest.approx(peak * 7 / 8, rel=1e-12)
    assert lr[-1] == pytest.approx(peak / 8, rel=1e-12)  # last step: one eighth of the decay left
    assert pd.Series(lr[2:]).is_monotonic_decreasing


def test_epochs_become_optimiser_steps_over_the_profile_rows(trainer, tiny_train, tmp_path: Path) -> None:
    by_epochs = dataclasses.replace(tiny_train, max_steps=None, epochs=2.5, batch_size=4, grad_accumulation=3)
    assert planned_steps(by_epochs, 100) == 21  # ceil(2.5 * 100 / (4 * 3)) = ceil(20.83)
    assert planned_steps(by_epochs, 96) == 20  # exactly 20: no extra step
    assert planned_steps(dataclasses.replace(by_epochs, epochs=0.01), 100) == 1
    assert planned_steps(dataclasses.replace(by_epochs, max_steps=7), 100) == 7  # max_steps wins
    t = trainer(tmp_path, max_steps=None, epochs=1.5, grad_accumulation=2)
    rows = len(pd.read_parquet(t.spec.train_table))
    assert t.total_steps == math.ceil(1.5 * rows / (t.train.batch_size * 2)) and t.total_steps > 1
