"""The cheaper dropout mask drops with probability p, independently, reproducibly."""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig, BertModel

from mlret.models.dropout import Dropout, dropout, effective_rate, use_fast_dropout


def test_drops_with_probability_p_and_scales_the_rest() -> None:
    torch.manual_seed(0)
    x = torch.full((1000, 1000), 2.0)
    y = dropout(x, 0.1, training=True)
    dropped = (y == 0).float()
    # 1e6 Bernoulli(0.1) draws: the standard deviation of the share is 3e-4.
    assert abs(dropped.mean().item() - 0.1) < 0.0015
    assert effective_rate(0.1) == 6554 / 65536 and abs(effective_rate(0.1) - 0.1) < 2**-17
    assert torch.allclose(y[y != 0], torch.tensor(2.0 / (1 - 6554 / 65536)), rtol=0, atol=1e-6)
    assert not torch.allclose(
        y[y != 0], torch.tensor(2.0 / 0.9), rtol=0, atol=1e-6
    )  # the scale follows the realised rate
    # All four 16-bit quarters of every 64-bit draw are uniform (elements cycle through them).
    for quarter in range(4):
        assert abs(dropped[:, quarter::4].mean().item() - 0.1) < 0.003
        half = (dropout(torch.ones(1000, 1000), 0.5, training=True) == 0).float()
        assert abs(half[:, quarter::4].mean().item() - 0.5) < 0.004


def test_the_mean_output_is_the_input() -> None:
    torch.manual_seed(4)
    x = torch.full((4_000_000,), 3.0)
    # The standard error of the mean of 4e6 outputs is 3 * sqrt(p / (1 - p)) / 2000 = 5e-4 at p = 0.1.
    assert abs(dropout(x, 0.1, training=True).mean().item() - 3.0) < 0.002
    assert abs(dropout(x, 0.7, training=True).mean().item() - 3.0) < 0.006


def test_neighbouring_elements_are_independent() -> None:
    torch.manual_seed(1)
    dropped = (
        (dropout(torch.ones(4_000_000), 0.3, training=True) == 0).float().view(-1, 4)
    )  # a row: the quarters of one draw
    for a, b in [(0, 1), (1, 2), (2, 3), (0, 3)]:
        assert abs((dropped[:, a] * dropped[:, b]).mean().item() - 0.09) < 0.002


def test_the_gradient_passes_the_kept_elements_scaled() -> None:
    torch.manual_seed(5)
    x = torch.randn(300, 70, requires_grad=True)
    y = dropout(x, 0.25, training=True)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.equal(x.grad[~kept], torch.zeros_like(x.grad[~kept]))
    assert torch.allclose(x.grad[kept], torch.tensor(1 / (1 - effective_rate(0.25))))


def test_same_seed_same_mask_and_eval_is_identity() -> None:
    x = torch.randn(64, 48)
    torch.manual_seed(3)
    a = dropout(x, 0.2, training=True)
    torch.manual_seed(3)
    b = dropout(x, 0.2, training=True)
    assert torch.equal(a, b)
    assert torch.equal(dropout(x, 0.2, training=False), x)
    assert torch.equal(dropout(x, 1.0, training=True), torch.zeros_like(x))


def test_swapping_keeps_every_weight_and_every_rate() -> None:
    torch.manual_seed(0)
    net = BertModel(
        BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    )
    rates = sorted(m.p for m in net.modules() if isinstance(m, nn.Dropout))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    assert use_fast_dropout(net) == len(rates) > 0
    assert sorted(m.p for m in net.modules() if isinstance(m, Dropout)) == rates
    assert not any(type(m) is nn.Dropout for m in net.modules())
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
