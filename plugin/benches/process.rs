//! Cost of the plugin's audio-thread work per 512-sample block at 48 kHz (`AudioEngine::process`:
//! quantizer, channel sends, loop player, MIDI events and the synth), idle and busy.
//!
//! `cargo bench -p comper-plugin --bench process`

use std::sync::Arc;
use std::time::Instant;

use comper_plugin::audio::{AudioEngine, BlockSettings, MidiNote};
use comper_plugin::params::Mode;
use comper_realtime::frames::ChordFrame;
use comper_realtime::frames::TimeSignature;
use comper_realtime::link::{command_channel, link};
use comper_realtime::link::{Shared, ToAudio};
use comper_realtime::quantize::{Block, NoteEvent, Transport};
use comper_realtime::schedule::{PlanUpdate, PlannedFrame, Voiced};

const SAMPLE_RATE: f64 = 48_000.0;
const BLOCK: u32 = 512;
const BLOCKS: usize = 20_000;

fn settings(synth_on: bool) -> BlockSettings {
    BlockSettings {
        mode: Mode::Suggest,
        velocity: 90,
        channel: 0,
        synth_on,
        bypass: false,
        listen_frames: 32,
    }
}

/// Four bars, a new chord every beat, `voices` notes each.
fn plan(voices: usize) -> PlanUpdate {
    let frames = (0..64)
        .map(|i| {
            let chord = (i / 4) as u16 % 4;
            let root = 48 + 2 * (i / 4) as u8 % 12;
            let pitches: Vec<u8> = (0..voices as u8).map(|k| root + 4 * k).collect();
            PlannedFrame {
                chord: if i % 4 == 0 {
                    ChordFrame::Onset(chord)
                } else {
                    ChordFrame::Hold(chord)
                },
                committed: true,
                voicing: Voiced::new(&pitches),
            }
        })
        .collect();
    PlanUpdate {
        phrase: 0,
        first_frame: 0,
        frames,
        replan_ms: 0.0,
    }
}

fn run(name: &str, playing: bool, voices: usize, melody: bool, synth_on: bool) {
    let (audio_link, worker_link) = link(command_channel().1);
    let mut engine = AudioEngine::new(audio_link, Arc::new(Shared::default()), 48_000.0, 32);
    if voices > 0 {
        worker_link.plans.send(ToAudio::Loop(plan(voices))).unwrap();
    }
    let mut left = vec![0.0f32; BLOCK as usize];
    let mut right = vec![0.0f32; BLOCK as usize];
    let mut times = Vec::with_capacity(BLOCKS);
    let mut midi = 0usize;
    let beats_per_block = f64::from(BLOCK) / SAMPLE_RATE * 2.0;
    for i in 0..BLOCKS {
        if melody && i % 4 == 0 {
            engine.hear_key(NoteEvent::on(10, 60 + (i % 12) as u8));
            engine.hear_key(NoteEvent::off(400, 60 + (i % 12) as u8));
        }
        let block = Block {
            transport: Some(Transport {
                tempo_bpm: 120.0,
                beat_position: i as f64 * beats_per_block,
                playing,
                loop_range: None,
                time_signature: TimeSignature::default(),
            }),
            len_samples: BLOCK,
            sample_rate: SAMPLE_RATE,
        };
        let start = Instant::now();
        engine.process(
            &block,
            settings(synth_on),
            &mut |_: MidiNote| midi += 1,
            &mut left,
            &mut right,
            || 1.0,
        );
        times.push(start.elapsed().as_nanos() as u64);
        // Keep the worker's side drained as the inference thread would.
        while worker_link.frames.try_recv().is_ok() {}
        while worker_link.recycled.try_recv().is_ok() {}
    }
    times.sort_unstable();
    let pct = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "{name:<44} median {:>7} ns  p99 {:>7} ns  max {:>8} ns  ({midi} MIDI events)",
        pct(0.5),
        pct(0.99),
        times[times.len() - 1]
    );
}

fn main() {
    println!("AudioEngine::process per {BLOCK}-sample block at 48 kHz, {BLOCKS} blocks:");
    run("idle (stopped, no plan)", false, 0, false, true);
    run("playing, no plan, melody in", true, 0, true, true);
    run(
        "looping 4-note chords, melody in, synth",
        true,
        4,
        true,
        true,
    );
    run(
        "looping 8-note chords, melody in, synth",
        true,
        8,
        true,
        true,
    );
    run(
        "looping 4-note chords, synth off (MIDI only)",
        true,
        4,
        true,
        false,
    );
}
