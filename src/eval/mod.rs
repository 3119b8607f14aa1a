//! `comper eval`: how well a chord model accompanies the melodies of a held-out test split,
//! next to the ground truth and two model-free baselines.
//!
//! Systems, each measured with [`metrics`] on the same examples:
//! * **ground truth** — the test split's own chords;
//! * **model** — `samples` progressions per melody from Comper's sampler with the online decoder
//!   ([`crate::sample::generate_options`], melody teacher-forced), plus the teacher-forced
//!   NLL of the ground truth ([`nll`]);
//! * **offline model** — the same with the offline encoder–decoder
//!   ([`crate::sample::generate_offline_options`], the melody encoded whole);
//! * **suggest** — what `comper suggest` and the plugin offer ([`crate::suggest::suggest`]) with
//!   the offline model when one is given, else the online one: the best `samples` of several times
//!   as many candidates by melody fit;
//! * **training distribution** — random chords and lengths as often as in the training split
//!   ([`baselines::ChordStatistics`]);
//! * **diatonic heuristic** — key finding plus the best-covering diatonic triad per bar
//!   ([`baselines::diatonic_track`]).

pub mod baselines;
pub mod best_of;
pub mod cases;
pub mod data;
pub mod hmm;
pub mod melody_eval;
pub mod metrics;
pub mod nll;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use serde::Serialize;

use crate::chord::ChordTable;
use crate::frames::ChordFrame;
use crate::model::weights::{read_chord_names, CHORD_NAMES_FILE};
use crate::model::{LoadedModel, LoadedOffline, ModelError, WeightsError};
use crate::quantize::TimeSignature;
use crate::sample::{
    generate_offline_options, generate_options, OptionsRequest, SampleError, SamplingParams,
};
use crate::suggest::{suggest, Harmonizer, Phrase};
use crate::tokens::{TokenError, Vocabulary};

use baselines::{diatonic_track, ChordStatistics, TriadLookup};
use data::{evenly_spaced, read_datasets, Example, Split};
use metrics::{chord_masks, FrameMetrics, MetricTotals};
use nll::{Nll, NllTotals};

/// The test split inside the data folder.
pub const TEST_FILE: &str = "test.npz";
/// The training split inside the data folder (for the training-distribution baseline).
pub const TRAIN_FILE: &str = "train.npz";
/// Which dataset each test example comes from (optional).
pub const TEST_META_FILE: &str = "test_meta.jsonl";

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {message}")]
    BadData { path: PathBuf, message: String },
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(
        "the model's chord vocabulary ({model} names, {weights}) differs from the data's \
         ({data} names, {names}); evaluate with the chord_names.json the model was trained on"
    )]
    VocabularyMismatch {
        model: usize,
        weights: PathBuf,
        data: usize,
        names: PathBuf,
    },
    #[error("sampling failed on test example {example}: {source}")]
    Sample { example: usize, source: SampleError },
    #[error("scoring test example {example} failed: {source}")]
    Model { example: usize, source: ModelError },
    #[error("encoding test example {example} failed: {source}")]
    Token { example: usize, source: TokenError },
    #[error("invalid option: {0}")]
    BadOption(String),
}

/// What to evaluate and how.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Folder with `test.npz`, `train.npz` and `chord_names.json` (`training/convert.py` output).
    pub data_dir: PathBuf,
    /// Weights folder of the online model to evaluate.
    pub weights: Option<PathBuf>,
    /// Weights folder of the offline model to evaluate. Without either, only the reference rows
    /// are computed.
    pub offline: Option<PathBuf>,
    /// Progressions sampled per test melody.
    pub samples: usize,
    /// Sampling temperature (1 = the model's own distribution).
    pub temperature: f32,
    /// Frames between the points where a sampled chord may change
    /// ([`SamplingParams::change_grid`]; 1 = any 16th, as the model was trained).
    pub change_grid: usize,
    /// Evaluate only this many test examples, evenly spaced over the split.
    pub max_examples: Option<usize>,
    /// Seed of every random draw (model samples and the random baseline).
    pub seed: u64,
    /// Whether to compute the suggest row (the slowest: several candidates per option).
    pub suggest: bool,
    /// How the suggest row leans on the melody.
    pub guide: crate::harmony::GuideSettings,
}

/// One row of the results table.
#[derive(Debug, Clone, Serialize)]
pub struct SystemResult {
    /// Short name of the system.
    pub name: String,
    /// The frame measures, pooled over the evaluated examples (and samples).
    pub metrics: FrameMetrics,
    /// The same measures per source dataset (empty without `test_meta.jsonl`).
    pub by_dataset: BTreeMap<String, FrameMetrics>,
    /// Teacher-forced NLL of the ground truth (model rows only).
    pub nll: Option<Nll>,
    /// Wall-clock seconds this system took.
    pub seconds: f64,
}

/// Everything `comper eval` measured, with what it measured it on.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The data folder.
    pub data_dir: PathBuf,
    /// The online weights folder, if one was evaluated.
    pub weights: Option<PathBuf>,
    /// The online model's `config.json` name.
    pub model_name: Option<String>,
    /// The offline weights folder, if one was evaluated.
    pub offline: Option<PathBuf>,
    /// The offline model's `config.json` name.
    pub offline_name: Option<String>,
    /// Test examples in the split.
    pub examples_total: usize,
    /// Test examples evaluated.
    pub examples_used: usize,
    /// The indices evaluated, in words.
    pub subset: String,
    /// Samples per melody.
    pub samples: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// Random seed.
    pub seed: u64,
    /// One entry per system, ground truth first.
    pub systems: Vec<SystemResult>,
}

/// Writes `max` (all without it) evenly spaced examples of the test split in `data_dir` as melody
/// cases in `out` ([`cases::export_cases`]); returns how many.
pub fn export_test_cases(
    data_dir: &Path,
    max: Option<usize>,
    out: &Path,
) -> Result<usize, EvalError> {
    let vocab = read_chord_names(&data_dir.join(CHORD_NAMES_FILE))?;
    let test = Split::read(&data_dir.join(TEST_FILE))?;
    let indices = evenly_spaced(test.len(), max.unwrap_or(test.len()));
    let examples = indices
        .iter()
        .map(|&i| test.example(i, &vocab).map(|e| (i, e)))
        .collect::<Result<Vec<_>, _>>()?;
    cases::export_cases(&examples, &vocab, out)
}

/// Runs the evaluation; `progress` receives human-readable status lines.
pub fn evaluate(
    options: &EvalOptions,
    mut progress: impl FnMut(&str),
) -> Result<EvalReport, EvalError> {
    if options.samples == 0 {
        return Err(EvalError::BadOption("--samples must be at least 1".into()));
    }
    let names_path = options.data_dir.join(CHORD_NAMES_FILE);
    let vocab = read_chord_names(&names_path)?;
    let table = ChordTable::new(&vocab);
    let masks = chord_masks(&table);
    let check = |vocabulary: &Vocabulary, dir: &Path| -> Result<(), EvalError> {
        if *vocabulary != vocab {
            return Err(EvalError::VocabularyMismatch {
                model: vocabulary.num_chords(),
                weights: dir.to_owned(),
                data: vocab.num_chords(),
                names: names_path.clone(),
            });
        }
        Ok(())
    };
    let model = match &options.weights {
        Some(dir) => {
            let model = LoadedModel::load(dir)?;
            check(&model.vocabulary, dir)?;
            Some(model)
        }
        None => None,
    };
    let offline = match &options.offline {
        Some(dir) => {
            let model = LoadedOffline::load(dir)?;
            check(&model.vocabulary, dir)?;
            Some(model)
        }
        None => None,
    };

    let test = Split::read(&options.data_dir.join(TEST_FILE))?;
    let total = test.len();
    let indices = evenly_spaced(total, options.max_examples.unwrap_or(total));
    let examples = indices
        .iter()
        .map(|&i| test.example(i, &vocab))
        .collect::<Result<Vec<_>, _>>()?;
    let datasets = read_datasets(&options.data_dir.join(TEST_META_FILE), total)?;
    let dataset_of = |n: usize| -> Option<&str> {
        let index = indices.get(n)?;
        datasets.as_ref()?.get(*index).map(String::as_str)
    };
    let subset = if indices.len() == total {
        format!("all {total} test examples")
    } else {
        format!(
            "{} of {total} test examples, evenly spaced (index i·{total}/{} for i < {})",
            indices.len(),
            indices.len(),
            indices.len()
        )
    };
    progress(&format!("evaluating {subset}"));

    let mut systems = Vec::new();
    let timer = Instant::now();
    let mut truth = SystemTotals::default();
    for (n, example) in examples.iter().enumerate() {
        truth.add(dataset_of(n), example, &example.chords, &masks);
    }
    systems.push(row("ground truth", &truth, None, timer));

    let params = SamplingParams {
        temperature: options.temperature,
        change_grid: options.change_grid,
        ..SamplingParams::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let grid = match options.change_grid {
        1 => String::new(),
        4 => ", changes on beats".to_string(),
        frames => format!(", changes every {frames} frames"),
    };
    let plural = if options.samples == 1 { "" } else { "s" };
    if let Some(model) = &model {
        let mut nll = NllTotals::default();
        let name = format!(
            "model ({} sample{plural}, T={}{grid})",
            options.samples, options.temperature
        );
        let mut result = sampled_row(
            &name,
            &examples,
            &indices,
            &dataset_of,
            &masks,
            &mut progress,
            |example| {
                let ids = vocab.online_sequence(&example.chords, &example.melody)?;
                nll.add_sequence(&model.decoder, &ids)?;
                let options = generate_options(
                    &model.decoder,
                    &vocab,
                    &sampled(example, options.samples),
                    &params,
                    &mut rng,
                )?;
                Ok(options.into_iter().map(|o| o.chords).collect())
            },
        )?;
        result.nll = nll.finish();
        systems.push(result);
    }
    if let Some(offline) = &offline {
        let mut nll = NllTotals::default();
        let name = format!(
            "offline model ({} sample{plural}, T={}{grid})",
            options.samples, options.temperature
        );
        let mut result = sampled_row(
            &name,
            &examples,
            &indices,
            &dataset_of,
            &masks,
            &mut progress,
            |example| {
                let (melody, chords) = vocab.offline_sequences(&example.chords, &example.melody)?;
                nll.add_offline(&offline.model, &melody, &chords)?;
                let options = generate_offline_options(
                    &offline.model,
                    &vocab,
                    &sampled(example, options.samples),
                    &params,
                    &mut rng,
                )?;
                Ok(options.into_iter().map(|o| o.chords).collect())
            },
        )?;
        result.nll = nll.finish();
        systems.push(result);
    }
    // What `comper suggest` and the plugin offer: the offline model when there is one.
    let harmonizer = match (&offline, &model) {
        _ if !options.suggest => None,
        (Some(offline), _) => Some(Harmonizer::Offline(offline)),
        (None, Some(model)) => Some(Harmonizer::Online(model)),
        (None, None) => None,
    };
    if let Some(harmonizer) = harmonizer {
        let name = format!(
            "suggest{} ({} of {} candidates, T={}{grid})",
            if offline.is_some() { ", offline" } else { "" },
            options.samples,
            options.samples * harmonizer.candidates_per_option(),
            options.temperature
        );
        systems.push(sampled_row(
            &name,
            &examples,
            &indices,
            &dataset_of,
            &masks,
            &mut progress,
            |example| {
                let bar = example.bars.windows(2).next().map_or(16, |w| w[1] - w[0]);
                let phrase = Phrase {
                    melody: example.melody.clone(),
                    time_signature: TimeSignature {
                        numerator: (bar / 4).clamp(1, 32) as u8,
                        denominator: 4,
                    },
                    truncated_bars: 0,
                };
                let offered = suggest(
                    harmonizer,
                    &phrase,
                    &[],
                    options.samples,
                    &params,
                    &options.guide,
                    &mut rng,
                )?;
                Ok(offered.into_iter().map(|s| s.frames).collect())
            },
        )?);
    }

    let timer = Instant::now();
    let train_path = options.data_dir.join(TRAIN_FILE);
    progress(&format!("counting chords in {}", train_path.display()));
    let statistics = training_statistics(&train_path, &vocab)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed ^ 0x5eed);
    let mut random = SystemTotals::default();
    for (n, example) in examples.iter().enumerate() {
        let track = statistics.sample_track(example.len(), &mut rng);
        random.add(dataset_of(n), example, &track, &masks);
    }
    systems.push(row("training distribution", &random, None, timer));

    let timer = Instant::now();
    let lookup = TriadLookup::new(&vocab, &table);
    let mut diatonic = SystemTotals::default();
    for (n, example) in examples.iter().enumerate() {
        let track = diatonic_track(&example.melody, &example.bars, &lookup);
        diatonic.add(dataset_of(n), example, &track, &masks);
    }
    systems.push(row("diatonic heuristic", &diatonic, None, timer));

    Ok(EvalReport {
        data_dir: options.data_dir.clone(),
        weights: options.weights.clone(),
        model_name: model.as_ref().map(|m| m.config.name.clone()),
        offline: options.offline.clone(),
        offline_name: offline.as_ref().map(|m| m.config.base.name.clone()),
        examples_total: total,
        examples_used: examples.len(),
        subset,
        samples: options.samples,
        temperature: options.temperature,
        seed: options.seed,
        systems,
    })
}

/// `count` progressions for the example's melody, duplicates allowed (a fair sample).
fn sampled(example: &Example, count: usize) -> OptionsRequest<'_> {
    OptionsRequest {
        melody: &example.melody,
        locked: &[],
        count,
        max_retries: 0,
        guide: None,
    }
}

/// Why one example of a sampled row failed; turned into an [`EvalError`] naming the example.
pub(crate) enum ExampleError {
    Sample(SampleError),
    Model(ModelError),
    Token(TokenError),
}

impl ExampleError {
    /// The [`EvalError`] naming the example (its index in the split).
    pub(crate) fn at(self, example: usize) -> EvalError {
        match self {
            Self::Sample(source) => EvalError::Sample { example, source },
            Self::Model(source) => EvalError::Model { example, source },
            Self::Token(source) => EvalError::Token { example, source },
        }
    }
}

impl From<SampleError> for ExampleError {
    fn from(e: SampleError) -> Self {
        Self::Sample(e)
    }
}

impl From<ModelError> for ExampleError {
    fn from(e: ModelError) -> Self {
        Self::Model(e)
    }
}

impl From<TokenError> for ExampleError {
    fn from(e: TokenError) -> Self {
        Self::Token(e)
    }
}

/// A row of progressions produced per example by `produce` (several per melody are pooled),
/// with progress lines every 25 examples.
fn sampled_row<'e>(
    name: &str,
    examples: &'e [Example],
    indices: &[usize],
    dataset_of: &dyn Fn(usize) -> Option<&'e str>,
    masks: &[u16],
    progress: &mut impl FnMut(&str),
    mut produce: impl FnMut(&Example) -> Result<Vec<Vec<ChordFrame>>, ExampleError>,
) -> Result<SystemResult, EvalError> {
    let timer = Instant::now();
    let mut totals = SystemTotals::default();
    for (n, (example, &index)) in examples.iter().zip(indices).enumerate() {
        let progressions = produce(example).map_err(|e| e.at(index))?;
        for chords in &progressions {
            totals.add(dataset_of(n), example, chords, masks);
        }
        let done = n + 1;
        if done % 25 == 0 || done == examples.len() {
            let elapsed = timer.elapsed().as_secs_f64();
            let left = elapsed / done as f64 * (examples.len() - done) as f64;
            progress(&format!(
                "{name}: {done}/{} examples, {elapsed:.0} s, about {left:.0} s left",
                examples.len()
            ));
        }
    }
    Ok(row(name, &totals, None, timer))
}

/// One system's totals, overall and per source dataset.
#[derive(Default)]
struct SystemTotals {
    all: MetricTotals,
    by_dataset: BTreeMap<String, MetricTotals>,
}

impl SystemTotals {
    fn add(
        &mut self,
        dataset: Option<&str>,
        example: &Example,
        chords: &[ChordFrame],
        masks: &[u16],
    ) {
        self.all.add(&example.melody, chords, masks);
        if let Some(dataset) = dataset {
            self.by_dataset.entry(dataset.to_owned()).or_default().add(
                &example.melody,
                chords,
                masks,
            );
        }
    }
}

fn row(name: &str, totals: &SystemTotals, nll: Option<Nll>, timer: Instant) -> SystemResult {
    SystemResult {
        name: name.into(),
        metrics: totals.all.finish(),
        by_dataset: totals
            .by_dataset
            .iter()
            .map(|(dataset, t)| (dataset.clone(), t.finish()))
            .collect(),
        nll,
        seconds: timer.elapsed().as_secs_f64(),
    }
}

/// Chord-onset and chord-length counts over every example of a split.
pub fn training_statistics(
    path: &Path,
    vocab: &crate::tokens::Vocabulary,
) -> Result<ChordStatistics, EvalError> {
    let split = Split::read(path)?;
    let mut statistics = ChordStatistics::new(vocab.num_chords());
    for i in 0..split.len() {
        statistics.add(&split.example(i, vocab)?.chords);
    }
    Ok(statistics)
}

impl EvalReport {
    /// The results as a markdown table, with the subset and settings above it.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "Test split of {}: {}; seed {}.\n\n",
            self.data_dir.display(),
            self.subset,
            self.seed
        );
        if let (Some(weights), Some(name)) = (&self.weights, &self.model_name) {
            out += &format!("Model: {name} ({}).\n\n", weights.display());
        }
        if let (Some(weights), Some(name)) = (&self.offline, &self.offline_name) {
            out += &format!("Offline model: {name} ({}).\n\n", weights.display());
        }
        let truth = self
            .systems
            .first()
            .map_or(0.0, |s| s.metrics.note_in_chord);
        out += "| system | note-in-chord | vs ground truth | notes / chord | chord-length entropy (bits) | changes / bar | off-beat changes | silence | test NLL / chord token (nats) |\n";
        out += "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        for system in &self.systems {
            let m = &system.metrics;
            let relative = if truth > 0.0 {
                format!("{:.1}%", 100.0 * m.note_in_chord / truth)
            } else {
                "–".into()
            };
            let nll = system
                .nll
                .map_or("–".into(), |n| format!("{:.3}", n.per_chord_token));
            out += &format!(
                "| {} | {:.1}% | {relative} | {:.2} | {:.2} | {:.2} | {:.1}% | {:.1}% | {nll} |\n",
                system.name,
                100.0 * m.note_in_chord,
                m.pitch_classes_per_chord,
                m.chord_length_entropy_bits,
                m.changes_per_bar,
                100.0 * m.offbeat_changes,
                100.0 * m.silence_ratio,
            );
        }
        let datasets: Vec<&String> = self
            .systems
            .first()
            .map(|s| s.by_dataset.keys().collect())
            .unwrap_or_default();
        if !datasets.is_empty() {
            out +=
                "\nNote-in-chord by source dataset (melody frames in parentheses):\n\n| system |";
            for dataset in &datasets {
                out += &format!(" {dataset} |");
            }
            out += "\n|---|";
            out += &"---:|".repeat(datasets.len());
            out += "\n";
            for system in &self.systems {
                out += &format!("| {} |", system.name);
                for dataset in &datasets {
                    out += &match system.by_dataset.get(*dataset) {
                        Some(m) => {
                            format!(" {:.1}% ({}) |", 100.0 * m.note_in_chord, m.melody_frames)
                        }
                        None => " – |".into(),
                    };
                }
                out += "\n";
            }
        }
        for system in &self.systems {
            if let Some(nll) = system.nll {
                out += &format!(
                    "\nTeacher-forced NLL of the ground truth under the {}: {:.3} nats per chord token ({} chord tokens), {:.3} nats per token over all tokens ({} tokens).\n",
                    system.name, nll.per_chord_token, nll.chord_tokens, nll.per_token, nll.tokens
                );
            }
        }
        out
    }
}
