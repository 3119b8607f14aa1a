//! Chord frames become plans the audio thread can play: every frame carries the exact pitches to
//! sound, computed here on the inference thread (voicing, octave shift), so the audio side only
//! copies them.

use comper_music::chord::{ChordTable, VoicingRange};
use comper_music::progression::{name_chords, voice_progression, VoicingStyle};
use comper_music::tokens::Vocabulary;
use comper_realtime::frames::{ChordFrame, FRAMES_PER_BEAT};
use comper_realtime::quantize::PhraseId;
use comper_realtime::schedule::{PlanUpdate, PlannedFrame, Voiced};

/// How a progression is voiced: style and octave shift (−2..=2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoicingChoice {
    pub style: VoicingStyle,
    pub octave: i8,
}

/// A plan looping `frames` from absolute frame `first_frame`, every chord voiced.
pub fn loop_plan(
    frames: &[ChordFrame],
    first_frame: i64,
    vocab: &Vocabulary,
    table: &ChordTable,
    voicing: VoicingChoice,
) -> PlanUpdate {
    let named = name_chords(frames, vocab);
    let voiced = voice_progression(&named, table, voicing.style, VoicingRange::default(), 0);
    let mut pitches_at: Vec<Voiced> = vec![Voiced::default(); frames.len()];
    let frames_per_beat = f64::from(FRAMES_PER_BEAT);
    for chord in &voiced {
        let start = (chord.start_beat * frames_per_beat).round().max(0.0) as usize;
        let end = (chord.end_beat * frames_per_beat).round().max(0.0) as usize;
        let pitches = transposed(&chord.pitches, voicing.octave);
        for slot in pitches_at.iter_mut().take(end).skip(start) {
            *slot = Voiced::new(&pitches);
        }
    }
    PlanUpdate {
        phrase: PhraseId::default(),
        first_frame,
        frames: frames
            .iter()
            .zip(pitches_at)
            .map(|(&chord, voicing)| PlannedFrame {
                chord,
                committed: true,
                voicing,
            })
            .collect(),
        replan_ms: 0.0,
    }
}

/// Moves every voicing of a live plan by `octave` octaves.
pub fn transpose_plan(plan: &mut PlanUpdate, octave: i8) {
    if octave == 0 {
        return;
    }
    for frame in &mut plan.frames {
        frame.voicing = Voiced::new(&transposed(frame.voicing.pitches(), octave));
    }
}

/// `pitches` moved by whole octaves; a pitch that would leave 0..=127 folds back an octave.
pub fn transposed(pitches: &[u8], octave: i8) -> Vec<u8> {
    let shift = 12 * i16::from(octave);
    pitches
        .iter()
        .map(|&p| {
            let mut moved = i16::from(p) + shift;
            while moved > 127 {
                moved -= 12;
            }
            while moved < 0 {
                moved += 12;
            }
            moved as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        Vocabulary::new(vec!["C".into(), "G".into()]).unwrap()
    }

    #[test]
    fn every_frame_of_a_chord_gets_its_pitches() {
        let vocab = vocab();
        let table = ChordTable::new(&vocab);
        let frames = [
            ChordFrame::Onset(0),
            ChordFrame::Hold(0),
            ChordFrame::Silence,
            ChordFrame::Onset(1),
        ];
        let choice = VoicingChoice {
            style: VoicingStyle::Plain,
            octave: 0,
        };
        let plan = loop_plan(&frames, 16, &vocab, &table, choice);
        assert_eq!(plan.first_frame, 16);
        assert_eq!(plan.frames.len(), 4);
        assert_eq!(plan.frames[0].voicing, plan.frames[1].voicing);
        assert!(plan.frames[2].voicing.is_empty());
        let g = plan.frames[3].voicing.pitches();
        assert!(g.iter().all(|p| [7, 11, 2].contains(&(p % 12))), "{g:?}");
        let up = loop_plan(
            &frames,
            16,
            &vocab,
            &table,
            VoicingChoice {
                octave: 1,
                ..choice
            },
        );
        let shifted: Vec<u8> = plan.frames[0]
            .voicing
            .pitches()
            .iter()
            .map(|p| p + 12)
            .collect();
        assert_eq!(up.frames[0].voicing.pitches(), shifted.as_slice());
    }

    #[test]
    fn transposing_stays_in_midi_range() {
        assert_eq!(transposed(&[120, 5], 2), vec![120, 29]);
        assert_eq!(transposed(&[5], -2), vec![5]);
    }
}
