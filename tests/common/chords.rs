//! Chord-frame checks shared by the integration tests.

use comper_realtime::frames::ChordFrame;

/// Whether `next` keeps what `prev` sounds: the same chord held, or silence after silence.
pub fn continues(prev: ChordFrame, next: ChordFrame) -> bool {
    match next {
        ChordFrame::Silence => prev == ChordFrame::Silence,
        ChordFrame::Hold(c) => prev.chord() == Some(c),
        ChordFrame::Onset(_) => false,
    }
}
