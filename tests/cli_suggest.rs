//! `comper suggest` end to end: a melody file in, distinct named options and .mid files out.

use std::path::{Path, PathBuf};
use std::process::Command;

use comper_music::midi_file::read_midi;

const WEIGHTS: &str = "tests/fixtures/parity/d64_h2_dh32";

fn out_dir(case: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli_suggest_{case}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn comper(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_comper"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the comper binary runs")
}

#[test]
fn json_lists_distinct_options_and_writes_one_file_each() {
    let out = out_dir("json");
    let output = comper(&[
        "suggest",
        "assets/ode_to_joy.mid",
        "--weights",
        WEIGHTS,
        "--seed",
        "7",
        "--temperature",
        "1.0",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // The fixture model hears 47 frames, so the 8-bar tune is cut to 2 bars and says so.
    assert!(stderr.contains("left out"), "{stderr}");

    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let options = json["options"].as_array().unwrap();
    assert_eq!(options.len(), 5);
    let mut seen = std::collections::HashSet::new();
    for option in options {
        assert!(option["log_likelihood"].as_f64().unwrap() <= 0.0);
        let chords = option["chords"].as_array().unwrap();
        let mut last_end = 0.0;
        for chord in chords {
            let symbol = chord["symbol"].as_str().unwrap();
            let (start, end) = (
                chord["start_beat"].as_f64().unwrap(),
                chord["end_beat"].as_f64().unwrap(),
            );
            assert!(!symbol.is_empty());
            assert!(start >= last_end && end > start && end <= 8.0, "{chord}");
            last_end = end;
        }
        assert!(
            seen.insert(option["chords"].to_string()),
            "options repeat: {option}"
        );
    }
    for i in 1..=5 {
        let song = read_midi(&out.join(format!("option-{i}.mid"))).unwrap();
        assert_eq!(song.tempo_bpm, 100.0);
        assert!(song
            .parts
            .iter()
            .any(|p| p.name.as_deref() == Some("Melody")));
    }
}

#[test]
fn chart_output_names_every_option() {
    let out = out_dir("chart");
    let output = comper(&[
        "suggest",
        "assets/twinkle_twinkle.mid",
        "--weights",
        WEIGHTS,
        "--options",
        "3",
        "--seed",
        "1",
        "--chords-only",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for i in 1..=3 {
        assert!(
            stdout.contains(&format!("Option {i}: ")) && stdout.contains("(melody in chord"),
            "{stdout}"
        );
    }
    let song = read_midi(&out.join("option-1.mid")).unwrap();
    assert!(song
        .parts
        .iter()
        .all(|p| p.name.as_deref() != Some("Melody")));
}

#[test]
fn missing_weights_and_bad_melody_are_clear_errors() {
    let output = Command::new(env!("CARGO_BIN_EXE_comper"))
        .args(["suggest", "assets/ode_to_joy.mid"])
        .env("COMPER_WEIGHTS", "/nonexistent/comper-weights")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("/nonexistent/comper-weights"), "{stderr}");

    let output = comper(&["suggest", "Cargo.toml", "--weights", WEIGHTS]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("Cargo.toml"), "{stderr}");
}

#[test]
fn options_are_offered_best_first_each_different_and_described() {
    let out = out_dir("fit");
    let output = comper(&[
        "suggest",
        "assets/frere_jacques.mid",
        "--weights",
        WEIGHTS,
        "--seed",
        "4",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let options = json["options"].as_array().unwrap();
    assert_eq!(options.len(), 5);
    let fits: Vec<f64> = options
        .iter()
        .map(|o| o["melody_fit"].as_f64().unwrap())
        .collect();
    assert!(fits.iter().all(|f| (0.0..=1.0).contains(f)), "{fits:?}");
    let scores: Vec<f64> = options
        .iter()
        .map(|o| o["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.iter().all(|&s| s <= scores[0]),
        "the critic's best comes first: {scores:?}"
    );
    let charts: std::collections::HashSet<String> =
        options.iter().map(|o| o["chords"].to_string()).collect();
    assert_eq!(charts.len(), 5, "five different progressions");
    for option in options {
        let description = option["description"].as_str().unwrap();
        assert!(
            description.contains('I') || description.contains('i'),
            "{description}"
        );
    }
}
