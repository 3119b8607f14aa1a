//! The per-block path of the real-time quantizer must never touch the heap: a counting global
//! allocator watches this thread while thousands of blocks go through every code path (notes,
//! tempo changes, loop wraps, jumps, stops, the free-running clock, MIDI floods).

use comper_realtime::frames::TimeSignature;
use comper_realtime::quantize::{
    Block, NoteEvent, OutputBuffer, Quantizer, QuantizerConfig, QuantizerOutput, TempoChange,
    Transport,
};

#[path = "../../../tests/common/heap_counter.rs"]
mod heap_counter;

const BLOCK: u32 = 512;
const RATE: f64 = 48_000.0;

/// The block and events of block number `n` of a scripted session that visits every path.
fn scripted_block(n: u32, beat: &mut f64, events: &mut [NoteEvent; 300]) -> (Block, usize, bool) {
    let phase = n % 400;
    let pitch = 48 + (n % 37) as u8;
    let mut count = 0;
    let mut push = |event: NoteEvent| {
        if let Some(slot) = events.get_mut(count) {
            *slot = event;
            count += 1;
        }
    };
    match n % 7 {
        0 => push(NoteEvent::on(17, pitch)),
        3 => push(NoteEvent::off(300, pitch.wrapping_sub(7))),
        5 => {
            push(NoteEvent::on(100, pitch));
            push(NoteEvent::on(101, pitch + 4));
            push(NoteEvent::off(400, pitch));
        }
        _ => {}
    }
    if phase == 99 {
        for i in 0..300 {
            push(NoteEvent::on(i, (i % 128) as u8));
        }
    }
    let playing = !(150..170).contains(&phase);
    let transport = (phase < 300).then(|| Transport {
        tempo_bpm: if phase < 200 { 120.0 } else { 97.5 },
        beat_position: *beat,
        playing,
        loop_range: (phase >= 200).then_some((0.0, 4.0)),
        time_signature: TimeSignature::default(),
    });
    if phase == 120 {
        *beat += 13.0; // a jump
    }
    let block = Block {
        transport,
        len_samples: BLOCK,
        sample_rate: RATE,
    };
    let bpm = transport.map_or(120.0, |t| t.tempo_bpm);
    if playing {
        *beat += BLOCK as f64 * bpm / 60.0 / RATE;
    }
    if phase >= 200 && *beat >= 4.0 {
        *beat -= 4.0;
    }
    (block, count, phase % 50 == 10)
}

#[test]
fn processing_blocks_never_allocates() {
    let config = QuantizerConfig {
        max_events_per_block: 64,
        ..QuantizerConfig::default()
    };
    let mut quantizer = Quantizer::new(config);
    let mut outputs = OutputBuffer::with_capacity(256);
    let mut events = [NoteEvent::on(0, 0); 300];
    let tempo_changes = [TempoChange {
        offset: 256,
        tempo_bpm: 140.0,
    }];
    let mut beat = 0.0;
    let mut frames = 0_u64;
    let mut run = |blocks: std::ops::Range<u32>, frames: &mut u64| {
        for n in blocks {
            let (block, count, tempo_change) = scripted_block(n, &mut beat, &mut events);
            let changes = if tempo_change {
                &tempo_changes[..]
            } else {
                &[]
            };
            outputs.clear();
            quantizer.process_block(&block, changes, &events[..count], &mut |o| outputs.push(o));
            *frames += outputs
                .as_slice()
                .iter()
                .filter(|o| matches!(o, QuantizerOutput::Frame { .. }))
                .count() as u64;
        }
    };

    run(0..400, &mut frames); // warm-up: one full pass of the script
    heap_counter::watch(true);
    run(400..20_400, &mut frames);
    heap_counter::watch(false);

    assert_eq!(heap_counter::heap_calls(), 0);
    assert!(
        frames > 1_000,
        "the script must actually produce frames, got {frames}"
    );
    assert!(
        quantizer.stats().dropped_events > 0,
        "the flood must hit the cap"
    );
    assert!(
        quantizer.stats().phrases_started > 100,
        "jumps, stops and loops must start phrases"
    );
}
