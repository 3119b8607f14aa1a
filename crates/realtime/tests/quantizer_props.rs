//! The real-time quantizer, fed the same performance in blocks of random sizes, must give exactly
//! the frames of the offline quantizer on the same timeline in beats.

use comper_realtime::frames::TimeSignature;
use comper_realtime::quantize::{
    quantize_timeline, Block, IndexedFrame, NoteEvent, NoteEventKind, PhraseEndReason, Quantizer,
    QuantizerConfig, QuantizerOutput, TimedNoteEvent, Transport,
};
use proptest::prelude::*;

/// A performance: events at absolute sample times under one tempo and sample rate.
#[derive(Debug, Clone)]
struct Performance {
    tempo_bpm: f64,
    sample_rate: f64,
    start_beat: f64,
    /// (sample, pitch, kind), in time order.
    events: Vec<(u64, u8, NoteEventKind)>,
    total_samples: u64,
    block_sizes: Vec<u32>,
}

impl Performance {
    fn beats_per_sample(&self) -> f64 {
        self.tempo_bpm / 60.0 / self.sample_rate
    }

    fn beat_at(&self, sample: u64) -> f64 {
        self.start_beat + sample as f64 * self.beats_per_sample()
    }
}

/// True when `beat` is far from every frame boundary and frame midpoint (multiples of 1/8),
/// where floating-point rounding between the two clocks could change a decision.
fn clear_of_grid(beat: f64) -> bool {
    let eighths = beat * 8.0;
    (eighths - eighths.round()).abs() > 1e-6
}

fn performance() -> impl Strategy<Value = Performance> {
    let rates = prop::sample::select(vec![8_000.0, 22_050.0, 44_100.0, 48_000.0, 96_000.0]);
    let gaps = prop::collection::vec((0_u64..30_000, 57_u8..64, any::<bool>()), 0..60);
    let blocks = prop::collection::vec(1_u32..2_048, 1..16);
    (
        30.0_f64..300.0,
        rates,
        -2.0_f64..6.0,
        gaps,
        1_u64..40_000,
        blocks,
    )
        .prop_map(
            |(tempo_bpm, sample_rate, start_beat, gaps, tail, block_sizes)| {
                let mut performance = Performance {
                    tempo_bpm,
                    sample_rate,
                    start_beat,
                    events: Vec::new(),
                    total_samples: 0,
                    block_sizes,
                };
                let mut sample = 0;
                for (gap, pitch, on) in gaps {
                    sample += gap;
                    if clear_of_grid(performance.beat_at(sample)) {
                        let kind = if on {
                            NoteEventKind::On
                        } else {
                            NoteEventKind::Off
                        };
                        performance.events.push((sample, pitch, kind));
                    }
                }
                performance.total_samples = sample + tail;
                performance
            },
        )
}

fn transport(beat_position: f64, tempo_bpm: f64, playing: bool) -> Transport {
    Transport {
        tempo_bpm,
        beat_position,
        playing,
        loop_range: None,
        time_signature: TimeSignature::default(),
    }
}

/// Plays the performance through the real-time quantizer, block by block, then stops.
fn play_live(p: &Performance) -> Vec<QuantizerOutput> {
    let config = QuantizerConfig {
        max_events_per_block: usize::MAX,
        ..QuantizerConfig::default()
    };
    let mut quantizer = Quantizer::new(config);
    let mut outputs = Vec::new();
    let mut block_start = 0_u64;
    let mut next_event = 0;
    let mut block_events = Vec::new();
    for &size in p.block_sizes.iter().cycle() {
        if block_start >= p.total_samples {
            break;
        }
        let len = (size as u64).min(p.total_samples - block_start);
        block_events.clear();
        while let Some(&(sample, pitch, kind)) = p.events.get(next_event) {
            if sample >= block_start + len {
                break;
            }
            let offset = (sample - block_start) as u32;
            block_events.push(NoteEvent {
                offset,
                pitch,
                kind,
            });
            next_event += 1;
        }
        let block = Block {
            transport: Some(transport(p.beat_at(block_start), p.tempo_bpm, true)),
            len_samples: len as u32,
            sample_rate: p.sample_rate,
        };
        quantizer.process_block(&block, &[], &block_events, &mut |o| outputs.push(o));
        block_start += len;
    }
    let stop = Block {
        transport: Some(transport(p.beat_at(block_start), p.tempo_bpm, false)),
        len_samples: 64,
        sample_rate: p.sample_rate,
    };
    quantizer.process_block(&stop, &[], &[], &mut |o| outputs.push(o));
    outputs
}

fn quantize_offline(p: &Performance) -> Vec<IndexedFrame> {
    let timeline: Vec<TimedNoteEvent> = p
        .events
        .iter()
        .map(|&(sample, pitch, kind)| TimedNoteEvent {
            beat: p.beat_at(sample),
            pitch,
            kind,
        })
        .collect();
    quantize_timeline(&timeline, p.start_beat, p.beat_at(p.total_samples))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn live_blocks_match_offline_quantization(p in performance()) {
        prop_assume!(clear_of_grid(p.beat_at(p.total_samples)));
        let outputs = play_live(&p);

        let starts = outputs.iter().filter(|o| matches!(o, QuantizerOutput::PhraseStart { .. })).count();
        prop_assert_eq!(starts, 1, "one phrase expected: {:?}", outputs);
        let stopped = QuantizerOutput::PhraseEnd { phrase: 0, reason: PhraseEndReason::Stopped };
        prop_assert_eq!(outputs.last(), Some(&stopped));

        let live: Vec<IndexedFrame> = outputs
            .iter()
            .filter_map(|o| match *o {
                QuantizerOutput::Frame { index, frame, .. } => Some(IndexedFrame { index, frame }),
                _ => None,
            })
            .collect();
        let offline = quantize_offline(&p);
        prop_assert_eq!(&live, &offline);

        // Every frame of the phrase, in order, with no gaps.
        let first = (p.start_beat * 4.0).floor() as i64;
        for (i, frame) in live.iter().enumerate() {
            prop_assert_eq!(frame.index, first + i as i64);
        }
    }
}
