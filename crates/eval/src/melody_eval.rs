//! `comper eval --melodies DIR`: how a musician would judge accompaniments of melody cases
//! ([`super::cases`]) against the reference harmonization each case carries.
//!
//! Measures, per system, averaged over cases (each case weighs the same):
//! * **note-in-chord** share of sounding melody frames, and its ratio to the reference's;
//! * **agreement**: share of beats (with a reference chord) where the system's chord has the
//!   reference's root and triad quality ([`Triad`]) — the best of the options and their mean;
//! * **diatonic**: share of chord frames whose triad lies in the case's key, next to the
//!   reference's;
//! * **changes per bar** (a chord whose pitch classes differ from the frame before), and the ratio
//!   to the reference's;
//! * **distinct** options: different beat-by-beat triad sequences among the options (mean, min).
//!
//! Live rows count only the frames after the listening beats, where Comper plays.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use super::baselines::{diatonic_track, TriadLookup};
use super::cases::{read_cases, MelodyCase};
use super::data::{evenly_spaced, Split};
use super::hmm::HmmHarmonizer;
use super::EvalError;
use super::TRAIN_FILE;
use comper_generate::live::LiveConfig;
use comper_generate::runtime::{simulate_jam, JamSettings, ModelPair, ReplanTime};
use comper_generate::sample::{
    generate_offline_options, generate_options, OptionsRequest, SampleError, SamplingParams,
};
use comper_generate::suggest::{frames_per_bar, suggest, Harmonizer, Phrase};
use comper_model::weights::{read_chord_names, CHORD_NAMES_FILE};
use comper_model::{LoadedModel, LoadedOffline};
use comper_music::chord::ChordTable;
use comper_music::harmony::critic::ChordSounds;
use comper_music::harmony::{GuideSettings, Key, Triad};
use comper_realtime::frames::{ChordFrame, MelodyFrame, Note, FRAMES_PER_BEAT};

/// A chord track reduced to its sound, one entry per frame.
pub type SoundTrack = Vec<Option<(u16, Triad)>>;

/// One case's measures for one system.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CaseScore {
    pub case: String,
    /// Mean over options.
    pub note_in_chord: f64,
    pub reference_note_in_chord: f64,
    pub agreement_best: f64,
    pub agreement_mean: f64,
    pub diatonic: f64,
    pub reference_diatonic: f64,
    pub changes_per_bar: f64,
    pub reference_changes_per_bar: f64,
    pub distinct: usize,
}

/// Scores `options` (tracks as long as `melody`) against `reference` over frames `from..`.
pub fn score_case(
    name: &str,
    melody: &[MelodyFrame],
    reference: &SoundTrack,
    options: &[SoundTrack],
    key: Key,
    bar: usize,
    from: usize,
) -> CaseScore {
    let len = melody.len().min(reference.len());
    let from = from.min(len);
    let nic = |track: &SoundTrack| -> f64 {
        let (mut hit, mut total) = (0u32, 0u32);
        for (note, chord) in melody[from..len]
            .iter()
            .zip(&track[from.min(track.len())..])
        {
            let Some(pitch) = note.pitch() else { continue };
            total += 1;
            if chord.is_some_and(|(mask, _)| mask & (1 << (pitch % 12)) != 0) {
                hit += 1;
            }
        }
        if total == 0 {
            0.0
        } else {
            f64::from(hit) / f64::from(total)
        }
    };
    let agreement = |track: &SoundTrack| -> f64 {
        let (mut same, mut beats) = (0u32, 0u32);
        for f in (from..len).filter(|f| f % FRAMES_PER_BEAT as usize == 0) {
            let Some((_, want)) = reference[f] else {
                continue;
            };
            beats += 1;
            if track
                .get(f)
                .copied()
                .flatten()
                .is_some_and(|(_, got)| got == want)
            {
                same += 1;
            }
        }
        if beats == 0 {
            0.0
        } else {
            f64::from(same) / f64::from(beats)
        }
    };
    let diatonic = |track: &SoundTrack| -> f64 {
        let chords: Vec<Triad> = track[from.min(track.len())..len.min(track.len())]
            .iter()
            .filter_map(|c| c.map(|(_, t)| t))
            .collect();
        if chords.is_empty() {
            0.0
        } else {
            chords.iter().filter(|t| t.is_diatonic(key)).count() as f64 / chords.len() as f64
        }
    };
    let changes = |track: &SoundTrack| -> f64 {
        let end = len.min(track.len());
        let count = (from..end)
            .filter(|&f| {
                let now = track[f].map(|(mask, _)| mask);
                now.is_some() && (f == from || track[f - 1].map(|(mask, _)| mask) != now)
            })
            .count();
        let bars = ((end - from.min(end)) as f64 / bar.max(1) as f64).max(1e-9);
        count as f64 / bars
    };
    let mean = |f: &dyn Fn(&SoundTrack) -> f64| -> f64 {
        if options.is_empty() {
            0.0
        } else {
            options.iter().map(f).sum::<f64>() / options.len() as f64
        }
    };
    let beat_triads = |track: &SoundTrack| -> Vec<Option<Triad>> {
        (from..len)
            .step_by(FRAMES_PER_BEAT as usize)
            .map(|f| track.get(f).copied().flatten().map(|(_, t)| t))
            .collect()
    };
    let distinct: HashSet<Vec<Option<Triad>>> = options.iter().map(beat_triads).collect();
    CaseScore {
        case: name.to_string(),
        note_in_chord: mean(&nic),
        reference_note_in_chord: nic(reference),
        agreement_best: options.iter().map(agreement).fold(0.0, f64::max),
        agreement_mean: mean(&agreement),
        diatonic: mean(&diatonic),
        reference_diatonic: diatonic(reference),
        changes_per_bar: mean(&changes),
        reference_changes_per_bar: changes(reference),
        distinct: distinct.len(),
    }
}

/// One row of the table: a system's measures over all cases.
#[derive(Debug, Clone, Serialize)]
pub struct SystemSummary {
    pub name: String,
    pub cases: usize,
    pub note_in_chord: f64,
    /// `note_in_chord` over the reference's.
    pub note_in_chord_ratio: f64,
    pub agreement_best: f64,
    pub agreement_mean: f64,
    pub diatonic: f64,
    pub reference_diatonic: f64,
    pub changes_per_bar: f64,
    /// `changes_per_bar` over the reference's.
    pub changes_ratio: f64,
    pub distinct_mean: f64,
    pub distinct_min: usize,
    /// Options per case.
    pub options: usize,
    pub seconds: f64,
    pub per_case: Vec<CaseScore>,
}

impl SystemSummary {
    /// Averages `scores` (one per case).
    pub fn new(name: &str, options: usize, seconds: f64, scores: Vec<CaseScore>) -> Self {
        let n = scores.len().max(1) as f64;
        let avg = |f: &dyn Fn(&CaseScore) -> f64| scores.iter().map(f).sum::<f64>() / n;
        let nic = avg(&|s| s.note_in_chord);
        let ref_nic = avg(&|s| s.reference_note_in_chord);
        let changes = avg(&|s| s.changes_per_bar);
        let ref_changes = avg(&|s| s.reference_changes_per_bar);
        Self {
            name: name.to_string(),
            cases: scores.len(),
            note_in_chord: nic,
            note_in_chord_ratio: if ref_nic > 0.0 { nic / ref_nic } else { 0.0 },
            agreement_best: avg(&|s| s.agreement_best),
            agreement_mean: avg(&|s| s.agreement_mean),
            diatonic: avg(&|s| s.diatonic),
            reference_diatonic: avg(&|s| s.reference_diatonic),
            changes_per_bar: changes,
            changes_ratio: if ref_changes > 0.0 {
                changes / ref_changes
            } else {
                0.0
            },
            distinct_mean: avg(&|s| s.distinct as f64),
            distinct_min: scores.iter().map(|s| s.distinct).min().unwrap_or(0),
            options,
            seconds,
            per_case: scores,
        }
    }
}

/// Cases of a set and how they were scored.
#[derive(Debug, Clone, Serialize)]
pub struct MelodyReport {
    pub dir: std::path::PathBuf,
    pub cases: usize,
    pub seed: u64,
    pub systems: Vec<SystemSummary>,
}

impl MelodyReport {
    /// The table `comper eval --melodies` prints.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "{} cases from {} (seed {})\n\n| system | options | note-in-chord (× ref) | agreement best / mean | diatonic (ref) | changes/bar (× ref) | distinct mean / min | s |\n|---|---|---|---|---|---|---|---|\n",
            self.cases,
            self.dir.display(),
            self.seed
        );
        for s in &self.systems {
            out.push_str(&format!(
                "| {} | {} | {:.3} ({:.2}) | {:.3} / {:.3} | {:.2} ({:.2}) | {:.2} ({:.2}) | {:.1} / {} | {:.1} |\n",
                s.name,
                s.options,
                s.note_in_chord,
                s.note_in_chord_ratio,
                s.agreement_best,
                s.agreement_mean,
                s.diatonic,
                s.reference_diatonic,
                s.changes_per_bar,
                s.changes_ratio,
                s.distinct_mean,
                s.distinct_min,
                s.seconds
            ));
        }
        out
    }
}

/// One system's accompaniment of case `i` (its options as sound tracks).
type Produce<'a> =
    dyn FnMut(usize, &MelodyCase, &Phrase) -> Result<Vec<SoundTrack>, EvalError> + 'a;

/// What `comper eval --melodies` runs.
#[derive(Debug, Clone)]
pub struct MelodyEvalOptions {
    /// Folder of melody cases.
    pub dir: PathBuf,
    /// Online weights (raw rows, online Suggest, Live).
    pub online: Option<PathBuf>,
    /// Offline weights (raw row, Suggest, Live's intro).
    pub offline: Option<PathBuf>,
    /// The converter's data folder, to train the HMM baseline on its training split.
    pub data: Option<PathBuf>,
    /// Options per case (and samples of the raw rows).
    pub options: usize,
    /// Temperature of the raw model rows (1 = as trained).
    pub temperature: f32,
    /// Evaluate only N cases, evenly spaced over the folder's (sorted) cases.
    pub max_cases: Option<usize>,
    pub seed: u64,
    /// Whether to run the Live row (a simulated session per case).
    pub live: bool,
    /// How Suggest and Live lean on the melody.
    pub guide: GuideSettings,
    /// Only the reference and the Suggest rows (quick comparisons of settings).
    pub suggest_only: bool,
    /// Only the reference and the Live row (quick comparisons of live settings).
    pub live_only: bool,
}

/// Runs every system on every case of `options.dir`.
pub fn evaluate_melodies(
    options: &MelodyEvalOptions,
    mut progress: impl FnMut(&str),
) -> Result<MelodyReport, EvalError> {
    let mut cases = read_cases(&options.dir)?;
    if let Some(max) = options.max_cases {
        let keep = super::data::evenly_spaced(cases.len(), max);
        cases = keep
            .into_iter()
            .filter_map(|i| cases.get(i).cloned())
            .collect();
    }
    let online = options
        .online
        .as_deref()
        .map(LoadedModel::load)
        .transpose()?
        .map(Arc::new);
    let offline = options
        .offline
        .as_deref()
        .map(LoadedOffline::load)
        .transpose()?
        .map(Arc::new);
    let vocab = match (&offline, &online) {
        (Some(offline), _) => offline.vocabulary.clone(),
        (None, Some(online)) => online.vocabulary.clone(),
        (None, None) => {
            return Err(EvalError::BadOption(
                "--melodies needs a model (--weights or --offline)".into(),
            ))
        }
    };
    if let (Some(a), Some(b)) = (&online, &offline) {
        if a.vocabulary != b.vocabulary {
            return Err(EvalError::BadOption(
                "the online and offline models have different chord vocabularies".into(),
            ));
        }
    }
    let table = ChordTable::new(&vocab);
    let sounds = ChordSounds::new(&table);
    let lookup = TriadLookup::new(&vocab, &table);
    let max_frames = [
        online.as_ref().map(|m| m.config.max_frames()),
        offline.as_ref().map(|m| m.config.max_frames()),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(256);
    let phrases: Vec<Phrase> = cases
        .iter()
        .map(|case| Phrase::from_notes(&case.notes, case.time_signature, max_frames))
        .collect();
    let references: Vec<SoundTrack> = cases
        .iter()
        .zip(&phrases)
        .map(|(case, phrase)| case.reference_frames(phrase.melody.len()))
        .collect();
    progress(&format!(
        "{} cases from {}",
        cases.len(),
        options.dir.display()
    ));

    let hmm = match &options.data {
        Some(data) => {
            progress("training the HMM baseline on the training split");
            Some(train_hmm(data, &vocab, &table)?)
        }
        None => None,
    };
    let count = options.options.max(1);
    let mut systems = Vec::new();
    let mut run = |name: &str,
                   per_case: usize,
                   from: &dyn Fn(&MelodyCase, &Phrase) -> usize,
                   produce: &mut Produce|
     -> Result<(), EvalError> {
        let timer = Instant::now();
        let mut scores = Vec::with_capacity(cases.len());
        for (i, (case, phrase)) in cases.iter().zip(&phrases).enumerate() {
            let tracks = produce(i, case, phrase)?;
            scores.push(score_case(
                &case.name,
                &phrase.melody,
                &references[i],
                &tracks,
                case.key,
                frames_per_bar(case.time_signature),
                from(case, phrase),
            ));
        }
        let summary = SystemSummary::new(name, per_case, timer.elapsed().as_secs_f64(), scores);
        progress(&format!(
            "{name}: agreement best {:.3}, note-in-chord ×{:.2}",
            summary.agreement_best, summary.note_in_chord_ratio
        ));
        systems.push(summary);
        Ok(())
    };
    let whole = |_: &MelodyCase, _: &Phrase| 0;

    let tracks = |options: Vec<Vec<ChordFrame>>| -> Vec<SoundTrack> {
        options.iter().map(|chords| sounds.track(chords)).collect()
    };
    run("reference", 1, &whole, &mut |i, _, _| {
        Ok(vec![references[i].clone()])
    })?;
    let baselines = !options.suggest_only && !options.live_only;
    if baselines {
        run(
            "diatonic heuristic (bar by bar)",
            1,
            &whole,
            &mut |_, case, phrase| {
                let bar = frames_per_bar(case.time_signature);
                let bars: Vec<usize> = (0..phrase.melody.len()).step_by(bar).collect();
                Ok(tracks(vec![diatonic_track(&phrase.melody, &bars, &lookup)]))
            },
        )?;
        if let Some(hmm) = &hmm {
            run(
                "HMM (MySong-style, beat by beat)",
                1,
                &whole,
                &mut |_, case, phrase| {
                    Ok(tracks(vec![hmm.harmonize(
                        &phrase.melody,
                        frames_per_bar(case.time_signature),
                    )]))
                },
            )?;
        }
    }
    let mut rng = StdRng::seed_from_u64(options.seed);
    let raw = SamplingParams {
        temperature: options.temperature,
        ..SamplingParams::default()
    };
    let sample_error =
        |i: usize| move |source: SampleError| EvalError::Sample { example: i, source };
    if let (true, Some(model)) = (baselines, &online) {
        let name = format!("online model, raw samples (T={})", options.temperature);
        run(&name, count, &whole, &mut |i, _, phrase| {
            let request = fair_request(&phrase.melody, count);
            let sampled = generate_options(&model.decoder, &vocab, &request, &raw, &mut rng)
                .map_err(sample_error(i))?;
            Ok(tracks(sampled.into_iter().map(|o| o.chords).collect()))
        })?;
    }
    if let (true, Some(model)) = (baselines, &offline) {
        let name = format!("offline model, raw samples (T={})", options.temperature);
        run(&name, count, &whole, &mut |i, _, phrase| {
            let request = fair_request(&phrase.melody, count);
            let sampled = generate_offline_options(&model.model, &vocab, &request, &raw, &mut rng)
                .map_err(sample_error(i))?;
            Ok(tracks(sampled.into_iter().map(|o| o.chords).collect()))
        })?;
    }
    let product = SamplingParams {
        temperature: SUGGEST_TEMPERATURE,
        change_grid: SUGGEST_CHANGE_GRID,
        ..SamplingParams::default()
    };
    let suggesters = if options.live_only {
        [None, None]
    } else {
        [
            offline.as_deref().map(Harmonizer::Offline),
            online.as_deref().map(Harmonizer::Online),
        ]
    };
    for harmonizer in suggesters.into_iter().flatten() {
        let name = format!("Suggest, {} model", harmonizer.kind());
        run(&name, count, &whole, &mut |i, _, phrase| {
            let options = suggest(
                harmonizer,
                phrase,
                &[],
                count,
                &product,
                &options.guide,
                &mut rng,
            )
            .map_err(sample_error(i))?;
            Ok(tracks(options.into_iter().map(|o| o.frames).collect()))
        })?;
    }
    if let (true, Some(model)) = (options.live && !options.suggest_only, &online) {
        let models = ModelPair::new(Arc::clone(model), offline.clone());
        let config = LiveConfig {
            change_grid: SUGGEST_CHANGE_GRID,
            seed: options.seed,
            ..LiveConfig::default()
        };
        let listen = config.listen_frames();
        let name = format!("Live (after {} listening beats)", config.listen_beats);
        run(&name, 1, &|_, _| listen, &mut |i, case, phrase| {
            let settings = JamSettings {
                tempo_bpm: case.tempo_bpm,
                time_signature: case.time_signature,
                replan_time: ReplanTime::Fixed(0.0),
                ..JamSettings::default()
            };
            let notes: Vec<Note> = case
                .notes
                .iter()
                .filter(|n| n.onset_beat < phrase.beats())
                .copied()
                .collect();
            let report = simulate_jam(&models, &notes, &config, &settings)
                .map_err(|e| EvalError::BadOption(format!("live session on case {i}: {e}")))?;
            let mut played = report.played;
            played.resize(phrase.melody.len(), ChordFrame::Silence);
            Ok(tracks(vec![played]))
        })?;
    }
    Ok(MelodyReport {
        dir: options.dir.clone(),
        cases: cases.len(),
        seed: options.seed,
        systems,
    })
}

/// Training examples the HMM baseline learns from, evenly spaced over the training split.
pub const HMM_TRAINING_EXAMPLES: usize = 4000;

/// The HMM baseline trained on the training split in `data` (which must share the models'
/// chord vocabulary).
fn train_hmm(
    data: &std::path::Path,
    vocab: &comper_music::tokens::Vocabulary,
    table: &ChordTable,
) -> Result<HmmHarmonizer, EvalError> {
    let names = data.join(CHORD_NAMES_FILE);
    let data_vocab = read_chord_names(&names)?;
    if data_vocab != *vocab {
        return Err(EvalError::VocabularyMismatch {
            model: vocab.num_chords(),
            weights: data.to_owned(),
            data: data_vocab.num_chords(),
            names,
        });
    }
    let split = Split::read(&data.join(TRAIN_FILE))?;
    let examples = evenly_spaced(split.len(), HMM_TRAINING_EXAMPLES)
        .into_iter()
        .map(|i| split.example(i, vocab))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HmmHarmonizer::train(&examples, vocab, table))
}

/// The Suggest rows' temperature: the plugin's default Variety.
pub const SUGGEST_TEMPERATURE: f32 = 0.8;
/// The Suggest and Live rows' change grid: the plugin's default (on 8th notes).
pub const SUGGEST_CHANGE_GRID: usize = 2;

/// `count` samples of the model for `melody`, duplicates allowed (a fair sample).
fn fair_request(melody: &[MelodyFrame], count: usize) -> OptionsRequest<'_> {
    OptionsRequest {
        melody,
        locked: &[],
        count,
        max_retries: 0,
        guide: None,
    }
}
