//! The data both players read: chord plans made on another thread, voiced into fixed storage, and
//! the events the players report.

use crate::frames::ChordFrame;
use crate::quantize::{NoteEvent, PhraseId};

/// Most notes one planned chord sounds (a 13th chord has seven tones, plus the bass); extra
/// pitches of a voicing are dropped.
pub const MAX_VOICES: usize = 8;

/// The pitches of one chord voicing in fixed storage, so plans can be copied without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Voiced {
    pitches: [u8; MAX_VOICES],
    len: u8,
}

impl Voiced {
    /// The first [`MAX_VOICES`] of `pitches`, in order.
    pub fn new(pitches: &[u8]) -> Self {
        let mut voiced = Self::default();
        for (slot, &pitch) in voiced.pitches.iter_mut().zip(pitches) {
            *slot = pitch;
            voiced.len += 1;
        }
        voiced
    }

    /// The pitches, in the order given to [`Voiced::new`].
    pub fn pitches(&self) -> &[u8] {
        self.pitches
            .get(..usize::from(self.len))
            .unwrap_or_default()
    }

    /// Whether no pitch sounds (silence, or a chord whose name could not be voiced).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One planned frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PlannedFrame {
    pub chord: ChordFrame,
    /// Whether this chord is final: every later plan repeats it with the same voicing. Only
    /// committed chords are played by the [`super::Scheduler`]; the others are a preview that
    /// may still change. The [`super::LoopPlayer`] ignores it.
    pub committed: bool,
    /// What to sound from this frame on (empty for silence).
    pub voicing: Voiced,
}

/// A plan for consecutive frames, made off the audio thread: a live plan for one quantizer
/// phrase ([`super::Scheduler`]) or one cycle of a progression to loop ([`super::LoopPlayer`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanUpdate {
    /// The quantizer phrase the plan belongs to; other phrases' plans are refused.
    pub phrase: PhraseId,
    /// Absolute host frame index of `frames[0]`.
    pub first_frame: i64,
    pub frames: Vec<PlannedFrame>,
    /// Wall time the plan took to make, in milliseconds.
    pub replan_ms: f64,
}

impl PlanUpdate {
    /// The planned frame with absolute index `index`, if the plan covers it.
    pub fn get(&self, index: i64) -> Option<&PlannedFrame> {
        let offset = usize::try_from(index.checked_sub(self.first_frame)?).ok()?;
        self.frames.get(offset)
    }

    /// One past the last absolute frame index the plan covers.
    pub fn end_frame(&self) -> i64 {
        self.first_frame.saturating_add(self.frames.len() as i64)
    }
}

/// What a player tells its caller during a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerOutput {
    /// A note to play (`NoteEvent::on`) or release (`NoteEvent::off`) at a sample offset.
    Note(NoteEvent),
    /// A frame boundary was reached at `offset`; `chord` is what sounds from there (for the
    /// [`super::Scheduler`], after the listening period: the planned chord, or, when `late`, the
    /// chord that keeps sounding as a `Hold`, or silence). For displays and logs.
    FrameDue {
        index: i64,
        offset: u32,
        chord: ChordFrame,
        late: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voiced_keeps_at_most_max_voices() {
        let v = Voiced::new(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(v.pitches(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(Voiced::new(&[]).is_empty());
    }
}
