"""Unpadded ("packed") forward passes, so that training computes nothing on padding.

In a padded batch every text is as long as the longest one: at the default
lengths about 30 % of the tokens a training step pushes through the network
are padding, and everything but attention (embeddings, projections, the
feed-forward block, LayerNorm, dropout) works token by token. So the batch's
real tokens are laid end to end as one row of ``T`` tokens, each with the
position it has in its own text, and only attention, the one operation that
mixes tokens, sees them regrouped per text: :func:`packed_attention` gathers
queries, keys and values back into padded blocks of texts of similar length
(:class:`AttentionLayout`), masks the padded keys exactly as the padded forward
does, and scatters the result back to the real tokens. Attention on these short texts is a small
share of the work, the rest shrinks by the padding it no longer carries.

This is transformers' own extension point for attention: the function is
registered with :class:`transformers.AttentionInterface` and the extra tensors
reach it through the forward's keyword arguments. A network whose attention
does not go through that interface, or whose packed output does not match its
padded output on a probe (:func:`packing_offset`), is run padded instead.
Packing only changes how the batch is laid out, not what is computed:
the packed and padded vectors agree to float rounding (tested), and under
fp32 a run stays bitwise reproducible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from mlret.models.dropout import dropout as fast_dropout

if TYPE_CHECKING:
    from transformers import PreTrainedModel

ATTENTION_NAME = "mlret_packed"

logger = logging.getLogger(__name__)


TEXTS_PER_ATTENTION_GROUP = 16


@dataclass(frozen=True)
class AttentionGroup:
    """Texts of similar length, consecutive in the packed row, that attention handles as one padded block."""

    texts: int
    longest: int
    key_mask: torch.Tensor  # [texts, 1, longest]: True where (text, position) is a real token


@dataclass(frozen=True)
class AttentionLayout:
    """Where each packed token sits in the per-group padded blocks that attention works on.

    The blocks of all groups lie end to end in one buffer of rows of one
    head's width, each group head-major (``[heads, texts, longest]``), so that
    a single ``index_copy_`` fills the queries (keys, values) of every group
    from the projection's output, each group is a contiguous slice that
    batched matmuls take without a copy, and one ``index_select`` brings the
    result back; their backwards are the same single gather and scatter.
    """

    groups: tuple[AttentionGroup, ...]
    slot: torch.Tensor  # [T]: the token's slot in its group's block (text in group * longest + position)
    group_start: torch.Tensor  # [T]: the first slot of the token's group, counting the groups' slots end to end
    group_slots: torch.Tensor  # [T]: texts * longest of the token's group
    _rows: dict[int, torch.Tensor] = field(default_factory=dict, compare=False, repr=False)

    @property
    def slots(self) -> int:
        """Slots of all groups together (real tokens and padding)."""
        return sum(group.texts * group.longest for group in self.groups)

    def rows(self, heads: int) -> torch.Tensor:
        """``[T * heads]``: the buffer row of (token, head), in the order of a ``[T, heads]`` projection."""
        rows = self._rows.get(heads)
        if rows is None:
            head = torch.arange(heads, device=self.slot.device)
            first = (self.group_start * heads + self.slot).unsqueeze(1)
            rows = (first + head * self.group_slots.unsqueeze(1)).reshape(-1)
            self._rows[heads] = rows
        return rows


@dataclass(frozen=True)
class PackedBatch:
    """A batch of token lists laid end to end, with what attention and pooling need to regroup it.

    Texts are laid longest first, so that attention groups texts of similar
    length; ``segments`` and ``starts`` refer to the caller's order, so pooled
    vectors come back in that order.
    """

    input_ids: torch.Tensor  # [1, T]: every real token of the batch
    position_ids: torch.Tensor  # [1, T]: each token's position within its own text (plus the model's offset)
    segments: torch.Tensor  # [T]: index (in the caller's order) of the text each token belongs to
    lengths: torch.Tensor  # [B], caller's order
    starts: torch.Tensor  # [B], caller's order: where each text's first token is in the row
    layout: AttentionLayout

    @property
    def groups(self) -> tuple[AttentionGroup, ...]:
        return self.layout.groups

    def model_inputs(self) -> dict[str, Any]:
        """Keyword arguments for the network's forward (attention reads ``packed_layout``)."""
        return {
            "input_ids": self.input_ids,
            "position_ids": self.position_ids,
            "token_type_ids": torch.zeros_like(self.input_ids),
            "packed_layout": self.layout,
        }

    def mean(self, hidden: torch.Tensor) -> torch.Tensor:
        """Mean over each text's tokens, in fp32 as :func:`~mlret.models.encoder.pool` computes it."""
        hidden = hidden.reshape(-1, hidden.shape[-1]).float()
        sums = torch.zeros(len(self.lengths), hidden.shape[-1], dtype=hidden.dtype, device=hidden.device).index_add_(
            0, self.segments, hidden
        )
        return sums / self.lengths.unsqueeze(-1).to(hidden.dtype)

    def first(self, hidden: torch.Tensor) -> torch.Tensor:
        """Each text's first token ([CLS]/<s>), in fp32."""
        return hidden.reshape(-1, hidden.shape[-1]).index_select(0, self.starts).float()


def pack(batch: list[list[int]], position_offset: int, device: torch.device | str) -> PackedBatch:
    """Lay ``batch`` (token lists, special tokens included) end to end, longest text first."""
    lengths = torch.tensor([len(x) for x in batch], dtype=torch.long)
    if len(batch) == 0 or int(lengths.min()) == 0:
        raise ValueError("pack() needs at least one text and no empty token list")
    order = torch.argsort(-lengths, stable=True)
    laid = lengths[order]
    laid_starts = torch.cumsum(laid, 0) - laid
    starts = torch.empty_like(laid_starts).index_copy_(0, order, laid_starts)

    # Laid text i is text i % G of group i // G (G texts per group); a group is as long as its first text.
    text = torch.arange(len(batch))
    group = text // TEXTS_PER_ATTENTION_GROUP
    longest = laid[::TEXTS_PER_ATTENTION_GROUP]
    texts = torch.bincount(group)
    group_slots = texts * longest
    group_start = torch.cumsum(group_slots, 0) - group_slots
    groups = tuple(
        AttentionGroup(
            int(n),
            int(L),
            (
                torch.arange(int(L))
                < laid[g * TEXTS_PER_ATTENTION_GROUP : g * TEXTS_PER_ATTENTION_GROUP + int(n)].unsqueeze(1)
            )
            .unsqueeze(1)
            .to(device),
        )
        for g, (n, L) in enumerate(zip(texts, longest, strict=True))
    )
    token_text = torch.repeat_interleave(text, laid)
    position = torch.arange(int(laid.sum())) - laid_starts[token_text]
    token_group = group[token_text]
    layout = AttentionLayout(
        groups=groups,
        slot=((token_text % TEXTS_PER_ATTENTION_GROUP) * longest[token_group] + position).to(device),
        group_start=group_start[token_group].to(device),
        group_slots=group_slots[token_group].to(device),
    )
    tensors = {
        "input_ids": torch.tensor([t for i in order.tolist() for t in batch[i]], dtype=torch.long).unsqueeze(0),
        "position_ids": (position + position_offset).unsqueeze(0),
        "segments": order[token_text],
        "lengths": lengths,
        "starts": starts,
    }
    return PackedBatch(**{name: value.to(device, non_blocking=True) for name, value in tensors.items()}, layout=layout)


def packed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Self-attention of a packed row, text by text; an ordinary (padded) call goes to SDPA unchanged.

    ``query``/``key``/``value`` are ``[1, heads, T, dim]``; the result is
    ``[1, T, heads, dim]``, as transformers' attention functions return it.
    """
    layout: AttentionLayout | None = kwargs.get("packed_layout")
    if layout is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    heads, tokens, dim = query.shape[1], query.shape[2], query.shape[3]
    scale = dim**-0.5 if scaling is None else scaling
    rows = layout.rows(heads)
    sizes = [heads * group.texts * group.longest for group in layout.groups]

    def regroup(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # [1, h, T, d] is a view of the projection's [T, h * d] output, so this reshape is free. Padding
        # slots stay zero: finite, so that masked scores are exactly -inf and padded values weigh 0.
        flat = x[0].transpose(0, 1).reshape(tokens * heads, dim)
        return x.new_zeros(heads * layout.slots, dim).index_copy_(0, rows, flat).split(sizes)

    outputs = []
    for group, q, k, v in zip(layout.groups, regroup(query), regroup(key), regroup(value), strict=True):
        shape = (heads * group.texts, group.longest, dim)  # batch index: head * texts + text
        q, k, v = q.view(shape), k.view(shape), v.view(shape)
        if dropout > 0.0 and q.device.type == "cpu":
            # SDPA's own dropout draws its mask with bernoulli_; this is the same attention with the cheaper mask.
            bias = torch.zeros(group.key_mask.shape, dtype=q.dtype, device=q.device).masked_fill_(
                ~group.key_mask, float("-inf")
            )
            scores = torch.baddbmm(bias.repeat(heads, 1, 1), q, k.transpose(1, 2), alpha=scale)
            out = torch.bmm(fast_dropout(torch.softmax(scores, dim=-1), dropout, training=True), v)
        else:
            split = (heads, group.texts, group.longest, dim)
            mask = group.key_mask.unsqueeze(0)  # [1, texts, 1, longest]
            out = F.scaled_dot_product_attention(
                q.view(split), k.view(split), v.view(split), attn_mask=mask, dropout_p=dropout, scale=scale
            )
        outputs.append(out.reshape(-1, dim))
    return torch.cat(outputs).index_select(0, rows).view(1, tokens, heads, dim), None


def packing_offset(net: PreTrainedModel) -> int | None:
    """The position offset that makes ``net``'s packed forward equal its padded one, or None if none does.

    BERT-style embeddings count positions from 0, RoBERTa-style ones (XLM-R)
    from ``padding_idx + 1``. Checked on a probe of two texts of different
    lengths in eval mode, so that a model this module does not know is run
    padded rather than wrong.
    """
    if not getattr(net, "_supports_attention_backend", False):
        return None
    padding_idx = getattr(getattr(net, "embeddings", None), "padding_idx", None)
    offset = int(padding_idx) + 1 if isinstance(padding_idx, int) else 0
    vocab = int(net.config.vocab_size)
    probe = [[(7 * i + 3) % vocab for i in range(9)], [(5 * i + 11) % vocab for i in range(4)]]
    device = next(net.parameters()).device
    original, was_training = net.config._attn_implementation, net.training
    net.eval()
    try:
        with torch.no_grad(), torch.autocast(device_type=device.type, enabled=False):
            mask = torch.tensor([[1] * 9, [1] * 4 + [0] * 5], device=device)
            ids = torch.tensor([probe[0], probe[1] + [0] * 5], device=device)
            padded = net(input_ids=ids, attention_mask=mask).last_hidden_state
            use_packed_attention(net)
            batch = pack(probe, offset, device)
            packed = net(**batch.model_inputs()).last_hidden_state[0]
        expected = torch.cat([padded[0, :9], padded[1, :4]])
        matches = torch.allclose(packed, expected, atol=1e-4, rtol=1e-4)
    except (TypeError, ValueError, RuntimeError, IndexError) as err:
        logger.info(
            "packed forward unavailable for %s (%s: %s); training runs padded",
            type(net).__name__,
            type(err).__name__,
            err,
        )
        matches = False
    finally:
        net.set_attn_implementation(original)
        net.train(was_training)
    if not matches:
        logger.info("packed forward of %s does not match its padded forward; training runs padded", type(net).__name__)
        return None
    return offset


def use_packed_attention(net: PreTrainedModel) -> None:
    """Route ``net``'s attention through :func:`packed_attention` (padded calls still reach SDPA)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, packed_attention)
    # Padded calls need the padding mask built as SDPA takes it; packed calls bring their own masks.
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    net.set_attn_implementation(ATTENTION_NAME)
