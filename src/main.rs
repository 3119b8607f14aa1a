//! The `comper` command line: a thin layer over the crates (`comper-generate`, `comper-eval`,
//! `comper-serve`, …).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use comper_generate::melody_json::{
    option_midi, parse_suggest_request, requested_model, OptionFile, SuggestReply, SuggestRequest,
};
use comper_generate::sample::SamplingParams;
use comper_generate::suggest::{suggest, Harmonizer, Phrase};
use comper_model::import::{import_checkpoint, max_logit_difference, ImportedConfig};
use comper_model::weights::{
    default_weights_dir, shipped_dir, AnyModel, DEFAULT_MODEL_NAME, DEFAULT_OFFLINE_NAME,
    WEIGHTS_ENV,
};
use comper_model::{LoadedModel, LoadedOffline, ModelKind};
use comper_music::chord::ChordTable;
use comper_music::midi_file::{
    read_melody, write_progression_to_path, MelodyChoice, ProgressionExport,
};
use comper_music::progression::{chord_chart, VoicingStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Largest logit difference `comper import --check` accepts.
const CHECK_TOLERANCE: f32 = 1e-3;

#[derive(Parser)]
#[command(
    name = "comper",
    version,
    about = "Chord accompaniment for a melody, from a ReaLchords-style transformer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Suggest several different chord progressions for the melody in a MIDI file.
    Suggest(SuggestArgs),
    /// Convert an official ReaLchords/ReaLJam PyTorch checkpoint into a Comper weights folder.
    Import(ImportArgs),
    /// Measure decoder speed on random weights (five options, live re-plan).
    Bench(BenchArgs),
    /// Jam along with a melody file as if it were played live, and write what Comper played.
    Jam(JamArgs),
    /// Measure a model's accompaniment of the test split against the ground truth and baselines.
    Eval(EvalArgs),
    /// Sample progressions for training melodies and keep the best ones as fine-tuning data.
    BestOf(BestOfArgs),
    /// Serve the models over localhost HTTP: ReaLJam's live protocol and five options as JSON.
    Serve(ServeArgs),
}

#[derive(Args)]
struct SuggestArgs {
    /// The melody: a .mid file (a track named like "melody", else the most monophonic one), or a
    /// JSON melody (`.json`, or `-` for stdin; the format of `comper serve`'s /suggest, whose
    /// options, temperature, seed, fit and model take the place of these flags where given).
    melody: PathBuf,
    /// How many different progressions to offer.
    #[arg(long, default_value_t = 5)]
    options: usize,
    /// Weights folder of either kind (default: $COMPER_WEIGHTS, else the shipped model that
    /// --model names).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Which shipped model harmonizes: the offline encoder–decoder (hears the whole phrase; the
    /// default when weights/comper-offline exists) or the online decoder.
    #[arg(long, value_enum)]
    model: Option<KindArg>,
    /// Sampling temperature: lower is safer, higher is more adventurous.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Chords may change every N 16th notes: 1 = any 16th (as the model was trained), 2 = 8th
    /// notes, 4 = beats.
    #[arg(long, default_value_t = 2)]
    change_grid: usize,
    /// Nucleus sampling: keep the most likely chords up to this total probability.
    #[arg(long)]
    top_p: Option<f32>,
    /// How strongly the chords lean on the melody (fit, key, strong-beat changes, cadence):
    /// 0 = the model alone, 1 = fit as closely as possible.
    #[arg(long, default_value_t = comper_music::harmony::guide::DEFAULT_STRENGTH)]
    fit: f32,
    /// Random seed, for repeatable suggestions.
    #[arg(long)]
    seed: Option<u64>,
    /// Pick the melody part by index instead of guessing (see the list printed on a bad guess).
    #[arg(long)]
    part: Option<usize>,
    /// Folder for option-1.mid … option-N.mid.
    #[arg(long, default_value = "comper-out")]
    out: PathBuf,
    /// Leave the melody out of the written .mid files (chords only).
    #[arg(long)]
    chords_only: bool,
    /// ReaLJam's plain voicing instead of voice leading.
    #[arg(long)]
    plain_voicing: bool,
    /// Print the options as JSON on stdout instead of chord charts.
    #[arg(long)]
    json: bool,
}

/// `--model` values.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KindArg {
    Offline,
    Online,
}

impl From<KindArg> for ModelKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Offline => ModelKind::Offline,
            KindArg::Online => ModelKind::Online,
        }
    }
}

#[derive(Args)]
struct ImportArgs {
    /// `actor.pth`, `step=N.ckpt` (ReaLJam or Lightning) or another torch.save'd state dict.
    checkpoint: PathBuf,
    /// The chord-name list the model was trained with (`chord_names_augmented.json`).
    #[arg(long)]
    chords: PathBuf,
    /// The training `args.yml` (supplies max_seq_len and cross-checks the inferred shape).
    #[arg(long)]
    args: Option<PathBuf>,
    /// Folder to write (`model.safetensors`, `config.json`, `chord_names.json`).
    #[arg(long)]
    out: PathBuf,
    /// Parity fixture (`tokens` i64 `[T]`, `logits` f32 `[T, V]`) to compare the imported model against.
    #[arg(long)]
    check: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    /// Print the results as JSON on stdout (progress goes to stderr).
    #[arg(long)]
    json: bool,
    /// Instead of the speed table: time a simulated host audio thread (48 kHz, 64-sample
    /// blocks) alone and while the model generates beside it. The model's threads are
    /// `COMPER_THREADS` (default: every core; the plugin leaves one core free).
    #[arg(long)]
    jitter: bool,
    /// With --jitter: seconds of each run (alone, then loaded).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
}

#[derive(Args)]
struct JamArgs {
    /// The melody to play (a MIDI file; the melody part is guessed).
    melody: PathBuf,
    /// Tempo of the performance (default: the file's tempo).
    #[arg(long)]
    bpm: Option<f64>,
    /// Beats Comper listens before it plays.
    #[arg(long, default_value_t = 8)]
    listen_beats: u32,
    /// Beats planned ahead.
    #[arg(long, default_value_t = 4)]
    lookahead: u32,
    /// Beats ahead that are fixed once planned (1 ..= lookahead; ReaLJam: 4). One beat lets each
    /// chord hear the notes of its bar played so far.
    #[arg(long, default_value_t = 1)]
    commit: u32,
    /// Sampling temperature of the plans (ReaLJam: 0.8).
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Chords may change every N 16th notes: 1 = any 16th (ReaLJam), 2 = 8th notes, 4 = beats.
    #[arg(long, default_value_t = 2)]
    change_grid: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fill the listening period's context with silence instead of sampled intro chords.
    #[arg(long)]
    silent_intro: bool,
    /// Weights folder (default: $COMPER_WEIGHTS, else weights/comper-online/ of the source tree).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Offline weights folder that samples the intro chords (default: weights/comper-offline/
    /// when it exists and shares the online model's chord names; `none` for the online model).
    #[arg(long)]
    intro_weights: Option<PathBuf>,
    /// Where to write the chords and the melody.
    #[arg(long, default_value = "jam.mid")]
    out: PathBuf,
    /// Print chords, late frames and re-plan times as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on; anything but a loopback address opens Comper to the network.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Online weights folder (default: $COMPER_WEIGHTS, else the shipped online model).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Offline weights folder: ReaLJam's intro chords and /suggest's default model (default:
    /// the shipped offline model when it shares the online model's chord names; `none` for
    /// the online model alone).
    #[arg(long)]
    offline: Option<PathBuf>,
    /// A static web client to serve at / (e.g. the `realjam/frontend` folder of the realjam
    /// package).
    #[arg(long)]
    frontend: Option<PathBuf>,
    /// Requests answered at once (default: the number of cores, 2–8).
    #[arg(long)]
    workers: Option<usize>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = comper_serve::DEFAULT_MAX_BODY_BYTES)]
    max_body: usize,
}

#[derive(Args)]
struct EvalArgs {
    /// Folder with test.npz, train.npz and chord_names.json (training/convert.py output).
    /// With --melodies: the training split the HMM baseline learns from (optional).
    #[arg(long, required_unless_present = "melodies")]
    data: Option<PathBuf>,
    /// Score a folder of melody cases (NAME.mid + NAME.json, see training/melodies/README.md)
    /// instead of the test split: reference, baselines, raw model samples, Suggest and Live.
    /// Uses the shipped models unless --weights / --offline say otherwise.
    #[arg(long)]
    melodies: Option<PathBuf>,
    /// Write the test split of --data as melody cases into this folder and stop.
    #[arg(long, requires = "data")]
    export_melodies: Option<PathBuf>,
    /// With --melodies: evaluate only N cases, evenly spaced over the folder.
    #[arg(long)]
    max_cases: Option<usize>,
    /// With --melodies: leave out the Live row (a simulated session per case).
    #[arg(long)]
    no_live: bool,
    /// With --melodies: only the reference and the Suggest rows.
    #[arg(long, conflicts_with_all = ["live_only"])]
    suggest_only: bool,
    /// With --melodies: only the reference and the Live row.
    #[arg(long, conflicts_with_all = ["no_live"])]
    live_only: bool,
    /// How strongly Suggest (and Live) lean on the melody: 0 = the model alone, 1 = fit as
    /// closely as possible.
    #[arg(long, default_value_t = comper_music::harmony::guide::DEFAULT_STRENGTH)]
    fit: f32,
    /// Weights folder of the online model to evaluate.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Weights folder of the offline model to evaluate (without either: ground truth and
    /// baselines only; with it, the suggest row uses it).
    #[arg(long)]
    offline: Option<PathBuf>,
    /// Progressions sampled per test melody.
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Let sampled chords change only every N frames (1 = any 16th note, 4 = on beats).
    #[arg(long, default_value_t = 1)]
    change_grid: usize,
    /// Evaluate only this many test examples (song chunks), evenly spaced over the split.
    #[arg(long)]
    max_songs: Option<usize>,
    /// Seed of the model samples and the random baseline.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the results as JSON on stdout (progress goes to stderr).
    #[arg(long)]
    json: bool,
    /// Also write the JSON results to this file (e.g. next to a model card).
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Leave out the suggest row (the slowest), e.g. to compare models quickly.
    #[arg(long)]
    no_suggest: bool,
}

#[derive(Args)]
struct BestOfArgs {
    /// Folder with train.npz and chord_names.json (training/convert.py output).
    #[arg(long)]
    data: PathBuf,
    /// Split file inside --data to draw melodies from.
    #[arg(long, default_value = "train.npz")]
    split: String,
    /// The online model that samples the candidates.
    #[arg(long)]
    weights: PathBuf,
    /// The offline model that judges them (none: melody fit alone).
    #[arg(long)]
    critic: Option<PathBuf>,
    /// Melodies drawn at random from the split.
    #[arg(long, default_value_t = 2000)]
    examples: usize,
    /// Candidates sampled per melody.
    #[arg(long, default_value_t = 8)]
    candidates: usize,
    /// Sampling temperature of the candidates.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Let the candidates' chords change only every N frames (1 = any 16th, 2 = 8th notes).
    #[arg(long, default_value_t = 1)]
    change_grid: usize,
    /// Weight of the critic's mean log-probability per chord token next to the melody fit.
    #[arg(long, default_value_t = 0.2)]
    critic_weight: f64,
    /// A kept candidate has at least this share of the ground truth's chord count.
    #[arg(long, default_value_t = 0.75)]
    min_change_share: f64,
    /// … and at most this share.
    #[arg(long, default_value_t = 1.25)]
    max_change_share: f64,
    /// Penalty per unit share of chord onsets that fall between beats.
    #[arg(long, default_value_t = 0.5)]
    offbeat_weight: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the kept examples (.npz, the converter's layout).
    #[arg(long)]
    out: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Suggest(args) => suggest_command(args),
        Command::Import(args) => import(args),
        Command::Bench(args) => bench(args),
        Command::Jam(args) => jam(args),
        Command::Eval(args) => eval(args),
        Command::BestOf(args) => best_of(args),
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("comper: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn import(args: ImportArgs) -> anyhow::Result<()> {
    let report = import_checkpoint(
        &args.checkpoint,
        &args.chords,
        args.args.as_deref(),
        &args.out,
    )?;
    let c = report.config.base();
    let shape = match &report.config {
        ImportedConfig::Online(_) => format!("online, depth {}", c.depth),
        ImportedConfig::Offline(o) => format!(
            "offline, encoder depth {}, decoder depth {}",
            o.enc_depth, c.depth
        ),
    };
    println!(
        "imported {}: {shape}, dim {}, heads {}, dim_head {}, {} tokens, max_seq_len {}",
        args.checkpoint.display(),
        c.dim,
        c.heads,
        c.dim_head,
        c.num_tokens,
        c.max_seq_len
    );
    if !report.ignored.is_empty() {
        println!(
            "ignored {} non-decoder tensors (e.g. {})",
            report.ignored.len(),
            report.ignored[0]
        );
    }
    let model = AnyModel::load(&args.out).context("re-loading the written folder")?;
    println!("wrote {}", args.out.display());
    if let Some(fixture) = args.check {
        let diff = max_logit_difference(&model, &fixture)?;
        println!(
            "max |logit difference| against {}: {diff:.3e}",
            fixture.display()
        );
        if diff.is_nan() || diff > CHECK_TOLERANCE {
            bail!("logits differ by {diff:.3e}, more than {CHECK_TOLERANCE:.0e}");
        }
    }
    Ok(())
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    if args.jitter {
        let report =
            comper_eval::bench::measure_audio_jitter(args.seconds, |line| eprintln!("{line}"))?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{report}");
        }
        return Ok(());
    }
    let report = comper_eval::bench::run(&comper_eval::bench::default_sizes(), |line| {
        eprintln!("{line}")
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print!("{report}");
    Ok(())
}

/// Loads the named weights folder, or the default one with a hint when it is missing.
fn load_model(weights: Option<PathBuf>) -> anyhow::Result<LoadedModel> {
    let named = weights.is_some();
    let dir = weights.unwrap_or_else(default_weights_dir);
    if !named && !dir.exists() {
        bail!(
            "no weights folder at {} (the shipped model is missing); pass --weights DIR, set \
             COMPER_WEIGHTS, or make one with `comper import`",
            dir.display()
        );
    }
    LoadedModel::load(&dir).with_context(|| format!("loading weights from {}", dir.display()))
}

/// The model `comper suggest` harmonizes with: `--weights` (or `$COMPER_WEIGHTS`), whichever
/// kind it holds, else the shipped folder of `--model`'s kind (offline when it exists).
fn load_harmonizer(weights: Option<PathBuf>, kind: Option<ModelKind>) -> anyhow::Result<AnyModel> {
    let env = std::env::var_os(WEIGHTS_ENV).filter(|dir| !dir.is_empty());
    let named = weights.or_else(|| env.map(PathBuf::from));
    let dir = match (named, kind) {
        (Some(dir), _) => dir,
        (None, Some(ModelKind::Online)) => shipped_dir(DEFAULT_MODEL_NAME),
        (None, Some(ModelKind::Offline)) => shipped_dir(DEFAULT_OFFLINE_NAME),
        (None, None) => Some(shipped_dir(DEFAULT_OFFLINE_NAME))
            .filter(|dir| dir.exists())
            .unwrap_or_else(|| shipped_dir(DEFAULT_MODEL_NAME)),
    };
    if !dir.exists() {
        bail!(
            "no weights folder at {}; pass --weights DIR, set {WEIGHTS_ENV}, or make one with \
             `comper import`",
            dir.display()
        );
    }
    let model =
        AnyModel::load(&dir).with_context(|| format!("loading weights from {}", dir.display()))?;
    let found = Harmonizer::from(&model).kind();
    if let Some(wanted) = kind.filter(|&wanted| wanted != found) {
        bail!(
            "{} holds an {found} model but --model asks for an {wanted} one",
            dir.display()
        );
    }
    Ok(model)
}

/// The melody of `comper suggest`, with the settings a JSON melody brings along.
struct SuggestInput {
    notes: Vec<comper_realtime::frames::Note>,
    tempo_bpm: f64,
    time_signature: comper_realtime::frames::TimeSignature,
    request: Option<SuggestRequest>,
}

/// Whether `path` names a JSON melody (`.json`, or `-` for stdin) rather than a MIDI file.
fn is_json_melody(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
        || path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

fn read_json_melody(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the JSON melody from stdin")?;
    } else {
        bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(bytes)
}

fn suggest_command(args: SuggestArgs) -> anyhow::Result<()> {
    let json_bytes = is_json_melody(&args.melody)
        .then(|| read_json_melody(&args.melody))
        .transpose()?;
    // A JSON melody may name the model kind; a name that is neither kind is checked below.
    let json_kind = json_bytes.as_deref().and_then(requested_model);
    let kind = match json_kind.as_deref() {
        Some("offline") => Some(ModelKind::Offline),
        Some("online") => Some(ModelKind::Online),
        _ => args.model.map(ModelKind::from),
    };
    let loaded = load_harmonizer(args.weights, kind)?;
    let model = Harmonizer::from(&loaded);
    let input = match &json_bytes {
        Some(bytes) => {
            let request = parse_suggest_request(bytes, model.max_frames())
                .with_context(|| format!("reading the JSON melody {}", args.melody.display()))?;
            if let Some(name) = request.model.as_deref() {
                if !["offline", "online", model.name()].contains(&name) {
                    bail!(
                        "model: unknown model {name:?} (offline, online or {})",
                        model.name()
                    );
                }
            }
            SuggestInput {
                notes: request.notes.clone(),
                tempo_bpm: request.tempo_bpm,
                time_signature: request.time_signature,
                request: Some(request),
            }
        }
        None => {
            let choice = args.part.map_or(MelodyChoice::Auto, MelodyChoice::Part);
            let melody = read_melody(&args.melody, choice)
                .with_context(|| format!("reading the melody from {}", args.melody.display()))?;
            SuggestInput {
                notes: melody.notes,
                tempo_bpm: melody.tempo_bpm,
                time_signature: melody.time_signature,
                request: None,
            }
        }
    };
    let request = input.request.as_ref();
    let options = request.and_then(|r| r.options).unwrap_or(args.options);
    if options == 0 {
        bail!("--options must be at least 1");
    }
    let phrase = Phrase::from_notes(&input.notes, input.time_signature, model.max_frames());
    if phrase.truncated_bars > 0 {
        eprintln!(
            "comper: the model hears at most {} frames; the last {} bar(s) were left out",
            model.max_frames(),
            phrase.truncated_bars
        );
    }
    let params = SamplingParams {
        temperature: request
            .and_then(|r| r.temperature)
            .unwrap_or(args.temperature),
        top_p: args.top_p,
        change_grid: args.change_grid,
        ..SamplingParams::default()
    };
    let mut rng = match request.and_then(|r| r.seed).or(args.seed) {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    };
    let started = std::time::Instant::now();
    let fit = request.and_then(|r| r.fit).unwrap_or(args.fit);
    let guide = comper_music::harmony::GuideSettings::with_strength(fit);
    let suggestions = suggest(model, &phrase, &[], options, &params, &guide, &mut rng)?;
    let elapsed = started.elapsed();

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let table = ChordTable::new(model.vocabulary());
    let file = OptionFile {
        melody: (!args.chords_only).then_some(input.notes.as_slice()),
        tempo_bpm: input.tempo_bpm,
        time_signature: input.time_signature,
        style: if args.plain_voicing {
            VoicingStyle::Plain
        } else {
            VoicingStyle::VoiceLed
        },
    };
    let mut written = Vec::with_capacity(suggestions.len());
    for (i, suggestion) in suggestions.iter().enumerate() {
        let path = args.out.join(format!("option-{}.mid", i + 1));
        let bytes = option_midi(suggestion, &table, file)
            .with_context(|| format!("writing {}", path.display()))?;
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }

    if args.json {
        let mut reply = SuggestReply::new(&suggestions);
        reply.truncated_bars = phrase.truncated_bars;
        println!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    println!(
        "{}: {} bars at {:.0} BPM, {} model {} ({} options from {} candidates in {:.0} ms)",
        args.melody.display(),
        phrase.melody.len() / comper_generate::suggest::frames_per_bar(phrase.time_signature),
        input.tempo_bpm,
        model.kind(),
        model.name(),
        suggestions.len(),
        options * model.candidates_per_option(),
        elapsed.as_secs_f64() * 1000.0
    );
    for ((i, suggestion), path) in suggestions.iter().enumerate().zip(&written) {
        println!(
            "\nOption {}: {} (melody in chord {:.0}%, log-likelihood {:.1}) → {}",
            i + 1,
            suggestion.description,
            100.0 * suggestion.melody_fit,
            suggestion.log_likelihood,
            path.display()
        );
        print!(
            "{}",
            chord_chart(&suggestion.chords, phrase.beats(), phrase.time_signature, 4)
        );
    }
    Ok(())
}

fn jam(args: JamArgs) -> anyhow::Result<()> {
    use comper_generate::live::{IntroMode, LiveConfig};
    use comper_generate::runtime::{simulate_jam, JamSettings, ModelPair};

    let model = load_model(args.weights)?;
    let melody = read_melody(&args.melody, MelodyChoice::Auto)
        .with_context(|| format!("reading the melody of {}", args.melody.display()))?;
    let tempo_bpm = args.bpm.unwrap_or(melody.tempo_bpm);
    let config = LiveConfig {
        listen_beats: args.listen_beats,
        lookahead_beats: args.lookahead,
        commit_beats: args.commit,
        temperature: args.temperature,
        change_grid: args.change_grid,
        seed: args.seed,
        intro: if args.silent_intro {
            IntroMode::Silence
        } else {
            IntroMode::Sampled
        },
        ..LiveConfig::default()
    };
    let settings = JamSettings {
        tempo_bpm,
        time_signature: melody.time_signature,
        ..JamSettings::default()
    };
    let intro = load_companion_offline(args.intro_weights, &model)?;
    let model = Arc::new(model);
    let models = ModelPair::new(Arc::clone(&model), intro.map(Arc::new));
    let report = simulate_jam(&models, &melody.notes, &config, &settings)?;
    let summary = report.summary(&model.vocabulary);

    let export = ProgressionExport {
        chords: report.voiced_chords(80),
        melody: Some(melody.notes.clone()),
        tempo_bpm,
        time_signature: melody.time_signature,
        ..ProgressionExport::default()
    };
    write_progression_to_path(&export, &args.out)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    print!(
        "{}",
        comper_music::progression::chord_chart(
            &summary.chords,
            report.total_beats,
            melody.time_signature,
            4
        )
    );
    let frame_ms = 15_000.0 / tempo_bpm;
    println!(
        "{} re-plans: p50 {:.1} ms, p99 {:.1} ms (one frame at {tempo_bpm} BPM = {frame_ms:.1} ms); {} late frames",
        report.replan_ms.len(),
        summary.replan_ms_p50.unwrap_or(f64::NAN),
        summary.replan_ms_p99.unwrap_or(f64::NAN),
        summary.late_frames,
    );
    println!("wrote {}", args.out.display());
    Ok(())
}

/// The offline model that goes with an online one (ReaLJam's intro; /suggest): the named folder,
/// `none`, or the shipped offline model when it exists and shares the online model's chord names.
fn load_companion_offline(
    named: Option<PathBuf>,
    online: &LoadedModel,
) -> anyhow::Result<Option<LoadedOffline>> {
    Ok(match named {
        Some(dir) if dir.as_os_str() == "none" => None,
        Some(dir) => Some(
            LoadedOffline::load(&dir)
                .with_context(|| format!("loading the offline model from {}", dir.display()))?,
        ),
        None => Some(shipped_dir(DEFAULT_OFFLINE_NAME))
            .filter(|dir| dir.exists())
            .and_then(|dir| LoadedOffline::load(&dir).ok())
            .filter(|offline| offline.vocabulary == online.vocabulary),
    })
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    use comper_generate::runtime::ModelPair;
    use comper_serve::{ServeConfig, Server};

    let online = load_model(args.weights)?;
    let offline = load_companion_offline(args.offline, &online)?;
    let models = ModelPair::new(Arc::new(online), offline.map(Arc::new));
    let defaults = ServeConfig::default();
    let config = ServeConfig {
        addr: std::net::SocketAddr::new(args.host, args.port),
        workers: args.workers.unwrap_or(defaults.workers).max(1),
        frontend: args.frontend,
        max_body_bytes: args.max_body,
        log: true,
    };
    let workers = config.workers;
    let server = Server::start(models.clone(), config)?;
    let stopper = server.stopper();
    ctrlc::set_handler(move || stopper.stop()).context("installing the Ctrl-C handler")?;
    eprintln!(
        "comper serve: listening on http://{} ({workers} workers; live model {}, suggest model {}); \
         Ctrl-C stops",
        server.addr(),
        models.online.config.name,
        models
            .offline
            .as_ref()
            .map_or(models.online.config.name.as_str(), |m| m.config.base.name.as_str()),
    );
    if !args.host.is_loopback() {
        eprintln!(
            "comper serve: warning: {} is reachable from other machines",
            args.host
        );
    }
    server.join();
    eprintln!("comper serve: stopped");
    Ok(())
}

fn eval(args: EvalArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.melodies {
        return eval_melodies(&args, dir);
    }
    let Some(data_dir) = args.data.clone() else {
        bail!("--data or --melodies is needed");
    };
    if let Some(out) = &args.export_melodies {
        let written = comper_eval::export_test_cases(&data_dir, args.max_songs, out)?;
        println!("wrote {written} melody cases to {}", out.display());
        return Ok(());
    }
    let options = comper_eval::EvalOptions {
        data_dir,
        weights: args.weights,
        offline: args.offline,
        samples: args.samples,
        temperature: args.temperature,
        change_grid: args.change_grid,
        max_examples: args.max_songs,
        seed: args.seed,
        suggest: !args.no_suggest,
        guide: comper_music::harmony::GuideSettings::with_strength(args.fit),
    };
    let report = comper_eval::evaluate(&options, |line| eprintln!("{line}"))?;
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", report.markdown());
    }
    Ok(())
}

/// `comper eval --melodies DIR`: the harmony benchmark on a folder of melody cases.
fn eval_melodies(args: &EvalArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let online = args
        .weights
        .clone()
        .unwrap_or_else(|| shipped_dir(DEFAULT_MODEL_NAME));
    let offline = args
        .offline
        .clone()
        .or_else(|| Some(shipped_dir(DEFAULT_OFFLINE_NAME)).filter(|d| d.exists()));
    let options = comper_eval::melody_eval::MelodyEvalOptions {
        dir: dir.to_owned(),
        online: Some(online),
        offline,
        data: args.data.clone(),
        options: args.samples,
        temperature: args.temperature,
        max_cases: args.max_cases,
        seed: args.seed,
        live: !args.no_live,
        suggest_only: args.suggest_only,
        live_only: args.live_only,
        guide: comper_music::harmony::GuideSettings::with_strength(args.fit),
    };
    let report = comper_eval::melody_eval::evaluate_melodies(&options, |line| eprintln!("{line}"))?;
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", report.markdown());
    }
    Ok(())
}

fn best_of(args: BestOfArgs) -> anyhow::Result<()> {
    let options = comper_eval::best_of::BestOfOptions {
        split: args.data.join(&args.split),
        chord_names: args.data.join(comper_model::weights::CHORD_NAMES_FILE),
        weights: args.weights,
        critic: args.critic,
        examples: args.examples,
        candidates: args.candidates,
        temperature: args.temperature,
        change_grid: args.change_grid,
        critic_weight: args.critic_weight,
        min_change_share: args.min_change_share,
        max_change_share: args.max_change_share,
        offbeat_weight: args.offbeat_weight,
        seed: args.seed,
        out: args.out,
    };
    let report = comper_eval::best_of::best_of(&options, |line| eprintln!("{line}"))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!("wrote {}", options.out.display());
    Ok(())
}
