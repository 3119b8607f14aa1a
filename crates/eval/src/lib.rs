//! `comper eval`: how well a chord model accompanies the melodies of a held-out test split,
//! next to the ground truth and two model-free baselines.
//!
//! Systems, each measured with [`metrics`] on the same examples:
//! * **ground truth** — the test split's own chords;
//! * **model** — `samples` progressions per melody from Comper's sampler with the online decoder
//!   ([`comper_generate::sample::generate_options`], melody teacher-forced), plus the teacher-forced
//!   NLL of the ground truth ([`nll`]);
//! * **offline model** — the same with the offline encoder–decoder
//!   ([`comper_generate::sample::generate_offline_options`], the melody encoded whole);
//! * **suggest** — what `comper suggest` and the plugin offer
//!   ([`comper_generate::suggest::suggest`]) with the offline model when one is given, else the
//!   online one: the best `samples` of several times as many candidates by melody fit;
//! * **training distribution** — random chords and lengths as often as in the training split
//!   ([`baselines::ChordStatistics`]);
//! * **diatonic heuristic** — key finding plus the best-covering diatonic triad per bar
//!   ([`baselines::diatonic_track`]).

pub mod baselines;
pub mod bench;
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

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use comper_generate::sample::{
    generate_offline_options, generate_options, OptionsRequest, SampleError, SamplingParams,
};
use comper_generate::suggest::{suggest, Harmonizer, Phrase};
use comper_model::weights::{read_chord_names, CHORD_NAMES_FILE};
use comper_model::{LoadedModel, LoadedOffline, ModelError, WeightsError};
use comper_music::chord::ChordTable;
use comper_music::tokens::{TokenError, Vocabulary};
use comper_realtime::frames::ChordFrame;
use comper_realtime::frames::TimeSignature;

use baselines::{diatonic_track, ChordStatistics, TriadLookup};
use comper_music::fit::chord_masks;
use data::{evenly_spaced, read_datasets, Example, Split};
use metrics::{FrameMetrics, MetricTotals};
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
    pub guide: comper_music::harmony::GuideSettings,
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
    let (model, offline) = load_models(options, &vocab, &names_path)?;
    let subset = TestSubset::read(&options.data_dir, options.max_examples, &vocab)?;
    progress(&format!("evaluating {}", subset.description));

    let evaluation = Evaluation {
        options,
        vocab: &vocab,
        table: &table,
        masks: &masks,
        subset: &subset,
        params: SamplingParams {
            temperature: options.temperature,
            change_grid: options.change_grid,
            ..SamplingParams::default()
        },
        settings: sampling_settings(options),
    };
    let mut systems = vec![evaluation.ground_truth_row()];
    // One random stream runs through the model rows, in this order.
    let mut rng = StdRng::seed_from_u64(options.seed);
    if let Some(model) = &model {
        systems.push(evaluation.online_row(model, &mut rng, &mut progress)?);
    }
    if let Some(offline) = &offline {
        systems.push(evaluation.offline_row(offline, &mut rng, &mut progress)?);
    }
    if let Some(harmonizer) = suggest_harmonizer(options, model.as_ref(), offline.as_ref()) {
        systems.push(evaluation.suggest_row(harmonizer, &mut rng, &mut progress)?);
    }
    systems.push(evaluation.training_distribution_row(&mut progress)?);
    systems.push(evaluation.diatonic_row());

    Ok(EvalReport {
        data_dir: options.data_dir.clone(),
        weights: options.weights.clone(),
        model_name: model.as_ref().map(|m| m.config.name.clone()),
        offline: options.offline.clone(),
        offline_name: offline.as_ref().map(|m| m.config.base.name.clone()),
        examples_total: subset.total,
        examples_used: subset.examples.len(),
        subset: subset.description,
        samples: options.samples,
        temperature: options.temperature,
        seed: options.seed,
        systems,
    })
}

/// Loads the online and offline models the options name, refusing one whose chord vocabulary is
/// not the data's (its chord ids would mean other chords).
fn load_models(
    options: &EvalOptions,
    vocab: &Vocabulary,
    names_path: &Path,
) -> Result<(Option<LoadedModel>, Option<LoadedOffline>), EvalError> {
    let check = |vocabulary: &Vocabulary, dir: &Path| -> Result<(), EvalError> {
        if vocabulary != vocab {
            return Err(EvalError::VocabularyMismatch {
                model: vocabulary.num_chords(),
                weights: dir.to_owned(),
                data: vocab.num_chords(),
                names: names_path.to_owned(),
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
    Ok((model, offline))
}

/// The test examples an evaluation runs on: evenly spaced over the split, so a short run still
/// samples all of it.
struct TestSubset {
    examples: Vec<Example>,
    /// Each example's index in the split.
    indices: Vec<usize>,
    /// The source dataset of every example of the split, when `test_meta.jsonl` names them.
    datasets: Option<Vec<String>>,
    /// Examples in the whole split.
    total: usize,
    /// Which examples these are, in words.
    description: String,
}

impl TestSubset {
    /// Reads `max_examples` (all without it) evenly spaced examples of the test split.
    fn read(
        data_dir: &Path,
        max_examples: Option<usize>,
        vocab: &Vocabulary,
    ) -> Result<Self, EvalError> {
        let test = Split::read(&data_dir.join(TEST_FILE))?;
        let total = test.len();
        let indices = evenly_spaced(total, max_examples.unwrap_or(total));
        let examples = indices
            .iter()
            .map(|&i| test.example(i, vocab))
            .collect::<Result<Vec<_>, _>>()?;
        let datasets = read_datasets(&data_dir.join(TEST_META_FILE), total)?;
        let description = if indices.len() == total {
            format!("all {total} test examples")
        } else {
            format!(
                "{} of {total} test examples, evenly spaced (index i·{total}/{} for i < {})",
                indices.len(),
                indices.len(),
                indices.len()
            )
        };
        Ok(Self {
            examples,
            indices,
            datasets,
            total,
            description,
        })
    }

    /// The source dataset of the `n`th example of the subset, if known.
    fn dataset_of(&self, n: usize) -> Option<&str> {
        let index = self.indices.get(n)?;
        self.datasets.as_ref()?.get(*index).map(String::as_str)
    }
}

/// The sampling settings every model row's name repeats: temperature and change grid.
fn sampling_settings(options: &EvalOptions) -> String {
    let grid = match options.change_grid {
        1 => String::new(),
        4 => ", changes on beats".to_string(),
        frames => format!(", changes every {frames} frames"),
    };
    format!("T={}{grid}", options.temperature)
}

/// What `comper suggest` and the plugin would offer with: the offline model when there is one.
fn suggest_harmonizer<'m>(
    options: &EvalOptions,
    model: Option<&'m LoadedModel>,
    offline: Option<&'m LoadedOffline>,
) -> Option<Harmonizer<'m>> {
    match (offline, model) {
        _ if !options.suggest => None,
        (Some(offline), _) => Some(Harmonizer::Offline(offline)),
        (None, Some(model)) => Some(Harmonizer::Online(model)),
        (None, None) => None,
    }
}

/// What every row of one evaluation shares: the examples, the chord vocabulary and the settings.
struct Evaluation<'a> {
    options: &'a EvalOptions,
    vocab: &'a Vocabulary,
    table: &'a ChordTable,
    masks: &'a [u16],
    subset: &'a TestSubset,
    params: SamplingParams,
    /// [`sampling_settings`], for the model rows' names.
    settings: String,
}

impl Evaluation<'_> {
    /// The test split's own chords: the reference every other row is read against.
    fn ground_truth_row(&self) -> SystemResult {
        let timer = Instant::now();
        let mut truth = SystemTotals::default();
        for (n, example) in self.subset.examples.iter().enumerate() {
            truth.add(
                self.subset.dataset_of(n),
                example,
                &example.chords,
                self.masks,
            );
        }
        row("ground truth", &truth, None, timer)
    }

    /// "N sample(s)", for the model rows' names.
    fn samples_in_words(&self) -> String {
        let plural = if self.options.samples == 1 { "" } else { "s" };
        format!("{} sample{plural}", self.options.samples)
    }

    /// The online decoder's samples, with the teacher-forced NLL of the ground truth.
    fn online_row(
        &self,
        model: &LoadedModel,
        rng: &mut StdRng,
        progress: &mut impl FnMut(&str),
    ) -> Result<SystemResult, EvalError> {
        let mut nll = NllTotals::default();
        let name = format!("model ({}, {})", self.samples_in_words(), self.settings);
        let mut result = self.sampled_row(&name, progress, |example| {
            let ids = self
                .vocab
                .online_sequence(&example.chords, &example.melody)?;
            nll.add_sequence(&model.decoder, &ids)?;
            let options = generate_options(
                &model.decoder,
                self.vocab,
                &sampled(example, self.options.samples),
                &self.params,
                rng,
            )?;
            Ok(options.into_iter().map(|o| o.chords).collect())
        })?;
        result.nll = nll.finish();
        Ok(result)
    }

    /// The offline encoder–decoder's samples, with the teacher-forced NLL of the ground truth.
    fn offline_row(
        &self,
        offline: &LoadedOffline,
        rng: &mut StdRng,
        progress: &mut impl FnMut(&str),
    ) -> Result<SystemResult, EvalError> {
        let mut nll = NllTotals::default();
        let name = format!(
            "offline model ({}, {})",
            self.samples_in_words(),
            self.settings
        );
        let mut result = self.sampled_row(&name, progress, |example| {
            let (melody, chords) = self
                .vocab
                .offline_sequences(&example.chords, &example.melody)?;
            nll.add_offline(&offline.model, &melody, &chords)?;
            let options = generate_offline_options(
                &offline.model,
                self.vocab,
                &sampled(example, self.options.samples),
                &self.params,
                rng,
            )?;
            Ok(options.into_iter().map(|o| o.chords).collect())
        })?;
        result.nll = nll.finish();
        Ok(result)
    }

    /// What `comper suggest` offers for each melody: the best of several candidates by melody fit.
    fn suggest_row(
        &self,
        harmonizer: Harmonizer<'_>,
        rng: &mut StdRng,
        progress: &mut impl FnMut(&str),
    ) -> Result<SystemResult, EvalError> {
        let name = format!(
            "suggest{} ({} of {} candidates, {})",
            if matches!(harmonizer, Harmonizer::Offline(_)) {
                ", offline"
            } else {
                ""
            },
            self.options.samples,
            self.options.samples * harmonizer.candidates_per_option(),
            self.settings
        );
        self.sampled_row(&name, progress, |example| {
            let offered = suggest(
                harmonizer,
                &example_phrase(example),
                &[],
                self.options.samples,
                &self.params,
                &self.options.guide,
                rng,
            )?;
            Ok(offered.into_iter().map(|s| s.frames).collect())
        })
    }

    /// Random chords and lengths as often as in the training split: what chance alone scores.
    fn training_distribution_row(
        &self,
        progress: &mut impl FnMut(&str),
    ) -> Result<SystemResult, EvalError> {
        let timer = Instant::now();
        let train_path = self.options.data_dir.join(TRAIN_FILE);
        progress(&format!("counting chords in {}", train_path.display()));
        let statistics = training_statistics(&train_path, self.vocab)?;
        let mut rng = StdRng::seed_from_u64(self.options.seed ^ 0x5eed);
        let mut random = SystemTotals::default();
        for (n, example) in self.subset.examples.iter().enumerate() {
            let track = statistics.sample_track(example.len(), &mut rng);
            random.add(self.subset.dataset_of(n), example, &track, self.masks);
        }
        Ok(row("training distribution", &random, None, timer))
    }

    /// Key finding plus the best-covering diatonic triad per bar: what a simple rule scores.
    fn diatonic_row(&self) -> SystemResult {
        let timer = Instant::now();
        let lookup = TriadLookup::new(self.vocab, self.table);
        let mut diatonic = SystemTotals::default();
        for (n, example) in self.subset.examples.iter().enumerate() {
            let track = diatonic_track(&example.melody, &example.bars, &lookup);
            diatonic.add(self.subset.dataset_of(n), example, &track, self.masks);
        }
        row("diatonic heuristic", &diatonic, None, timer)
    }

    /// A row of progressions produced per example by `produce` (several per melody are pooled),
    /// with progress lines every 25 examples.
    fn sampled_row(
        &self,
        name: &str,
        progress: &mut impl FnMut(&str),
        mut produce: impl FnMut(&Example) -> Result<Vec<Vec<ChordFrame>>, ExampleError>,
    ) -> Result<SystemResult, EvalError> {
        let timer = Instant::now();
        let examples = &self.subset.examples;
        let mut totals = SystemTotals::default();
        for (n, (example, &index)) in examples.iter().zip(&self.subset.indices).enumerate() {
            let progressions = produce(example).map_err(|e| e.at(index))?;
            for chords in &progressions {
                totals.add(self.subset.dataset_of(n), example, chords, self.masks);
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
}

/// The example's melody as the phrase `comper suggest` would get, its metre read off the bars.
fn example_phrase(example: &Example) -> Phrase {
    let bar = example.bars.windows(2).next().map_or(16, |w| w[1] - w[0]);
    Phrase {
        melody: example.melody.clone(),
        time_signature: TimeSignature {
            numerator: (bar / 4).clamp(1, 32) as u8,
            denominator: 4,
        },
        truncated_bars: 0,
    }
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
    vocab: &comper_music::tokens::Vocabulary,
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
