//! Following the host transport frame by frame: where each 16th-note boundary falls in a block,
//! and where the timeline breaks (stop, jump, loop wrap). Both players build on it, so they
//! follow the host with the same rules as the quantizer.

use crate::frames::FRAMES_PER_BEAT;
use crate::quantize::{
    Block, Transport, DEFAULT_TEMPO_BPM, JUMP_TOLERANCE_BEATS, MAX_BEAT_POSITION,
    MAX_LOOP_WRAPS_PER_BLOCK, MAX_TEMPO_BPM, MIN_TEMPO_BPM,
};

const FRAMES_PER_BEAT_F64: f64 = FRAMES_PER_BEAT as f64;

/// Why the host timeline stopped being continuous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discontinuity {
    /// The transport began rolling (or the clock saw its first block).
    Start,
    /// The transport stopped, went away, or the block has no usable sample rate.
    Stop,
    /// The host position moved by more than [`JUMP_TOLERANCE_BEATS`] between blocks.
    Jump,
    /// The host loop wrapped, inside a block or between two blocks.
    LoopWrap,
}

/// What the clock reports during a block, in time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockEvent {
    /// Frame `index` (beats `[index/4, (index+1)/4)`) starts `offset` samples into the block.
    Frame { index: i64, offset: u32 },
    /// The timeline breaks at `offset`: anything sounding belongs to the old position.
    Break { kind: Discontinuity, offset: u32 },
}

/// Follows the host transport across blocks. Tempo is taken as constant within a block and
/// every block re-syncs to the host's position; at most [`MAX_LOOP_WRAPS_PER_BLOCK`] wraps are
/// followed per block and the tempo is clamped to [`MIN_TEMPO_BPM`]`..=`[`MAX_TEMPO_BPM`], so a
/// block reports a bounded number of events. Never allocates.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameClock {
    /// Beat where the previous block ended; `None` while stopped.
    position: Option<f64>,
    /// Next frame boundary to report.
    next_frame: i64,
}

/// Where a stretch of the block without loop wraps starts.
#[derive(Debug, Clone, Copy)]
struct Segment {
    beat: f64,
    sample: f64,
}

impl FrameClock {
    /// A clock that has seen no block yet (stopped).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the transport was rolling at the end of the last block.
    pub fn is_running(&self) -> bool {
        self.position.is_some()
    }

    /// Reports the block's frame boundaries and breaks, in time order. A stop is reported once,
    /// at offset 0 of the first block without a rolling transport; a start or a jump between
    /// blocks at offset 0; a loop wrap inside the block at its sample, after which the
    /// boundaries from the loop start on follow in the same block.
    pub fn process_block(&mut self, block: &Block, sink: &mut impl FnMut(ClockEvent)) {
        let Some(transport) = rolling(block) else {
            if self.position.take().is_some() {
                sink(ClockEvent::Break {
                    kind: Discontinuity::Stop,
                    offset: 0,
                });
            }
            return;
        };
        let start = transport.beat_position;
        let loop_range = valid_loop(&transport);
        if let Some(kind) = self.discontinuity_at(start, loop_range) {
            sink(ClockEvent::Break { kind, offset: 0 });
            self.next_frame = first_boundary_at_or_after(start);
        }
        let beats_per_sample = beats_per_sample(&transport, block.sample_rate);
        let len = block.len_samples;
        let mut segment = Segment {
            beat: start,
            sample: 0.0,
        };
        let mut active_loop = loop_range.filter(|&(ls, le)| start >= ls && start < le);
        let mut wraps = 0;
        loop {
            let end = segment.beat + (f64::from(len) - segment.sample) * beats_per_sample;
            // Where the active loop wraps, if it does inside this block. A wrap that rounds to
            // the block's end belongs to the next block, which the host starts at the loop
            // start (a wrap between blocks, see `discontinuity_at`).
            let wrap = active_loop.and_then(|(loop_start, loop_end)| {
                let sample = segment.sample + (loop_end - segment.beat) / beats_per_sample;
                (sample.round() < f64::from(len)).then_some((loop_start, loop_end, sample))
            });
            match wrap {
                Some((loop_start, loop_end, wrap_sample)) => {
                    self.frames_until(loop_end, segment, beats_per_sample, len, sink);
                    sink(ClockEvent::Break {
                        kind: Discontinuity::LoopWrap,
                        offset: sample_offset(wrap_sample, len),
                    });
                    segment = Segment {
                        beat: loop_start,
                        sample: wrap_sample,
                    };
                    self.next_frame = first_boundary_at_or_after(loop_start);
                    wraps += 1;
                    if wraps >= MAX_LOOP_WRAPS_PER_BLOCK {
                        active_loop = None;
                    }
                }
                None => {
                    // Boundaries at the loop end belong to the wrap, not to this pass.
                    let to = active_loop.map_or(end, |(_, loop_end)| end.min(loop_end));
                    self.frames_until(to, segment, beats_per_sample, len, sink);
                    self.position = Some(end);
                    return;
                }
            }
        }
    }

    /// How a block starting at `start` continues the previous one, if it does not.
    fn discontinuity_at(
        &self,
        start: f64,
        loop_range: Option<(f64, f64)>,
    ) -> Option<Discontinuity> {
        let Some(expected) = self.position else {
            return Some(Discontinuity::Start);
        };
        if (start - expected).abs() <= JUMP_TOLERANCE_BEATS {
            return None;
        }
        let wrapped = loop_range.is_some_and(|(_, loop_end)| {
            start < expected && expected >= loop_end - JUMP_TOLERANCE_BEATS
        });
        Some(if wrapped {
            Discontinuity::LoopWrap
        } else {
            Discontinuity::Jump
        })
    }

    /// Reports every boundary before beat `to` in a stretch of the block starting at `segment`.
    fn frames_until(
        &mut self,
        to: f64,
        segment: Segment,
        beats_per_sample: f64,
        len: u32,
        sink: &mut impl FnMut(ClockEvent),
    ) {
        loop {
            let index = self.next_frame;
            let beat = index as f64 / FRAMES_PER_BEAT_F64;
            if beat >= to {
                return;
            }
            let sample = segment.sample + (beat - segment.beat) / beats_per_sample;
            if beat >= segment.beat - JUMP_TOLERANCE_BEATS && sample.round() >= f64::from(len) {
                // Rounds to the next block's first sample: it belongs there.
                return;
            }
            self.next_frame = index.saturating_add(1);
            if beat < segment.beat - JUMP_TOLERANCE_BEATS {
                continue;
            }
            sink(ClockEvent::Frame {
                index,
                offset: sample_offset(sample, len),
            });
        }
    }
}

/// The block's transport if it rolls on a usable timeline.
fn rolling(block: &Block) -> Option<Transport> {
    let timed = block.sample_rate.is_finite() && block.sample_rate > 0.0;
    block
        .transport
        .filter(|t| timed && t.playing && t.beat_position.abs() <= MAX_BEAT_POSITION)
}

fn beats_per_sample(transport: &Transport, sample_rate: f64) -> f64 {
    let bpm = if transport.tempo_bpm.is_finite() {
        transport.tempo_bpm.clamp(MIN_TEMPO_BPM, MAX_TEMPO_BPM)
    } else {
        DEFAULT_TEMPO_BPM
    };
    bpm / 60.0 / sample_rate
}

/// The loop the quantizer follows: finite and at least one frame long.
fn valid_loop(transport: &Transport) -> Option<(f64, f64)> {
    transport.loop_range.filter(|&(start, end)| {
        start.abs() <= MAX_BEAT_POSITION
            && end.abs() <= MAX_BEAT_POSITION
            && end - start >= 1.0 / FRAMES_PER_BEAT_F64
    })
}

/// The sample offset of a position `sample` samples into a block, inside `0..len`: the nearest
/// sample, so a boundary is never more than half a sample off (rounding error in the host's
/// position must not move it a whole sample early).
fn sample_offset(sample: f64, len: u32) -> u32 {
    sample.round().clamp(0.0, f64::from(len.saturating_sub(1))) as u32
}

fn first_boundary_at_or_after(beat: f64) -> i64 {
    (beat * FRAMES_PER_BEAT_F64).ceil() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::TimeSignature;

    fn block(bpm: f64, rate: f64, len: u32, beat: f64, loop_range: Option<(f64, f64)>) -> Block {
        Block {
            transport: Some(Transport {
                tempo_bpm: bpm,
                beat_position: beat,
                playing: true,
                loop_range,
                time_signature: TimeSignature::default(),
            }),
            len_samples: len,
            sample_rate: rate,
        }
    }

    fn run(clock: &mut FrameClock, block: &Block) -> Vec<ClockEvent> {
        let mut events = Vec::new();
        clock.process_block(block, &mut |e| events.push(e));
        events
    }

    fn frame(index: i64, offset: u32) -> ClockEvent {
        ClockEvent::Frame { index, offset }
    }

    fn brk(kind: Discontinuity, offset: u32) -> ClockEvent {
        ClockEvent::Break { kind, offset }
    }

    #[test]
    fn boundaries_get_their_sample_offsets_at_any_tempo_and_rate() {
        // 120 BPM at 48 kHz: a frame is 6000 samples; the block spans beats 0.125 .. 0.375.
        let mut clock = FrameClock::new();
        assert_eq!(
            run(&mut clock, &block(120.0, 48_000.0, 6_000, 0.125, None)),
            vec![brk(Discontinuity::Start, 0), frame(1, 3000)]
        );
        assert!(clock.is_running());

        // 90 BPM at 49 152 Hz: a frame is 8192 samples; 20 000 samples hold frames 0, 1 and 2.
        let mut clock = FrameClock::new();
        let first = block(90.0, 49_152.0, 20_000, 0.0, None);
        assert_eq!(
            run(&mut clock, &first),
            vec![
                brk(Discontinuity::Start, 0),
                frame(0, 0),
                frame(1, 8192),
                frame(2, 16_384)
            ]
        );
        let next_beat = 20_000.0 / 32_768.0;
        let second = block(90.0, 49_152.0, 20_000, next_beat, None);
        assert_eq!(
            run(&mut clock, &second),
            vec![frame(3, 4_576), frame(4, 12_768)]
        );
    }

    #[test]
    fn a_small_mismatch_is_not_a_jump() {
        let mut clock = FrameClock::new();
        run(&mut clock, &block(120.0, 48_000.0, 6_000, 0.0, None));
        let slightly_late = 0.25 + JUMP_TOLERANCE_BEATS / 2.0;
        assert_eq!(
            run(
                &mut clock,
                &block(120.0, 48_000.0, 6_000, slightly_late, None)
            ),
            vec![frame(1, 0), frame(2, 5813)]
        );
    }

    #[test]
    fn stop_start_and_jump_are_breaks_at_offset_zero() {
        let mut clock = FrameClock::new();
        run(&mut clock, &block(120.0, 48_000.0, 6_000, 0.0, None));
        assert_eq!(
            run(&mut clock, &block(120.0, 48_000.0, 6_000, 2.125, None)),
            vec![brk(Discontinuity::Jump, 0), frame(9, 3000)]
        );
        let mut stopped = block(120.0, 48_000.0, 6_000, 2.375, None);
        if let Some(t) = stopped.transport.as_mut() {
            t.playing = false;
        }
        assert_eq!(run(&mut clock, &stopped), vec![brk(Discontinuity::Stop, 0)]);
        assert!(!clock.is_running());
        assert!(
            run(&mut clock, &stopped).is_empty(),
            "a stop is reported once"
        );
        let timeless = Block {
            sample_rate: 0.0,
            ..block(120.0, 48_000.0, 6_000, 2.375, None)
        };
        assert!(run(&mut clock, &timeless).is_empty());
        assert_eq!(
            run(&mut clock, &block(120.0, 48_000.0, 6_000, 2.5, None)),
            vec![brk(Discontinuity::Start, 0), frame(10, 0)]
        );
    }

    #[test]
    fn a_loop_wrap_inside_a_block_continues_from_the_loop_start() {
        let looped = Some((0.0, 1.375));
        let mut clock = FrameClock::new();
        run(&mut clock, &block(120.0, 48_000.0, 6_000, 1.0, looped));
        // Beats 1.25 .. 1.375, wrap at sample 3000, then beats 0 .. 0.125.
        assert_eq!(
            run(&mut clock, &block(120.0, 48_000.0, 6_000, 1.25, looped)),
            vec![
                frame(5, 0),
                brk(Discontinuity::LoopWrap, 3000),
                frame(0, 3000)
            ]
        );
        assert_eq!(
            run(&mut clock, &block(120.0, 48_000.0, 6_000, 0.125, looped)),
            vec![frame(1, 3000)]
        );
    }

    #[test]
    fn a_host_that_wraps_between_blocks_reports_a_loop_wrap() {
        let looped = Some((0.0, 4.0));
        let mut clock = FrameClock::new();
        run(&mut clock, &block(120.0, 48_000.0, 5_900, 3.75, looped));
        assert_eq!(
            run(&mut clock, &block(120.0, 48_000.0, 6_000, 0.0, looped)),
            vec![brk(Discontinuity::LoopWrap, 0), frame(0, 0)]
        );
    }

    #[test]
    fn loop_wraps_per_block_are_bounded() {
        // A one-frame loop and a block of ten frames: only the first wraps are followed.
        let looped = Some((0.0, 0.25));
        let mut clock = FrameClock::new();
        let events = run(&mut clock, &block(120.0, 48_000.0, 60_000, 0.0, looped));
        let wraps = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    ClockEvent::Break {
                        kind: Discontinuity::LoopWrap,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(wraps, MAX_LOOP_WRAPS_PER_BLOCK as usize);
        assert!(events.len() < 64, "{events:?}");
    }
}
