//! Per-block cost of the built-in synth: 512-sample stereo blocks at 48 kHz.
//!
//! Run with `cargo bench --bench synth`. Prints the median and 99th percentile of the time one
//! `render` call takes with no voice, 4 held voices and 16 held voices, and a chord change (4
//! releases, 4 note-ons) splitting every block. Times include the clock read, reported first.

use std::hint::black_box;
use std::time::Instant;

use comper_realtime::synth::Synth;

const BLOCK: usize = 512;
const RATE: f32 = 48_000.0;
const WARM_UP_BLOCKS: usize = 2_000;
const MEASURED_BLOCKS: usize = 50_000;

/// Times `MEASURED_BLOCKS` blocks; `block` plays one block (events and rendering) into the
/// buffers.
fn measure(
    mut synth: Synth,
    mut block: impl FnMut(&mut Synth, usize, &mut [f32], &mut [f32]),
) -> Vec<u64> {
    let mut left = vec![0.0_f32; BLOCK];
    let mut right = vec![0.0_f32; BLOCK];
    let mut timings = Vec::with_capacity(MEASURED_BLOCKS);
    for n in 0..WARM_UP_BLOCKS + MEASURED_BLOCKS {
        left.fill(0.0);
        right.fill(0.0);
        let start = Instant::now();
        block(&mut synth, n, black_box(&mut left), black_box(&mut right));
        let elapsed = start.elapsed().as_nanos() as u64;
        black_box((&left, &right));
        if n >= WARM_UP_BLOCKS {
            timings.push(elapsed);
        }
    }
    timings
}

/// A synth holding `voices` notes (a stack of fifths and thirds from C2).
fn holding(voices: u8) -> Synth {
    let mut synth = Synth::new(RATE);
    for i in 0..voices {
        synth.note_on(36 + i * 4 % 60, 0.8);
    }
    synth
}

fn render_block(synth: &mut Synth, _: usize, left: &mut [f32], right: &mut [f32]) {
    synth.render(left, right);
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
        "{name:<36} median {:>7} ns/block   p99 {:>7} ns/block   max {:>8} ns   ({} blocks)",
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
            start.elapsed().as_nanos() as u64
        })
        .collect()
}

fn main() {
    report("timer overhead (no work)", timer_overhead());
    report("idle (no voice)", measure(holding(0), render_block));
    report("4 voices held", measure(holding(4), render_block));
    report("16 voices held", measure(holding(16), render_block));
    report(
        "chord change every block (4 off, 4 on)",
        measure(holding(0), |synth, n, left, right| {
            let (first, rest) = left.split_at_mut(256);
            let (first_right, rest_right) = right.split_at_mut(256);
            synth.render(first, first_right);
            let root = 48 + (n % 12) as u8;
            for offset in [0, 4, 7, 11] {
                synth.note_off(root.wrapping_sub(1) + offset);
                synth.note_on(root + offset, 0.8);
            }
            synth.render(rest, rest_right);
        }),
    );
}
