//! Comper's chord-symbol parser against note_seq 0.0.5's `chord_symbol_pitches` and
//! `chord_symbol_bass`, for every name of the test vocabulary plus odd and invalid names.
//!
//! The fixture is written by `training/make_tokenizer_vectors.py`.

use comper_music::chord::{ChordError, ChordSymbol, ChordTable};
use comper_music::tokens::Vocabulary;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    pitches: Option<Vec<u8>>,
    pitches_error: Option<String>,
    bass: Option<u8>,
    bass_error: Option<String>,
    in_vocabulary: bool,
}

fn entries() -> Vec<Entry> {
    let text = include_str!("fixtures/chord_vectors.json");
    serde_json::from_str::<Fixture>(text).unwrap().entries
}

#[test]
fn pitches_and_bass_match_note_seq() {
    for e in entries() {
        let name = &e.name;
        let parsed = ChordSymbol::parse(name);
        match (&e.bass, &e.bass_error) {
            (Some(bass), None) => {
                let symbol = parsed
                    .as_ref()
                    .unwrap_or_else(|err| panic!("{name:?}: {err}"));
                assert_eq!(symbol.bass_pitch_class(), *bass, "{name:?}: bass");
            }
            (None, Some(_)) => {
                assert_eq!(parsed, Err(ChordError::Unknown(name.clone())), "{name:?}");
                continue;
            }
            _ => panic!("{name:?}: fixture needs exactly one of bass / bass_error"),
        }
        let pitches = parsed.unwrap().pitch_classes();
        match (&e.pitches, &e.pitches_error) {
            (Some(expected), None) => assert_eq!(pitches.as_ref(), Ok(expected), "{name:?}"),
            (None, Some(reason)) if reason.starts_with("Scale degree already in chord") => {
                assert!(
                    matches!(pitches, Err(ChordError::DegreeAlreadyPresent { .. })),
                    "{name:?}: {pitches:?}"
                );
            }
            (None, Some(reason)) if reason.starts_with("Scale degree not in chord") => {
                assert!(
                    matches!(pitches, Err(ChordError::DegreeMissing { .. })),
                    "{name:?}: {pitches:?}"
                );
            }
            _ => panic!("{name:?}: unexpected fixture entry"),
        }
    }
}

#[test]
fn names_print_back_and_reparse() {
    for e in entries() {
        let Ok(symbol) = ChordSymbol::parse(&e.name) else {
            continue;
        };
        let printed = symbol.to_string();
        assert_eq!(
            ChordSymbol::parse(&printed).as_ref(),
            Ok(&symbol),
            "{:?}",
            e.name
        );
        if e.in_vocabulary {
            assert_eq!(printed, e.name, "canonical names print back unchanged");
        }
    }
}

#[test]
fn chord_table_of_the_vocabulary_agrees_and_has_no_failures() {
    let entries = entries();
    let names: Vec<String> = entries
        .iter()
        .filter(|e| e.in_vocabulary)
        .map(|e| e.name.clone())
        .collect();
    assert!(names.len() >= 300);
    let table = ChordTable::new(&Vocabulary::new(names).unwrap());
    assert_eq!(table.failures().count(), 0);
    for (index, e) in entries.iter().filter(|e| e.in_vocabulary).enumerate() {
        let tones = table.tones(index as u16).unwrap();
        assert_eq!(
            Some(&tones.pitch_classes),
            e.pitches.as_ref(),
            "{:?}",
            e.name
        );
        assert_eq!(Some(tones.bass), e.bass, "{:?}", e.name);
    }
}

#[test]
fn the_fixture_covers_errors_and_quirks() {
    let entries = entries();
    let count = |f: &dyn Fn(&Entry) -> bool| entries.iter().filter(|e| f(e)).count();
    assert!(count(&|e| e.bass_error.is_some()) >= 10);
    assert!(count(&|e| e.bass.is_some() && e.pitches_error.is_some()) >= 3);
    assert!(count(&|e| e.in_vocabulary && e.name.contains('/')) >= 50);
}
