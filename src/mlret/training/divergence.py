"""Stopping a run whose loss or gradients stopped being finite, before it writes a model.

A NaN never recovers: AdamW turns one non-finite gradient into non-finite
weights, and every later step trains nothing. Left alone, such a run ends
"successfully" with ``final_loss: NaN`` and a model of NaN weights that DVC
would cache and the evaluation would score. The check runs after the
gradients of a step are accumulated and before the optimiser applies them, so
the weights in memory (and the last resumable checkpoint) are still those of
the previous step when the run stops.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from mlret.errors import MlretError
from mlret.params import TrainParams


class TrainingDiverged(MlretError):
    """The loss or a gradient of a step is NaN or infinite; no model is written."""


def check_finite_step(losses: Sequence[float], parameters: Iterable[torch.nn.Parameter], step: int, train: TrainParams) -> None:
    """Raise :class:`TrainingDiverged` if a (micro-)batch loss or the gradient of ``step`` is not finite.

    The gradient norm is one reduction over all gradients (``_foreach_norm``),
    read back once per step, as the loss already is.
    """
    bad_loss = next((loss for loss in losses if not math.isfinite(loss)), None)
    if bad_loss is not None:
        raise _diverged(f"the loss is {bad_loss}", step, train)
    grads = [p.grad for p in parameters if p.grad is not None]
    if grads and not bool(torch.isfinite(torch.stack(torch._foreach_norm(grads)).sum())):
        raise _diverged("a gradient is NaN or infinite", step, train)


def _diverged(what: str, step: int, train: TrainParams) -> TrainingDiverged:
    return TrainingDiverged(
        f"training diverged at step {step}: {what} (train.temperature = {train.temperature:g}, train.learning_rate = {train.learning_rate:g}); "
        "no model was written.",
        "Raise train.temperature (0.01 to 0.1 is usual) or lower train.learning_rate (1e-5 to 1e-4 is usual), then re-run the stage.",
    )
