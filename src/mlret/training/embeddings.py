"""Trainable word embeddings at close to the frozen cost: only the rows a batch uses are updated.

The word-embedding matrix of a multilingual encoder is most of its weights
(250k rows x 384 of multilingual-e5-small's 118M parameters), while a batch
of 32 pairs uses a few thousand of its rows. Dense AdamW reads and writes
every row, moments included, at every step, and the dense gradient has to be
zeroed, filled, clipped and stepped over all of them: 1.5-1.7x the time of a
run with the matrix frozen. So on a single process the embedding emits
row-sparse gradients and :class:`torch.optim.SparseAdam` updates just the rows
that carry gradient ("lazy" Adam): a row no batch used keeps its weights and
moments exactly; a used row gets the update dense Adam would give it, with
moments that have seen only the steps that used it, and bias correction by
the run's step count. SparseAdam has no weight decay, so the embedding rows
get none (dense AdamW's decay would move every unused row a little at every
step). Under DDP the gradients are all-reduced densely and the embedding
stays in the dense AdamW.

Clipping has to count the sparse gradient too: :func:`clip_gradients` is
:func:`torch.nn.utils.clip_grad_norm_` over dense and row-sparse gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mlret.errors import MlretError


def clip_gradients(parameters: Sequence[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """Scale all gradients so that their joint L2 norm is at most ``max_norm``; returns the norm before clipping."""
    with_grad = [p for p in parameters if p.grad is not None]
    if not any(p.grad.is_sparse for p in with_grad):  # type: ignore[union-attr]
        return torch.nn.utils.clip_grad_norm_(with_grad, max_norm)
    for p in with_grad:
        if p.grad.is_sparse:  # type: ignore[union-attr]
            p.grad = p.grad.coalesce()  # type: ignore[union-attr]  # a row used twice in a batch is one row of gradient
    norms = [p.grad.values().norm() if p.grad.is_sparse else p.grad.norm() for p in with_grad]  # type: ignore[union-attr]
    total = torch.linalg.vector_norm(torch.stack(norms))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # as clip_grad_norm_ computes it
    for p in with_grad:
        p.grad.mul_(scale)  # type: ignore[union-attr]
    return total


def lazy_embedding_optimizer(embedding: torch.nn.Module, learning_rate: float) -> torch.optim.SparseAdam:
    """Make ``embedding`` emit row-sparse gradients and return the optimiser that updates only those rows.

    Only a plain :class:`torch.nn.Embedding` can emit them; a model with input embeddings of another kind
    trains them frozen.
    """
    if not isinstance(embedding, torch.nn.Embedding):
        raise MlretError(
            f"the model's input embeddings are a {type(embedding).__name__}, which cannot be trained row by row.",
            "Set freeze_word_embeddings: true for this base model (under `bases`).",
        )
    embedding.sparse = True
    return torch.optim.SparseAdam([embedding.weight], lr=learning_rate)
