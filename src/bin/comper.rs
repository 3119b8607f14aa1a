//! The `comper` command line: a thin layer over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use comper::model::import::{import_checkpoint, max_logit_difference};
use comper::model::LoadedModel;

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
    /// Convert an official ReaLchords/ReaLJam PyTorch checkpoint into a Comper weights folder.
    Import(ImportArgs),
    /// Measure decoder speed on random weights (five options, live re-plan).
    Bench(BenchArgs),
    /// Jam along with a melody file as if it were played live, and write what Comper played.
    Jam(JamArgs),
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
    /// Parity fixture (`tokens` i64 [T], `logits` f32 [T, V]) to compare the imported model against.
    #[arg(long)]
    check: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    /// Print the results as JSON on stdout (progress goes to stderr).
    #[arg(long)]
    json: bool,
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
    /// Beats ahead that are fixed once planned (1 ..= lookahead).
    #[arg(long, default_value_t = 4)]
    commit: u32,
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fill the listening period's context with silence instead of sampled intro chords.
    #[arg(long)]
    silent_intro: bool,
    /// Weights folder (default: $COMPER_WEIGHTS, else weights/comper-online/ of the source tree).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Where to write the chords and the melody.
    #[arg(long, default_value = "jam.mid")]
    out: PathBuf,
    /// Print chords, late frames and re-plan times as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Import(args) => import(args),
        Command::Bench(args) => bench(args),
        Command::Jam(args) => jam(args),
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
    let c = &report.config;
    println!(
        "imported {}: dim {}, depth {}, heads {}, dim_head {}, {} tokens, max_seq_len {}",
        args.checkpoint.display(),
        c.dim,
        c.depth,
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
    let model = LoadedModel::load(&args.out).context("re-loading the written folder")?;
    println!("wrote {}", args.out.display());
    if let Some(fixture) = args.check {
        let diff = max_logit_difference(&model.decoder, &fixture)?;
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
    let report = comper::bench::run(&comper::bench::default_sizes(), |line| eprintln!("{line}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("read bandwidth {:.1} GB/s", report.read_bandwidth_gb_s);
    for r in &report.configs {
        println!(
            "{:<20} five options {:>8.1} ms (floor {:>7.1} ms, {:>4.0}% of floor) | live p50 {:>6.1} ms p99 {:>6.1} ms (floor {:>5.1} ms), reusing context p50 {:>6.1} ms",
            r.name,
            r.five_options_ms,
            r.five_options_floor_ms,
            100.0 * r.five_options_floor_ms / r.five_options_ms,
            r.live_replan_ms_p50,
            r.live_replan_ms_p99,
            r.live_replan_floor_ms,
            r.live_replan_incremental_ms_p50,
        );
    }
    Ok(())
}

/// `--weights`, else `$COMPER_WEIGHTS`, else the source tree's `weights/comper-online/`.
fn weights_dir(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| {
            std::env::var_os("COMPER_WEIGHTS")
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/comper-online"))
}

fn jam(args: JamArgs) -> anyhow::Result<()> {
    use comper::live::{simulate_jam, IntroMode, JamSettings, LiveConfig};
    use comper::midi_file::{
        read_melody, write_progression_to_path, MelodyChoice, ProgressionExport,
    };

    let dir = weights_dir(args.weights);
    let model = LoadedModel::load(&dir)
        .with_context(|| format!("loading the weights folder {}", dir.display()))?;
    let melody = read_melody(&args.melody, MelodyChoice::Auto)
        .with_context(|| format!("reading the melody of {}", args.melody.display()))?;
    let tempo_bpm = args.bpm.unwrap_or(melody.tempo_bpm);
    let config = LiveConfig {
        listen_beats: args.listen_beats,
        lookahead_beats: args.lookahead,
        commit_beats: args.commit,
        temperature: args.temperature,
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
    let model = Arc::new(model);
    let report = simulate_jam(Arc::clone(&model), &melody.notes, &config, &settings)?;
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
        comper::progression::chord_chart(
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
