"""Packed (unpadded) forward passes give the padded forward's vectors and gradients."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel, XLMRobertaConfig, XLMRobertaModel

from mlret.models import packing
from mlret.models.packing import TEXTS_PER_ATTENTION_GROUP, pack, packing_offset, use_packed_attention

# Twenty texts of lengths 2..17 in no order: more than one attention group, every group with padding.
LENGTHS = [5, 17, 2, 9, 9, 13, 3, 16, 7, 11, 4, 6, 15, 2, 8, 12, 10, 14, 3, 5]


def _bert() -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    return BertModel(config).eval()


def _xlmr() -> XLMRobertaModel:
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
        pad_token_id=1,
    )
    return XLMRobertaModel(config).eval()


def _batch() -> list[list[int]]:
    generator = torch.Generator().manual_seed(1)
    return [[2, *torch.randint(5, 60, (n - 2,), generator=generator).tolist(), 3] for n in LENGTHS]


def _padded(net: torch.nn.Module, batch: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, batch))
    ids = torch.ones(len(batch), width, dtype=torch.long)  # 1 is XLM-R's padding id; BERT ignores it under the mask
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    for row, seq in enumerate(batch):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    hidden = net(input_ids=ids, attention_mask=mask).last_hidden_state
    mean = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    return mean, hidden[:, 0]


@pytest.mark.parametrize(("build", "offset"), [(_bert, 0), (_xlmr, 2)])
def test_packed_vectors_and_gradients_equal_the_padded_ones(build, offset) -> None:
    batch = _batch()
    padded_net, packed_net = build(), build()
    assert packing_offset(packed_net) == offset  # BERT counts positions from 0, XLM-R from padding_idx + 1
    use_packed_attention(packed_net)

    mean, first = _padded(padded_net, batch)
    packed = pack(batch, offset, "cpu")
    assert len(packed.groups) == -(-len(batch) // TEXTS_PER_ATTENTION_GROUP) > 1
    hidden = packed_net(**packed.model_inputs()).last_hidden_state
    assert hidden.shape[1] == sum(LENGTHS)  # no padding token went through the network
    torch.testing.assert_close(packed.mean(hidden), mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed.first(hidden), first, atol=1e-5, rtol=1e-5)

    # The same loss through both layouts gives the same gradient on every weight.
    weights = torch.linspace(-1, 1, 32)
    ((mean @ weights).square().sum() + (first @ weights).sum()).backward()
    ((packed.mean(hidden) @ weights).square().sum() + (packed.first(hidden) @ weights).sum()).backward()
    for (name, a), (_, b) in zip(padded_net.named_parameters(), packed_net.named_parameters(), strict=True):
        if a.grad is None:
            assert b.grad is None, name
            continue
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_pack_lays_longest_first_and_pools_in_the_callers_order() -> None:
    batch = [[7, 8], [1, 2, 3, 4], [5, 6, 9]]
    packed = pack(batch, 0, "cpu")
    assert packed.input_ids.tolist() == [[1, 2, 3, 4, 5, 6, 9, 7, 8]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 0, 1, 2, 0, 1]]
    assert packed.starts.tolist() == [7, 0, 4]
    hidden = torch.arange(9, dtype=torch.float32).reshape(1, 9, 1)
    assert packed.mean(hidden).flatten().tolist() == [7.5, 1.5, 5.0]
    assert packed.first(hidden).flatten().tolist() == [7.0, 0.0, 4.0]


def test_a_padded_call_after_switching_still_works_and_matches() -> None:
    batch = _batch()
    net = _bert()
    before = _padded(net, batch)[0]
    use_packed_attention(net)
    torch.testing.assert_close(_padded(net, batch)[0], before)


def test_empty_batch_or_text_is_refused() -> None:
    with pytest.raises(ValueError):
        pack([], 0, "cpu")
    with pytest.raises(ValueError):
        pack([[1, 2], []], 0, "cpu")


def test_the_cpu_training_path_computes_the_same_attention() -> None:
    """With dropout on, CPU training takes its own attention path (masked scores, softmax, the cheaper mask).

    An attention dropout below 2**-17 realises a rate of exactly 0 with that
    mask (see :func:`mlret.models.dropout.effective_rate`), so the path runs
    and must give the padded network's vectors and gradients.
    """
    batch = _batch()
    padded_net = _bert()
    torch.manual_seed(0)
    config = padded_net.config.to_dict()
    packed_net = BertModel(
        BertConfig(**{**config, "attention_probs_dropout_prob": 1e-9, "hidden_dropout_prob": 0.0})
    ).train()
    packed_net.load_state_dict(padded_net.state_dict())
    use_packed_attention(packed_net)

    mean, first = _padded(padded_net, batch)
    packed = pack(batch, 0, "cpu")
    hidden = packed_net(**packed.model_inputs()).last_hidden_state
    torch.testing.assert_close(packed.mean(hidden), mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed.first(hidden), first, atol=1e-5, rtol=1e-5)

    weights = torch.linspace(-1, 1, 32)
    ((mean @ weights).square().sum()).backward()
    ((packed.mean(hidden) @ weights).square().sum()).backward()
    for (name, a), (_, b) in zip(padded_net.named_parameters(), packed_net.named_parameters(), strict=True):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_attention_layout_places_every_token_in_its_groups_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of (token, head) in the head-major group blocks: hand-computed for three texts in two groups of two."""
    monkeypatch.setattr(packing, "TEXTS_PER_ATTENTION_GROUP", 2)
    packed = pack([[1, 2], [3, 4, 5], [6]], 0, "cpu")
    layout = packed.layout
    # Laid longest first: [3, 4, 5] and [1, 2] form group 0 (2 texts x 3 slots), [6] group 1 (1 x 1).
    assert [(g.texts, g.longest) for g in layout.groups] == [(2, 3), (1, 1)]
    assert layout.slots == 7
    assert layout.slot.tolist() == [0, 1, 2, 3, 4, 0]
    # Two heads: group 0 takes rows 0-11 (head 0: 0-5, head 1: 6-11), group 1 rows 12-13.
    assert layout.rows(2).tolist() == [0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 12, 13]
    assert layout.groups[0].key_mask.flatten().tolist() == [True, True, True, True, True, False]
