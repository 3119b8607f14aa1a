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

/// Which network a weights folder holds: `config.json`'s `kind`, absent in online folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// The decoder-only online model (chord `t` predicted before melody note `t` is heard).
    #[default]
    Online,
    /// The encoder–decoder offline model (the whole melody is known).
    Offline,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Online => "online",
            Self::Offline => "offline",
        })
    }
}

/// Shape of an offline encoder–decoder. Encoder and decoder share width, heads, vocabulary and
/// context (as in every ReaLchords configuration); `base.depth` is the decoder's depth and
/// `base.max_seq_len` the length of each side (`BOS + frames + EOS`, ReaLchords: 258).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineConfig {
    /// Always [`ModelKind::Offline`]; written so the folder says what it holds.
    pub kind: ModelKind,
    #[serde(flatten)]
    pub base: ModelConfig,
    /// Encoder blocks.
    pub enc_depth: usize,
}

impl OfflineConfig {
    /// Frames of melody the encoder takes and chords the decoder writes: `max_seq_len − 2`.
    pub fn max_frames(&self) -> usize {
        self.base.max_seq_len.saturating_sub(2)
    }

    /// The ReaLchords offline model's shape (`enc_dec_base_chord_3_datasets`).
    pub fn realchords(num_tokens: usize) -> Self {
        Self {
            kind: ModelKind::Offline,
            base: ModelConfig {
                name: "realchords-offline".into(),
                max_seq_len: 258,
                ..ModelConfig::realchords(num_tokens)
            },
            enc_depth: 8,
        }
    }
}
