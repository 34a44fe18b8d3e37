"""Unpadded ("packed") forward passes, so that training computes nothing on padding.

In a padded batch every text is as long as the longest one: at the default
lengths about 30 % of the tokens a training step pushes through the network
are padding, and everything but attention (embeddings, projections, the
feed-forward block, LayerNorm, dropout) works token by token. So the batch's
real tokens are laid end to end as one row of ``T`` tokens, each with the
position it has in its own text, and only attention, the one operation that
mixes tokens, sees them regrouped per text: :func:`packed_attention` gathers
queries, keys and values back into a ``[texts, heads, longest, dim]`` block,
masks the padded keys exactly as the padded forward does, and scatters the
result back to the real tokens. Attention on these short texts is a small
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
from dataclasses import dataclass
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

    first_token: int  # the group's tokens are row[first_token:end_token]
    end_token: int
    key_mask: torch.Tensor  # [n, 1, 1, L]: True where (text, position) is a real token
    scatter: torch.Tensor  # [end_token - first_token]: index of each token in the flattened [n * L] block


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
    groups: tuple[AttentionGroup, ...]

    def model_inputs(self) -> dict[str, Any]:
        """Keyword arguments for the network's forward (attention reads ``packed_groups``)."""
        return {
            "input_ids": self.input_ids,
            "position_ids": self.position_ids,
            "token_type_ids": torch.zeros_like(self.input_ids),
            "packed_groups": self.groups,
        }

    def mean(self, hidden: torch.Tensor) -> torch.Tensor:
        """Mean over each text's tokens, in fp32 as :func:`~mlret.models.encoder.pool` computes it."""
        hidden = hidden.reshape(-1, hidden.shape[-1]).float()
        sums = torch.zeros(len(self.lengths), hidden.shape[-1], dtype=hidden.dtype, device=hidden.device).index_add_(0, self.segments, hidden)
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
    groups = []
    for first in range(0, len(batch), TEXTS_PER_ATTENTION_GROUP):
        sizes = laid[first : first + TEXTS_PER_ATTENTION_GROUP]
        longest = int(sizes[0])
        columns = torch.arange(longest)
        real = columns.unsqueeze(0) < sizes.unsqueeze(1)  # [n, L]
        scatter = (torch.arange(len(sizes)).unsqueeze(1) * longest + columns)[real]
        begin = int(laid_starts[first])
        groups.append(AttentionGroup(begin, begin + int(sizes.sum()), real[:, None, None, :].to(device), scatter.to(device)))
    tensors = {
        "input_ids": torch.tensor([t for i in order.tolist() for t in batch[i]], dtype=torch.long).unsqueeze(0),
        "position_ids": (torch.cat([torch.arange(n) for n in laid.tolist()]) + position_offset).unsqueeze(0),
        "segments": torch.repeat_interleave(order, laid),
        "lengths": lengths,
        "starts": starts,
    }
    return PackedBatch(**{name: value.to(device, non_blocking=True) for name, value in tensors.items()}, groups=tuple(groups))


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
    groups: tuple[AttentionGroup, ...] | None = kwargs.get("packed_groups")
    if groups is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    heads, dim = query.shape[1], query.shape[-1]
    scale = dim**-0.5 if scaling is None else scaling
    # [1, h, T, d] is a view of the projection's [T, h * d] output.
    rows = [x[0].transpose(0, 1) for x in (query, key, value)]
    outputs = []
    for group in groups:
        texts, longest = group.key_mask.shape[0], group.key_mask.shape[-1]

        # Copying the group's rows into a zero block (and reading them back with index_select) keeps
        # both directions plain row copies; fancy indexing with repeated indices would make the
        # backward an accumulating scatter.
        def regroup(x: torch.Tensor) -> torch.Tensor:  # [tokens, h, d] -> [n, h, L, d]
            block = x.new_zeros(texts * longest, heads, dim).index_copy(0, group.scatter, x[group.first_token : group.end_token])
            return block.view(texts, longest, heads, dim).transpose(1, 2)

        q, k, v = (regroup(x) for x in rows)
        if dropout > 0.0 and q.device.type == "cpu":
            # SDPA's own dropout draws its mask with bernoulli_; this is the same attention with the cheaper mask.
            scores = torch.matmul(q, k.transpose(-1, -2)).mul_(scale).masked_fill_(~group.key_mask, float("-inf"))
            out = torch.matmul(fast_dropout(torch.softmax(scores, dim=-1), dropout, training=True), v)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=group.key_mask, dropout_p=dropout, scale=scale)
        outputs.append(out.transpose(1, 2).reshape(texts * longest, heads, dim).index_select(0, group.scatter))
    return torch.cat(outputs).unsqueeze(0), None


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
        logger.info("packed forward unavailable for %s (%s: %s); training runs padded", type(net).__name__, type(err).__name__, err)
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
