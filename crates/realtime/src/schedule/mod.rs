//! The audio-thread side of chord playback: chord plans made on another thread become note
//! on/off events at 16th-note frame boundaries, at the right sample offsets, without allocating.
//!
//! Two players share one way of following the host transport ([`FrameClock`]: frame boundaries
//! at sample offsets, tempo constant within a block, a re-sync every block, breaks on stop, jump
//! and loop wrap) and one way of changing what sounds at a boundary (an onset retriggers, a hold
//! of the chord already sounding keeps it):
//! - [`Scheduler`] plays the live plans of the quantizer phrase being jammed ([`live`]);
//! - [`LoopPlayer`] loops a chosen progression over a captured region ([`looped`]).
//!
//! Plans travel as [`PlanUpdate`]s; every plan a player replaces or refuses is handed back to
//! the caller, so nothing is freed on the audio thread either.

pub mod clock;
pub mod live;
pub mod looped;
mod plan;
mod sounding;

pub use clock::{ClockEvent, Discontinuity, FrameClock};
pub use live::{Scheduler, SchedulerStats};
pub use looped::LoopPlayer;
pub use plan::{PlanUpdate, PlannedFrame, SchedulerOutput, Voiced, MAX_VOICES};

/// The note events among a player's outputs as `(offset, pitch, kind)`, for tests.
#[cfg(test)]
fn note_events(outputs: &[SchedulerOutput]) -> Vec<(u32, u8, crate::quantize::NoteEventKind)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            SchedulerOutput::Note(e) => Some((e.offset, e.pitch, e.kind)),
            SchedulerOutput::FrameDue { .. } => None,
        })
        .collect()
}
