//! The `comper` command line: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Measure a model's accompaniment of the test split against the ground truth and baselines.
    Eval(EvalArgs),
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
struct EvalArgs {
    /// Folder with test.npz, train.npz and chord_names.json (training/convert.py output).
    #[arg(long)]
    data: PathBuf,
    /// Weights folder of the model to evaluate (without it: ground truth and baselines only).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Progressions sampled per test melody.
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Import(args) => import(args),
        Command::Bench(args) => bench(args),
        Command::Eval(args) => eval(args),
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

fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let options = comper::eval::EvalOptions {
        data_dir: args.data,
        weights: args.weights,
        samples: args.samples,
        temperature: args.temperature,
        max_examples: args.max_songs,
        seed: args.seed,
    };
    let report = comper::eval::evaluate(&options, |line| eprintln!("{line}"))?;
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
