"""InfoNCE with in-batch negatives, optionally symmetric, optionally across GPUs.

Query i's positive is passage i; every other passage of the batch (and every
hard negative) is a negative. Under ``torchrun`` each rank embeds its shard of
one global batch and the passages of all ranks are gathered *with gradients*,
so negatives span the global batch exactly as they would on one device.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def gather_with_grad(local: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate ``local`` from every rank (shards may differ in length); return it and this rank's offset."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local, 0
    from torch.distributed.nn.functional import all_gather

    world, rank = dist.get_world_size(), dist.get_rank()
    size = torch.tensor([local.shape[0]], device=local.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    lengths = [int(s.item()) for s in sizes]
    padded = F.pad(local, (0, 0, 0, max(lengths) - local.shape[0]))
    pieces = all_gather(padded)
    return torch.cat([piece[:n] for piece, n in zip(pieces, lengths)]), sum(lengths[:rank])


class InfoNCELoss(nn.Module):
    """Cross-entropy over scaled cosine similarities, the positive being passage i for query i.

    ``queries`` (n, d) and ``passages`` (n + h, d) are L2-normalised; the
    first n passages are the positives, the remaining h are hard negatives.
    With ``symmetric=True`` the loss also scores each positive passage against
    all queries (passage → query direction) and averages the two.
    """

    def __init__(self, temperature: float = 0.05, symmetric: bool = False) -> None:
        super().__init__()
        self.temperature = temperature
        self.symmetric = symmetric

    def forward(self, queries: torch.Tensor, passages: torch.Tensor) -> torch.Tensor:
        n = queries.shape[0]
        positives = passages[:n]
        # Every rank's shard is [its positives; its hard negatives], so after gathering,
        # this rank's positive i sits at (total length of the earlier shards) + i.
        all_passages, passage_offset = gather_with_grad(passages)
        labels = torch.arange(n, device=queries.device) + passage_offset
        scores = queries.float() @ all_passages.float().T / self.temperature
        loss = F.cross_entropy(scores, labels)
        if not self.symmetric:
            return loss
        all_queries, query_offset = gather_with_grad(queries)
        reverse = positives.float() @ all_queries.float().T / self.temperature
        reverse_loss = F.cross_entropy(reverse, torch.arange(n, device=queries.device) + query_offset)
        return (loss + reverse_loss) / 2
