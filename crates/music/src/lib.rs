//! The music Comper reasons about, with no model in sight: chord symbols and their voicings
//! ([`chord`]), the model's token vocabulary ([`tokens`]), how well a chord fits the melody it
//! sounds under ([`fit`]), keys, meter and harmonic rhythm ([`harmony`]), chord progressions
//! ([`progression`]) and standard MIDI files ([`midi_file`]).
//!
//! Melody and chord frames themselves come from [`comper_realtime::frames`], the audio thread's
//! crate, because the quantizer makes them.

pub mod chord;
pub mod fit;
pub mod harmony;
pub mod midi_file;
pub mod progression;
pub mod tokens;
