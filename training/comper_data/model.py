"""The ReaLchords online decoder, built the way realjam's DecoderTransformer builds it.

`OnlineDecoder.decoder` is an x-transformers `TransformerWrapper`, so the state dict has
the official key names (`decoder.token_emb.emb.weight`, `decoder.attn_layers.layers.0.1.
to_q.weight`, ..., `decoder.to_logits.weight`) and loads into ReaLJam/Comper unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

MAX_SEQ_LEN = 514  # [BOS] + 2 * 256 frames + [EOS]
DIM_HEAD = 64  # x-transformers DEFAULT_DIM_HEAD; ReaLchords never overrides it

# realjam core/transformers.py DEFAULT_KWARGS
ATTENTION_KWARGS = dict(
    rotary_pos_emb=True,
    use_simple_rmsnorm=True,
    attn_qk_norm=True,
    attn_qk_norm_dim_scale=True,
    ff_swish=True,
    ff_glu=True,
    attn_flash=True,
)


class OnlineDecoder(nn.Module):
    """Decoder-only chord/melody model; forward returns logits [batch, seq, num_tokens]."""

    def __init__(
        self,
        num_tokens: int,
        dim: int,
        depth: int,
        heads: int,
        dropout: float = 0.1,
        max_seq_len: int = MAX_SEQ_LEN,
        dim_head: int = DIM_HEAD,
    ):
        super().__init__()
        from x_transformers import Decoder, TransformerWrapper

        self.decoder = TransformerWrapper(
            num_tokens=num_tokens,
            max_seq_len=max_seq_len,
            attn_layers=Decoder(
                dim=dim,
                depth=depth,
                heads=heads,
                attn_dim_head=dim_head,
                attn_dropout=dropout,
                ff_dropout=dropout,
                cross_attend=False,
                **ATTENTION_KWARGS,
            ),
        )

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(tokens, mask=mask)
