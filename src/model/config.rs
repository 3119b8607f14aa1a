//! Hyper-parameters of a ReaLchords-style decoder, as stored in a weights folder's `config.json`.

use serde::{Deserialize, Serialize};

/// Feed-forward width multiplier (x-transformers default `ff_mult = 4`; no 2/3 GLU rule).
pub const FF_MULT: usize = 4;

/// x-transformers' `qk_norm_scale`: the fixed attention temperature used with qk l2-norm.
pub const QK_NORM_SCALE: f32 = 10.0;

/// Shape of one decoder. The JSON form is exactly what the training exporter writes
/// (`name, dim, depth, heads, dim_head, num_tokens, max_seq_len`); unknown fields are ignored so
/// exporters can add metadata without breaking older readers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Human-readable model name (shown in the UI and in bench output).
    pub name: String,
    /// Width of the residual stream.
    pub dim: usize,
    /// Number of transformer blocks (each = self-attention + feed-forward).
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of one head (x-transformers default 64, independent of `dim / heads`).
    pub dim_head: usize,
    /// Vocabulary size, `260 + 2 · chords`.
    pub num_tokens: usize,
    /// Longest token sequence (ReaLchords online: 514 = BOS + 2·256 + EOS).
    pub max_seq_len: usize,
}

impl ModelConfig {
    /// Inner width of the feed-forward block (`dim · 4`).
    pub fn ff_inner_dim(&self) -> usize {
        self.dim * FF_MULT
    }

    /// Width of the concatenated heads (`heads · dim_head`).
    pub fn attn_inner_dim(&self) -> usize {
        self.heads * self.dim_head
    }

    /// Channels per head that RoPE rotates when x-transformers 2.11.23 builds the model with its
    /// defaults: `dim_head / 2` (no minimum; below 32 it only logs a warning). The stored
    /// `inv_freq` (of length `rotary_dim / 2`) is authoritative when loading.
    pub fn default_rotary_dim(&self) -> usize {
        self.dim_head / 2
    }

    /// Frames of melody/chords that fit the context: `(max_seq_len − 2) / 2` (BOS and EOS excluded).
    pub fn max_frames(&self) -> usize {
        self.max_seq_len.saturating_sub(2) / 2
    }

    /// The ReaLchords online model's shape (ReaLJam's `decoder_only_online_chord_3_datasets`).
    pub fn realchords(num_tokens: usize) -> Self {
        Self {
            name: "realchords-online".into(),
            dim: 512,
            depth: 8,
            heads: 8,
            dim_head: 64,
            num_tokens,
            max_seq_len: 514,
        }
    }
}
