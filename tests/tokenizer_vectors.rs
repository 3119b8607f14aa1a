//! Comper's tokenizer against realjam 1.0.1's `HooktheoryTokenizer`, id for id.
//!
//! The fixture is written by `training/make_tokenizer_vectors.py`.

use comper_music::tokens::{
    chords_to_frames, frames_to_chord_spans, frames_to_notes, melody_to_frames, Token, TokenId,
    Vocabulary,
};
use comper_realtime::frames::{ChordFrame, ChordSpan, MelodyFrame, Note};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    chord_names: Vec<String>,
    num_tokens: u32,
    token_ids: Vec<(String, TokenId)>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    comment: String,
    num_frames: usize,
    melody: Vec<(u8, f64, f64)>,
    chords: Vec<(String, f64, f64)>,
    melody_frames: Option<Vec<TokenId>>,
    chord_frames: Option<Vec<TokenId>>,
    decoded_melody: Option<Vec<(u8, f64, f64)>>,
    decoded_chords: Option<Vec<(String, f64, f64)>>,
    online: Option<Vec<TokenId>>,
    encoder: Option<Vec<TokenId>>,
    decoder: Option<Vec<TokenId>>,
}

fn fixture() -> Fixture {
    let text = include_str!("fixtures/tokenizer_vectors.json");
    serde_json::from_str(text).unwrap()
}

/// The reference's token name for a token, e.g. `NOTE_ON_60` or `CHORD_Am`.
fn reference_name(vocab: &Vocabulary, token: Token) -> String {
    let chord = |i| vocab.name(i).unwrap().to_string();
    match token {
        Token::Pad => "PAD".into(),
        Token::Bos => "BOS".into(),
        Token::Eos => "EOS".into(),
        Token::Silence => "SILENCE".into(),
        Token::NoteHold(p) => format!("NOTE_{p}"),
        Token::NoteOn(p) => format!("NOTE_ON_{p}"),
        Token::ChordHold(i) => format!("CHORD_{}", chord(i)),
        Token::ChordOn(i) => format!("CHORD_ON_{}", chord(i)),
    }
}

/// What `frames_to_notes` must give back after re-encoding: stray holds become onsets.
fn without_stray_holds(frames: &[MelodyFrame]) -> Vec<MelodyFrame> {
    let mut previous = None;
    frames
        .iter()
        .map(|&frame| {
            let fixed = match frame {
                MelodyFrame::Hold(p) if previous != Some(p) => MelodyFrame::Onset(p),
                other => other,
            };
            previous = frame.pitch();
            fixed
        })
        .collect()
}

fn without_stray_chord_holds(frames: &[ChordFrame]) -> Vec<ChordFrame> {
    let mut previous = None;
    frames
        .iter()
        .map(|&frame| {
            let fixed = match frame {
                ChordFrame::Hold(c) if previous != Some(c) => ChordFrame::Onset(c),
                other => other,
            };
            previous = frame.chord();
            fixed
        })
        .collect()
}

#[test]
fn vocabulary_layout_matches_the_reference() {
    let fx = fixture();
    assert!(fx.chord_names.len() >= 300);
    let vocab = Vocabulary::new(fx.chord_names.clone()).unwrap();
    assert_eq!(vocab.num_tokens(), fx.num_tokens);
    for (name, id) in &fx.token_ids {
        let token = vocab.token(*id).unwrap();
        assert_eq!(&reference_name(&vocab, token), name, "id {id}");
        assert_eq!(vocab.id(token).unwrap(), *id);
    }
}

#[test]
fn frames_and_sequences_match_the_reference() {
    let fx = fixture();
    let vocab = Vocabulary::new(fx.chord_names.clone()).unwrap();
    for case in &fx.cases {
        let context = &case.comment;
        let notes: Vec<Note> = case
            .melody
            .iter()
            .map(|&(pitch, onset_beat, offset_beat)| Note {
                pitch,
                onset_beat,
                offset_beat,
            })
            .collect();
        let spans: Vec<ChordSpan> = case
            .chords
            .iter()
            .map(|(name, onset_beat, offset_beat)| ChordSpan {
                chord: vocab.index_of(name).unwrap(),
                onset_beat: *onset_beat,
                offset_beat: *offset_beat,
            })
            .collect();

        let melody = melody_to_frames(&notes, case.num_frames);
        let chords = chords_to_frames(&spans, case.num_frames);
        let melody_ids = melody.as_ref().ok().map(|f| {
            f.iter()
                .map(|&m| vocab.melody_id(m).unwrap())
                .collect::<Vec<_>>()
        });
        let chord_ids = chords.as_ref().ok().map(|f| {
            f.iter()
                .map(|&c| vocab.chord_id(c).unwrap())
                .collect::<Vec<_>>()
        });
        assert_eq!(melody_ids, case.melody_frames, "{context}: melody frames");
        assert_eq!(chord_ids, case.chord_frames, "{context}: chord frames");

        if let Ok(melody) = &melody {
            let decoded = frames_to_notes(melody);
            if let Some(reference) = &case.decoded_melody {
                let ours: Vec<_> = decoded
                    .iter()
                    .map(|n| (n.pitch, n.onset_beat, n.offset_beat))
                    .collect();
                assert_eq!(&ours, reference, "{context}: decoded melody");
            }
            let again = melody_to_frames(&decoded, melody.len()).unwrap();
            assert_eq!(
                again,
                without_stray_holds(melody),
                "{context}: melody round trip"
            );
        }
        if let Ok(chords) = &chords {
            let decoded = frames_to_chord_spans(chords);
            if let Some(reference) = &case.decoded_chords {
                let ours: Vec<_> = decoded
                    .iter()
                    .map(|c| {
                        (
                            vocab.name(c.chord).unwrap().to_string(),
                            c.onset_beat,
                            c.offset_beat,
                        )
                    })
                    .collect();
                assert_eq!(&ours, reference, "{context}: decoded chords");
            }
            let again = chords_to_frames(&decoded, chords.len()).unwrap();
            assert_eq!(
                again,
                without_stray_chord_holds(chords),
                "{context}: chord round trip"
            );
        }

        if let (Ok(melody), Ok(chords)) = (&melody, &chords) {
            let online = vocab.online_sequence(chords, melody).unwrap();
            assert_eq!(
                Some(&online),
                case.online.as_ref(),
                "{context}: online sequence"
            );
            let split = vocab.split_online_sequence(&online).unwrap();
            assert_eq!(
                &split,
                &(chords.clone(), melody.clone()),
                "{context}: split"
            );
            let encoder = vocab.encoder_sequence(melody).unwrap();
            assert_eq!(
                Some(&encoder),
                case.encoder.as_ref(),
                "{context}: encoder sequence"
            );
            let decoder = vocab.decoder_sequence(chords).unwrap();
            assert_eq!(
                Some(&decoder),
                case.decoder.as_ref(),
                "{context}: decoder sequence"
            );
        } else {
            assert!(
                case.online.is_none(),
                "{context}: reference built a sequence"
            );
        }
    }
}

#[test]
fn the_fixture_exercises_the_corner_cases() {
    let fx = fixture();
    let failing = fx
        .cases
        .iter()
        .filter(|c| c.melody_frames.is_none() || c.chord_frames.is_none());
    assert!(failing.count() >= 2, "late onsets must be covered");
    let overwritten = fx
        .cases
        .iter()
        .filter(|c| c.melody_frames.is_some() && c.decoded_melody.is_none());
    assert!(
        overwritten.count() >= 1,
        "overwritten notes (stray holds) must be covered"
    );
}
