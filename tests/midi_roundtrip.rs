//! MIDI files: what the writer produces, the reader gets back; melody picking; bad input is an
//! error and never a panic. Also the source of the melodies committed under `assets/`
//! (run with `COMPER_REGENERATE_ASSETS=1` to rewrite them).

use std::path::PathBuf;

use comper_music::midi_file::{
    parse_midi, read_melody, write_progression, MelodyChoice, MidiFileError, ProgressionExport,
};
use comper_music::progression::VoicedChord;
use comper_realtime::frames::Note;
use comper_realtime::frames::TimeSignature;
use midly::num::{u15, u28, u4, u7};
use midly::{
    Format, Fps, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind,
};
use proptest::prelude::*;

fn chord(pitches: &[u8], start_beat: f64, end_beat: f64) -> VoicedChord {
    VoicedChord {
        pitches: pitches.to_vec(),
        start_beat,
        end_beat,
        velocity: 80,
    }
}

fn note(pitch: u8, onset_beat: f64, offset_beat: f64) -> Note {
    Note {
        pitch,
        onset_beat,
        offset_beat,
    }
}

fn sample_export() -> ProgressionExport {
    ProgressionExport {
        chords: vec![
            chord(&[48, 52, 55, 60], 0.0, 4.0),
            chord(&[45, 52, 57, 60], 4.0, 6.0),
            chord(&[43, 50, 55, 59, 62], 6.0, 8.0),
            // Shares pitch 55 with the previous chord at the boundary.
            chord(&[48, 55, 64], 8.0, 8.5),
        ],
        melody: Some(vec![
            note(72, 0.0, 1.0),
            note(72, 1.0, 1.5),
            note(74, 1.75, 4.0),
            note(76, 4.0, 8.0),
        ]),
        tempo_bpm: 96.0,
        time_signature: TimeSignature {
            numerator: 3,
            denominator: 4,
        },
        chord_track_name: "Comper chords".into(),
        ..ProgressionExport::default()
    }
}

/// Groups notes by onset into (onset, offset, sorted pitches).
fn groups(notes: &[Note]) -> Vec<(f64, f64, Vec<u8>)> {
    let mut groups: Vec<(f64, f64, Vec<u8>)> = Vec::new();
    for n in notes {
        match groups.last_mut() {
            Some((onset, offset, pitches))
                if *onset == n.onset_beat && *offset == n.offset_beat =>
            {
                pitches.push(n.pitch)
            }
            _ => groups.push((n.onset_beat, n.offset_beat, vec![n.pitch])),
        }
    }
    for (_, _, pitches) in &mut groups {
        pitches.sort_unstable();
    }
    groups
}

#[test]
fn chords_and_melody_survive_a_round_trip() {
    let export = sample_export();
    let song = parse_midi(&write_progression(&export).unwrap()).unwrap();

    assert_eq!(song.ppq, 480);
    assert_eq!(song.tempo_bpm, 96.0);
    assert_eq!(
        song.time_signature,
        TimeSignature {
            numerator: 3,
            denominator: 4
        }
    );
    assert_eq!(song.parts.len(), 2);

    let chords = &song.parts[0];
    assert_eq!(chords.name.as_deref(), Some("Comper chords"));
    assert_eq!(chords.channel, 0);
    let expected: Vec<(f64, f64, Vec<u8>)> = export
        .chords
        .iter()
        .map(|c| (c.start_beat, c.end_beat, c.pitches.clone()))
        .collect();
    assert_eq!(groups(&chords.notes), expected);

    let melody = &song.parts[1];
    assert_eq!(
        (melody.name.as_deref(), melody.channel),
        (Some("Melody"), 1)
    );
    assert_eq!(Some(melody.notes.clone()), export.melody);
    assert_eq!(melody.monophony(), 1.0);
    assert!(chords.monophony() < 0.5);
}

#[test]
fn the_melody_is_found_by_name_then_by_monophony() {
    let named = parse_midi(&write_progression(&sample_export()).unwrap()).unwrap();
    assert_eq!(named.melody(MelodyChoice::Auto).unwrap().part, 1);

    let unnamed = ProgressionExport {
        chord_track_name: "Pads".into(),
        melody_track_name: "Right hand".into(),
        ..sample_export()
    };
    let song = parse_midi(&write_progression(&unnamed).unwrap()).unwrap();
    let melody = song.melody(MelodyChoice::Auto).unwrap();
    assert_eq!(melody.part, 1);
    assert_eq!(melody.notes.len(), 4);
    assert_eq!(melody.tempo_bpm, 96.0);
    assert_eq!(song.melody(MelodyChoice::Part(0)).unwrap().notes.len(), 16);
    assert!(matches!(
        song.melody(MelodyChoice::Part(2)),
        Err(MidiFileError::PartOutOfRange { index: 2, count: 2 })
    ));
}

#[test]
fn drums_are_never_guessed_as_the_melody() {
    let drums_only = ProgressionExport {
        melody: Some(vec![note(36, 0.0, 0.5), note(38, 1.0, 1.5)]),
        melody_channel: 9,
        melody_track_name: "Lead drums".into(),
        ..ProgressionExport::default()
    };
    let song = parse_midi(&write_progression(&drums_only).unwrap()).unwrap();
    assert!(song.parts[0].is_drums());
    assert!(matches!(
        song.melody(MelodyChoice::Auto),
        Err(MidiFileError::NoMelody)
    ));
}

fn midi_event(delta: u32, channel: u8, message: MidiMessage) -> TrackEvent<'static> {
    TrackEvent {
        delta: u28::new(delta),
        kind: TrackEventKind::Midi {
            channel: u4::new(channel),
            message,
        },
    }
}

fn on(key: u8) -> MidiMessage {
    MidiMessage::NoteOn {
        key: u7::new(key),
        vel: u7::new(90),
    }
}

fn off_by_zero_velocity(key: u8) -> MidiMessage {
    MidiMessage::NoteOn {
        key: u7::new(key),
        vel: u7::new(0),
    }
}

#[test]
fn a_format_0_file_is_split_into_parts_by_channel() {
    let mut smf = Smf::new(Header::new(
        Format::SingleTrack,
        Timing::Metrical(u15::new(96)),
    ));
    smf.tracks.push(vec![
        TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::TimeSignature(6, 3, 24, 8)),
        },
        midi_event(0, 0, on(48)),
        midi_event(0, 0, on(52)),
        midi_event(0, 3, on(76)),
        midi_event(48, 3, off_by_zero_velocity(76)),
        midi_event(0, 3, on(79)),
        midi_event(144, 0, off_by_zero_velocity(48)),
        midi_event(0, 0, off_by_zero_velocity(52)),
        // Never released: ends with the track.
        midi_event(0, 3, off_by_zero_velocity(79)),
        midi_event(0, 3, on(81)),
        midi_event(
            96,
            0,
            MidiMessage::Controller {
                controller: u7::new(64),
                value: u7::new(0),
            },
        ),
        TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
        },
    ]);
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes).unwrap();
    let song = parse_midi(&bytes).unwrap();

    assert_eq!(song.tempo_bpm, 120.0, "no tempo event: the MIDI default");
    assert!(song.tempo_map.is_empty());
    assert_eq!(
        song.time_signature,
        TimeSignature {
            numerator: 6,
            denominator: 8
        }
    );
    assert_eq!(
        song.parts
            .iter()
            .map(|p| (p.track, p.channel))
            .collect::<Vec<_>>(),
        [(0, 0), (0, 3)]
    );
    assert_eq!(
        song.parts[1].notes,
        [note(76, 0.0, 0.5), note(79, 0.5, 2.0), note(81, 2.0, 3.0)]
    );
    assert_eq!(song.melody(MelodyChoice::Auto).unwrap().part, 1);
}

#[test]
fn smpte_timing_is_a_clear_error() {
    let mut smf = Smf::new(Header::new(
        Format::SingleTrack,
        Timing::Timecode(Fps::Fps25, 40),
    ));
    smf.tracks.push(vec![
        midi_event(0, 0, on(60)),
        midi_event(10, 0, off_by_zero_velocity(60)),
    ]);
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes).unwrap();
    let error = parse_midi(&bytes).unwrap_err();
    assert!(
        matches!(
            error,
            MidiFileError::SmpteTiming {
                fps: 25,
                subframes: 40
            }
        ),
        "{error}"
    );
}

#[test]
fn invalid_export_input_is_rejected_with_the_bad_value() {
    let bad_pitch = ProgressionExport {
        chords: vec![chord(&[60, 200], 0.0, 1.0)],
        ..ProgressionExport::default()
    };
    let error = write_progression(&bad_pitch).unwrap_err();
    assert!(error.to_string().contains("200"), "{error}");

    let backwards = ProgressionExport {
        chords: vec![chord(&[60], 2.0, 1.0)],
        ..ProgressionExport::default()
    };
    assert!(matches!(
        write_progression(&backwards),
        Err(MidiFileError::InvalidInput { .. })
    ));

    let odd_meter = ProgressionExport {
        time_signature: TimeSignature {
            numerator: 7,
            denominator: 6,
        },
        ..ProgressionExport::default()
    };
    assert!(write_progression(&odd_meter)
        .unwrap_err()
        .to_string()
        .contains("7/6"));
}

proptest! {
    #[test]
    fn random_bytes_are_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_midi(&bytes);
    }

    #[test]
    fn damaged_files_are_an_error_not_a_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = write_progression(&sample_export()).unwrap();
        for (index, value) in edits {
            let i = index.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(song) = parse_midi(&bytes) {
            let _ = song.melody(MelodyChoice::Auto);
        }
    }
}

/// A tune as (MIDI pitch, length in beats), played legato from beat 0.
fn tune(notes: &[(u8, f64)]) -> Vec<Note> {
    let mut beat = 0.0;
    notes
        .iter()
        .map(|&(pitch, length)| {
            let n = note(pitch, beat, beat + length);
            beat += length;
            n
        })
        .collect()
}

const C4: u8 = 60;
const D4: u8 = 62;
const E4: u8 = 64;
const F4: u8 = 65;
const G4: u8 = 67;
const A4: u8 = 69;
const G3: u8 = 55;

/// Beethoven, Symphony No. 9, "Ode to Joy" theme, first 8 bars in C major.
fn ode_to_joy() -> Vec<Note> {
    let phrase = [
        (E4, 1.0),
        (E4, 1.0),
        (F4, 1.0),
        (G4, 1.0),
        (G4, 1.0),
        (F4, 1.0),
        (E4, 1.0),
        (D4, 1.0),
    ];
    let mut notes = phrase.to_vec();
    notes.extend([
        (C4, 1.0),
        (C4, 1.0),
        (D4, 1.0),
        (E4, 1.0),
        (E4, 1.5),
        (D4, 0.5),
        (D4, 2.0),
    ]);
    notes.extend(phrase);
    notes.extend([
        (C4, 1.0),
        (C4, 1.0),
        (D4, 1.0),
        (E4, 1.0),
        (D4, 1.5),
        (C4, 0.5),
        (C4, 2.0),
    ]);
    tune(&notes)
}

/// "Twinkle, Twinkle, Little Star" (traditional), 12 bars in C major.
fn twinkle_twinkle() -> Vec<Note> {
    let opening = [
        (C4, 1.0),
        (C4, 1.0),
        (G4, 1.0),
        (G4, 1.0),
        (A4, 1.0),
        (A4, 1.0),
        (G4, 2.0),
    ];
    let closing = [
        (F4, 1.0),
        (F4, 1.0),
        (E4, 1.0),
        (E4, 1.0),
        (D4, 1.0),
        (D4, 1.0),
        (C4, 2.0),
    ];
    let middle = [
        (G4, 1.0),
        (G4, 1.0),
        (F4, 1.0),
        (F4, 1.0),
        (E4, 1.0),
        (E4, 1.0),
        (D4, 2.0),
    ];
    let notes: Vec<(u8, f64)> = [opening, closing, middle, middle, opening, closing].concat();
    tune(&notes)
}

/// "Frère Jacques" (French traditional), 8 bars in C major, with its eighth-note line.
fn frere_jacques() -> Vec<Note> {
    let a = [(C4, 1.0), (D4, 1.0), (E4, 1.0), (C4, 1.0)];
    let b = [(E4, 1.0), (F4, 1.0), (G4, 2.0)];
    let c = [
        (G4, 0.5),
        (A4, 0.5),
        (G4, 0.5),
        (F4, 0.5),
        (E4, 1.0),
        (C4, 1.0),
    ];
    let d = [(C4, 1.0), (G3, 1.0), (C4, 2.0)];
    let notes: Vec<(u8, f64)> = [&a[..], &a, &b, &b, &c, &c, &d, &d].concat();
    tune(&notes)
}

fn assets() -> Vec<(&'static str, f64, Vec<Note>)> {
    vec![
        ("ode_to_joy.mid", 100.0, ode_to_joy()),
        ("twinkle_twinkle.mid", 100.0, twinkle_twinkle()),
        ("frere_jacques.mid", 110.0, frere_jacques()),
    ]
}

fn asset_bytes(tempo_bpm: f64, melody: &[Note]) -> Vec<u8> {
    let export = ProgressionExport {
        melody: Some(melody.to_vec()),
        tempo_bpm,
        ..ProgressionExport::default()
    };
    write_progression(&export).unwrap()
}

#[test]
fn committed_assets_match_their_source() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets");
    let regenerate = std::env::var_os("COMPER_REGENERATE_ASSETS").is_some();
    for (file, tempo, melody) in assets() {
        let path = dir.join(file);
        let bytes = asset_bytes(tempo, &melody);
        if regenerate {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{} is stale",
            path.display()
        );
        let read = read_melody(&path, MelodyChoice::Auto).unwrap();
        assert_eq!(read.notes, melody);
        assert_eq!(read.tempo_bpm, tempo);
        let total: f64 = melody.last().unwrap().offset_beat;
        assert_eq!(total % 4.0, 0.0, "{file} fills whole 4/4 bars");
    }
}

/// midly 0.5.3 overflows negating an SMPTE rate byte of 0x80 (found by the `midi_reader` fuzz
/// target); the reader must answer with an error instead.
#[test]
fn smpte_rate_of_minus_128_is_an_error_not_a_panic() {
    let mut bytes = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x80\x00".to_vec();
    bytes.extend_from_slice(b"MTrk\x00\x00\x00\x04\x00\xff\x2f\x00");
    assert!(comper_music::midi_file::parse_midi(&bytes).is_err());
}
