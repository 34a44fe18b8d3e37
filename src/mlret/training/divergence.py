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
from collections.abc import Sequence

import torch

from mlret.errors import MlretError
from mlret.params import TrainParams


class TrainingDiverged(MlretError):
    """The loss or a gradient of a step is NaN or infinite; no model is written."""


def check_finite_loss(losses: Sequence[float], step: int, train: TrainParams) -> None:
    """Raise :class:`TrainingDiverged` if a (micro-)batch loss of ``step`` is not finite."""
    bad_loss = next((loss for loss in losses if not math.isfinite(loss)), None)
    if bad_loss is not None:
        raise _diverged(f"the loss is {bad_loss}", step, train)


def check_finite_gradient(grad_norm: torch.Tensor, step: int, train: TrainParams) -> None:
    """Raise :class:`TrainingDiverged` if the gradient norm of ``step`` (as clipping computes it) is not finite.

    One NaN or infinite entry anywhere makes the total norm non-finite, so the
    norm that clipping needs anyway is the whole check.
    """
    if not bool(torch.isfinite(grad_norm)):
        raise _diverged("a gradient is NaN or infinite", step, train)


def _diverged(what: str, step: int, train: TrainParams) -> TrainingDiverged:
    return TrainingDiverged(
        f"training diverged at step {step}: {what} "
        f"(train.temperature = {train.temperature:g}, train.learning_rate = {train.learning_rate:g}); "
        "no model was written.",
        "Raise train.temperature (0.01 to 0.1 is usual) or lower train.learning_rate (1e-5 to 1e-4 is usual), "
        "then re-run the stage.",
    )
