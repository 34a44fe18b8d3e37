"""Fine-tune one (strategy, profile, seed): the body of the `train` stage.

The loop is deliberately plain PyTorch: the sampler decides what a batch holds,
:class:`~mlret.training.loss.InfoNCELoss` scores it, and texts are tokenised,
padded and pooled by :class:`~mlret.models.encoder.Encoder`, the code that
later encodes for evaluation, so what is trained is exactly what is evaluated.

Reproducibility: with ``train.precision: fp32`` on CPU, the same params and
seed give bitwise-identical weights, and a run resumed from a checkpoint ends
with the same weights as one that was never interrupted (sampler, RNG,
optimiser and schedule state are all saved; see :mod:`mlret.training.state`).
Outputs appear in one rename, so DVC never caches a half-written model. A
checkpoint of another run identity, or one that cannot be read, is discarded
with a warning and the run starts from scratch.

SIGTERM or SIGINT (and, under DVC, the exit of the ``dvc`` process that
started the run) stops training after the current step, saves a resumable
checkpoint and fails with :class:`TrainingInterrupted`, so re-running the
same command continues where it stopped.

Several GPUs: ``torchrun --nproc_per_node N stages/train.py ...``. All ranks
draw the same global batch of ``train.batch_size`` pairs from the same seeded
sampler and each embeds its own slice, so the strategy's language constraints
hold for the global batch, and the loss gathers passages across ranks so that
negatives span it too.

:class:`Trainer` is one piece of state (network, optimiser, schedule,
sampler, RNGs) that the loop, the outputs and resuming all act on; which run
it trains is :class:`~mlret.training.spec.RunSpec`, how its state is stored
and restored is in :mod:`mlret.training.state`, how a run is stopped in
:mod:`mlret.stop`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import resource
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from mlret.artifacts import read_table, write_bytes, write_json
from mlret.data.parallel import CANDIDATE_COLUMNS, CANDIDATE_KINDS
from mlret.data.splits import TRAIN_COLUMNS, TRAIN_KEY, TRAIN_KINDS
from mlret.distributed import any_rank, rank_and_world
from mlret.errors import MlretError
from mlret.models.dropout import use_fast_dropout
from mlret.models.encoder import Encoder, Side
from mlret.models.loading import load_checkpoint, save_checkpoint
from mlret.params import ModelParams, TrainParams
from mlret.stop import StopRequests
from mlret.training.divergence import check_finite_gradient, check_finite_loss
from mlret.training.embeddings import clip_gradients, lazy_embedding_optimizer
from mlret.training.loss import InfoNCELoss
from mlret.training.samplers import Batch, BatchSampler, PairPool
from mlret.training.spec import RunSpec
from mlret.training.state import (
    LOG_COLUMNS,
    Resumable,
    Unusable,
    read_state,
    restore_resumable,
    restore_snapshot,
    run_identity,
    save_resumable,
    snapshot,
)

logger = logging.getLogger(__name__)


class TrainingInterrupted(MlretError):
    """Training stopped on request (a signal, or the launching process exiting) after saving a resumable checkpoint."""

    def __init__(self, reason: str, step: int, resume_dir: Path) -> None:
        super().__init__(
            f"training stopped by {reason} after step {step}; a resumable checkpoint is in {resume_dir}.",
            "Run the same command (or `dvc repro`) again to continue from it.",
        )
        self.reason = reason


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def planned_steps(train: TrainParams, n_rows: int) -> int:
    """``max_steps`` if set, else ``epochs`` passes over the profile's (question, language) rows."""
    if train.max_steps is not None:
        return train.max_steps
    if train.epochs is None:  # TrainParams refuses this; a guard for objects built around it
        raise MlretError(
            "train: neither max_steps nor epochs is set.", "Set train.max_steps (takes precedence) or train.epochs."
        )
    return max(1, math.ceil(train.epochs * n_rows / (train.batch_size * train.grad_accumulation)))


class Trainer:
    def __init__(self, spec: RunSpec, model: ModelParams, train: TrainParams, device: str | None = None) -> None:
        self.spec, self.train, self.model = spec, train, model
        self.rank, self.world = rank_and_world()
        self.device = torch.device(
            device or (f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
        )
        seed_everything(spec.seed)
        rows = read_table(spec.train_table, TRAIN_COLUMNS, "split", kinds=TRAIN_KINDS, unique=TRAIN_KEY)
        candidates = read_table(
            spec.candidates_table, CANDIDATE_COLUMNS, "parallelise", kinds=CANDIDATE_KINDS, unique=["candidate_id"]
        )
        self.rows = rows.set_index(["qid", "lang"])
        self.candidate_text: dict[str, str] = dict(zip(candidates.candidate_id, candidates.text))
        self.total_steps = planned_steps(train, len(rows))
        self.sampler = BatchSampler(
            PairPool(rows),
            spec.settings,
            train.batch_size,
            alpha=train.sampling_alpha,
            hard_negatives=train.hard_negatives,
            seed=spec.seed,
            schedule=train.schedule,
            total_batches=self.total_steps * train.grad_accumulation,
        )
        self.net, self.tokenizer = load_checkpoint(spec.base_model)
        # Training truncates to the train.* lengths and always normalises (the loss
        # scores cosines); prefixes and pooling are the model's.
        trained = dataclasses.replace(
            model, max_query_length=train.max_query_length, max_passage_length=train.max_passage_length, normalize=True
        )
        self.encoder = Encoder.from_model(
            self.net, self.tokenizer, trained, device=str(self.device), precision=train.precision, show_progress=False
        )
        # Unpadded forward where the network passes the packing probe: the same vectors, no work on padding.
        self.packed = self.encoder.enable_packing()
        use_fast_dropout(self.net)
        self._token_cache: dict[Side, dict[str, list[int]]] = {"query": {}, "passage": {}}
        self.net.train()
        if model.freeze_word_embeddings:
            self.net.get_input_embeddings().weight.requires_grad_(False)
        self.autocast_dtype = self.encoder.autocast_dtype
        # Trained word embeddings on one process: only the rows a batch uses are updated (mlret.training.embeddings).
        embedding = self.net.get_input_embeddings()
        lazy = not model.freeze_word_embeddings and self.world == 1
        dense = [
            (n, p) for n, p in self.net.named_parameters() if p.requires_grad and not (lazy and p is embedding.weight)
        ]
        decay = [p for n, p in dense if not _no_decay(n)]
        no_decay = [p for n, p in dense if _no_decay(n)]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=train.learning_rate,
            # One fused kernel over all parameters instead of a loop of small ops; the same update up to float rounding.
            fused=True,
        )
        warmup = int(round(train.warmup_ratio * self.total_steps))
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, warmup, self.total_steps)
        self.embedding_optimizer = lazy_embedding_optimizer(embedding, train.learning_rate) if lazy else None
        self.embedding_scheduler = (
            get_linear_schedule_with_warmup(self.embedding_optimizer, warmup, self.total_steps)
            if self.embedding_optimizer
            else None
        )
        self.loss_fn = InfoNCELoss(train.temperature, train.symmetric)
        self.ddp: torch.nn.Module = self.net
        if self.world > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.step = 0
        self.pairs_seen = 0
        self.log: list[dict[str, float]] = []

    # -- embedding -------------------------------------------------------------

    def embed(self, texts: Sequence[str], side: Side) -> torch.Tensor:
        """The texts' vectors, with gradients: the encoder's tokenisation and pooling around the (DDP) network."""
        return self.encoder.embed(self.tokens(texts, side), self.ddp)

    def embed_pair(self, queries: Sequence[str], passages: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Query and passage vectors of a batch, with gradients.

        Packed, both sides go through the network as one row: half the calls,
        and matrix products over all of the batch's tokens at once, which a
        small CPU runs closer to its peak than two shorter ones.
        """
        query_tokens, passage_tokens = self.tokens(queries, "query"), self.tokens(passages, "passage")
        if not self.packed:
            return self.encoder.embed(query_tokens, self.ddp), self.encoder.embed(passage_tokens, self.ddp)
        vectors = self.encoder.embed(query_tokens + passage_tokens, self.ddp)
        return vectors[: len(query_tokens)], vectors[len(query_tokens) :]

    def tokens(self, texts: Sequence[str], side: Side) -> list[list[int]]:
        """Token ids of ``texts``, each text tokenised once per run (batches keep drawing the same questions)."""
        known = self._token_cache[side]
        missing = [text for text in dict.fromkeys(texts) if text not in known]
        if missing:
            known.update(zip(missing, self.encoder.tokenize(missing, side)))
        return [known[text] for text in texts]

    def batch_texts(self, batch: Batch) -> tuple[list[str], list[str]]:
        """This rank's slice of a global batch: queries, then [positives; hard negatives]."""
        mine = range(self.rank, len(batch.pairs), self.world)
        queries = [self.rows.at[(batch.pairs[i].qid, batch.pairs[i].query_lang), "query"] for i in mine]
        positives = [self.rows.at[(batch.pairs[i].qid, batch.pairs[i].passage_lang), "positive"] for i in mine]
        negatives = [self.candidate_text[c] for i in mine for c in batch.hard_negatives[i]]
        return queries, positives + negatives

    # -- the loop ----------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.identity = run_identity(self.spec, self.model, self.train)
        self._maybe_resume()
        started = time.perf_counter()
        start_step, start_pairs = self.step, self.pairs_seen
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            unit="step",
            desc=f"train {self.spec.strategy.value}/{self.spec.profile}",
            disable=self.rank != 0,
        )
        # The bar closes (ending its line) on any error too, so the stage's `error:` line starts a line of its own.
        with bar, StopRequests() as stop:
            while self.step < self.total_steps:
                t0 = time.perf_counter()
                loss, lr, pairs = self.train_step()
                rate = pairs / max(time.perf_counter() - t0, 1e-9)
                self.log.append({"step": self.step, "loss": loss, "learning_rate": lr, "pairs_per_s": rate})
                bar.set_postfix(loss=f"{loss:.4f}", pairs_s=f"{rate:.1f}")
                bar.update(1)
                # Every rank stops at the same step, or the others would wait forever in the next collective.
                if any_rank(stop.reason is not None, self.device):
                    self._save_resume()
                    bar.close()
                    raise TrainingInterrupted(
                        stop.reason or "a stop request on another rank", self.step, self.spec.resume_dir
                    )
                if self.step % self.train.save_every == 0 and self.step < self.total_steps:
                    self._save_resume()
        bar.close()
        wall = time.perf_counter() - started
        metrics = self._metrics(wall, self.pairs_seen - start_pairs, self.step - start_step)
        if self.rank == 0:
            self._write_outputs(metrics)
        return metrics

    def train_step(self) -> tuple[float, float, int]:
        """One optimiser step over ``grad_accumulation`` batches: (mean loss, learning rate used, pairs)."""
        for optimizer in self.optimizers():
            optimizer.zero_grad(set_to_none=True)
        losses, pairs = [], 0
        for _ in range(self.train.grad_accumulation):
            batch = self.sampler.next_batch()
            losses.append(self.backward(*self.batch_texts(batch)))
            pairs += len(batch.pairs)
        check_finite_loss(losses, self.step + 1, self.train)
        lr = self.optimizer_step()
        self.step += 1
        self.pairs_seen += pairs
        return float(np.mean(losses)), lr, pairs

    def backward(self, queries: list[str], passages: list[str]) -> float:
        """Loss of one (micro-)batch, its gradients accumulated into the model."""
        with self._autocast():
            loss = self.loss_fn(*self.embed_pair(queries, passages))
        (loss / self.train.grad_accumulation).backward()
        return float(loss.detach())

    def optimizer_step(self) -> float:
        """Clip, step and advance the schedule; returns the learning rate the step used."""
        grad_norm = clip_gradients([p for p in self.net.parameters() if p.requires_grad], self.train.max_grad_norm)
        check_finite_gradient(grad_norm, self.step + 1, self.train)  # before the weights change
        lr = self.scheduler.get_last_lr()[0]
        for optimizer, scheduler in zip(self.optimizers(), self.schedulers(), strict=True):
            optimizer.step()
            scheduler.step()
        return lr

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The dense AdamW, then the lazy word-embedding optimiser when the embeddings are trained on one process."""
        return [self.optimizer] + ([self.embedding_optimizer] if self.embedding_optimizer is not None else [])

    def schedulers(self) -> list[Any]:
        return [self.scheduler] + ([self.embedding_scheduler] if self.embedding_scheduler is not None else [])

    def _autocast(self) -> Any:
        if self.autocast_dtype is None:
            return torch.autocast(device_type=self.device.type, enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _metrics(self, wall: float, pairs: int, steps: int) -> dict[str, Any]:
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        tail = [row["loss"] for row in self.log[-10:]]
        return {
            "steps": self.step,
            "pairs_seen": self.pairs_seen,
            "final_loss": float(np.mean(tail)) if tail else None,
            # Realised exposure: pair sides (query + passage) per language, their shares, batches per kind.
            "language_sides": self.sampler.language_sides(),
            "language_share": self.sampler.language_share(),
            "language_pairs_seen": len(self.sampler.pair_counts),
            "batch_kinds": dict(self.sampler.kind_counts),
            "short_batches": self.sampler.short_batches,
            "wall_time_s": round(wall, 2),
            "pairs_per_s": round(pairs / wall, 2) if wall > 0 and steps else None,
            "peak_memory_mb": round(peak, 1),
            "device": str(self.device),
            "world_size": self.world,
        }

    # -- files ---------------------------------------------------------------------

    def _run_params(self) -> dict[str, Any]:
        return {
            "strategy": self.spec.strategy.value,
            "profile": self.spec.profile,
            "seed": self.spec.seed,
            self.spec.strategy.value: dataclasses.asdict(
                self.spec.settings
            ),  # the strategy's own section of params.yaml
            "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
        }

    def _write_outputs(self, metrics: dict[str, Any]) -> None:
        save_checkpoint(
            self.net,
            self.tokenizer,
            self.spec.out_dir,
            self.model,
            training=self._run_params(),
            started_from=self.spec.base_model,
        )
        write_bytes(
            self.spec.log_path, pd.DataFrame(self.log, columns=list(LOG_COLUMNS)).to_csv(index=False).encode("utf-8")
        )
        write_json(self.spec.metrics_path, metrics)
        shutil.rmtree(self.spec.resume_dir, ignore_errors=True)

    def _resumable(self) -> Resumable:
        return Resumable(self.net, self.optimizers(), self.schedulers(), self.sampler)

    def _save_resume(self) -> None:
        """Write the resumable state (no pickle) in one rename: an interrupted save leaves the previous one intact."""
        if self.rank != 0:
            return
        progress = {
            "identity": self.identity,
            "run_params": self._run_params(),
            "step": self.step,
            "pairs_seen": self.pairs_seen,
            "log": self.log,
        }
        save_resumable(self.spec.resume_dir, self._resumable(), progress)

    def _maybe_resume(self) -> None:
        """Continue from ``resume_dir`` if it holds a readable checkpoint of this very run; otherwise discard it."""
        if not self.spec.resume_dir.exists():
            return
        parts = self._resumable()
        fresh = snapshot(parts)
        problem = None
        try:
            state, tensors = read_state(self.spec.resume_dir, self.identity)
            self.step, self.pairs_seen, self.log = restore_resumable(parts, state, tensors, self.total_steps)
        except Unusable as err:
            problem = str(err)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
            problem = f"its state does not fit this run ({type(err).__name__}: {err})"
        if any_rank(problem is not None, self.device):
            restore_snapshot(parts, fresh)
            self.step, self.pairs_seen, self.log = 0, 0, []
            if self.rank == 0:
                logger.warning(
                    "%s: discarding the checkpoint, %s; starting from scratch.",
                    self.spec.resume_dir,
                    problem or "another rank could not use it",
                )
                shutil.rmtree(self.spec.resume_dir, ignore_errors=True)
            return
        if self.rank == 0:
            logger.warning("resuming from step %d (%s)", self.step, self.spec.resume_dir)


def _no_decay(name: str) -> bool:
    return name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name


def train_run(spec: RunSpec, model: ModelParams, train: TrainParams, device: str | None = None) -> dict[str, Any]:
    """Train one (strategy, profile, seed) and write its checkpoint, log and metrics."""
    return Trainer(spec, model, train, device).run()
