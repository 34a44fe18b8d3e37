"""Two CPU processes (gloo) must give the loss and gradients of one process over the global batch."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from mlret.training.loss import InfoNCELoss


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return F.normalize(torch.randn(4, 8), dim=-1), F.normalize(torch.randn(6, 8), dim=-1)


def shard(rank: int, queries: torch.Tensor, passages: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank r holds queries 2r, 2r+1 and passages [their positives; one hard negative]."""
    q = queries[2 * rank : 2 * rank + 2]
    p = torch.cat([passages[2 * rank : 2 * rank + 2], passages[4 + rank : 5 + rank]])
    return q, p


def worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    queries, passages = global_batch()
    q, p = shard(rank, queries, passages)
    q.requires_grad_(True)
    p.requires_grad_(True)
    loss = InfoNCELoss(0.1, symmetric=True)(q, p)
    loss.backward()
    total = loss.detach().clone()
    dist.all_reduce(total)
    torch.save({"loss": total / 2, "q_grad": q.grad, "p_grad": p.grad}, Path(out_dir) / f"rank{rank}.pt")
    dist.barrier()  # let every rank finish its collectives before the group is torn down
    dist.destroy_process_group()


def test_gathered_loss_equals_single_process_loss(tmp_path: Path) -> None:
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    queries, passages = global_batch()
    # The single-process equivalent sees the passages in gathered order: rank 0's shard, then rank 1's.
    shards = [shard(r, queries, passages) for r in range(2)]
    q = torch.cat([s[0] for s in shards]).requires_grad_(True)
    p = torch.cat([s[1] for s in shards]).requires_grad_(True)
    labels = torch.tensor([0, 1, 3, 4])
    forward = F.cross_entropy(q @ p.T / 0.1, labels)
    backward = F.cross_entropy(p[labels] @ q.T / 0.1, torch.arange(4))
    reference = (forward + backward) / 2
    reference.backward()

    assert torch.allclose(results[0]["loss"], reference.detach(), atol=1e-6)
    # DDP averages gradients over ranks; each rank's loss is a mean over its own queries,
    # so the sum over ranks of the local gradient equals twice the single-process gradient.
    q_grad = torch.cat([r["q_grad"] for r in results]) / 2
    p_grad = torch.cat([r["p_grad"] for r in results]) / 2
    assert torch.allclose(q_grad, q.grad, atol=1e-6)
    assert torch.allclose(p_grad, p.grad, atol=1e-6)
