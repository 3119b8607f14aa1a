//! Chords for a melody, from the model: sampling guided by the melody ([`sample`]), the five
//! options for a phrase ([`suggest`]), live jamming ([`live`]), melodies and options as JSON
//! ([`melody_json`]) and the one inference [`runtime`] that the plugin, `comper jam` and
//! `comper serve` run.

pub mod live;
pub mod melody_json;
pub mod runtime;
pub mod sample;
pub mod suggest;
