//! What a player sounds now, and the one rule both players use to change it at a frame boundary.

use super::plan::{PlannedFrame, SchedulerOutput, Voiced};
use crate::frames::{ChordFrame, ChordIndex};
use crate::quantize::NoteEvent;

/// The chord and pitches sounding now; kept in fixed storage so changing it never allocates.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sounding {
    chord: Option<ChordIndex>,
    voicing: Voiced,
}

impl Sounding {
    /// The chord sounding now (`None` after silence or a release).
    pub(super) fn chord(&self) -> Option<ChordIndex> {
        self.chord
    }

    /// The pitches sounding now.
    pub(super) fn pitches(&self) -> &[u8] {
        self.voicing.pitches()
    }

    /// Releases every sounding pitch at `offset`. The next `Hold` then sounds its chord again,
    /// which is how a player re-enters a chord after a stop, a jump or a loop wrap.
    pub(super) fn release(&mut self, offset: u32, sink: &mut impl FnMut(SchedulerOutput)) {
        for &pitch in self.voicing.pitches() {
            sink(SchedulerOutput::Note(NoteEvent::off(offset, pitch)));
        }
        *self = Self::default();
    }

    /// Makes `entry` sound from `offset`: silence releases, an onset retriggers, a hold keeps
    /// the notes only when the same chord with the same voicing already sounds.
    pub(super) fn play(
        &mut self,
        entry: &PlannedFrame,
        offset: u32,
        sink: &mut impl FnMut(SchedulerOutput),
    ) {
        let retrigger = match entry.chord {
            ChordFrame::Silence => {
                self.release(offset, sink);
                return;
            }
            ChordFrame::Onset(_) => true,
            ChordFrame::Hold(chord) => self.chord != Some(chord) || self.voicing != entry.voicing,
        };
        if retrigger {
            self.release(offset, sink);
            for &pitch in entry.voicing.pitches() {
                sink(SchedulerOutput::Note(NoteEvent::on(offset, pitch)));
            }
            self.voicing = entry.voicing;
            self.chord = entry.chord.chord();
        }
    }
}
