//! Per-block cost of the real-time quantizer: 512-sample blocks at 48 kHz, 120 BPM.
//!
//! Run with `cargo bench --bench quantizer`. Prints the median and 99th percentile of the time
//! one `process_block` call takes, for an idle transport and for blocks carrying note events.
//! Times include the clock read itself, reported on the first line.

use std::hint::black_box;
use std::time::Instant;

use comper_realtime::frames::TimeSignature;
use comper_realtime::quantize::{
    Block, NoteEvent, OutputBuffer, Quantizer, QuantizerConfig, Transport,
};

const BLOCK: u32 = 512;
const RATE: f64 = 48_000.0;
const TEMPO: f64 = 120.0;
const WARM_UP_BLOCKS: usize = 10_000;
const MEASURED_BLOCKS: usize = 200_000;

/// Times `MEASURED_BLOCKS` blocks of a playing transport; `events_for` gives each block's events.
fn measure(events_for: impl Fn(usize) -> Vec<NoteEvent>) -> Vec<u64> {
    let mut quantizer = Quantizer::new(QuantizerConfig::default());
    let mut outputs = OutputBuffer::with_capacity(64);
    let scripted: Vec<Vec<NoteEvent>> = (0..WARM_UP_BLOCKS + MEASURED_BLOCKS)
        .map(events_for)
        .collect();
    let mut timings = Vec::with_capacity(MEASURED_BLOCKS);
    let beats_per_block = BLOCK as f64 * TEMPO / 60.0 / RATE;
    for (n, events) in scripted.iter().enumerate() {
        let block = Block {
            transport: Some(Transport {
                tempo_bpm: TEMPO,
                beat_position: n as f64 * beats_per_block,
                playing: true,
                loop_range: None,
                time_signature: TimeSignature::default(),
            }),
            len_samples: BLOCK,
            sample_rate: RATE,
        };
        outputs.clear();
        let start = Instant::now();
        quantizer.process_block(black_box(&block), &[], black_box(events), &mut |o| {
            outputs.push(o)
        });
        let elapsed = start.elapsed().as_nanos() as u64;
        black_box(outputs.as_slice());
        if n >= WARM_UP_BLOCKS {
            timings.push(elapsed);
        }
    }
    timings
}

fn report(name: &str, mut timings: Vec<u64>) {
    timings.sort_unstable();
    let at = |q: f64| {
        timings
            .get(((timings.len() - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{name:<32} median {:>6} ns/block   p99 {:>6} ns/block   max {:>7} ns   ({} blocks)",
        at(0.5),
        at(0.99),
        at(1.0),
        timings.len()
    );
}

/// What `Instant::now` + `elapsed` alone cost here; included in every number above it.
fn timer_overhead() -> Vec<u64> {
    (0..MEASURED_BLOCKS)
        .map(|_| {
            let start = Instant::now();
            black_box(());
            start.elapsed().as_nanos() as u64
        })
        .collect()
}

fn main() {
    report("timer overhead (no work)", timer_overhead());
    report("idle (playing, no events)", measure(|_| Vec::new()));
    report(
        "melody (on+off every 2nd block)",
        measure(|n| {
            let pitch = 60 + (n / 2 % 12) as u8;
            if n % 2 == 0 {
                vec![
                    NoteEvent::off(3, pitch.wrapping_sub(1)),
                    NoteEvent::on(7, pitch),
                ]
            } else {
                Vec::new()
            }
        }),
    );
    report(
        "busy (8 events every block)",
        measure(|n| {
            (0..8)
                .map(|i| {
                    let pitch = 48 + ((n + i as usize) % 36) as u8;
                    if i % 2 == 0 {
                        NoteEvent::on(i * 60, pitch)
                    } else {
                        NoteEvent::off(i * 60, pitch.wrapping_sub(3))
                    }
                })
                .collect()
        }),
    );
}
