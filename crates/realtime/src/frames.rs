//! The one time grid Comper speaks: 16th-note frames, four per beat.
//!
//! A melody or chord track is a sequence of frames; each frame says "silence", "something starts
//! here" (onset) or "the previous thing continues" (hold). These enums are what the quantizer
//! produces, what the tokenizer turns into ReaLchords ids, and what the panel draws.

/// Frames per quarter-note beat (16th-note resolution), as in ReaLchords.
pub const FRAMES_PER_BEAT: u32 = 4;

/// Index of a chord in the model's vocabulary (`chord_names.json`).
pub type ChordIndex = u16;

/// One 16th-note frame of a monophonic melody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MelodyFrame {
    /// No note sounds in this frame.
    #[default]
    Silence,
    /// A note with this MIDI pitch starts in this frame.
    Onset(u8),
    /// The note with this MIDI pitch, started earlier, still sounds.
    Hold(u8),
}

impl MelodyFrame {
    /// The sounding pitch, if any.
    pub fn pitch(self) -> Option<u8> {
        match self {
            MelodyFrame::Silence => None,
            MelodyFrame::Onset(p) | MelodyFrame::Hold(p) => Some(p),
        }
    }
}

/// One 16th-note frame of a chord track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChordFrame {
    /// No chord sounds in this frame.
    #[default]
    Silence,
    /// This chord starts in this frame.
    Onset(ChordIndex),
    /// This chord, started earlier, still sounds.
    Hold(ChordIndex),
}

impl ChordFrame {
    /// The sounding chord, if any.
    pub fn chord(self) -> Option<ChordIndex> {
        match self {
            ChordFrame::Silence => None,
            ChordFrame::Onset(c) | ChordFrame::Hold(c) => Some(c),
        }
    }
}

/// A melody note with onset and offset in beats (quarter notes) from the phrase start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Note {
    pub pitch: u8,
    pub onset_beat: f64,
    pub offset_beat: f64,
}

/// A chord with onset and offset in beats from the phrase start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChordSpan {
    pub chord: ChordIndex,
    pub onset_beat: f64,
    pub offset_beat: f64,
}

/// Musical meter, reported with each phrase so consumers can align bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeSignature {
    pub numerator: u8,
    pub denominator: u8,
}

impl TimeSignature {
    /// Length of one bar in quarter-note beats (6/8 → 3.0); a zero denominator counts as 4.
    pub fn beats_per_bar(self) -> f64 {
        let denominator = if self.denominator == 0 {
            4
        } else {
            self.denominator
        };
        f64::from(self.numerator) * 4.0 / f64::from(denominator)
    }
}

impl Default for TimeSignature {
    /// 4/4, the fallback when a host or file says nothing.
    fn default() -> Self {
        Self {
            numerator: 4,
            denominator: 4,
        }
    }
}
