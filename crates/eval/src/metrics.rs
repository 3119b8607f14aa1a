//! Frame-level measures of a chord track against its melody.
//!
//! Every measure is pooled over all frames (or chords) of all examples a system produced, not
//! averaged per example, so long examples weigh more — the way the training loss weighs them.

use std::collections::BTreeMap;

use serde::Serialize;

use comper_music::tokens::frames_to_chord_spans;
use comper_realtime::frames::{ChordFrame, MelodyFrame, FRAMES_PER_BEAT};

/// Frames per 4/4 bar: the unit of "changes per bar" (whatever the piece's metre).
pub const FRAMES_PER_BAR: usize = 4 * FRAMES_PER_BEAT as usize;

use comper_music::fit::note_in_chord_counts;

/// Length in frames of every chord in a track, in order (a chord cut by the end of the track
/// counts with the frames it has). A hold that does not continue the chord before it starts a
/// new chord, as everywhere else in Comper.
pub fn chord_durations(chords: &[ChordFrame]) -> Vec<usize> {
    let per_beat = f64::from(FRAMES_PER_BEAT);
    frames_to_chord_spans(chords)
        .iter()
        .map(|span| ((span.offset_beat - span.onset_beat) * per_beat).round() as usize)
        .collect()
}

/// `(chords that start between beats, chords)` in a track, counted as [`chord_durations`]
/// counts chords. Real accompaniment changes on the beat (96% of the training data's changes); a
/// change on a 16th between beats usually chases a passing note.
pub fn offbeat_chords(chords: &[ChordFrame]) -> (usize, usize) {
    let spans = frames_to_chord_spans(chords);
    let offbeat = spans.iter().filter(|s| s.onset_beat.fract() != 0.0).count();
    (offbeat, spans.len())
}

/// Shannon entropy in bits of the distribution given by `counts` (zero counts are ignored;
/// an empty or all-zero histogram has entropy 0).
pub fn entropy_bits(counts: impl IntoIterator<Item = u64> + Clone) -> f64 {
    let total: u64 = counts.clone().into_iter().sum();
    if total == 0 {
        return 0.0;
    }
    let total = total as f64;
    counts
        .into_iter()
        .filter(|&c| c > 0)
        .map(|c| {
            let p = c as f64 / total;
            -p * p.log2()
        })
        .sum()
}

/// Running totals of one system over many examples; [`MetricTotals::finish`] turns them into
/// [`FrameMetrics`].
#[derive(Debug, Clone, Default)]
pub struct MetricTotals {
    frames: u64,
    silent_frames: u64,
    melody_frames: u64,
    in_chord_frames: u64,
    chord_frames: u64,
    chord_pitch_classes: u64,
    offbeat_chords: u64,
    durations: BTreeMap<usize, u64>,
}

impl MetricTotals {
    /// Adds one chord track and the melody it accompanies (compared frame by frame; a longer
    /// track is cut to the shorter one).
    pub fn add(&mut self, melody: &[MelodyFrame], chords: &[ChordFrame], masks: &[u16]) {
        let frames = melody.len().min(chords.len());
        let chords = chords.get(..frames).unwrap_or_default();
        let (in_chord, sounding) = note_in_chord_counts(melody, chords, masks);
        self.in_chord_frames += in_chord;
        self.melody_frames += sounding;
        self.frames += frames as u64;
        self.silent_frames += chords
            .iter()
            .filter(|c| matches!(c, ChordFrame::Silence))
            .count() as u64;
        for chord in chords.iter().filter_map(|c| c.chord()) {
            let mask = masks.get(usize::from(chord)).copied().unwrap_or(0);
            self.chord_frames += 1;
            self.chord_pitch_classes += u64::from(mask.count_ones());
        }
        self.offbeat_chords += offbeat_chords(chords).0 as u64;
        for duration in chord_durations(chords) {
            *self.durations.entry(duration).or_default() += 1;
        }
    }

    /// The pooled measures.
    pub fn finish(&self) -> FrameMetrics {
        let ratio = |num: u64, den: u64| {
            if den == 0 {
                0.0
            } else {
                num as f64 / den as f64
            }
        };
        let chords: u64 = self.durations.values().sum();
        FrameMetrics {
            note_in_chord: ratio(self.in_chord_frames, self.melody_frames),
            pitch_classes_per_chord: ratio(self.chord_pitch_classes, self.chord_frames),
            chord_length_entropy_bits: entropy_bits(self.durations.values().copied()),
            changes_per_bar: ratio(chords * FRAMES_PER_BAR as u64, self.frames),
            offbeat_changes: ratio(self.offbeat_chords, chords),
            silence_ratio: ratio(self.silent_frames, self.frames),
            frames: self.frames,
            melody_frames: self.melody_frames,
            chords,
        }
    }
}

/// How one system's chords relate to the melodies, pooled over a test set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FrameMetrics {
    /// Share of frames with a melody note whose pitch class is in the sounding chord (a frame
    /// without a chord counts as "not in chord").
    pub note_in_chord: f64,
    /// Mean number of pitch classes in the sounding chord, over frames with a chord: a chord with
    /// more notes fits more melody notes, so a system can raise note-in-chord by thicker chords
    /// alone; this shows whether it did.
    pub pitch_classes_per_chord: f64,
    /// Entropy (bits) of the distribution of chord lengths in frames.
    pub chord_length_entropy_bits: f64,
    /// Chords started per 16 frames (one 4/4 bar).
    pub changes_per_bar: f64,
    /// Share of chords that start between beats.
    pub offbeat_changes: f64,
    /// Share of frames with no chord.
    pub silence_ratio: f64,
    /// Frames measured.
    pub frames: u64,
    /// Frames with a melody note (the note-in-chord denominator).
    pub melody_frames: u64,
    /// Chords counted.
    pub chords: u64,
}
