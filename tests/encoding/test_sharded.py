"""Sharded encoding over two CPU ranks (gloo) reproduces single-process encoding row for row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch.distributed as dist
import torch.multiprocessing as mp

from mlret.encoding.corpora import encode_sharded
from mlret.models.encoder import Encoder
from mlret.params import ModelParams

TEXTS = [
    "the cat sat on the mat",
    "кошка дом",
    "猫 狗 房子",
    "قطة كلب بيت",
    "der hund ist im haus",
    "el perro en casa",
    "river",
]


def worker(rank: int, checkpoint: str, params: ModelParams, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    encoder = Encoder(checkpoint, params, device="cpu", precision="fp32", show_progress=False)
    np.save(Path(out_dir) / f"rank{rank}.npy", encode_sharded(encoder, TEXTS, "passage"))
    dist.barrier()  # let every rank finish its collectives before the group is torn down
    dist.destroy_process_group()


def test_two_ranks_give_the_single_process_embeddings(tmp_path: Path, tiny_checkpoint: Path, model_params) -> None:
    mp.spawn(
        worker, args=(str(tiny_checkpoint), model_params(), str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True
    )
    single = Encoder(tiny_checkpoint, model_params(), device="cpu", precision="fp32", show_progress=False).encode(
        TEXTS, "passage"
    )
    for rank in range(2):
        np.testing.assert_allclose(np.load(tmp_path / f"rank{rank}.npy"), single, atol=1e-6)
