"""The ReaLchords networks, built the way realjam builds them.

`OnlineDecoder.decoder` is an x-transformers `TransformerWrapper`, so the state dict has
the official key names (`decoder.token_emb.emb.weight`, `decoder.attn_layers.layers.0.1.
to_q.weight`, ..., `decoder.to_logits.weight`) and loads into ReaLJam/Comper unchanged.

`OfflineEncoderDecoder` mirrors realjam's `EncoderDecoderTransformer`: a melody encoder
(`encoder.…`, no output layer) and a chord decoder with cross-attention whose wrapper sits
one level deeper (`decoder.decoder.…`), both with T5 relative position bias instead of
rotary embeddings (ReaLchords' `enc_dec_base_chord_3_datasets.yml`).
"""

from __future__ import annotations

import torch
from torch import nn

MAX_SEQ_LEN = 514  # [BOS] + 2 * 256 frames + [EOS]
OFFLINE_MAX_SEQ_LEN = 258  # [BOS] + 256 frames + [EOS], on each side of the encoder-decoder
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

# ReaLchords' enc-dec configs override the defaults with these `attention_layer_configs`.
OFFLINE_ATTENTION_KWARGS = dict(ATTENTION_KWARGS, rel_pos_bias=True, rotary_pos_emb=False, attn_flash=False)


class OnlineDecoder(nn.Module):
    """Decoder-only chord/melody model; forward returns logits [batch, seq, num_tokens].

    With `cross_attend=True` and the offline kwargs it is the decoder half of
    `OfflineEncoderDecoder` (realjam's `DecoderTransformer` plays both roles too)."""

    def __init__(
        self,
        num_tokens: int,
        dim: int,
        depth: int,
        heads: int,
        dropout: float = 0.1,
        max_seq_len: int = MAX_SEQ_LEN,
        dim_head: int = DIM_HEAD,
        cross_attend: bool = False,
        attention_kwargs: dict = ATTENTION_KWARGS,
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
                cross_attend=cross_attend,
                **attention_kwargs,
            ),
        )

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        return self.decoder(tokens, mask=mask, **kwargs)


class OfflineEncoderDecoder(nn.Module):
    """Melody encoder + chord decoder; forward(melody, chords) returns chord logits
    [batch, chord_len, num_tokens]. Encoder input `[BOS, m0 … m_{T-1}, EOS]`, decoder input
    `[BOS, c0 … c_{T-1}]` (targets `c0 … c_{T-1}, EOS`)."""

    def __init__(
        self,
        num_tokens: int,
        dim: int,
        enc_depth: int,
        dec_depth: int,
        heads: int,
        dropout: float = 0.1,
        max_seq_len: int = OFFLINE_MAX_SEQ_LEN,
        dim_head: int = DIM_HEAD,
    ):
        super().__init__()
        from x_transformers import Encoder, TransformerWrapper

        self.encoder = TransformerWrapper(
            num_tokens=num_tokens,
            max_seq_len=max_seq_len,
            return_only_embed=True,
            attn_layers=Encoder(
                dim=dim,
                depth=enc_depth,
                heads=heads,
                attn_dim_head=dim_head,
                attn_dropout=dropout,
                ff_dropout=dropout,
                **OFFLINE_ATTENTION_KWARGS,
            ),
        )
        self.decoder = OnlineDecoder(
            num_tokens, dim, dec_depth, heads, dropout, max_seq_len, dim_head,
            cross_attend=True, attention_kwargs=OFFLINE_ATTENTION_KWARGS,
        )

    def encode(self, melody: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(melody, mask=mask, return_embeddings=True)

    def forward(self, melody, chords, melody_mask=None, chord_mask=None) -> torch.Tensor:
        context = self.encode(melody, melody_mask)
        return self.decoder(chords, mask=chord_mask, context=context, context_mask=melody_mask)


def build_model(config: dict) -> nn.Module:
    """The network a training run's config describes (`model` = "online", the default, or
    "offline"); dropout included, so call .eval() before sampling."""
    if config.get("model", "online") == "offline":
        return OfflineEncoderDecoder(config["num_tokens"], config["dim"], config["enc_depth"], config["depth"],
                                     config["heads"], config["dropout"], config["max_seq_len"], config["dim_head"])
    return OnlineDecoder(config["num_tokens"], config["dim"], config["depth"], config["heads"], config["dropout"],
                         config["max_seq_len"], config["dim_head"])
