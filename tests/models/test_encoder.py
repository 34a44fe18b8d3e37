from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from mlret.errors import MlretError
from mlret.models.encoder import Encoder, cpu_has_native_bf16, pool, resolve_precision
from mlret.params import ModelParams

TEXTS = [
    "the cat sat on the mat",
    "le chat",
    "der hund ist im haus der hund ist im haus",
    "кошка",
    "猫 狗 房子",
    "el perro en casa",
    "قطة كلب بيت",
    "a dog",
]

MakeParams = Callable[..., ModelParams]


def _encoder(path: Path, params: ModelParams, **kw: object) -> Encoder:
    kw = {"device": "cpu", "precision": "fp32", "show_progress": False, **kw}
    return Encoder(path, params, **kw)  # type: ignore[arg-type]


def _by_hand(path: Path, text: str, pooling: str = "mean") -> np.ndarray:
    """The textbook recipe, straight from transformers: one text, no padding, no batching."""
    net = AutoModel.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok([text], return_tensors="pt")
    with torch.no_grad():
        hidden = net(**enc).last_hidden_state[0]
    vec = hidden.mean(0) if pooling == "mean" else hidden[0]
    return (vec / vec.norm()).numpy()


# --- pool -------------------------------------------------------------------


def test_pool_mean_ignores_padding_and_cls_takes_first_token() -> None:
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3) ** 1.5
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    mean = pool(hidden, mask, "mean")
    expected = torch.stack([hidden[0, :3].sum(0) / 3, hidden[1, :2].sum(0) / 2])
    torch.testing.assert_close(mean, expected)
    torch.testing.assert_close(pool(hidden, mask, "cls"), hidden[:, 0])


def test_pool_is_fp32_for_bf16_input() -> None:
    hidden = torch.randn(2, 5, 4).bfloat16()
    assert pool(hidden, torch.ones(2, 5), "mean").dtype == torch.float32


def test_pool_rejects_unknown_pooling() -> None:
    with pytest.raises(MlretError, match="max"):
        pool(torch.zeros(1, 2, 3), torch.ones(1, 2), "max")


# --- encode -----------------------------------------------------------------


def test_matches_hand_encoding_with_prefix(tiny_checkpoint: Path, make_params: MakeParams) -> None:
    enc = _encoder(tiny_checkpoint, make_params())
    text = "le chat est sur tapis"
    assert enc.tokenize([text], "query") == [enc.tokenizer("query : " + text)["input_ids"]]
    np.testing.assert_allclose(enc.encode([text], "query")[0], _by_hand(tiny_checkpoint, "query : " + text), atol=1e-5)
    np.testing.assert_allclose(
        enc.encode([text], "passage")[0], _by_hand(tiny_checkpoint, "passage : " + text), atol=1e-5
    )


def test_query_and_passage_sides_differ(tiny_checkpoint: Path, make_params: MakeParams) -> None:
    enc = _encoder(tiny_checkpoint, make_params())
    queries, passages = enc.encode(TEXTS, "query"), enc.encode(TEXTS, "passage")
    assert not np.allclose(queries, passages, atol=1e-3)
    unprefixed = _encoder(tiny_checkpoint, make_params(query_prefix="", passage_prefix="")).encode(TEXTS, "query")
    assert not np.allclose(queries, unprefixed, atol=1e-3)


def test_length_sorted_batches_keep_input_order(tiny_checkpoint: Path, make_params: MakeParams) -> None:
    enc = _encoder(tiny_checkpoint, make_params(), batch_size=3)
    batched = enc.encode(TEXTS, "passage")
    one_by_one = np.stack([enc.encode([t], "passage")[0] for t in TEXTS])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    assert len({tuple(np.round(row, 4)) for row in batched}) == len(TEXTS)


def test_cls_pooling_matches_hand(tiny_checkpoint: Path, make_params: MakeParams) -> None:
    enc = _encoder(tiny_checkpoint, make_params(pooling="cls"), batch_size=4)
    got = enc.encode(TEXTS, "query")
    for text, row in zip(TEXTS, got):
        np.testing.assert_allclose(row, _by_hand(tiny_checkpoint, "query : " + text, "cls"), atol=1e-5)


def test_unit_norm_only_when_asked(tiny_checkpoint: Path, make_params: MakeParams) -> None:
    normed = _encoder(tiny_checkpoint, make_params()).encode(TEXTS, "passage")
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1.0, atol=1e-6)
    raw = _encoder(tiny_checkpoint, make_params(normalize=False)).encode(TEXTS, "passage")
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), normed, atol=1e-6)


def test_truncates_each_side_to_its_max_length(tiny_checkpoint: Path, make_params: MakeParams) -> None:
    enc = _encoder(tiny_checkpoint, make_params(max_query_length=6, max_passage_length=9))
    long = "the cat sat on the mat " * 5
    (q,) = enc.tokenize([long], "query")
    (p,) = enc.tokenize([long], "passage")
    full = enc.tokenizer("query : " + long)["input_ids"]
    assert len(q) == 6 and q == [*full[:5], full[-1]]  # [SEP] survives truncation
    assert len(p) == 9
    # "query : the cat" is exactly 6 tokens with [CLS]/[SEP]: same input, same vector.
    np.testing.assert_array_equal(enc.encode([long], "query"), enc.encode(["the cat"], "query"))


def test_deterministic_bytes(tiny_checkpoint: Path, make_params: MakeParams) -> None:
    first = _encoder(tiny_checkpoint, make_params(), batch_size=3).encode(TEXTS, "passage")
    again = _encoder(tiny_checkpoint, make_params(), batch_size=3).encode(TEXTS, "passage")
    assert first.dtype == np.float32 and first.tobytes() == again.tobytes()


def test_empty_input(tiny_checkpoint: Path, make_params: MakeParams) -> None:
    out = _encoder(tiny_checkpoint, make_params()).encode([], "query")
    assert out.shape == (0, 32) and out.dtype == np.float32


def test_rejects_bad_kind_and_bare_string(tiny_checkpoint: Path, make_params: MakeParams) -> None:
    enc = _encoder(tiny_checkpoint, make_params())
    with pytest.raises(MlretError, match="'document'"):
        enc.encode(TEXTS, "document")  # type: ignore[arg-type]
    with pytest.raises(MlretError, match="one string"):
        enc.encode("the cat", "query")


def test_bf16_close_to_fp32(tiny_checkpoint: Path, make_params: MakeParams) -> None:
    fp32 = _encoder(tiny_checkpoint, make_params()).encode(TEXTS, "passage")
    bf16 = _encoder(tiny_checkpoint, make_params(), precision="bf16").encode(TEXTS, "passage")
    assert bf16.dtype == np.float32
    assert not np.array_equal(fp32, bf16)  # bf16 really ran
    assert (fp32 * bf16).sum(1).min() >= 0.99999  # measured 0.9999999: the tiny random model barely feels the rounding


def test_precision_choice() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    assert resolve_precision("auto", cpu) is (torch.bfloat16 if cpu_has_native_bf16() else None)
    with pytest.raises(MlretError, match="fp64"):
        resolve_precision("fp64", cpu)


def test_from_model_matches_checkpoint(tiny_checkpoint: Path, make_params: MakeParams) -> None:
    net = AutoModel.from_pretrained(tiny_checkpoint)
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    in_memory = Encoder.from_model(net, tok, make_params(), device="cpu", precision="fp32", show_progress=False)
    from_disk = _encoder(tiny_checkpoint, make_params())
    assert in_memory.encode(TEXTS, "query").tobytes() == from_disk.encode(TEXTS, "query").tobytes()
