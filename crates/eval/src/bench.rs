//! `comper bench`: how fast the decoder runs the two jobs Comper needs, on random weights.
//!
//! * five options × 256 frames (batch 5, melody teacher-forced) — the suggestion panel with the
//!   online decoder — and the same with the offline encoder–decoder of the same width (encoder
//!   run once, chords decoded in one batch), which Suggest mode uses when it has one;
//! * one live re-plan (256-frame context, 16-frame lookahead, nothing committed) — live mode's
//!   worst case, a plan from scratch;
//! * the per-frame re-plans of a live session (ReaLJam's defaults: a request every frame,
//!   lookahead = commitahead = 16 frames, so 15 planned chords are kept and one is new), both while
//!   the context grows (the previous context is reused from the cache) and once the 256-frame
//!   window slides (every token's position changes, so the whole context is recomputed), and
//!   sliding in [`WINDOW_HOP`]-frame hops ([`LivePlanner::with_window_hop`]).
//!
//! Incremental decoding with few rows is bound by streaming the weights from memory, so next to
//! the timings the bench prints a floor: weight bytes × sequential decoder calls ÷ measured read
//! bandwidth; for five options also the same counting the keys and values each call reads from
//! its cache.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use comper_generate::sample::{
    commit_frames, generate_offline_options, generate_options, plan_live, LivePlanner, LiveRequest,
    OptionsRequest, SampleError, SamplingParams,
};
use comper_model::random::{
    random_decoder, random_decoder_stored, random_offline, random_offline_stored,
};
use comper_model::{
    measure_product_rate, measure_read_bandwidth, Decoder, ModelConfig, ModelKind, OfflineConfig,
    OfflineModel,
};
use comper_music::tokens::{Vocabulary, CHORD_BASE};
use comper_realtime::frames::{ChordFrame, MelodyFrame};

/// Frames of the five-options job and of the live context.
pub const BENCH_FRAMES: usize = 256;
/// Live lookahead in frames (4 beats).
pub const BENCH_LOOKAHEAD: usize = 16;
/// Options per suggestion.
pub const BENCH_OPTIONS: usize = 5;
/// The chord-change grid of the second five-options measurement: 8th notes, the default of the
/// plugin and of `suggest`.
const BENCH_CHANGE_GRID: usize = 2;
/// Frame of a live session's first timed re-plan while the context still grows.
const GROWING_START: usize = 128;
/// Frame of the first timed re-plan once the context window slides.
const SLIDING_START: usize = 256;
/// Window hop (frames) of the hopping live-session scenario.
pub const WINDOW_HOP: usize = 16;

/// One model size to measure, with how often to repeat each job.
#[derive(Debug, Clone)]
pub struct BenchSize {
    /// Shape of the random decoder.
    pub config: ModelConfig,
    /// Shape of the random offline model measured beside it.
    pub offline: OfflineConfig,
    /// Repeats of the five-options job (the median is reported).
    pub option_runs: usize,
    /// Repeats of the live re-plan (median and p99 are reported).
    pub live_runs: usize,
    /// Per-frame re-plans timed in each live-session scenario (a multiple of [`WINDOW_HOP`], so
    /// the hopping scenario includes its recomputations).
    pub session_replans: usize,
}

/// The sizes `comper bench` measures: the published ReaLchords model and the (smaller) size Comper
/// intends to ship. Edit this list when the shipped size changes.
pub fn default_sizes() -> Vec<BenchSize> {
    let realchords = ModelConfig::realchords(2962);
    let shipped = ModelConfig {
        name: "shipped".into(),
        dim: 256,
        depth: 4,
        heads: 4,
        dim_head: 64,
        num_tokens: 854,
        max_seq_len: 514,
    };
    let shipped_offline = OfflineConfig {
        kind: ModelKind::Offline,
        base: ModelConfig {
            name: "shipped offline".into(),
            max_seq_len: 258,
            ..shipped.clone()
        },
        enc_depth: 4,
    };
    vec![
        BenchSize {
            offline: OfflineConfig::realchords(realchords.num_tokens),
            config: realchords,
            option_runs: 3,
            live_runs: 15,
            session_replans: 16,
        },
        BenchSize {
            config: shipped,
            offline: shipped_offline,
            option_runs: 10,
            live_runs: 50,
            session_replans: 48,
        },
    ]
}

/// Measurements for one size; the JSON field names are part of the `--json` output.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub name: String,
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub num_tokens: usize,
    /// Median wall time of five options × 256 frames.
    pub five_options_ms: f64,
    /// The same with chords changing only on 8th notes (`change_grid` 2, the default of the
    /// plugin and of `suggest`): held chords need no decoder call of their own.
    pub five_options_grid_ms: f64,
    /// Median wall time of one live re-plan.
    pub live_replan_ms_p50: f64,
    /// 99th-percentile wall time of one live re-plan.
    pub live_replan_ms_p99: f64,
    /// Median per-frame re-plan of a live session while the context grows (history of 128 frames
    /// on), reusing the previous request's cached context.
    pub live_replan_incremental_ms_p50: f64,
    /// 99th percentile of the same.
    pub live_replan_incremental_ms_p99: f64,
    /// Median per-frame re-plan once the 256-frame window slides (whole context recomputed).
    pub live_replan_sliding_ms_p50: f64,
    /// 99th percentile of the same.
    pub live_replan_sliding_ms_p99: f64,
    /// Median per-frame re-plan with the window sliding in [`WINDOW_HOP`]-frame hops.
    pub live_replan_hopping_ms_p50: f64,
    /// 99th percentile of the same.
    pub live_replan_hopping_ms_p99: f64,
    /// Bytes of weights streamed by one decoder call.
    pub weight_bytes: usize,
    /// Weight-streaming floor for five options (256 sequential calls).
    pub five_options_floor_ms: f64,
    /// Median wall time of five options × 256 frames with the offline model of this width.
    pub offline_five_options_ms: f64,
    /// The same on the 8th-note grid.
    pub offline_five_options_grid_ms: f64,
    /// Encoder and decoder depth of that offline model.
    pub offline_enc_depth: usize,
    pub offline_dec_depth: usize,
    /// Bytes of decoder weights streamed by one offline decoder call.
    pub offline_weight_bytes: usize,
    /// Weight-streaming floor for offline five options (256 sequential decoder calls).
    pub offline_five_options_floor_ms: f64,
    /// Five options again with every weight stored as f16 (computed in f32), online and offline
    /// model, with their floors: how the shipped offline model and bf16 official checkpoints run.
    pub five_options_f16_ms: f64,
    pub five_options_f16_floor_ms: f64,
    /// Five options as the plugin runs the shipped model: f16 weights, chords on 8th notes.
    pub five_options_f16_grid_ms: f64,
    pub offline_five_options_f16_ms: f64,
    pub offline_five_options_f16_floor_ms: f64,
    /// The live re-plan from scratch as the plugin runs the shipped model: every weight matrix
    /// stored as f16 and chords changing on 8th notes (held chords skip their decoder calls);
    /// median, 99th percentile and the weight-streaming floor of a call per token.
    pub live_replan_f16_grid_ms_p50: f64,
    pub live_replan_f16_grid_ms_p99: f64,
    pub live_replan_f16_floor_ms: f64,
    /// Weight-streaming floor for the live re-plan's sequential calls (prefill excluded).
    pub live_replan_floor_ms: f64,
    /// Weight-streaming floor for a per-frame re-plan's sequential calls (prefill excluded).
    pub live_replan_incremental_floor_ms: f64,
    /// Arithmetic floor for five options: its weight multiply-adds (attention excluded) at the
    /// measured kernel throughput on every thread.
    pub five_options_compute_floor_ms: f64,
    /// Streaming floor for five options counting the key/value cache too: each call also reads
    /// every stored key and value of its five rows (f32), by the end more bytes than the weights
    /// at the shipped size. Where neither fits in the last-level cache, this is what memory allows.
    pub five_options_with_cache_floor_ms: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub configs: Vec<BenchResult>,
    /// Measured memory read bandwidth, GB/s.
    pub read_bandwidth_gb_s: f64,
    /// Measured multiply-add throughput of one core in the decoder's micro-kernel (ten rows,
    /// weights in cache), GFLOP/s.
    pub kernel_gflop_s_per_core: f64,
    /// The same product through candle's `matmul` (the baseline the kernel replaced; candle
    /// picks its own threads), GFLOP/s.
    pub candle_matmul_gflop_s: f64,
    /// Threads a generation runs on.
    pub threads: usize,
}

impl std::fmt::Display for BenchReport {
    /// The human-readable report `comper bench` prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "read bandwidth {:.1} GB/s; micro-kernel {:.1} GFLOP/s per core, {} threads; \
             candle matmul {:.1} GFLOP/s",
            self.read_bandwidth_gb_s,
            self.kernel_gflop_s_per_core,
            self.threads,
            self.candle_matmul_gflop_s
        )?;
        for r in &self.configs {
            writeln!(
                f,
                "{} (dim {}, depth {}, heads {}, {} tokens; {:.1} MB of weights per decoder call)",
                r.name,
                r.dim,
                r.depth,
                r.heads,
                r.num_tokens,
                r.weight_bytes as f64 / 1e6
            )?;
            writeln!(
                f,
                "  five options × {BENCH_FRAMES} frames       {:>8.1} ms               (weight-streaming floor {:.1} ms, with the KV cache {:.1} ms, arithmetic floor {:.1} ms)",
                r.five_options_ms,
                r.five_options_floor_ms,
                r.five_options_with_cache_floor_ms,
                r.five_options_compute_floor_ms
            )?;
            writeln!(
                f,
                "  five options, 8th-note changes  {:>8.1} ms",
                r.five_options_grid_ms
            )?;
            writeln!(
                f,
                "  offline five options (enc {}, dec {}) {:>6.1} ms               (weight-streaming floor {:.1} ms)",
                r.offline_enc_depth,
                r.offline_dec_depth,
                r.offline_five_options_ms,
                r.offline_five_options_floor_ms
            )?;
            writeln!(
                f,
                "  offline, 8th-note changes       {:>8.1} ms",
                r.offline_five_options_grid_ms
            )?;
            writeln!(
                f,
                "  five options, f16 weights       {:>8.1} ms               (weight-streaming floor {:.1} ms)",
                r.five_options_f16_ms, r.five_options_f16_floor_ms
            )?;
            writeln!(
                f,
                "  five options, f16, 8th notes    {:>8.1} ms",
                r.five_options_f16_grid_ms
            )?;
            writeln!(
                f,
                "  offline five options, f16       {:>8.1} ms               (weight-streaming floor {:.1} ms)",
                r.offline_five_options_f16_ms, r.offline_five_options_f16_floor_ms
            )?;
            let rows = [
                (
                    "live re-plan from scratch     ",
                    r.live_replan_ms_p50,
                    r.live_replan_ms_p99,
                    r.live_replan_floor_ms,
                ),
                (
                    "live re-plan, f16, 8th notes  ",
                    r.live_replan_f16_grid_ms_p50,
                    r.live_replan_f16_grid_ms_p99,
                    r.live_replan_f16_floor_ms,
                ),
                (
                    "per-frame re-plan, growing    ",
                    r.live_replan_incremental_ms_p50,
                    r.live_replan_incremental_ms_p99,
                    r.live_replan_incremental_floor_ms,
                ),
                (
                    "per-frame re-plan, sliding    ",
                    r.live_replan_sliding_ms_p50,
                    r.live_replan_sliding_ms_p99,
                    r.live_replan_incremental_floor_ms,
                ),
                (
                    "per-frame re-plan, hopping    ",
                    r.live_replan_hopping_ms_p50,
                    r.live_replan_hopping_ms_p99,
                    r.live_replan_incremental_floor_ms,
                ),
            ];
            for (label, p50, p99, floor) in rows {
                writeln!(
                    f,
                    "  {label}p50 {p50:>8.1} ms, p99 {p99:>8.1} ms (floor {floor:.1} ms + prompt)"
                )?;
            }
        }
        Ok(())
    }
}

/// A vocabulary of the right size for `config` (placeholder chord names).
fn bench_vocabulary(config: &ModelConfig) -> Result<Vocabulary, SampleError> {
    let chords = config.num_tokens.saturating_sub(CHORD_BASE as usize) / 2;
    Ok(Vocabulary::new(
        (0..chords).map(|i| format!("chord{i}")).collect(),
    )?)
}

/// A plausible melody: a note every beat, held for three frames, rests every fourth bar.
fn bench_melody(frames: usize) -> Vec<MelodyFrame> {
    (0..frames)
        .map(|t| {
            let pitch = 60 + ((t / 4) * 7 % 12) as u8;
            match (t / 64 % 4 == 3, t % 4) {
                (true, _) => MelodyFrame::Silence,
                (false, 0) => MelodyFrame::Onset(pitch),
                (false, _) => MelodyFrame::Hold(pitch),
            }
        })
        .collect()
}

/// Runs all sizes; `progress` receives a line per finished measurement.
pub fn run(
    sizes: &[BenchSize],
    mut progress: impl FnMut(&str),
) -> Result<BenchReport, SampleError> {
    let machine = Machine::measure(&mut progress);
    let mut configs = Vec::with_capacity(sizes.len());
    for size in sizes {
        configs.push(bench_size(size, &machine, &mut progress)?);
    }
    Ok(BenchReport {
        configs,
        read_bandwidth_gb_s: machine.bandwidth / 1e9,
        kernel_gflop_s_per_core: machine.kernel_rate / 1e9,
        candle_matmul_gflop_s: machine.candle_rate / 1e9,
        threads: machine.threads,
    })
}

/// FLOP/s of candle's `matmul` on the product [`measure_product_rate`] times (`rows` inputs by
/// a `[out_dim, in_dim]` f32 matrix, best of `repeats`): the baseline Comper's kernel replaced.
/// NaN when candle refuses the shapes.
fn candle_product_rate(rows: usize, out_dim: usize, in_dim: usize, repeats: usize) -> f64 {
    let weights: Vec<f32> = (0..out_dim * in_dim)
        .map(|i| (i % 13) as f32 / 13.0 - 0.5)
        .collect();
    let x: Vec<f32> = (0..rows * in_dim).map(|i| (i % 7) as f32 / 7.0).collect();
    let tensors = Tensor::from_vec(weights, (out_dim, in_dim), &Device::Cpu)
        .and_then(|w| w.t())
        .and_then(|w| Ok((Tensor::from_vec(x, (rows, in_dim), &Device::Cpu)?, w)));
    let Ok((x, w)) = tensors else {
        return f64::NAN;
    };
    let mut best = f64::MAX;
    for _ in 0..repeats.max(1) {
        let start = std::time::Instant::now();
        let Ok(out) = x.matmul(&w) else {
            return f64::NAN;
        };
        std::hint::black_box(&out);
        best = best.min(start.elapsed().as_secs_f64());
    }
    2.0 * (rows * out_dim * in_dim) as f64 / best
}

/// What the machine allows, measured once: the floors of every size are computed from it.
struct Machine {
    /// Memory read bandwidth, bytes per second.
    bandwidth: f64,
    /// Micro-kernel multiply-add throughput of one core, FLOP per second.
    kernel_rate: f64,
    /// The same product through candle's matmul, FLOP per second.
    candle_rate: f64,
    /// Threads a generation runs on.
    threads: usize,
}

impl Machine {
    /// Measures the read bandwidth and the micro-kernel's throughput.
    fn measure(progress: &mut impl FnMut(&str)) -> Self {
        let bandwidth = measure_read_bandwidth();
        progress(&format!(
            "memory read bandwidth: {:.1} GB/s",
            bandwidth / 1e9
        ));
        let kernel_rate = measure_product_rate(10, 2048, 256, 200);
        let threads = comper_model::model_threads();
        progress(&format!(
            "micro-kernel: {:.1} GFLOP/s per core, {threads} threads",
            kernel_rate / 1e9
        ));
        let candle_rate = candle_product_rate(10, 2048, 256, 200);
        progress(&format!(
            "candle matmul, the same product: {:.1} GFLOP/s",
            candle_rate / 1e9
        ));
        Self {
            bandwidth,
            kernel_rate,
            candle_rate,
            threads,
        }
    }

    /// Milliseconds to stream `bytes` of weights `calls` times at the measured bandwidth.
    fn streaming_floor_ms(&self, bytes: usize, calls: usize) -> f64 {
        bytes as f64 * calls as f64 / self.bandwidth * 1e3
    }
}

/// Median five-options times of one model.
struct OptionTimes {
    /// Chords free to change on any frame.
    any_frame_ms: f64,
    /// Chords changing only on 8th notes.
    on_grid_ms: f64,
}

/// Median and 99th percentile of one re-plan scenario, in milliseconds.
type Spread = (f64, f64);

/// Everything timed for one size.
struct SizeTimes {
    online: OptionTimes,
    offline: OptionTimes,
    online_f16: OptionTimes,
    offline_f16_ms: f64,
    live_replan: Spread,
    live_replan_f16_grid: Spread,
    growing: Spread,
    sliding: Spread,
    hopping: Spread,
}

/// Bytes each timed model streams per decoder call, for the floors.
struct WeightBytes {
    online: usize,
    offline: usize,
    online_f16: usize,
    offline_f16: usize,
}

/// Times every job of one size on random weights (each model built just before its jobs).
fn bench_size(
    size: &BenchSize,
    machine: &Machine,
    progress: &mut impl FnMut(&str),
) -> Result<BenchResult, SampleError> {
    let config = &size.config;
    let decoder = random_decoder(config)?;
    let mut jobs = SizeJobs::new(size)?;
    let online = jobs.online_options(&decoder)?;
    progress(&format!(
        "{}: five options × {BENCH_FRAMES} frames: {:.1} ms, on 8th notes {:.1} ms",
        config.name, online.any_frame_ms, online.on_grid_ms
    ));

    let offline = random_offline(&size.offline)?;
    let offline_times = jobs.offline_options(&offline)?;
    progress(&format!(
        "{}: offline five options × {BENCH_FRAMES} frames: {:.1} ms, on 8th notes {:.1} ms",
        config.name, offline_times.any_frame_ms, offline_times.on_grid_ms
    ));

    let decoder_f16 = random_decoder_stored(config, DType::F16)?;
    let online_f16 = jobs.online_options(&decoder_f16)?;
    let offline_f16 = random_offline_stored(&size.offline, DType::F16)?;
    let offline_f16_ms = jobs.offline_options_median(&offline_f16, &SamplingParams::default())?;
    progress(&format!(
        "{}: five options with f16 weights: {:.1} ms, on 8th notes {:.1} ms, offline {offline_f16_ms:.1} ms",
        config.name, online_f16.any_frame_ms, online_f16.on_grid_ms
    ));

    let (p50, p99) = jobs.live_replan(&decoder, &SamplingParams::default())?;
    let (f16_p50, f16_p99) = jobs.live_replan(&decoder_f16, &on_eighth_notes())?;
    progress(&format!(
        "{}: live re-plan: p50 {p50:.1} ms, p99 {p99:.1} ms; f16 weights on 8th notes p50 {f16_p50:.1} ms, p99 {f16_p99:.1} ms",
        config.name
    ));

    let growing = jobs.live_session(&decoder, LivePlanner::new(), GROWING_START)?;
    let sliding = jobs.live_session(&decoder, LivePlanner::new(), SLIDING_START)?;
    let hopping = jobs.live_session(
        &decoder,
        LivePlanner::with_window_hop(WINDOW_HOP),
        SLIDING_START,
    )?;
    progress(&format!(
        "{}: per-frame re-plan reusing the context: p50 {:.1} ms, p99 {:.1} ms; window sliding: p50 {:.1} ms, p99 {:.1} ms; hopping: p50 {:.1} ms, p99 {:.1} ms",
        config.name, growing.0, growing.1, sliding.0, sliding.1, hopping.0, hopping.1
    ));

    let times = SizeTimes {
        online,
        offline: offline_times,
        online_f16,
        offline_f16_ms,
        live_replan: (p50, p99),
        live_replan_f16_grid: (f16_p50, f16_p99),
        growing,
        sliding,
        hopping,
    };
    let bytes = WeightBytes {
        online: decoder.streamed_weight_bytes(),
        offline: offline.streamed_weight_bytes(),
        online_f16: decoder_f16.streamed_weight_bytes(),
        offline_f16: offline_f16.streamed_weight_bytes(),
    };
    Ok(bench_result(size, machine, &times, &bytes))
}

/// The jobs of one size: a melody and a vocabulary to run them on, and the one random stream
/// every run draws from, in turn.
struct SizeJobs<'a> {
    size: &'a BenchSize,
    vocab: Vocabulary,
    melody: Vec<MelodyFrame>,
    /// What a live session played before the re-plan from scratch.
    chords: Vec<ChordFrame>,
    /// The melody of the per-frame re-plan sessions.
    session_melody: Vec<MelodyFrame>,
    rng: StdRng,
}

impl<'a> SizeJobs<'a> {
    /// The inputs of every job of `size`.
    fn new(size: &'a BenchSize) -> Result<Self, SampleError> {
        Ok(Self {
            size,
            vocab: bench_vocabulary(&size.config)?,
            melody: bench_melody(BENCH_FRAMES),
            chords: bench_chords(BENCH_FRAMES),
            session_melody: bench_melody(SLIDING_START + size.session_replans + 1),
            rng: StdRng::seed_from_u64(0),
        })
    }

    /// Median times of five options from the online decoder, on any frame and on the grid.
    fn online_options(&mut self, decoder: &Decoder) -> Result<OptionTimes, SampleError> {
        Ok(OptionTimes {
            any_frame_ms: self.online_options_median(decoder, &SamplingParams::default())?,
            on_grid_ms: self.online_options_median(decoder, &on_eighth_notes())?,
        })
    }

    /// Median times of five options from the offline model, on any frame and on the grid.
    fn offline_options(&mut self, model: &OfflineModel) -> Result<OptionTimes, SampleError> {
        Ok(OptionTimes {
            any_frame_ms: self.offline_options_median(model, &SamplingParams::default())?,
            on_grid_ms: self.offline_options_median(model, &on_eighth_notes())?,
        })
    }

    /// Median time of five options from the online decoder.
    fn online_options_median(
        &mut self,
        decoder: &Decoder,
        params: &SamplingParams,
    ) -> Result<f64, SampleError> {
        let request = five_options_request(&self.melody);
        let (vocab, rng) = (&self.vocab, &mut self.rng);
        let mut times = time_runs(self.size.option_runs, || {
            generate_options(decoder, vocab, &request, params, rng).map(|_| ())
        })?;
        Ok(percentile(&mut times, 0.5))
    }

    /// Median time of five options from the offline model.
    fn offline_options_median(
        &mut self,
        model: &OfflineModel,
        params: &SamplingParams,
    ) -> Result<f64, SampleError> {
        let request = five_options_request(&self.melody);
        let (vocab, rng) = (&self.vocab, &mut self.rng);
        let mut times = time_runs(self.size.option_runs, || {
            generate_offline_options(model, vocab, &request, params, rng).map(|_| ())
        })?;
        Ok(percentile(&mut times, 0.5))
    }

    /// Median and 99th percentile of one live re-plan from scratch.
    fn live_replan(
        &mut self,
        decoder: &Decoder,
        params: &SamplingParams,
    ) -> Result<Spread, SampleError> {
        let live = LiveRequest {
            beat_phase: 0,
            melody: &self.melody,
            chords: &self.chords,
            committed: &[],
            lookahead: BENCH_LOOKAHEAD,
            guide: None,
        };
        let (vocab, rng) = (&self.vocab, &mut self.rng);
        Ok(median_and_p99(time_runs(self.size.live_runs, || {
            plan_live(decoder, vocab, &live, params, rng).map(|_| ())
        })?))
    }

    /// Median and 99th percentile of a live session's per-frame re-plans from frame `start` on.
    fn live_session(
        &mut self,
        decoder: &Decoder,
        planner: LivePlanner,
        start: usize,
    ) -> Result<Spread, SampleError> {
        let times = time_session(
            decoder,
            &self.vocab,
            planner,
            &self.session_melody,
            start,
            self.size.session_replans,
            &SamplingParams::default(),
            &mut self.rng,
        );
        times.map(median_and_p99)
    }
}

/// Sample rate of the simulated host audio thread ([`measure_audio_jitter`]).
pub const JITTER_SAMPLE_RATE: f64 = 48_000.0;
/// Samples per block of the simulated host audio thread: a small live-performance buffer.
pub const JITTER_BLOCK: usize = 64;
/// Share of a block period the simulated audio thread computes for (a busy DAW project).
const JITTER_LOAD: f64 = 0.25;

/// How late a simulated host audio thread finished its blocks, in microseconds after each
/// block's release time.
#[derive(Debug, Clone, Serialize)]
pub struct BlockLatency {
    pub blocks: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// Blocks that finished after their deadline (one period after their release).
    pub missed: usize,
}

/// Why the audio-thread measurement could not run.
#[derive(Debug, thiserror::Error)]
pub enum JitterError {
    #[error(transparent)]
    Sample(#[from] SampleError),
    #[error("the simulated audio thread panicked")]
    AudioThread,
}

/// A host audio thread's timing alone and while Comper's model works beside it.
#[derive(Debug, Clone, Serialize)]
pub struct JitterReport {
    /// Threads the model ran on ([`comper_model::model_threads`]).
    pub model_threads: usize,
    /// Cores the machine has.
    pub cores: usize,
    /// Length of one block, microseconds (its deadline after release).
    pub period_us: f64,
    /// The audio thread's own work per block, microseconds (measured alone).
    pub work_us: f64,
    pub idle: BlockLatency,
    /// While the model generates five options (online and offline model) and re-plans live.
    pub loaded: BlockLatency,
    /// Model jobs finished during the loaded run.
    pub model_jobs: usize,
}

impl std::fmt::Display for JitterReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "simulated host audio thread: {} samples at {} Hz (deadline {:.0} µs), {:.0} µs of work per block",
            JITTER_BLOCK, JITTER_SAMPLE_RATE, self.period_us, self.work_us
        )?;
        writeln!(
            f,
            "model threads: {} of {} cores; {} model jobs during the loaded run",
            self.model_threads, self.cores, self.model_jobs
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "| | blocks | finish p50 µs | p99 µs | max µs | missed deadlines |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|")?;
        for (name, l) in [("alone", &self.idle), ("Comper generating", &self.loaded)] {
            writeln!(
                f,
                "| {name} | {} | {:.0} | {:.0} | {:.0} | {} ({:.2} %) |",
                l.blocks,
                l.p50_us,
                l.p99_us,
                l.max_us,
                l.missed,
                100.0 * l.missed as f64 / l.blocks.max(1) as f64
            )?;
        }
        Ok(())
    }
}

/// Runs a simulated host audio thread (48 kHz, 64-sample blocks, a quarter of each period of
/// work) for `seconds` alone, then for `seconds` while the model generates five options with
/// the online and offline models of the shipped size and re-plans a live session, back to back:
/// whether Comper leaves the host's audio room. The audio thread runs at normal priority, so
/// the measurement shows competition for cores, which a real-time thread would suffer less of.
pub fn measure_audio_jitter(
    seconds: f64,
    mut progress: impl FnMut(&str),
) -> Result<JitterReport, JitterError> {
    let sizes = default_sizes();
    // The last size is the shipped one.
    let size = &sizes[sizes.len() - 1];
    let decoder = random_decoder(&size.config).map_err(SampleError::from)?;
    let offline = random_offline(&size.offline).map_err(SampleError::from)?;
    let mut jobs = SizeJobs::new(size)?;
    let period = std::time::Duration::from_secs_f64(JITTER_BLOCK as f64 / JITTER_SAMPLE_RATE);
    let work_rounds = calibrate_block_work(period.mul_f64(JITTER_LOAD));
    let work_us = time_block_work(work_rounds) * 1e6;
    progress(&format!(
        "audio block work: {work_us:.0} µs of a {:.0} µs period",
        period.as_secs_f64() * 1e6
    ));
    let duration = std::time::Duration::from_secs_f64(seconds.max(0.1));
    let idle = run_audio_thread(period, work_rounds, duration, || Ok(()))?.0;
    progress(&format!("alone: p99 {:.0} µs", idle.p99_us));
    let replan_params = on_eighth_notes();
    let (loaded, model_jobs) = run_audio_thread(period, work_rounds, duration, || {
        let request = five_options_request(&jobs.melody);
        generate_options(
            &decoder,
            &jobs.vocab,
            &request,
            &replan_params,
            &mut jobs.rng,
        )?;
        generate_offline_options(
            &offline,
            &jobs.vocab,
            &request,
            &replan_params,
            &mut jobs.rng,
        )?;
        jobs.live_session(&decoder, LivePlanner::new(), GROWING_START)?;
        Ok(())
    })?;
    progress(&format!(
        "with Comper generating: p99 {:.0} µs",
        loaded.p99_us
    ));
    Ok(JitterReport {
        model_threads: comper_model::model_threads(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        period_us: period.as_secs_f64() * 1e6,
        work_us,
        idle,
        loaded,
        model_jobs,
    })
}

/// One block's work of the simulated audio thread: `rounds` of a small oscillator bank.
fn block_work(rounds: usize) -> f32 {
    let mut phase = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
    let mut sum = 0.0f32;
    for _ in 0..rounds {
        for _ in 0..JITTER_BLOCK {
            for p in &mut phase {
                *p = (*p + 0.013).fract();
                sum += (*p * std::f32::consts::TAU).sin();
            }
        }
    }
    std::hint::black_box(sum)
}

/// Seconds one block's work of `rounds` takes (the fastest of a few tries).
fn time_block_work(rounds: usize) -> f64 {
    (0..20)
        .map(|_| {
            let start = Instant::now();
            block_work(rounds);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Rounds of [`block_work`] that take about `target` on an idle core.
fn calibrate_block_work(target: std::time::Duration) -> usize {
    let one = time_block_work(1).max(1e-9);
    ((target.as_secs_f64() / one).round() as usize).max(1)
}

/// Runs the audio thread for `duration` while the calling thread repeats `job`; returns the
/// audio thread's latencies and how many jobs finished.
fn run_audio_thread(
    period: std::time::Duration,
    work_rounds: usize,
    duration: std::time::Duration,
    mut job: impl FnMut() -> Result<(), SampleError>,
) -> Result<(BlockLatency, usize), JitterError> {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let audio = scope.spawn(|| {
            let blocks = ((duration.as_secs_f64() / period.as_secs_f64()).round() as usize).max(1);
            let mut finished = Vec::with_capacity(blocks);
            let start = Instant::now();
            for block in 0..blocks as u32 {
                let release = start + period * block;
                let now = Instant::now();
                if release > now {
                    std::thread::sleep(release - now);
                }
                block_work(work_rounds);
                finished.push(release.elapsed().as_secs_f64() * 1e6);
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            finished
        });
        let mut jobs = 0;
        let mut outcome = Ok(());
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            if let Err(error) = job() {
                outcome = Err(error);
                break;
            }
            jobs += 1;
        }
        let finished = audio.join().map_err(|_| JitterError::AudioThread)?;
        outcome?;
        let deadline_us = period.as_secs_f64() * 1e6;
        let missed = finished.iter().filter(|&&us| us > deadline_us).count();
        let blocks = finished.len();
        let (p50_us, p99_us) = median_and_p99(finished.clone());
        let max_us = finished.iter().copied().fold(0.0, f64::max);
        Ok((
            BlockLatency {
                blocks,
                p50_us,
                p99_us,
                max_us,
                missed,
            },
            jobs,
        ))
    })
}

/// The five-options request: the melody teacher-forced, nothing locked.
fn five_options_request(melody: &[MelodyFrame]) -> OptionsRequest<'_> {
    OptionsRequest {
        melody,
        locked: &[],
        count: BENCH_OPTIONS,
        max_retries: 3,
        guide: None,
    }
}

/// Chords changing only on the bench's grid (8th notes), as the plugin samples.
fn on_eighth_notes() -> SamplingParams {
    SamplingParams {
        change_grid: BENCH_CHANGE_GRID,
        ..SamplingParams::default()
    }
}

/// One size's row of the report: the times, with the floors they are read against.
fn bench_result(
    size: &BenchSize,
    machine: &Machine,
    times: &SizeTimes,
    bytes: &WeightBytes,
) -> BenchResult {
    let config = &size.config;
    let calls_floor_ms = |calls: usize| machine.streaming_floor_ms(bytes.online, calls);
    BenchResult {
        name: config.name.clone(),
        dim: config.dim,
        depth: config.depth,
        heads: config.heads,
        num_tokens: config.num_tokens,
        five_options_ms: times.online.any_frame_ms,
        five_options_grid_ms: times.online.on_grid_ms,
        live_replan_ms_p50: times.live_replan.0,
        live_replan_ms_p99: times.live_replan.1,
        live_replan_incremental_ms_p50: times.growing.0,
        live_replan_incremental_ms_p99: times.growing.1,
        live_replan_sliding_ms_p50: times.sliding.0,
        live_replan_sliding_ms_p99: times.sliding.1,
        live_replan_hopping_ms_p50: times.hopping.0,
        live_replan_hopping_ms_p99: times.hopping.1,
        weight_bytes: bytes.online,
        five_options_floor_ms: calls_floor_ms(BENCH_FRAMES),
        offline_five_options_ms: times.offline.any_frame_ms,
        offline_five_options_grid_ms: times.offline.on_grid_ms,
        offline_enc_depth: size.offline.enc_depth,
        offline_dec_depth: size.offline.base.depth,
        offline_weight_bytes: bytes.offline,
        offline_five_options_floor_ms: machine.streaming_floor_ms(bytes.offline, BENCH_FRAMES),
        five_options_f16_ms: times.online_f16.any_frame_ms,
        five_options_f16_floor_ms: machine.streaming_floor_ms(bytes.online_f16, BENCH_FRAMES),
        five_options_f16_grid_ms: times.online_f16.on_grid_ms,
        offline_five_options_f16_ms: times.offline_f16_ms,
        offline_five_options_f16_floor_ms: machine
            .streaming_floor_ms(bytes.offline_f16, BENCH_FRAMES),
        live_replan_f16_grid_ms_p50: times.live_replan_f16_grid.0,
        live_replan_f16_grid_ms_p99: times.live_replan_f16_grid.1,
        live_replan_f16_floor_ms: machine
            .streaming_floor_ms(bytes.online_f16, 2 * BENCH_LOOKAHEAD - 1),
        live_replan_floor_ms: calls_floor_ms(2 * BENCH_LOOKAHEAD - 1),
        live_replan_incremental_floor_ms: calls_floor_ms(BENCH_LOOKAHEAD),
        five_options_compute_floor_ms: five_options_flops(bytes.online)
            / (machine.threads as f64 * machine.kernel_rate)
            * 1e3,
        five_options_with_cache_floor_ms: (bytes.online * BENCH_FRAMES
            + five_options_cache_bytes(config)) as f64
            / machine.bandwidth
            * 1e3,
    }
}

/// Weight FLOPs of five options with an f32 decoder of `weight_bytes`: every weight multiplies
/// each of the 2 × 256 tokens of each option once (the last layer's chord rows, which skip the
/// feed-forward and logits, are counted too, so this is a slight overestimate).
fn five_options_flops(weight_bytes: usize) -> f64 {
    let weights = (weight_bytes / std::mem::size_of::<f32>()) as f64;
    2.0 * weights * (BENCH_OPTIONS * 2 * BENCH_FRAMES) as f64
}

/// Key/value bytes the five options' decoder calls read from the cache: the call that samples
/// chord `c` (pushing the previous frame's chord and note together) attends over the BOS and the
/// `c` frames before it, two tokens each, for every option, layer and head: a key and a value of
/// `dim_head` f32 per position.
fn five_options_cache_bytes(config: &ModelConfig) -> usize {
    let per_position = BENCH_OPTIONS * config.depth * config.heads * config.dim_head * 2 * 4;
    let positions: usize = (0..BENCH_FRAMES).map(|c| 1 + 2 * c).sum();
    per_position * positions
}

/// A chord progression to stand in for what a live session played: a new chord every bar.
fn bench_chords(frames: usize) -> Vec<ChordFrame> {
    (0..frames)
        .map(|t| {
            if t % 16 == 0 {
                ChordFrame::Onset(0)
            } else {
                ChordFrame::Hold(0)
            }
        })
        .collect()
}

/// Wall times (ms) of `replans` consecutive per-frame re-plans of a live session from frame
/// `start` on, after one untimed plan at `start − 1`. Each request keeps the chords the previous
/// plan made for the frames it still covers ([`commit_frames`] with commitahead = lookahead), and
/// the chord played at each passed frame is the one that was planned for it.
#[allow(clippy::too_many_arguments)]
fn time_session<R: rand::Rng + Send>(
    decoder: &Decoder,
    vocab: &Vocabulary,
    mut planner: LivePlanner,
    melody: &[MelodyFrame],
    start: usize,
    replans: usize,
    params: &SamplingParams,
    rng: &mut R,
) -> Result<Vec<f64>, SampleError> {
    let mut played = bench_chords(start - 1);
    let mut plan: Vec<ChordFrame> = Vec::new();
    let mut times = Vec::with_capacity(replans);
    for frame in start - 1..start + replans {
        // The previous request came one frame earlier and planned `plan.len()` frames from there.
        let planned_until = frame - 1 + plan.len();
        let commit = commit_frames(planned_until, frame, BENCH_LOOKAHEAD, BENCH_LOOKAHEAD)
            .min(plan.len().saturating_sub(1));
        let request = LiveRequest {
            beat_phase: 0,
            melody: &melody[..frame],
            chords: &played,
            committed: &plan[plan.len().min(1)..plan.len().min(1) + commit],
            lookahead: BENCH_LOOKAHEAD,
            guide: None,
        };
        let begin = Instant::now();
        let next = planner.plan(decoder, vocab, &request, params, rng)?;
        if frame >= start {
            times.push(begin.elapsed().as_secs_f64() * 1e3);
        }
        plan = next.chords;
        played.push(plan.first().copied().unwrap_or(ChordFrame::Silence));
    }
    Ok(times)
}

/// Wall times in milliseconds of `runs` calls (after one warm-up call).
fn time_runs<E>(runs: usize, mut job: impl FnMut() -> Result<(), E>) -> Result<Vec<f64>, E> {
    job()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        job()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(times)
}

/// The median and 99th percentile of a non-empty sample.
fn median_and_p99(mut values: Vec<f64>) -> (f64, f64) {
    (percentile(&mut values, 0.5), percentile(&mut values, 0.99))
}

/// Nearest-rank percentile (`q` in 0..=1) of a non-empty sample.
fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len().max(1));
    values.get(rank - 1).copied().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_uses_nearest_rank() {
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&mut v, 0.5), 3.0);
        assert_eq!(percentile(&mut v, 0.99), 5.0);
        assert_eq!(percentile(&mut v, 0.0), 1.0);
    }

    #[test]
    fn the_audio_thread_runs_every_block_alone_and_beside_the_model() {
        let report = measure_audio_jitter(0.2, |_| {}).unwrap();
        let blocks = (0.2 * JITTER_SAMPLE_RATE / JITTER_BLOCK as f64).round() as usize;
        assert_eq!(report.idle.blocks, blocks);
        assert_eq!(report.loaded.blocks, blocks);
        assert!(
            report.model_jobs >= 1,
            "the model worked during the loaded run"
        );
        assert!(report.work_us > 0.0 && report.work_us < report.period_us);
        assert!(
            report.idle.p50_us <= report.idle.p99_us && report.idle.p99_us <= report.idle.max_us
        );
        assert!(report.loaded.missed <= report.loaded.blocks);
    }

    #[test]
    fn random_decoder_runs_and_melody_is_valid() {
        let config = ModelConfig {
            name: "tiny".into(),
            dim: 16,
            depth: 1,
            heads: 2,
            dim_head: 8,
            num_tokens: 270,
            max_seq_len: 40,
        };
        let decoder = random_decoder(&config).unwrap();
        let logits = decoder.forward(&[vec![1, 3, 200]]).unwrap();
        assert_eq!(logits.dims(), &[1, 3, 270]);
        let melody = bench_melody(64);
        assert!(melody.windows(2).all(|w| match w[1] {
            MelodyFrame::Hold(p) => w[0].pitch() == Some(p),
            _ => true,
        }));
    }
}
