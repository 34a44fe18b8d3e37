import math

import pytest
import torch
import torch.nn.functional as F

from mlret.training.loss import InfoNCELoss


def test_infonce_matches_a_hand_computed_value() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # Each query: positive score 1, one negative score 0, temperature 1: -log(e / (e + 1)).
    expected = math.log(1 + math.exp(-1))
    assert InfoNCELoss(temperature=1.0)(q, p).item() == pytest.approx(expected, abs=1e-6)


def test_hard_negatives_enter_the_denominator_only() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # third row: a hard negative for both
    loss = InfoNCELoss(temperature=0.5)(q, p).item()
    s = torch.tensor([[2.0, 0.0, 1.2], [0.0, 2.0, 1.6]])
    expected = F.cross_entropy(s, torch.tensor([0, 1])).item()
    assert loss == pytest.approx(expected, abs=1e-6)


def test_symmetric_adds_the_passage_to_query_direction() -> None:
    torch.manual_seed(0)
    q = F.normalize(torch.randn(4, 8), dim=-1)
    p = F.normalize(torch.randn(6, 8), dim=-1)
    forward = F.cross_entropy(q @ p.T / 0.05, torch.arange(4))
    backward = F.cross_entropy(p[:4] @ q.T / 0.05, torch.arange(4))
    assert InfoNCELoss(0.05, symmetric=True)(q, p).item() == pytest.approx(((forward + backward) / 2).item(), rel=1e-6)
    assert InfoNCELoss(0.05)(q, p).item() == pytest.approx(forward.item(), rel=1e-6)


def test_lower_temperature_sharpens_the_loss() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert InfoNCELoss(0.05)(q, p).item() < InfoNCELoss(1.0)(q, p).item()
