"""Throughput and peak memory of mlret's Encoder against sentence-transformers.

Both wrap the same checkpoint and encode the same sentences as passages with
the same prefix, truncation and mean pooling, in one process. Runs alternate
in order round by round (so neither always gets the warm cache or the
throttled CPU), and the best round of each counts, since on a shared machine
the slower rounds measure the neighbours. Reported alongside: the cosine
between the two outputs (they must agree, or the speed means nothing) and the
fraction of this machine's own matmul rate that the encoder achieves.

    python benchmarks/encode_throughput.py --base e5        # models/e5/base, bases.e5's prefix and lengths
"""

from __future__ import annotations

import argparse
import glob
import json
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil  # installed with dvc
import torch

from mlret.models.encoder import Encoder
from mlret.params import ModelParams, load_params

DATA = "../shared/data/lareqa/xquad-r"


def benchmark_sentences(data_dir: str, n: int) -> list[str]:
    """``n`` XQuAD-R sentences, languages interleaved, read at run time from the data mirror."""
    files = sorted(glob.glob(str(Path(data_dir) / "*.json")))
    if not files:
        raise SystemExit(f"no XQuAD-R files in {data_dir}; pass --data")
    per_lang = []
    for f in files:
        doc = json.loads(Path(f).read_text(encoding="utf-8"))
        per_lang.append(
            [s for art in doc["data"] for para in art["paragraphs"] for s in para["sentences"] if s.strip()]
        )
    mixed = [lang[i] for i in range(max(map(len, per_lang))) for lang in per_lang if i < len(lang)]
    return mixed[:n]


class PeakRss:
    """Peak resident memory above the level at entry, sampled every millisecond.

    Torch allocates outside Python's allocator, so tracemalloc cannot see it, and
    getrusage's maximum never comes down again for the second contender.
    """

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self.peak_mib = 0.0

    def __enter__(self) -> PeakRss:
        self._base = self._proc.memory_info().rss
        self._peak = self._base
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self._proc.memory_info().rss)
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._proc.memory_info().rss)
        self.peak_mib = (self._peak - self._base) / 2**20


def matmul_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    """Best-of-``reps`` rate of one n x n x n matrix product: this machine's practical peak."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def model_gflop(encoder: Encoder, texts: list[str]) -> tuple[float, float]:
    """Forward-pass GFLOP (real tokens only, and with the padding our batching adds)."""
    cfg = encoder.net.config
    h, ff, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    lengths = np.sort(np.array([len(x) for x in encoder.tokenize(texts, "passage")]))[::-1]

    def flops(batch_lengths: np.ndarray, width: int) -> float:
        tokens = batch_lengths.sum() if width == 0 else len(batch_lengths) * width
        seq = batch_lengths if width == 0 else np.full(len(batch_lengths), width)
        linear = 2 * tokens * (4 * h * h + 2 * h * ff)
        attention = 2 * 2 * h * float((seq.astype(np.float64) ** 2).sum())  # QK^T and AV
        return layers * (linear + attention)

    real = flops(lengths, 0)
    padded = sum(
        flops(lengths[i : i + encoder.batch_size], int(lengths[i])) for i in range(0, len(lengths), encoder.batch_size)
    )
    return real / 1e9, padded / 1e9


def sentence_transformer(model_dir: str, params: ModelParams):  # -> SentenceTransformer
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling, Transformer
    word = Transformer(model_dir, max_seq_length=params.max_passage_length)
    dim = (
        word.get_embedding_dimension()
        if hasattr(word, "get_embedding_dimension")
        else word.get_word_embedding_dimension()
    )
    pooling = Pooling(dim, pooling_mode="mean")
    return SentenceTransformer(modules=[word, pooling], device="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", default="e5", help="the base model's key under `bases`: its prefixes and lengths (default: e5)"
    )
    parser.add_argument("--model", default=None, help="checkpoint directory (default: models/{base}/base)")
    parser.add_argument("--data", default=DATA, help="folder of XQuAD-R <lang>.json files")
    parser.add_argument("--n", type=int, default=2000, help="sentences to encode")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--params", default="params.yaml", help="prefixes and lengths come from its bases.{base}")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.threads:
        torch.set_num_threads(args.threads)

    args.model = args.model or f"models/{args.base}/base"
    params = replace(load_params(args.params).model(args.base), name=args.model)
    texts = benchmark_sentences(args.data, args.n)
    ours = Encoder(args.model, params, device="cpu", batch_size=args.batch_size, precision="auto", show_progress=False)
    ours32 = Encoder.from_model(
        ours.net,
        ours.tokenizer,
        params,
        device="cpu",
        batch_size=args.batch_size,
        precision="fp32",
        show_progress=False,
    )
    st = sentence_transformer(args.model, params)

    def st_encode(xs: list[str]) -> np.ndarray:
        return st.encode(
            xs,
            prompt=params.passage_prefix,
            batch_size=args.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
        )

    contenders: dict[str, Callable[[list[str]], np.ndarray]] = {
        "sentence-transformers fp32": st_encode,
        f"mlret auto ({ours.autocast_dtype or 'fp32'})": lambda xs: ours.encode(xs, "passage"),
        "mlret fp32": lambda xs: ours32.encode(xs, "passage"),
    }
    names = list(contenders)
    for fn in contenders.values():  # warm-up: lazy init, oneDNN kernels, allocator pools
        fn(texts[: 4 * args.batch_size])

    best = {name: float("inf") for name in names}
    best_cpu = {name: float("inf") for name in names}
    peak = {name: 0.0 for name in names}
    outputs: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            with PeakRss() as mem:
                t, c = time.perf_counter(), time.process_time()
                outputs[name] = contenders[name](texts)
                elapsed, cpu = time.perf_counter() - t, time.process_time() - c
            best[name] = min(best[name], elapsed)
            best_cpu[name] = min(best_cpu[name], cpu)
            peak[name] = max(peak[name], mem.peak_mib)
            print(f"  round {r + 1}: {name:<30} {len(texts) / elapsed:8.1f} texts/s  ({cpu:.1f} s CPU)", flush=True)

    st_name, auto_name, fp32_name = names
    print(
        f"\n{len(texts)} XQuAD-R sentences, passage side, batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads, best of {args.rounds}"
    )
    for name in names:
        print(
            f"{name:<30} {len(texts) / best[name]:8.1f} texts/s  {best_cpu[name]:6.1f} s CPU  "
            f"peak RSS +{peak[name]:7.1f} MiB"
        )
    for name in (auto_name, fp32_name):
        cos = np.sum(outputs[name] * outputs[st_name], axis=1)
        print(
            f"{name} vs sentence-transformers: {best[st_name] / best[name]:.2f}x wall-clock, "
            f"{best_cpu[st_name] / best_cpu[name]:.2f}x CPU time, cosine mean {cos.mean():.6f} min {cos.min():.6f}"
        )
    cos = np.sum(outputs[auto_name] * outputs[fp32_name], axis=1)
    print(f"mlret auto vs mlret fp32: cosine mean {cos.mean():.6f} min {cos.min():.6f}")

    real, padded = model_gflop(ours, texts)
    print(
        f"\nmodel work: {real:.0f} GFLOP on real tokens, "
        f"{padded:.0f} GFLOP with batch padding ({padded / real - 1:.1%} padding)"
    )
    for name, enc in ((auto_name, ours), (fp32_name, ours32)):
        dtype = enc.autocast_dtype or torch.float32
        peak_rate = matmul_gflops(dtype)
        rate = padded / best[name]
        print(
            f"{name}: {rate:.0f} GFLOP/s = {rate / peak_rate:.0%} of this machine's "
            f"{str(dtype).removeprefix('torch.')} matmul rate ({peak_rate:.0f} GFLOP/s, 2048^3)"
        )


if __name__ == "__main__":
    main()
