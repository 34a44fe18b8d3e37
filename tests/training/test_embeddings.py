"""Lazily updated word embeddings: touched rows as dense Adam has them, untouched rows exactly as they were."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from mlret.training.embeddings import clip_gradients, lazy_embedding_optimizer
from mlret.training.loop import Trainer

ROWS, WIDTH = 30, 6


def _pair() -> tuple[torch.nn.Embedding, torch.nn.Embedding]:
    torch.manual_seed(0)
    dense = torch.nn.Embedding(ROWS, WIDTH)
    lazy = torch.nn.Embedding(ROWS, WIDTH)
    lazy.load_state_dict(dense.state_dict())
    return dense, lazy


def _loss(embedding: torch.nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    target = torch.linspace(-1, 1, WIDTH)
    return (embedding(ids) - target).square().sum()


def test_touched_rows_follow_dense_adam_and_untouched_rows_do_not_move() -> None:
    dense, lazy = _pair()
    before = lazy.weight.detach().clone()
    dense_opt = torch.optim.AdamW(dense.parameters(), lr=0.01, weight_decay=0.0)
    lazy_opt = lazy_embedding_optimizer(lazy, 0.01)
    ids = torch.tensor([3, 7, 7, 12, 3, 29])  # repeats: a row used twice gets the sum of both gradients
    for _ in range(3):  # the same rows every step: lazy and dense moments coincide
        for opt, emb in ((dense_opt, dense), (lazy_opt, lazy)):
            opt.zero_grad()
            _loss(emb, ids).backward()
            opt.step()
    assert lazy.weight.grad is not None and lazy.weight.grad.is_sparse
    touched = torch.zeros(ROWS, dtype=torch.bool)
    touched[ids] = True
    torch.testing.assert_close(lazy.weight[touched], dense.weight[touched], rtol=1e-6, atol=1e-7)
    assert torch.equal(lazy.weight[~touched], before[~touched])  # bit for bit
    assert not torch.allclose(lazy.weight[touched], before[touched])  # and the used rows did learn


def test_a_row_left_out_of_a_step_keeps_its_weights_and_moments() -> None:
    _, lazy = _pair()
    opt = lazy_embedding_optimizer(lazy, 0.01)
    for ids in (torch.tensor([1, 2]), torch.tensor([2])):
        opt.zero_grad()
        _loss(lazy, ids).backward()
        if ids.tolist() == [2]:
            row_one, moments = lazy.weight[1].detach().clone(), opt.state[lazy.weight]["exp_avg"][1].clone()
        opt.step()
    assert torch.equal(lazy.weight[1], row_one)
    assert torch.equal(opt.state[lazy.weight]["exp_avg"][1], moments)


def test_clipping_counts_the_sparse_gradient_as_clip_grad_norm_counts_the_dense_one() -> None:
    dense, lazy = _pair()
    lazy.sparse = True
    dense_head, lazy_head = torch.nn.Linear(WIDTH, 1), torch.nn.Linear(WIDTH, 1)
    lazy_head.load_state_dict(dense_head.state_dict())
    ids = torch.tensor([4, 4, 9])
    (dense_head(dense(ids)).sum() * 7).backward()
    (lazy_head(lazy(ids)).sum() * 7).backward()
    expected = torch.nn.utils.clip_grad_norm_([*dense.parameters(), *dense_head.parameters()], 0.5)
    total = clip_gradients([*lazy.parameters(), *lazy_head.parameters()], 0.5)
    torch.testing.assert_close(total, expected)
    assert expected > 0.5  # clipping acted
    torch.testing.assert_close(lazy.weight.grad.to_dense(), dense.weight.grad)
    torch.testing.assert_close(lazy_head.weight.grad, dense_head.weight.grad)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, build_workspace) -> Path:
    return build_workspace(tmp_path_factory.mktemp("ws"), tiny_checkpoint)


def test_a_training_step_moves_only_the_embedding_rows_its_batch_used(
    workspace: Path, spec_for, tiny_model, tiny_train, tmp_path: Path
) -> None:
    t = Trainer(
        spec_for(workspace, tmp_path),
        tiny_model,
        dataclasses.replace(tiny_train, warmup_ratio=0.0),
    )
    weights = t.net.get_input_embeddings().weight
    before = weights.detach().clone()
    used: set[int] = set()
    encode = t.encoder.embed

    def recording(batch, network=None):
        used.update(token for text in batch for token in text)
        return encode(batch, network)

    t.encoder.embed = recording  # type: ignore[method-assign]
    t.train_step()
    moved = {int(i) for i in torch.nonzero((weights != before).any(dim=1)).flatten()}
    assert moved and moved <= used  # every other row is bit for bit what it was
