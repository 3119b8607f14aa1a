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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Import(args) => import(args),
        Command::Bench(args) => bench(args),
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
    print!("{report}");
    Ok(())
}
