//! Comper: chord accompaniment for a melody, from a ReaLchords-style transformer on the CPU.
//!
//! Data flows one way: MIDI capture → [`quantize`] → melody [`frames`] → [`tokens`] →
//! [`model`] → [`sample`] → chord frames → voicing ([`chord`]) → MIDI out / [`midi_file`].

pub mod bench;
pub mod chord;
pub mod eval;
pub mod fit;
pub mod frames;
pub mod harmony;
pub mod live;
pub mod melody_json;
pub mod midi_file;
pub mod model;
pub mod progression;
pub mod quantize;
pub mod runtime;
pub mod sample;
pub mod schedule;
pub mod serve;
pub mod suggest;
pub mod synth;
pub mod tokens;
