//! The ReaLchords networks on the CPU: configuration, the online decoder, the offline
//! encoder–decoder, weights folders and importing official PyTorch checkpoints.

pub mod config;
pub mod decoder;
pub mod import;
mod kernels;
mod layers;
pub mod offline;
mod packed;
pub mod random;
mod team;
pub mod weights;

pub use config::{ModelConfig, ModelKind, OfflineConfig};
pub use decoder::{Decoder, KvCache, LogitRows};
pub use kernels::measure_read_bandwidth;
pub use offline::{CrossCache, OfflineModel};
pub use packed::measure_product_rate;
pub use team::{
    model_threads, plugin_default_threads, set_default_threads, with_team, THREADS_ENV,
};
pub use weights::{FolderBytes, LoadedModel, LoadedOffline, WeightsError};

use candle_core::Tensor;

/// A network that extends token sequences chunk by chunk through a cache: the online decoder over
/// the interleaved sequence, or the offline model's decoder over chords. The sampler runs on this.
pub trait Stepper: Sync {
    /// What the network keeps between steps.
    type Cache: TokenCache;

    /// Pushes one equally long chunk of tokens per batch row and returns the logits asked for.
    fn step(
        &self,
        cache: &mut Self::Cache,
        chunk: &[Vec<u32>],
        rows: LogitRows,
    ) -> Result<Tensor, ModelError>;

    /// Vocabulary size the network was built for.
    fn num_tokens(&self) -> usize;
}

/// What a sampler needs to know about a [`Stepper`]'s cache.
pub trait TokenCache: Send {
    /// Tokens already pushed through the network.
    fn len(&self) -> usize;
    /// True before the first step.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Batch rows the cache was made for.
    fn batch(&self) -> usize;
}

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
    #[error("logits were asked for the last {tail} positions of a {chunk}-token chunk")]
    BadLogitRows { tail: usize, chunk: usize },
    #[error("the cache was made by a decoder of a different shape")]
    ForeignCache,
    #[error("rotary inv_freq has {len} entries; it needs 1 ..= dim_head/2 = {} entries", dim_head / 2)]
    BadRotary { len: usize, dim_head: usize },
}
