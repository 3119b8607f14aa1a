//! `comper eval`: the measures on hand-made tracks with known answers, the baselines, and an
//! end-to-end run on a tiny data folder and a tiny random model written by the test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use comper_eval::baselines::{diatonic_track, ChordStatistics, TriadLookup};
use comper_eval::best_of::{best_of, BestOfOptions};
use comper_eval::data::{evenly_spaced, Split};
use comper_eval::metrics::{chord_durations, entropy_bits, offbeat_chords, MetricTotals};
use comper_eval::nll::{offline_log_likelihoods, NllTotals};
use comper_eval::{evaluate, EvalError, EvalOptions};
use comper_model::weights::{expected_offline_shapes, expected_shapes, write_folder, INV_FREQ_KEY};
use comper_model::{LoadedModel, LoadedOffline, ModelConfig, ModelKind, OfflineConfig};
use comper_music::chord::ChordTable;
use comper_music::fit::{chord_masks, note_in_chord_counts};
use comper_music::harmony::key::{find_key, pitch_class_weights, Key};
use comper_music::tokens::Vocabulary;
use comper_realtime::frames::{ChordFrame, MelodyFrame};
use rand::SeedableRng;

const ROOTS: [&str; 12] = [
    "C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B",
];

/// Major, minor and diminished triads on all twelve roots (36 chords).
fn triad_vocabulary() -> Vocabulary {
    let names = ROOTS
        .iter()
        .flat_map(|r| [r.to_string(), format!("{r}m"), format!("{r}o")])
        .collect();
    Vocabulary::new(names).unwrap()
}

fn chord(vocab: &Vocabulary, name: &str) -> u16 {
    vocab.index_of(name).unwrap()
}

/// `length` frames of one chord: an onset, then holds.
fn chord_run(index: u16, length: usize) -> Vec<ChordFrame> {
    let mut frames = vec![ChordFrame::Hold(index); length];
    frames[0] = ChordFrame::Onset(index);
    frames
}

/// `length` frames of one note: an onset, then holds.
fn note_run(pitch: u8, length: usize) -> Vec<MelodyFrame> {
    let mut frames = vec![MelodyFrame::Hold(pitch); length];
    frames[0] = MelodyFrame::Onset(pitch);
    frames
}

fn masks(vocab: &Vocabulary) -> Vec<u16> {
    chord_masks(&ChordTable::new(vocab))
}

#[test]
fn notes_all_in_the_chord_score_one() {
    let vocab = triad_vocabulary();
    let c = chord(&vocab, "C");
    // C major arpeggio over C in several octaves, with rests that do not count.
    let melody: Vec<MelodyFrame> = [60, 64, 67, 72, 52]
        .iter()
        .flat_map(|&p| {
            let mut n = note_run(p, 3);
            n.push(MelodyFrame::Silence);
            n
        })
        .collect();
    let chords = chord_run(c, melody.len());
    assert_eq!(
        note_in_chord_counts(&melody, &chords, &masks(&vocab)),
        (15, 15)
    );
    let mut totals = MetricTotals::default();
    totals.add(&melody, &chords, &masks(&vocab));
    assert_eq!(totals.finish().note_in_chord, 1.0);
}

#[test]
fn clashing_notes_and_chordless_frames_count_against() {
    let vocab = triad_vocabulary();
    let am = chord(&vocab, "Am");
    // D (not in Am) for 2 frames, A (in Am) for 2 frames, E for 4 frames of which 2 have no chord.
    let melody = [note_run(62, 2), note_run(69, 2), note_run(64, 4)].concat();
    let chords = [chord_run(am, 6), vec![ChordFrame::Silence; 2]].concat();
    assert_eq!(
        note_in_chord_counts(&melody, &chords, &masks(&vocab)),
        (4, 8)
    );
    let mut totals = MetricTotals::default();
    totals.add(&melody, &chords, &masks(&vocab));
    let metrics = totals.finish();
    assert_eq!(metrics.note_in_chord, 0.5);
    assert_eq!(metrics.silence_ratio, 0.25);
    assert_eq!(metrics.melody_frames, 8);
}

#[test]
fn a_slash_bass_counts_as_a_chord_tone() {
    let vocab = Vocabulary::new(vec!["C/Bb".into(), "C".into()]).unwrap();
    let masks = masks(&vocab);
    let bb = note_run(70, 1);
    assert_eq!(
        note_in_chord_counts(&bb, &[ChordFrame::Onset(0)], &masks),
        (1, 1)
    );
    assert_eq!(
        note_in_chord_counts(&bb, &[ChordFrame::Onset(1)], &masks),
        (0, 1)
    );
}

#[test]
fn entropy_of_chord_lengths() {
    assert_eq!(entropy_bits([5u64]), 0.0);
    assert_eq!(entropy_bits([3u64, 3]), 1.0);
    assert_eq!(entropy_bits([2u64, 2, 2, 2, 0]), 2.0);
    assert_eq!(entropy_bits(Vec::<u64>::new()), 0.0);

    let vocab = triad_vocabulary();
    let (c, g) = (chord(&vocab, "C"), chord(&vocab, "G"));
    let melody = vec![MelodyFrame::Silence; 32];
    // Equal lengths: one length only, zero bits.
    let equal = [
        chord_run(c, 8),
        chord_run(g, 8),
        chord_run(c, 8),
        chord_run(g, 8),
    ]
    .concat();
    let mut totals = MetricTotals::default();
    totals.add(&melody, &equal, &masks(&vocab));
    assert_eq!(totals.finish().chord_length_entropy_bits, 0.0);
    // Lengths 4, 4, 8, 16: p = (1/2, 1/4, 1/4) → 1.5 bits.
    let mixed = [
        chord_run(c, 4),
        chord_run(g, 4),
        chord_run(c, 8),
        chord_run(g, 16),
    ]
    .concat();
    assert_eq!(chord_durations(&mixed), vec![4, 4, 8, 16]);
    let mut totals = MetricTotals::default();
    totals.add(&melody, &mixed, &masks(&vocab));
    assert_eq!(totals.finish().chord_length_entropy_bits, 1.5);
}

#[test]
fn chords_that_start_between_beats_are_counted() {
    let vocab = triad_vocabulary();
    let (c, f) = (chord(&vocab, "C"), chord(&vocab, "F"));
    let melody = vec![MelodyFrame::Silence; 16];
    // C on beat 1, F on the second 16th of beat 2, C on beat 3 (frame 8), F at frame 13.
    let chords = [
        chord_run(c, 5),
        chord_run(f, 3),
        chord_run(c, 5),
        chord_run(f, 3),
    ]
    .concat();
    assert_eq!(offbeat_chords(&chords), (2, 4));
    let mut totals = MetricTotals::default();
    totals.add(&melody, &chords, &masks(&vocab));
    assert_eq!(totals.finish().offbeat_changes, 0.5);
}

#[test]
fn changes_per_bar_count_onsets_per_sixteen_frames() {
    let vocab = triad_vocabulary();
    let (c, f) = (chord(&vocab, "C"), chord(&vocab, "F"));
    let melody = vec![MelodyFrame::Silence; 64];
    // Four chords of 8 frames, then 32 frames of one chord: 5 chords in 4 bars.
    let chords = [
        chord_run(c, 8),
        chord_run(f, 8),
        chord_run(c, 8),
        chord_run(f, 8),
        chord_run(c, 32),
    ]
    .concat();
    let mut totals = MetricTotals::default();
    totals.add(&melody, &chords, &masks(&vocab));
    let metrics = totals.finish();
    assert_eq!(metrics.changes_per_bar, 1.25);
    assert_eq!(metrics.chords, 5);
    assert_eq!(metrics.offbeat_changes, 0.0);
    assert_eq!(metrics.silence_ratio, 0.0);
    // A held chord across silence and a stray hold after silence both start a new chord.
    let broken = [
        chord_run(c, 4),
        vec![ChordFrame::Silence; 4],
        vec![ChordFrame::Hold(c); 8],
    ]
    .concat();
    assert_eq!(chord_durations(&broken), vec![4, 8]);
}

/// One octave of a scale, each note a quarter note, starting at `tonic`.
fn scale(tonic: u8, steps: &[u8]) -> Vec<MelodyFrame> {
    steps
        .iter()
        .chain(std::iter::once(&12))
        .flat_map(|&s| note_run(tonic + s, 4))
        .collect()
}

const MAJOR_STEPS: [u8; 7] = [0, 2, 4, 5, 7, 9, 11];

#[test]
fn the_key_finder_hears_major_and_minor_scales() {
    let c_major = scale(60, &MAJOR_STEPS);
    assert_eq!(
        find_key(&pitch_class_weights(&c_major)),
        Key {
            tonic: 0,
            minor: false
        }
    );
    let g_major = scale(67, &MAJOR_STEPS);
    assert_eq!(
        find_key(&pitch_class_weights(&g_major)),
        Key {
            tonic: 7,
            minor: false
        }
    );
    // An A-minor melody that dwells on its tonic triad.
    let a_minor = [
        note_run(69, 8),
        note_run(72, 4),
        note_run(76, 8),
        note_run(71, 2),
        note_run(74, 2),
        note_run(68, 2),
        note_run(69, 8),
    ]
    .concat();
    assert_eq!(
        find_key(&pitch_class_weights(&a_minor)),
        Key {
            tonic: 9,
            minor: true
        }
    );
}

#[test]
fn the_diatonic_heuristic_picks_the_covering_triad_per_bar() {
    let vocab = triad_vocabulary();
    let lookup = TriadLookup::new(&vocab, &ChordTable::new(&vocab));
    assert_eq!(lookup.find(0, &[0, 4, 7]), Some(chord(&vocab, "C")));
    assert_eq!(lookup.find(1, &[0, 3, 7]), Some(chord(&vocab, "Dbm")));
    assert_eq!(lookup.find(0, &[0, 4, 8]), None);
    // C major: bar 1 arpeggiates C, bar 2 G7-ish (G B D F), bar 3 silent, bar 4 C again.
    let melody = [
        note_run(60, 4),
        note_run(64, 4),
        note_run(67, 8),
        note_run(67, 4),
        note_run(71, 4),
        note_run(74, 4),
        note_run(65, 4),
        vec![MelodyFrame::Silence; 16],
        note_run(72, 8),
        note_run(64, 4),
        note_run(62, 4),
    ]
    .concat();
    let track = diatonic_track(&melody, &[0, 16, 32, 48], &lookup);
    let (c, g) = (chord(&vocab, "C"), chord(&vocab, "G"));
    let expected = [chord_run(c, 16), chord_run(g, 32), chord_run(c, 16)].concat();
    assert_eq!(track, expected);
    // Without bar lines it cuts every 16 frames, which here gives the same answer.
    assert_eq!(diatonic_track(&melody, &[], &lookup), expected);
}

#[test]
fn training_statistics_count_onsets_and_lengths_and_sample_from_them() {
    let vocab = triad_vocabulary();
    let (c, g) = (chord(&vocab, "C"), chord(&vocab, "G"));
    let mut stats = ChordStatistics::new(vocab.num_chords());
    stats.add(&[chord_run(c, 4), chord_run(g, 8), chord_run(c, 4)].concat());
    assert_eq!(stats.onsets()[c as usize], 2);
    assert_eq!(stats.onsets()[g as usize], 1);
    assert_eq!(stats.onsets().iter().sum::<u64>(), 3);
    assert_eq!(stats.durations()[4], 2);
    assert_eq!(stats.durations()[8], 1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let track = stats.sample_track(100, &mut rng);
    assert_eq!(track.len(), 100);
    for chord in &track {
        assert!(matches!(chord.chord(), Some(i) if i == c || i == g));
    }
    // Every chord but the last (cut at the end) has a length seen in training.
    let lengths = chord_durations(&track);
    for &length in &lengths[..lengths.len() - 1] {
        assert!(length == 4 || length == 8, "length {length}");
    }
    // Nothing counted: silence.
    let empty = ChordStatistics::new(3);
    assert_eq!(
        empty.sample_track(5, &mut rng),
        vec![ChordFrame::Silence; 5]
    );
}

#[test]
fn evenly_spaced_subsets_are_deterministic_and_spread() {
    assert_eq!(evenly_spaced(10, 20), (0..10).collect::<Vec<_>>());
    assert_eq!(evenly_spaced(10, 5), vec![0, 2, 4, 6, 8]);
    assert_eq!(evenly_spaced(946, 3), vec![0, 315, 630]);
    assert!(evenly_spaced(5, 0).is_empty());
}

// --- end to end -----------------------------------------------------------------------------

fn scratch_dir(case: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("comper-eval-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Example `k` of the fixture: a 32-frame C-major melody (bars every 16 frames) with chords
/// that follow it exactly, so the ground truth is 100% in chord.
fn fixture_example(vocab: &Vocabulary, k: usize) -> (Vec<ChordFrame>, Vec<MelodyFrame>) {
    let (c, g) = (chord(vocab, "C"), chord(vocab, "G"));
    let shift = (k % 3) as u8;
    let melody = [
        note_run(60 + 4 * shift.min(1), 8),
        note_run(67, 8),
        note_run(71, 8),
        note_run(62, 8),
    ]
    .concat();
    let chords = [chord_run(c, 16), chord_run(g, 16)].concat();
    (chords, melody)
}

/// A split of `count` fixture examples as `training/convert.py` writes it.
fn write_split(path: &Path, vocab: &Vocabulary, count: usize) {
    let mut tokens: Vec<i16> = Vec::new();
    let mut offsets: Vec<i64> = vec![0];
    let mut bars: Vec<i16> = Vec::new();
    let mut bar_offsets: Vec<i64> = vec![0];
    for k in 0..count {
        let (chords, melody) = fixture_example(vocab, k);
        let ids = vocab.online_sequence(&chords, &melody).unwrap();
        tokens.extend(ids.iter().map(|&id| id as i16));
        offsets.push(tokens.len() as i64);
        bars.extend([0i16, 16]);
        bar_offsets.push(bars.len() as i64);
    }
    let cpu = &Device::Cpu;
    let arrays = [
        ("tokens", Tensor::new(tokens.as_slice(), cpu).unwrap()),
        ("offsets", Tensor::new(offsets.as_slice(), cpu).unwrap()),
        ("bars", Tensor::new(bars.as_slice(), cpu).unwrap()),
        (
            "bar_offsets",
            Tensor::new(bar_offsets.as_slice(), cpu).unwrap(),
        ),
    ];
    Tensor::write_npz(&arrays, path).unwrap();
}

fn write_data_folder(dir: &Path, vocab: &Vocabulary) {
    write_split(&dir.join("test.npz"), vocab, 6);
    write_split(&dir.join("train.npz"), vocab, 4);
    let names = serde_json::to_string(vocab.names()).unwrap();
    std::fs::write(dir.join("chord_names.json"), names).unwrap();
    // Examples alternate between two source datasets.
    let meta: String = (0..6)
        .map(|k| {
            format!(
                "{{\"dataset\": \"{}\", \"song\": \"s{k}\"}}\n",
                ["a", "b"][k % 2]
            )
        })
        .collect();
    std::fs::write(dir.join("test_meta.jsonl"), meta).unwrap();
}

/// A tiny decoder with random weights, written as a weights folder.
fn write_random_model(dir: &Path, vocab: &Vocabulary) {
    let config = ModelConfig {
        name: "tiny-random".into(),
        dim: 16,
        depth: 1,
        heads: 2,
        dim_head: 8,
        num_tokens: vocab.num_tokens() as usize,
        max_seq_len: 66,
    };
    let rotary_half = config.default_rotary_dim() / 2;
    let mut tensors = HashMap::new();
    for (name, shape) in expected_shapes(&config, rotary_half) {
        let tensor = if name == INV_FREQ_KEY {
            let freqs: Vec<f32> = (0..rotary_half)
                .map(|i| 10000f32.powf(-(i as f32) / rotary_half as f32))
                .collect();
            Tensor::new(freqs.as_slice(), &Device::Cpu).unwrap()
        } else if name.contains("qk_norm") {
            Tensor::ones(shape, DType::F32, &Device::Cpu).unwrap()
        } else {
            Tensor::randn(0f32, 0.2, shape, &Device::Cpu).unwrap()
        };
        tensors.insert(name, tensor);
    }
    write_folder(dir, &config, vocab, &tensors).unwrap();
}

/// A tiny offline encoder–decoder with random weights, written as a weights folder.
fn write_random_offline(dir: &Path, vocab: &Vocabulary) {
    let config = OfflineConfig {
        kind: ModelKind::Offline,
        base: ModelConfig {
            name: "tiny-offline".into(),
            dim: 16,
            depth: 1,
            heads: 2,
            dim_head: 8,
            num_tokens: vocab.num_tokens() as usize,
            max_seq_len: 34,
        },
        enc_depth: 1,
    };
    let mut tensors = HashMap::new();
    for (name, shape) in expected_offline_shapes(&config) {
        let tensor = if name.contains("qk_norm") {
            Tensor::ones(shape, DType::F32, &Device::Cpu).unwrap()
        } else {
            Tensor::randn(0f32, 0.2, shape, &Device::Cpu).unwrap()
        };
        tensors.insert(name, tensor);
    }
    write_folder(dir, &config, vocab, &tensors).unwrap();
}

#[test]
fn the_offline_model_gets_its_own_rows_and_drives_suggest() {
    let vocab = triad_vocabulary();
    let data = scratch_dir("offline-data");
    let weights = scratch_dir("offline-online");
    let offline = scratch_dir("offline-weights");
    write_data_folder(&data, &vocab);
    write_random_model(&weights, &vocab);
    write_random_offline(&offline, &vocab);
    let options = EvalOptions {
        data_dir: data,
        weights: Some(weights),
        offline: Some(offline),
        samples: 2,
        temperature: 1.0,
        change_grid: 1,
        max_examples: Some(3),
        seed: 1,
        suggest: true,
        guide: comper_music::harmony::GuideSettings::default(),
    };
    let report = evaluate(&options, |_| {}).unwrap();
    let names: Vec<&str> = report.systems.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ground truth",
            "model (2 samples, T=1)",
            "offline model (2 samples, T=1)",
            "suggest, offline (2 of 16 candidates, T=1)",
            "training distribution",
            "diatonic heuristic"
        ]
    );
    let offline_row = &report.systems[2];
    assert_eq!(offline_row.metrics.frames, 2 * 3 * 32);
    let nll = offline_row.nll.unwrap();
    // One chord token per frame of the 3 examples, plus EOS among all tokens.
    assert_eq!(nll.chord_tokens, 3 * 32);
    assert_eq!(nll.tokens, 3 * 33);
    assert!(nll.per_chord_token.is_finite() && nll.per_chord_token > 0.0);
    assert_eq!(report.offline_name.as_deref(), Some("tiny-offline"));
    assert!(report
        .markdown()
        .contains("| offline model (2 samples, T=1) |"));
}

#[test]
fn a_written_split_reads_back_as_the_same_frames() {
    let vocab = triad_vocabulary();
    let dir = scratch_dir("split");
    write_split(&dir.join("test.npz"), &vocab, 3);
    let split = Split::read(&dir.join("test.npz")).unwrap();
    assert_eq!(split.len(), 3);
    let example = split.example(1, &vocab).unwrap();
    let (chords, melody) = fixture_example(&vocab, 1);
    assert_eq!(example.chords, chords);
    assert_eq!(example.melody, melody);
    assert_eq!(example.bars, vec![0, 16]);
    assert!(split.example(3, &vocab).is_err());
}

#[test]
fn nll_scores_every_chord_token_of_a_sequence() {
    let vocab = triad_vocabulary();
    let dir = scratch_dir("nll");
    write_random_model(&dir, &vocab);
    let model = LoadedModel::load(&dir).unwrap();
    let (chords, melody) = fixture_example(&vocab, 0);
    let ids = vocab.online_sequence(&chords, &melody).unwrap();
    let mut totals = NllTotals::default();
    totals.add_sequence(&model.decoder, &ids).unwrap();
    let nll = totals.finish().unwrap();
    assert_eq!(nll.chord_tokens, 32);
    assert_eq!(nll.tokens, 65);
    assert!(nll.per_chord_token.is_finite() && nll.per_chord_token > 0.0);
    assert!(NllTotals::default().finish().is_none());
}

#[test]
fn the_critic_scores_each_candidate_as_the_offline_nll_does() {
    let vocab = triad_vocabulary();
    let dir = scratch_dir("critic");
    write_random_offline(&dir, &vocab);
    let critic = LoadedOffline::load(&dir).unwrap();
    let (chords, melody) = fixture_example(&vocab, 0);
    let (c, g) = (chord(&vocab, "C"), chord(&vocab, "G"));
    let other = [chord_run(g, 16), chord_run(c, 16)].concat();
    let melody_ids = vocab.offline_melody(&melody).unwrap();
    let sequences: Vec<Vec<u32>> = [&chords, &other]
        .iter()
        .map(|track| vocab.decoder_sequence(track).unwrap())
        .collect();
    let batched = offline_log_likelihoods(&critic.model, &melody_ids, &sequences).unwrap();
    assert_eq!(batched.len(), 2);
    for (score, sequence) in batched.iter().zip(&sequences) {
        let mut totals = NllTotals::default();
        totals
            .add_offline(&critic.model, &melody_ids, sequence)
            .unwrap();
        let nll = totals.finish().unwrap();
        assert!(
            (score + nll.per_chord_token).abs() < 1e-4,
            "{score} vs {nll:?}"
        );
    }
    assert_ne!(batched[0], batched[1]);
}

#[test]
fn eval_runs_end_to_end_on_a_tiny_model() {
    let vocab = triad_vocabulary();
    let data = scratch_dir("data");
    let weights = scratch_dir("weights");
    write_data_folder(&data, &vocab);
    write_random_model(&weights, &vocab);

    let output = Command::new(env!("CARGO_BIN_EXE_comper"))
        .args(["eval", "--data"])
        .arg(&data)
        .arg("--weights")
        .arg(&weights)
        .args([
            "--samples",
            "2",
            "--max-songs",
            "4",
            "--seed",
            "3",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["examples_total"], 6);
    assert_eq!(report["examples_used"], 4);
    let systems = report["systems"].as_array().unwrap();
    let names: Vec<&str> = systems
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ground truth",
            "model (2 samples, T=1)",
            "suggest (2 of 12 candidates, T=1)",
            "training distribution",
            "diatonic heuristic"
        ]
    );
    let truth = &systems[0]["metrics"];
    assert_eq!(truth["note_in_chord"], 1.0);
    assert_eq!(truth["changes_per_bar"], 1.0);
    assert_eq!(truth["chord_length_entropy_bits"], 0.0);
    assert_eq!(truth["frames"], 4 * 32);
    // Examples 0, 1, 3, 4 are evaluated: 0 and 4 come from "a", 1 and 3 from "b".
    assert_eq!(truth_by_dataset(&systems[0], "a"), 2 * 32);
    assert_eq!(truth_by_dataset(&systems[0], "b"), 2 * 32);
    // Two samples per melody are pooled.
    assert_eq!(systems[1]["metrics"]["frames"], 2 * 4 * 32);
    assert!(systems[1]["nll"]["per_chord_token"].as_f64().unwrap() > 0.0);
    assert!(systems[0]["nll"].is_null());
    // Suggest offers as many progressions as asked, each one frame per melody frame.
    assert_eq!(systems[2]["metrics"]["frames"], 2 * 4 * 32);
    // The random baseline only knows C and G, 16 frames each.
    assert_eq!(systems[3]["metrics"]["changes_per_bar"], 1.0);
    assert_eq!(systems[4]["metrics"]["note_in_chord"], 1.0);

    // The markdown table names the subset and every system.
    let output = Command::new(env!("CARGO_BIN_EXE_comper"))
        .args(["eval", "--data"])
        .arg(&data)
        .args(["--max-songs", "2"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.contains("2 of 6 test examples"), "{table}");
    assert!(table.contains("| diatonic heuristic | 100.0% |"), "{table}");
    assert!(!table.contains("model"), "{table}");
}

fn truth_by_dataset(system: &serde_json::Value, dataset: &str) -> u64 {
    system["by_dataset"][dataset]["frames"].as_u64().unwrap()
}

#[test]
fn a_meta_file_that_does_not_match_the_split_is_an_error() {
    let vocab = triad_vocabulary();
    let data = scratch_dir("bad-meta");
    write_data_folder(&data, &vocab);
    std::fs::write(data.join("test_meta.jsonl"), "{\"dataset\": \"a\"}\n").unwrap();
    let options = EvalOptions {
        data_dir: data,
        weights: None,
        offline: None,
        samples: 1,
        temperature: 1.0,
        change_grid: 1,
        max_examples: None,
        seed: 0,
        suggest: true,
        guide: comper_music::harmony::GuideSettings::default(),
    };
    let err = evaluate(&options, |_| {}).unwrap_err();
    assert!(
        err.to_string().contains("1 entries for 6 examples"),
        "{err}"
    );
}

#[test]
fn a_model_with_another_vocabulary_is_refused() {
    let vocab = triad_vocabulary();
    let data = scratch_dir("mismatch-data");
    let weights = scratch_dir("mismatch-weights");
    write_data_folder(&data, &vocab);
    let mut names = vocab.names().to_vec();
    names.swap(0, 1);
    write_random_model(&weights, &Vocabulary::new(names).unwrap());
    let options = EvalOptions {
        data_dir: data,
        weights: Some(weights),
        offline: None,
        samples: 1,
        temperature: 1.0,
        change_grid: 1,
        max_examples: None,
        seed: 0,
        suggest: true,
        guide: comper_music::harmony::GuideSettings::default(),
    };
    let err = evaluate(&options, |_| {}).unwrap_err();
    assert!(matches!(err, EvalError::VocabularyMismatch { .. }), "{err}");
}

#[path = "common/chords.rs"]
mod chords;
use chords::continues;

// --- best-of ----------------------------------------------------------------------------------

fn best_of_options(
    data: &Path,
    weights: PathBuf,
    critic: PathBuf,
    min_change_share: f64,
) -> BestOfOptions {
    BestOfOptions {
        split: data.join("train.npz"),
        chord_names: data.join("chord_names.json"),
        weights,
        critic: Some(critic),
        examples: 10,
        candidates: 3,
        temperature: 1.0,
        change_grid: 1,
        critic_weight: 0.0,
        min_change_share,
        max_change_share: 1000.0,
        offbeat_weight: 0.0,
        seed: 5,
        out: data.join("kept.npz"),
    }
}

#[test]
fn best_of_keeps_the_best_fitting_candidate_of_each_melody() {
    let vocab = triad_vocabulary();
    let data = scratch_dir("best-of-data");
    let weights = scratch_dir("best-of-online");
    let critic = scratch_dir("best-of-critic");
    write_data_folder(&data, &vocab);
    write_random_model(&weights, &vocab);
    write_random_offline(&critic, &vocab);

    let options = best_of_options(&data, weights.clone(), critic.clone(), 0.0);
    let report = best_of(&options, |_| {}).unwrap();
    // The training split has 4 melodies; every one keeps a candidate when no movement is asked.
    assert_eq!((report.examples, report.kept), (4, 4));
    // Ranked by fit alone, the kept candidates fit at least as well as the average candidate.
    assert!(report.fit_kept >= report.fit_all);
    assert_eq!(report.fit_truth, 1.0);
    assert!(report.critic_all < 0.0 && report.critic_kept.is_finite());
    let kept = Split::read(&options.out).unwrap();
    assert_eq!(kept.len(), 4);
    for i in 0..4 {
        let example = kept.example(i, &vocab).unwrap();
        let (_, melody) = fixture_example(&vocab, i);
        assert_eq!(example.melody, melody);
        assert_eq!(example.bars, [0, 16]);
        assert_eq!(example.chords.len(), melody.len());
    }

    // On a beat grid every kept progression changes chord only on beats.
    let on_beats = BestOfOptions {
        change_grid: 4,
        ..best_of_options(&data, weights.clone(), critic.clone(), 0.0)
    };
    best_of(&on_beats, |_| {}).unwrap();
    let kept = Split::read(&on_beats.out).unwrap();
    for i in 0..kept.len() {
        let chords = kept.example(i, &vocab).unwrap().chords;
        for (t, pair) in chords.windows(2).enumerate() {
            assert!(
                continues(pair[0], pair[1]) || (t + 1) % 4 == 0,
                "example {i}, frame {}: {pair:?}",
                t + 1
            );
        }
    }

    // A floor above every candidate's chord count keeps nothing, and says so.
    let options = best_of_options(&data, weights, critic, 100.0);
    let report = best_of(&options, |_| {}).unwrap();
    assert_eq!((report.examples, report.kept), (4, 0));
    assert_eq!(Split::read(&options.out).unwrap().len(), 0);
}

#[test]
fn best_of_refuses_a_critic_with_another_vocabulary() {
    let vocab = triad_vocabulary();
    let other = Vocabulary::new(vec!["C".into(), "G".into()]).unwrap();
    let data = scratch_dir("best-of-vocab-data");
    let weights = scratch_dir("best-of-vocab-online");
    let critic = scratch_dir("best-of-vocab-critic");
    write_data_folder(&data, &vocab);
    write_random_model(&weights, &vocab);
    write_random_offline(&critic, &other);
    let err = best_of(&best_of_options(&data, weights, critic, 0.0), |_| {}).unwrap_err();
    assert!(err.to_string().contains("chord names"), "{err}");
}

#[test]
fn notes_per_chord_average_the_sounding_chords_over_frames() {
    let vocab = Vocabulary::new(vec!["C".into(), "C7".into()]).unwrap();
    let (c, c7) = (chord(&vocab, "C"), chord(&vocab, "C7"));
    let melody = vec![MelodyFrame::Silence; 16];
    // 8 frames of a triad, 4 of a seventh chord, 4 without a chord (not counted).
    let chords = [
        chord_run(c, 8),
        chord_run(c7, 4),
        vec![ChordFrame::Silence; 4],
    ]
    .concat();
    let mut totals = MetricTotals::default();
    totals.add(&melody, &chords, &masks(&vocab));
    assert!(
        (totals.finish().pitch_classes_per_chord - (8.0 * 3.0 + 4.0 * 4.0) / 12.0).abs() < 1e-12
    );
}
