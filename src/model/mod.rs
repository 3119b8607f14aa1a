//! The ReaLchords decoder in candle: configuration, the network itself, weights folders and
//! importing official PyTorch checkpoints.

pub mod config;
pub mod decoder;
pub mod import;
mod kernels;
mod packed;
pub mod weights;

pub use config::ModelConfig;
pub use decoder::{Decoder, KvCache, LogitRows};
pub use weights::{FolderBytes, LoadedModel, WeightsError};

/// Errors from running the decoder.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("the sequence would grow to {requested} tokens, beyond max_seq_len {max_seq_len}")]
    ContextOverflow {
        requested: usize,
        max_seq_len: usize,
    },
    #[error("token id {id} is outside the model's vocabulary of {num_tokens} tokens")]
    TokenOutOfRange { id: u32, num_tokens: u32 },
    #[error("the cache holds {cache} batch rows but the chunk has {chunk}")]
    BatchMismatch { cache: usize, chunk: usize },
    #[error("every batch row of a chunk needs the same, non-zero number of tokens")]
    RaggedChunk,
    #[error("the cache was made by a decoder of a different shape")]
    ForeignCache,
    #[error("rotary inv_freq has {len} entries; it needs 1 ..= dim_head/2 = {} entries", dim_head / 2)]
    BadRotary { len: usize, dim_head: usize },
}
