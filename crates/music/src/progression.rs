//! A chord progression as a musician sees it: named chords with beat spans, ready to print,
//! serialise, voice and export. Shared by `comper suggest`, `comper jam` and the plugin so they all
//! describe and voice a progression the same way.

use serde::Serialize;

use crate::chord::{plain_voicing, voice_led, ChordTable, Voicing, VoicingRange};
use crate::tokens::{frames_to_chord_spans, Vocabulary};
use comper_realtime::frames::TimeSignature;
use comper_realtime::frames::{ChordFrame, ChordIndex, FRAMES_PER_BEAT};

/// A chord as played: its pitches sound together from `start_beat` to `end_beat`.
#[derive(Debug, Clone, PartialEq)]
pub struct VoicedChord {
    pub pitches: Vec<u8>,
    pub start_beat: f64,
    pub end_beat: f64,
    pub velocity: u8,
}

/// One chord of a progression, named, with its span in beats from the phrase start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedChord {
    /// The vocabulary name, e.g. `"Am7"`.
    pub symbol: String,
    pub start_beat: f64,
    pub end_beat: f64,
    /// The chord's index in the model's vocabulary.
    #[serde(skip)]
    pub index: ChordIndex,
}

/// Named chords for a chord-frame track; silent frames leave gaps.
pub fn name_chords(frames: &[ChordFrame], vocab: &Vocabulary) -> Vec<NamedChord> {
    frames_to_chord_spans(frames)
        .into_iter()
        .map(|span| NamedChord {
            symbol: vocab.name(span.chord).unwrap_or("?").to_string(),
            start_beat: span.onset_beat,
            end_beat: span.offset_beat,
            index: span.chord,
        })
        .collect()
}

/// How chords become MIDI pitches.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum VoicingStyle {
    /// ReaLJam's voicing: chord tones at C3 + pitch class, bass at C2 + pitch class.
    Plain,
    /// Each chord placed as close as possible to the previous one, inside a range.
    #[default]
    VoiceLed,
}

/// Voices a progression into note groups for MIDI output. Chords whose name does not parse are
/// skipped (they were reported when the vocabulary was loaded).
pub fn voice_progression(
    chords: &[NamedChord],
    table: &ChordTable,
    style: VoicingStyle,
    range: VoicingRange,
    velocity: u8,
) -> Vec<VoicedChord> {
    let mut previous: Option<Voicing> = None;
    let mut voiced = Vec::with_capacity(chords.len());
    for chord in chords {
        let Some(tones) = table.tones(chord.index) else {
            continue;
        };
        let pitches = match style {
            VoicingStyle::Plain => plain_voicing(tones),
            VoicingStyle::VoiceLed => {
                let voicing = voice_led(tones, previous.as_ref(), range);
                let notes = voicing.notes();
                previous = Some(voicing);
                notes
            }
        };
        voiced.push(VoicedChord {
            pitches,
            start_beat: chord.start_beat,
            end_beat: chord.end_beat,
            velocity,
        });
    }
    voiced
}

/// A bar-by-bar chord chart: one cell per bar, each chord written at its onset, `%`-free and
/// plain so it reads in any terminal. A bar with no onset repeats the sounding chord in
/// parentheses, and silence shows as `N.C.`.
pub fn chord_chart(
    chords: &[NamedChord],
    total_beats: f64,
    time_signature: TimeSignature,
    bars_per_line: usize,
) -> String {
    let beats_per_bar = time_signature.beats_per_bar().max(0.25);
    let bars = ((total_beats / beats_per_bar).ceil() as usize).max(1);
    let mut cells = Vec::with_capacity(bars);
    for bar in 0..bars {
        let start = bar as f64 * beats_per_bar;
        let end = start + beats_per_bar;
        let onsets: Vec<&str> = chords
            .iter()
            .filter(|c| c.start_beat >= start - 1e-9 && c.start_beat < end - 1e-9)
            .map(|c| c.symbol.as_str())
            .collect();
        let cell = if onsets.is_empty() {
            match chords
                .iter()
                .find(|c| c.start_beat < start && c.end_beat > start + 1e-9)
            {
                Some(c) => format!("({})", c.symbol),
                None => "N.C.".to_string(),
            }
        } else {
            onsets.join(" ")
        };
        cells.push(cell);
    }
    let width = cells
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(4)
        .max(6);
    let mut out = String::new();
    for (line_index, line) in cells.chunks(bars_per_line.max(1)).enumerate() {
        out.push_str(&format!("  {:>3} |", line_index * bars_per_line.max(1) + 1));
        for cell in line {
            out.push_str(&format!(" {cell:<width$} |"));
        }
        out.push('\n');
    }
    out
}

/// Frames a phrase of `beats` beats covers, rounded up to whole frames.
pub fn frames_for_beats(beats: f64) -> usize {
    (beats * FRAMES_PER_BEAT as f64).ceil().max(0.0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        Vocabulary::new(vec!["Am".into(), "C".into(), "F".into(), "G".into()]).unwrap()
    }

    #[test]
    fn frames_become_named_spans() {
        let frames = [
            ChordFrame::Onset(1),
            ChordFrame::Hold(1),
            ChordFrame::Hold(1),
            ChordFrame::Hold(1),
            ChordFrame::Onset(0),
            ChordFrame::Hold(0),
            ChordFrame::Silence,
            ChordFrame::Onset(3),
        ];
        let named = name_chords(&frames, &vocab());
        let got: Vec<(&str, f64, f64)> = named
            .iter()
            .map(|c| (c.symbol.as_str(), c.start_beat, c.end_beat))
            .collect();
        assert_eq!(
            got,
            vec![("C", 0.0, 1.0), ("Am", 1.0, 1.5), ("G", 1.75, 2.0)]
        );
    }

    #[test]
    fn chart_has_one_cell_per_bar() {
        let v = vocab();
        // C for ten beats, then F for two: bars read "C", "(C)", "F".
        let mut frames = vec![ChordFrame::Onset(1)];
        frames.extend(std::iter::repeat_n(ChordFrame::Hold(1), 39));
        frames.push(ChordFrame::Onset(2));
        frames.extend(std::iter::repeat_n(ChordFrame::Hold(2), 7));
        let chart = chord_chart(&name_chords(&frames, &v), 12.0, TimeSignature::default(), 4);
        assert_eq!(chart.trim_end(), "    1 | C      | (C)    | F      |");
        let chart = chord_chart(&name_chords(&frames, &v), 16.0, TimeSignature::default(), 2);
        assert_eq!(chart.lines().count(), 2, "{chart}");
        assert!(chart.contains("N.C."), "the silent last bar: {chart}");
    }

    #[test]
    fn voice_led_progression_keeps_every_chord() {
        let v = vocab();
        let table = ChordTable::new(&v);
        let frames = [
            ChordFrame::Onset(1),
            ChordFrame::Onset(2),
            ChordFrame::Onset(3),
        ];
        let voiced = voice_progression(
            &name_chords(&frames, &v),
            &table,
            VoicingStyle::VoiceLed,
            VoicingRange::default(),
            90,
        );
        assert_eq!(voiced.len(), 3);
        assert!(voiced
            .iter()
            .all(|c| c.pitches.len() == 4 && c.velocity == 90));
        let plain = voice_progression(
            &name_chords(&frames, &v),
            &table,
            VoicingStyle::Plain,
            VoicingRange::default(),
            90,
        );
        assert_eq!(plain[0].pitches, vec![48, 52, 55, 36]);
    }
}
