//! Sampling chords from the decoder: the five-options panel and live continuation.
//!
//! Both run the same loop (`sequence`): an interleaved `[BOS, c0, m0, c1, m1, …]` sequence in
//! which some slots are forced (the known melody, locked or committed chords, the prompt) and the
//! others are sampled under ReaLJam's validity rules ([`filter`]). Forced tokens are pushed through
//! the network together with the token before them, so with a known melody each frame costs one
//! sequential decoder call instead of two; a frame whose chord the change grid holds costs none.

pub mod continuation;
pub mod filter;
pub mod options;
mod sequence;

pub use continuation::{commit_frames, plan_live, LivePlan, LivePlanner, LiveRequest};
pub use filter::{Part, SamplingParams};
pub use options::{generate_offline_options, generate_options, ChordOption, OptionsRequest};

use comper_model::ModelError;
use comper_music::tokens::TokenError;

/// Why sampling could not run.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the melody has {frames} frames but the model's context holds at most {max}")]
    TooLong { frames: usize, max: usize },
    #[error("{locked} locked-chord entries given for a melody of {frames} frames")]
    LockedLength { locked: usize, frames: usize },
    #[error("invalid sampling parameter: {0}")]
    BadParams(String),
    #[error("the vocabulary has {vocabulary} tokens but the model has {model}")]
    VocabularyMismatch { vocabulary: u32, model: usize },
}
