//! The audio thread's side of Comper, in a crate of its own so that "the audio thread cannot
//! reach the model" is a fact the compiler checks: nothing here depends on the networks, candle
//! or the model's thread pool, only on the standard library and the lock-free channels.
//!
//! MIDI in → [`quantize`] → melody [`frames`] → [`link`] (to the inference thread and back) →
//! [`schedule`] (chords at frame boundaries) → MIDI out and the built-in [`synth`].
//! Everything a block calls is allocation-free once built.

pub mod frames;
pub mod link;
pub mod quantize;
pub mod schedule;
pub mod synth;
