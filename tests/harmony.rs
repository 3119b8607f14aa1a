//! The harmony benchmark's cases and what the guide, the critic and the option selection do
//! with the shipped models on them.

use std::path::{Path, PathBuf};

use comper::eval::cases::read_cases;
use comper::eval::melody_eval::score_case;
use comper::harmony::critic::ChordSounds;
use comper::harmony::GuideSettings;
use comper::model::LoadedOffline;
use comper::sample::SamplingParams;
use comper::suggest::{frames_per_bar, suggest, Harmonizer, Phrase};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// A fresh folder under the system's temporary directory.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("comper-cases-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_committed_case_parses() {
    let cases = read_cases(&root().join("training/melodies/progressions")).unwrap();
    assert!(cases.len() >= 120, "{} progression cases", cases.len());
    for case in &cases {
        assert!(!case.notes.is_empty(), "{} has no melody", case.name);
        assert!(!case.reference.is_empty(), "{} has no chords", case.name);
    }
}

#[test]
fn a_broken_case_is_a_clear_error_naming_the_file() {
    let dir = scratch_dir("bad");
    let json = dir.join("bad.json");
    std::fs::write(&json, r#"{"key": "C", "time_signature": [4, 4], "chords": [{"symbol": "Cxyz", "start_beat": 0, "end_beat": 4}]}"#).unwrap();
    let message = read_cases(&dir).unwrap_err().to_string();
    assert!(
        message.contains("bad.json") && message.contains("Cxyz"),
        "{message}"
    );
    std::fs::write(
        &json,
        r#"{"key": "H", "time_signature": [4, 4], "chords": []}"#,
    )
    .unwrap();
    let message = read_cases(&dir).unwrap_err().to_string();
    assert!(message.contains("unknown key"), "{message}");
    assert!(read_cases(&scratch_dir("empty")).is_err());
}

/// Suggest on a spread of progression cases, guided or not: (mean best agreement, mean
/// note-in-chord, smallest number of distinct options).
fn suggest_on_cases(guide: GuideSettings) -> (f64, f64, usize) {
    let model = LoadedOffline::load(&root().join("weights/comper-offline")).unwrap();
    let harmonizer = Harmonizer::Offline(&model);
    let sounds = ChordSounds::new(&comper::chord::ChordTable::new(&model.vocabulary));
    let cases = read_cases(&root().join("training/melodies/progressions")).unwrap();
    let params = SamplingParams {
        temperature: 0.8,
        change_grid: 2,
        ..SamplingParams::default()
    };
    let mut rng = StdRng::seed_from_u64(5);
    let picked: Vec<_> = cases.iter().step_by(cases.len() / 8).take(8).collect();
    let (mut agreement, mut fit, mut distinct) = (0.0, 0.0, usize::MAX);
    for case in &picked {
        let phrase = Phrase::from_notes(&case.notes, case.time_signature, harmonizer.max_frames());
        let options = suggest(harmonizer, &phrase, &[], 5, &params, &guide, &mut rng).unwrap();
        assert_eq!(options.len(), 5);
        assert!(options.iter().all(|o| !o.description.is_empty()));
        let tracks: Vec<_> = options.iter().map(|o| sounds.track(&o.frames)).collect();
        let reference = case.reference_frames(phrase.melody.len());
        let score = score_case(
            &case.name,
            &phrase.melody,
            &reference,
            &tracks,
            case.key,
            frames_per_bar(case.time_signature),
            0,
        );
        agreement += score.agreement_best;
        fit += score.note_in_chord;
        distinct = distinct.min(score.distinct);
    }
    let n = picked.len() as f64;
    (agreement / n, fit / n, distinct)
}

#[test]
fn the_guide_makes_options_fit_the_melody_and_they_stay_different() {
    let (guided_agreement, guided_fit, guided_distinct) =
        suggest_on_cases(GuideSettings::default());
    let (free_agreement, free_fit, _) = suggest_on_cases(GuideSettings::OFF);
    assert_eq!(guided_distinct, 5, "five different options on every case");
    assert!(
        guided_fit > free_fit + 0.05,
        "guided note-in-chord {guided_fit:.3} vs the model alone {free_fit:.3}"
    );
    assert!(
        guided_agreement > free_agreement,
        "guided agreement {guided_agreement:.3} vs the model alone {free_agreement:.3}"
    );
    assert!(
        guided_agreement >= 0.5,
        "best-of-five agreement {guided_agreement:.3}"
    );
}

#[test]
fn the_key_heard_is_the_labelled_key() {
    use comper::harmony::melody_key;
    let mut total = 0;
    let mut right = 0;
    let mut wrong = Vec::new();
    for set in ["tunes", "progressions"] {
        for case in read_cases(&root().join("training/melodies").join(set)).unwrap() {
            let phrase = Phrase::from_notes(&case.notes, case.time_signature, 1024);
            // The first four bars too: the plugin captures four-bar phrases, which often end on
            // a half cadence.
            let bar = frames_per_bar(case.time_signature);
            for melody in [
                &phrase.melody[..],
                &phrase.melody[..(4 * bar).min(phrase.melody.len())],
            ] {
                total += 1;
                let heard = melody_key(melody);
                if heard == case.key {
                    right += 1;
                } else {
                    wrong.push(format!(
                        "{} {} heard {}",
                        case.name,
                        case.key.name(),
                        heard.name()
                    ));
                }
            }
        }
    }
    let share = right as f64 / total as f64;
    eprintln!("key right on {right} of {total}: {wrong:?}");
    assert!(share >= 0.62, "key right on {share:.2} of phrases");
}
