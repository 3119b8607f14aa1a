//! How well a chord track fits its melody: the note-in-chord measure, shared by `comper eval`
//! (which reports it) and the five-options job (which ranks candidates by it).

use crate::chord::ChordTable;
use comper_realtime::frames::{ChordFrame, ChordIndex, MelodyFrame};

/// Each chord's pitch classes as a 12-bit mask (bit `pc`), indexed by chord index.
///
/// A chord's pitch classes are its note_seq pitch classes plus its bass (a vocabulary name like
/// `A6/9/Gb` stands for root-position pitches whose lowest note is the bass). Chords the table
/// could not parse get an empty mask, so no note is ever "in" them.
pub fn chord_masks(table: &ChordTable) -> Vec<u16> {
    (0..table.len())
        .map(|i| {
            let index = ChordIndex::try_from(i).unwrap_or(ChordIndex::MAX);
            table.tones(index).map_or(0, |tones| {
                tones
                    .pitch_classes
                    .iter()
                    .chain(std::iter::once(&tones.bass))
                    .fold(0u16, |mask, &pc| mask | 1 << (pc % 12))
            })
        })
        .collect()
}

/// `(frames whose melody note is in the sounding chord, frames with a melody note)`.
///
/// A frame with a note but no chord counts as "not in chord": an accompaniment that stays
/// silent does not get credit for avoiding clashes.
pub fn note_in_chord_counts(
    melody: &[MelodyFrame],
    chords: &[ChordFrame],
    masks: &[u16],
) -> (u64, u64) {
    let mut in_chord = 0;
    let mut sounding = 0;
    for (note, chord) in melody.iter().zip(chords) {
        let Some(pitch) = note.pitch() else { continue };
        sounding += 1;
        let mask = chord
            .chord()
            .and_then(|c| masks.get(usize::from(c)))
            .copied()
            .unwrap_or(0);
        if mask & (1 << (pitch % 12)) != 0 {
            in_chord += 1;
        }
    }
    (in_chord, sounding)
}

/// Share of sounding melody frames whose pitch class is in the chord; 0 for a silent melody.
pub fn melody_fit(melody: &[MelodyFrame], chords: &[ChordFrame], masks: &[u16]) -> f64 {
    let (in_chord, sounding) = note_in_chord_counts(melody, chords, masks);
    if sounding == 0 {
        0.0
    } else {
        in_chord as f64 / sounding as f64
    }
}
