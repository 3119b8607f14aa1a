//! The harmony benchmark's cases and what the guide, the critic and the option selection do
//! with the shipped models on them.

use std::path::{Path, PathBuf};

use comper_eval::cases::read_cases;
use comper_eval::melody_eval::score_case;
use comper_generate::live::LiveConfig;
use comper_generate::runtime::{simulate_jam, JamSettings, ModelPair, ReplanTime};
use comper_generate::sample::SamplingParams;
use comper_generate::suggest::{frames_per_bar, suggest, Harmonizer, Phrase};
use comper_model::{LoadedModel, LoadedOffline};
use comper_music::harmony::critic::ChordSounds;
use comper_music::harmony::GuideSettings;
use comper_music::harmony::Triad;
use comper_realtime::frames::Note;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::Arc;

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
    let sounds = ChordSounds::new(&comper_music::chord::ChordTable::new(&model.vocabulary));
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

/// A tune that walks up and down the tones of C–Am–F–G, one chord per bar, four times over:
/// the notes (quarter notes) and each bar's triad.
fn looped_arpeggios() -> (Vec<Note>, Vec<Triad>) {
    let bars = [
        ([60, 64, 67, 64], Triad::of_symbol("C")),
        ([57, 60, 64, 60], Triad::of_symbol("Am")),
        ([65, 69, 72, 69], Triad::of_symbol("F")),
        ([67, 71, 74, 71], Triad::of_symbol("G")),
    ];
    let (mut notes, mut triads) = (Vec::new(), Vec::new());
    for bar in 0..16 {
        let (pitches, triad) = bars[bar % 4];
        for (beat, pitch) in pitches.into_iter().enumerate() {
            let onset = (bar * 4 + beat) as f64;
            notes.push(Note {
                pitch,
                onset_beat: onset,
                offset_beat: onset + 0.9,
            });
        }
        triads.push(triad.unwrap());
    }
    (notes, triads)
}

/// Share of the bar lines of the loop's last two passes (bars 9–16) where Live already plays the
/// bar's chord: a chord chosen a beat before the bar's notes are heard, so only a progression
/// remembered gets it right.
fn live_on_a_loop(guide: GuideSettings) -> f64 {
    let models = ModelPair::new(
        Arc::new(LoadedModel::load(&root().join("weights/comper-online")).unwrap()),
        Some(Arc::new(
            LoadedOffline::load(&root().join("weights/comper-offline")).unwrap(),
        )),
    );
    let sounds = ChordSounds::new(&comper_music::chord::ChordTable::new(
        &models.online.vocabulary,
    ));
    let (notes, triads) = looped_arpeggios();
    let config = LiveConfig {
        change_grid: 2,
        guide,
        ..LiveConfig::default()
    };
    let settings = JamSettings {
        tempo_bpm: 100.0,
        replan_time: ReplanTime::Fixed(0.0),
        ..JamSettings::default()
    };
    let report = simulate_jam(&models, &notes, &config, &settings).unwrap();
    let played = sounds.track(&report.played);
    let bars = 8..16;
    let agreeing = bars
        .clone()
        .filter(|&bar| {
            let frame = bar * 16;
            played.get(frame).copied().flatten().map(|(_, t)| t) == Some(triads[bar])
        })
        .count();
    agreeing as f64 / bars.len() as f64
}

#[test]
fn live_brings_back_the_chords_of_a_progression_it_has_heard() {
    let with_repeats = live_on_a_loop(GuideSettings::default());
    let without = live_on_a_loop(GuideSettings {
        repeat: 0.0,
        ..GuideSettings::default()
    });
    eprintln!("bar lines right: {with_repeats:.3} with the repeat term, {without:.3} without");
    assert!(
        with_repeats >= 0.85 && with_repeats > without,
        "bar lines of the third and fourth pass on the right chord: {with_repeats:.3} with the \
         repeat term, {without:.3} without"
    );
}

#[test]
fn the_key_heard_is_the_labelled_key() {
    use comper_music::harmony::melody_key;
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
