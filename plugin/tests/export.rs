//! "Save MIDI" writes the selected option so that the music core reads the same chords back.

use std::collections::BTreeSet;

use comper_generate::runtime::VoicingChoice;
use comper_generate::runtime::{Session, SessionOption};
use comper_music::chord::ChordSymbol;
use comper_music::midi_file::read_midi;
use comper_music::progression::VoicingStyle;
use comper_plugin::export::{save_selected, ExportSettings};
use comper_realtime::frames::MelodyFrame;
use comper_realtime::frames::TimeSignature;

fn chord(name: &str, frames: usize) -> Vec<Option<(String, bool)>> {
    (0..frames)
        .map(|k| Some((name.to_owned(), k == 0)))
        .collect()
}

#[test]
fn saved_midi_reads_back_as_the_selected_chords() {
    let progression = ["C", "Am7", "F", "G7"];
    let mut frames = Vec::new();
    for name in progression {
        frames.extend(chord(name, 16));
    }
    let melody: Vec<MelodyFrame> = (0..64)
        .map(|i| {
            if i % 4 == 0 {
                MelodyFrame::Onset(72 + (i / 4 % 5) as u8)
            } else {
                MelodyFrame::Hold(72 + (i / 4 % 5) as u8)
            }
        })
        .collect();
    let session = Session {
        melody,
        time_signature: TimeSignature::default(),
        first_frame: 0,
        options: vec![
            SessionOption {
                frames: chord("D", 64),
                log_likelihood: -5.0,
                melody_fit: 0.3,
                description: String::new(),
            },
            SessionOption {
                frames,
                log_likelihood: -3.0,
                melody_fit: 0.8,
                description: String::new(),
            },
        ],
        selected: 1,
        locked: Vec::new(),
        weights_path: None,
    };
    let dir = std::env::temp_dir().join(format!("comper-export-{}", std::process::id()));
    for style in [VoicingStyle::Plain, VoicingStyle::VoiceLed] {
        let settings = ExportSettings {
            voicing: VoicingChoice { style, octave: 0 },
            with_melody: true,
            tempo_bpm: 100.0,
            velocity: 90,
        };
        let path = save_selected(&session, settings, &dir).unwrap();
        assert!(path.starts_with(&dir));
        let song = read_midi(&path).unwrap();
        let chords = song
            .parts
            .iter()
            .find(|p| p.channel == 0)
            .expect("a chord part");
        let melody = song
            .parts
            .iter()
            .find(|p| p.channel == 1)
            .expect("a melody part");
        assert_eq!(melody.notes.len(), 16);
        for (bar, name) in progression.iter().enumerate() {
            let onset = 4.0 * bar as f64;
            let heard: BTreeSet<u8> = chords
                .notes
                .iter()
                .filter(|n| (n.onset_beat - onset).abs() < 1e-6)
                .map(|n| n.pitch % 12)
                .collect();
            let expected: BTreeSet<u8> = ChordSymbol::parse(name)
                .unwrap()
                .pitch_classes()
                .unwrap()
                .into_iter()
                .collect();
            assert_eq!(heard, expected, "bar {} should be {name}", bar + 1);
            assert!(chords
                .notes
                .iter()
                .filter(|n| (n.onset_beat - onset).abs() < 1e-6)
                .all(|n| (n.offset_beat - (onset + 4.0)).abs() < 1e-6));
        }
    }
    let mut empty = session.clone();
    empty.options.clear();
    let settings = ExportSettings {
        voicing: VoicingChoice {
            style: VoicingStyle::Plain,
            octave: 0,
        },
        with_melody: false,
        tempo_bpm: 120.0,
        velocity: 90,
    };
    assert!(save_selected(&empty, settings, &dir).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
