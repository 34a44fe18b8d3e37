"""Training pairs/s and peak memory: our step against sentence-transformers' MultipleNegativesRankingLoss.

Both train the same checkpoint on the same batches (drawn once by our sampler
from a real profile), with the same sequence lengths, AdamW and learning rate,
alternating step by step in one process so that machine noise hits both
alike. Each side runs as its library is used by default: ours with the params
of params.yaml for the base model `--base` (bf16 autocast where the CPU has it,
word embeddings frozen if `bases.{base}.freeze_word_embeddings`),
sentence-transformers in fp32 with every weight trainable. `--same-settings` gives sentence-transformers our frozen
embeddings and autocast too, to separate the two effects. `--trained-embeddings`
compares our step with the word embeddings trained (row-sparse updates)
against the same step with them frozen, on the same batches. `--precision
fp32` runs what a CPU without native bf16 runs. Both wall and CPU seconds are
printed: with `OMP_NUM_THREADS=1` the CPU time hardly moves when other work
shares the machine, which the wall time does not survive.

    python benchmarks/train_throughput.py --steps 10 --profile balanced --base e5 \
        --train-table data/splits/balanced/train.parquet \
        --candidates data/parallel/xquad-r/candidates.parquet

Needs `dvc repro split base_model@{base}` first (models/{base}/base, data/splits). Writes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mlret.params import STRATEGIES, Strategy, load_params
from mlret.training.loop import Trainer
from mlret.training.spec import RunSpec
from mlret.vocabulary import BASE


def cpu_kind() -> str:
    """The host's kind as the README names it: whether the CPU multiplies bf16 natively."""
    from mlret.models.encoder import cpu_has_native_bf16

    return "AVX512-BF16/AMX" if cpu_has_native_bf16() else "AVX2-only (no native bf16)"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sentence_transformers_side(base: Path, max_len: int, lr: float, freeze: bool, autocast_dtype: torch.dtype | None):
    from sentence_transformers import SentenceTransformer, losses, models

    transformer = models.Transformer(str(base), max_seq_length=max_len)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    st = SentenceTransformer(modules=[transformer, pooling], device="cpu")
    st.train()
    if freeze:
        transformer.auto_model.get_input_embeddings().weight.requires_grad_(False)
    loss = losses.MultipleNegativesRankingLoss(st, scale=20.0)  # scale 20 = temperature 0.05
    optimizer = torch.optim.AdamW([p for p in st.parameters() if p.requires_grad], lr=lr)

    def step(queries: list[str], passages: list[str], q_len: int, p_len: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        transformer.max_seq_length = q_len
        q = st.tokenize(queries)
        transformer.max_seq_length = p_len
        p = st.tokenize(passages)
        ctx = torch.autocast("cpu", dtype=autocast_dtype) if autocast_dtype else torch.autocast("cpu", enabled=False)
        with ctx:
            value = loss([q, p], labels=None)
        value.backward()
        torch.nn.utils.clip_grad_norm_([p for p in st.parameters() if p.requires_grad], 1.0)
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--profile", default="balanced")
    parser.add_argument("--strategy", default="hybrid", choices=STRATEGIES)
    parser.add_argument("--train-table", required=True, type=Path, help="the profile's training table")
    parser.add_argument("--candidates", required=True, type=Path, help="the training source's candidates table")
    parser.add_argument(
        "--base", default=None, help="the base model's key under `bases` in params.yaml (default: its first)"
    )
    parser.add_argument(
        "--base-model", type=Path, default=None, help="the checkpoint both sides train (default: models/{base}/base)"
    )
    parser.add_argument(
        "--same-settings", action="store_true", help="give sentence-transformers our frozen embeddings and autocast"
    )
    parser.add_argument(
        "--trained-embeddings",
        action="store_true",
        help="compare our step with trained word embeddings against it frozen, instead of against ST",
    )
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default=None,
        help="override train.precision (fp32: what a CPU without native bf16 runs)",
    )
    args = parser.parse_args()

    params = load_params()
    base = args.base or next(iter(params.bases))
    model = params.model(base)
    train = dataclasses.replace(
        params.train,
        max_steps=args.warmup + args.steps,
        save_every=10**9,
        precision=args.precision or params.train.precision,
    )
    unused = Path(tempfile.mkdtemp())  # the benchmark steps the trainer by hand, so it writes no outputs
    spec = RunSpec(
        settings=params.strategy_settings[Strategy(args.strategy)],
        profile=args.profile,
        seed=0,
        train_table=args.train_table,
        candidates_table=args.candidates,
        base_model=args.base_model or Path("models", base, BASE),
        out_dir=unused / "model",
        resume_dir=unused / "checkpoint",
        log_path=unused / "log.csv",
        metrics_path=unused / "metrics.json",
    )
    ours = Trainer(spec, model, train, device="cpu")
    prefixes = (model.query_prefix, model.passage_prefix)

    # The same batches for both sides, drawn once.
    batches = []
    for _ in range(args.warmup + args.steps):
        q, p = ours.batch_texts(ours.sampler.next_batch())
        batches.append(([prefixes[0] + t for t in q], [prefixes[1] + t for t in p]))

    def our_step(trainer: Trainer):
        def step(q: list[str], p: list[str]) -> None:
            for optimizer in trainer.optimizers():
                optimizer.zero_grad(set_to_none=True)
            trainer.backward([t[len(prefixes[0]) :] for t in q], [t[len(prefixes[1]) :] for t in p])
            trainer.optimizer_step()

        return step

    sides = {"ours": our_step(ours)}
    if args.trained_embeddings:
        # Our step with the word embeddings trained (row-sparse updates) against the same step with them frozen.
        trained = Trainer(
            spec,
            dataclasses.replace(model, freeze_word_embeddings=not model.freeze_word_embeddings),
            train,
            device="cpu",
        )
        frozen_first = model.freeze_word_embeddings
        sides = {
            "frozen": our_step(ours if frozen_first else trained),
            "trained": our_step(trained if frozen_first else ours),
        }
    else:
        st_step = sentence_transformers_side(
            spec.base_model,
            train.max_passage_length,
            train.learning_rate,
            freeze=model.freeze_word_embeddings if args.same_settings else False,
            autocast_dtype=ours.autocast_dtype if args.same_settings else None,
        )
        sides["sentence-transformers"] = lambda q, p: st_step(q, p, train.max_query_length, train.max_passage_length)
    times: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    pairs = []
    for i, (q, p) in enumerate(batches):
        for name, step in sides.items():  # alternating step by step: machine noise hits every side alike
            t0, c0 = time.perf_counter(), time.process_time()
            step(q, p)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        if i >= args.warmup:
            pairs.append(len(q))
    n_pairs = float(np.sum(pairs))
    rate = {name: n_pairs / float(np.sum(t)) for name, t in times.items()}
    print(
        f"machine: {torch.get_num_threads()} threads, CPU {cpu_kind()}; base {base}; batch {train.batch_size}, "
        f"lengths {train.max_query_length}/{train.max_passage_length}, "
        f"our precision {ours.autocast_dtype or 'fp32'}, frozen embeddings {model.freeze_word_embeddings}, "
        f"packed {ours.packed}, same settings for ST: {args.same_settings}"
    )
    for name, value in rate.items():
        print(
            f"{name:>22}: {value:7.2f} pairs/s  ({np.median(times[name]):.2f} s/step median, "
            f"{np.median(cpu[name]):.2f} CPU s/step, over {args.steps} steps)"
        )
    first, second = list(sides)
    print(
        f"{f'ratio {first} / {second}':>22}: {rate[first] / rate[second]:.2f}x wall, "
        f"{float(np.sum(cpu[second])) / float(np.sum(cpu[first])):.2f}x CPU time"
    )
    if args.trained_embeddings:
        print(
            f"{'trained / frozen step':>22}: "
            f"{float(np.sum(times['trained'])) / float(np.sum(times['frozen'])):.2f}x wall, "
            f"{float(np.sum(cpu['trained'])) / float(np.sum(cpu['frozen'])):.2f}x CPU time"
        )
    print(f"{'peak RSS (process)':>22}: {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
