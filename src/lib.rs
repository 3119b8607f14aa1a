//! Comper: chord accompaniment for a melody, from a ReaLchords-style transformer on the CPU.
//!
//! Data flows one way: MIDI capture → [`quantize`] → melody [`frames`] → [`tokens`] →
//! [`model`] → [`sample`] → chord frames → voicing ([`chord`]) → MIDI out / [`midi_file`].

#[cfg(any(test, feature = "bench"))]
pub mod bench;
pub mod chord;
#[cfg(feature = "eval")]
pub mod eval;
pub mod fit;
pub mod harmony;
pub mod live;
pub mod melody_json;
pub mod midi_file;
pub mod model;
pub mod progression;
pub mod runtime;
pub mod sample;
#[cfg(feature = "serve")]
pub mod serve;
pub mod suggest;
pub mod tokens;

// The real-time half lives in its own crate (no model, no thread pool); its modules keep their
// paths here.
pub use comper_realtime::{frames, quantize, schedule, synth};
