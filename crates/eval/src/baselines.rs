//! Two model-free accompaniments that put the model's numbers in perspective.
//!
//! * [`ChordStatistics`]: chords drawn at random, ignoring the melody, from the training
//!   split's chord-onset and chord-length distributions — what "knowing the style but not
//!   listening" scores.
//! * [`diatonic_track`]: a classic rule-based accompanist — estimate the key from the melody
//!   ([`find_key`], Krumhansl–Schmuckler), then per bar play the diatonic triad of that key
//!   that covers the most melody.

use std::collections::HashMap;

use rand::Rng;

use comper_music::chord::ChordTable;
use comper_music::harmony::key::{diatonic_triads, find_key, pitch_class_weights};
use comper_music::tokens::Vocabulary;
use comper_realtime::frames::{ChordFrame, ChordIndex, MelodyFrame};

use super::metrics::{chord_durations, FRAMES_PER_BAR};

/// How often each chord starts and how long chords last, counted over a set of chord tracks.
#[derive(Debug, Clone, PartialEq)]
pub struct ChordStatistics {
    /// Onsets per chord index.
    onsets: Vec<u64>,
    /// Chords per length in frames (index = length).
    durations: Vec<u64>,
}

impl ChordStatistics {
    /// Empty statistics for a vocabulary of `num_chords` chords.
    pub fn new(num_chords: usize) -> Self {
        Self {
            onsets: vec![0; num_chords],
            durations: Vec::new(),
        }
    }

    /// Counts the chords of one track (a chord cut by the track's end counts with the length
    /// it has).
    pub fn add(&mut self, chords: &[ChordFrame]) {
        let mut previous: Option<ChordIndex> = None;
        for frame in chords {
            let starts = match *frame {
                ChordFrame::Onset(c) => Some(c),
                ChordFrame::Hold(c) if previous != Some(c) => Some(c),
                _ => None,
            };
            if let Some(count) = starts.and_then(|c| self.onsets.get_mut(usize::from(c))) {
                *count += 1;
            }
            previous = frame.chord();
        }
        for length in chord_durations(chords) {
            if self.durations.len() <= length {
                self.durations.resize(length + 1, 0);
            }
            if let Some(count) = self.durations.get_mut(length) {
                *count += 1;
            }
        }
    }

    /// Onsets counted per chord index.
    pub fn onsets(&self) -> &[u64] {
        &self.onsets
    }

    /// Chords counted per length in frames.
    pub fn durations(&self) -> &[u64] {
        &self.durations
    }

    /// A track of `frames` frames filled with independent draws: a chord from the onset
    /// distribution held for a length from the length distribution (the last one cut at the
    /// end). All silence when nothing was counted.
    pub fn sample_track<R: Rng>(&self, frames: usize, rng: &mut R) -> Vec<ChordFrame> {
        let mut track = Vec::with_capacity(frames);
        while track.len() < frames {
            let (Some(chord), Some(length)) = (draw(&self.onsets, rng), draw(&self.durations, rng))
            else {
                track.resize(frames, ChordFrame::Silence);
                break;
            };
            let chord = ChordIndex::try_from(chord).unwrap_or(ChordIndex::MAX);
            let length = length.max(1).min(frames - track.len());
            track.push(ChordFrame::Onset(chord));
            track.extend(std::iter::repeat_n(ChordFrame::Hold(chord), length - 1));
        }
        track
    }
}

/// An index drawn with probability proportional to `weights`; `None` if they sum to zero.
fn draw<R: Rng>(weights: &[u64], rng: &mut R) -> Option<usize> {
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return None;
    }
    let mut target = rng.random_range(0..total);
    for (i, &w) in weights.iter().enumerate() {
        if target < w {
            return Some(i);
        }
        target -= w;
    }
    None
}

/// Finds the vocabulary entry for a root-position chord given by its pitch classes, whatever
/// its spelling (`C#m` or `Dbm`): same pitch-class set, root in the bass, shortest name.
#[derive(Debug, Clone)]
pub struct TriadLookup {
    by_sound: HashMap<(u16, u8), ChordIndex>,
}

impl TriadLookup {
    /// Indexes every playable chord of the vocabulary.
    pub fn new(vocab: &Vocabulary, table: &ChordTable) -> Self {
        let mut by_sound: HashMap<(u16, u8), ChordIndex> = HashMap::new();
        for (i, name) in vocab.names().iter().enumerate() {
            let Ok(index) = ChordIndex::try_from(i) else {
                continue;
            };
            let Some(tones) = table.tones(index) else {
                continue;
            };
            let mask = tones
                .pitch_classes
                .iter()
                .fold(0u16, |m, &pc| m | 1 << (pc % 12));
            let shorter = |other: &ChordIndex| {
                vocab
                    .name(*other)
                    .is_none_or(|other_name| name.len() < other_name.len())
            };
            let slot = by_sound.entry((mask, tones.bass % 12)).or_insert(index);
            if shorter(slot) {
                *slot = index;
            }
        }
        Self { by_sound }
    }

    /// The chord with root `root` and these intervals, if the vocabulary has it.
    pub fn find(&self, root: u8, intervals: &[u8]) -> Option<ChordIndex> {
        let mask = intervals
            .iter()
            .fold(0u16, |m, &i| m | 1 << ((root + i) % 12));
        self.by_sound.get(&(mask, root % 12)).copied()
    }
}

/// The diatonic-heuristic accompaniment of one melody.
///
/// Segments start at the given bar lines (and at frame 0); without bar lines, every 16 frames.
/// Each segment gets the diatonic triad of the melody's key (see [`diatonic_triads`], only
/// those in the vocabulary) whose pitch classes cover the most melody frames of the segment;
/// ties keep the previous chord, then follow the triad order. A segment without melody keeps
/// the previous chord (the tonic at the start). A chord repeated across a bar line is held, not
/// re-struck. All silence if the vocabulary has none of the triads.
pub fn diatonic_track(
    melody: &[MelodyFrame],
    bars: &[usize],
    lookup: &TriadLookup,
) -> Vec<ChordFrame> {
    let key = find_key(&pitch_class_weights(melody));
    let candidates: Vec<(ChordIndex, u16)> = diatonic_triads(key)
        .into_iter()
        .filter_map(|(root, intervals)| {
            let mask = intervals
                .iter()
                .fold(0u16, |m, &i| m | 1 << ((root + i) % 12));
            lookup.find(root, &intervals).map(|index| (index, mask))
        })
        .collect();
    let Some(&(tonic, _)) = candidates.first() else {
        return vec![ChordFrame::Silence; melody.len()];
    };
    let mut starts: Vec<usize> = if bars.is_empty() {
        (0..melody.len()).step_by(FRAMES_PER_BAR).collect()
    } else {
        bars.iter().copied().filter(|&b| b < melody.len()).collect()
    };
    starts.push(0);
    starts.sort_unstable();
    starts.dedup();

    let mut track = Vec::with_capacity(melody.len());
    let mut previous: Option<ChordIndex> = None;
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(melody.len());
        let weights = pitch_class_weights(melody.get(start..end).unwrap_or_default());
        let cover = |mask: u16| -> f64 {
            (0..12)
                .filter(|pc| mask & (1 << pc) != 0)
                .map(|pc| weights[pc])
                .sum()
        };
        let best = candidates
            .iter()
            .map(|&(index, mask)| (index, cover(mask)))
            .fold(
                None::<(ChordIndex, f64)>,
                |best, (index, score)| match best {
                    Some((_, top)) if score < top => best,
                    Some((held, top)) if score == top && Some(held) == previous => best,
                    Some((_, top)) if score == top && Some(index) != previous => best,
                    _ => Some((index, score)),
                },
            );
        let chord = match best {
            Some((index, score)) if score > 0.0 => index,
            _ => previous.unwrap_or(tonic),
        };
        for frame in start..end {
            track.push(if frame == start && previous != Some(chord) {
                ChordFrame::Onset(chord)
            } else {
                ChordFrame::Hold(chord)
            });
        }
        previous = Some(chord);
    }
    track
}
