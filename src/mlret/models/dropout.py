"""Dropout whose random mask costs a fraction of PyTorch's on the CPU.

Profiling a default training step on a 2-core CPU put ``bernoulli_`` (the mask
of every dropout layer: embeddings, attention probabilities, both residual
branches of each of 12 layers) at a fifth of the step: the CPU generator
draws one 32-bit number per element. :func:`dropout` draws one 64-bit number
per four elements instead and compares each 16-bit quarter with
``k = round(p * 2**16)``: an element is dropped with probability
``p' = k / 2**16`` (within ``2**-17`` of ``p``; 0.1000061 for ``p = 0.1``),
independently of the others, from the same seeded generator (runs stay
reproducible and resumable: the generator state is part of every
checkpoint). The kept elements are scaled by ``1 / (1 - p')``, so that, as
with :func:`torch.nn.functional.dropout`, the expected output is the input.
The comparison writes the mask straight as 0/1 in the activations' dtype
(a boolean mask would be converted to it by every product that uses it), and
it is applied in one pass each way.

On a GPU the built-in dropout is already fast and is used unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 2**16


def effective_rate(p: float) -> float:
    """The drop probability :func:`dropout` realises for a nominal ``p`` on the CPU."""
    return round(p * _LEVELS) / _LEVELS


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with a cheaper mask on the CPU (rate :func:`effective_rate`)."""
    if not training or p == 0.0 or x.device.type != "cpu":
        return F.dropout(x, p, training)
    threshold = round(p * _LEVELS)
    if threshold >= _LEVELS:
        return torch.zeros_like(x)
    n = x.numel()
    # The full int64 range (plain random_() stops at 2**63 - 1, leaving the top quarter's sign bit 0),
    # so that each word is four independent uniform 16-bit quarters; as int16 they lie in [-2**15, 2**15).
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)
    quarters = words.view(torch.int16)[:n].view(x.shape)
    keep = torch.ge(quarters, threshold - 2**15, out=torch.empty(x.shape, dtype=x.dtype, device=x.device))
    return _ScaleKept.apply(x, keep, _LEVELS / (_LEVELS - threshold))


class _ScaleKept(torch.autograd.Function):
    """``x * keep * scale`` (``keep`` 0 or 1), and the same on the way back: one pass over the tensor each way.

    Spelt with autograd's own ops (``torch.where(keep, x * scale, 0)``) it is a
    product and a select in the forward and again in the backward; ``addcmul``
    of a zero scalar scales and masks in a single pass, with the same result
    to the bit.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.addcmul(x.new_zeros(()), x, keep, value=scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return torch.addcmul(grad.new_zeros(()), grad, keep, value=ctx.scale), None, None


class Dropout(nn.Dropout):
    """:class:`torch.nn.Dropout` with the cheaper CPU mask of :func:`dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def use_fast_dropout(net: nn.Module) -> int:
    """Swap every :class:`torch.nn.Dropout` in ``net`` for :class:`Dropout` (same ``p``); returns how many.

    Dropout layers hold no weights, so the saved checkpoint is unchanged.
    """
    swapped = 0
    for parent in net.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, Dropout(child.p, child.inplace))
                swapped += 1
    return swapped
