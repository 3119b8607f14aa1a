//! Real-time melody quantizer: host transport and note events in, 16th-note melody frames out.
//!
//! The live plugin hears a keyboard player through the audio thread; the model needs one
//! [`MelodyFrame`] per 16th note. This module bridges the two without allocating, and its offline
//! twin ([`quantize_timeline`], [`quantize_notes`]) gives exactly the same frames for a timeline
//! in beats, so files and live input share one set of rules.
//!
//! # Frames
//! Frame `k` covers beats `[k/4, (k+1)/4)` (host beats are quarter notes). Indices are absolute
//! host frames (`floor(4 · beat)`, negative in a pre-roll) with the host clock, and count from
//! the first note (frame 0) with the free-running clock.
//!
//! # Monophonic reduction (the exact rule)
//! * **Onset.** If at least one note-on falls inside frame `k`, the frame is `Onset(p)` where `p`
//!   is the *earliest* of them (events at the same instant: the first in input order). Later
//!   onsets in the same frame lose. A note shorter than a frame still gets its onset frame.
//! * **Hold.** Otherwise, if the line's current note is still held at the frame's midpoint
//!   `(k + ½)/4`, the frame is `Hold(p)`: a release rounds to the nearest frame boundary (a
//!   release exactly at the midpoint still holds the frame).
//! * **Late onset.** Otherwise, if a key that *lost* an onset contest after the current note
//!   started (pressed later, in the same frame) is still held at the midpoint, the earliest such
//!   key gets `Onset` in this frame. A fast grace note or run is thus delayed, not swallowed.
//! * **Silence** otherwise. Other held keys (e.g. a held bass under the melody) never become a
//!   `Hold` of a pitch that had no onset, so every `Hold(p)` follows an `Onset(p)`.
//! * A key pressed again (with or without a release in between) is a new onset. A note-off for
//!   a key that is not down is ignored.
//!
//! # Emission
//! A frame is emitted exactly once, as early as it is final: an `Onset` frame the moment its
//! first onset arrives (nothing later in the frame can change it), a `Hold`/`Silence` frame once
//! the transport has passed the frame's end. When a phrase ends (stop, jump, loop wrap, clock
//! change, idle) a partly played frame is flushed with the state at that moment.
//!
//! # Phrases
//! Each contiguous stretch of time is a phrase with its own [`PhraseId`], opened by
//! [`QuantizerOutput::PhraseStart`] and closed by [`QuantizerOutput::PhraseEnd`]. A new phrase
//! starts when the host starts playing, jumps (its beat position differs from where the previous
//! block ended by more than [`JUMP_TOLERANCE_BEATS`]), wraps a loop (inside a block too), or when
//! the clock source changes. A note still held when a phrase starts is carried into it as an
//! `Onset` in the first frame (the current note if still down, else the most recently pressed
//! key), so every phrase begins with a valid token sequence. A stopped transport emits nothing.
//!
//! # No host transport
//! Without a transport (standalone, or a host that gives none) a free-running clock at
//! [`QuantizerConfig::free_tempo_bpm`] starts at the first note-on, which lands at beat 0. It runs
//! while the player plays and ends the phrase after [`QuantizerConfig::free_idle_beats`] beats
//! with no key down and no note event; the next note-on starts a new phrase at beat 0 again.
//!
//! # Real-time guarantees
//! [`Quantizer::process_block`] never allocates: all state lives in fixed arrays and output goes
//! to a caller-provided sink (a closure, or [`OutputBuffer`] which counts drops instead of
//! growing). Work per block is bounded: at most [`QuantizerConfig::max_events_per_block`] note
//! events are handled (the rest are counted in [`QuantizerStats::dropped_events`]), tempo is
//! clamped to [`MIN_TEMPO_BPM`]`..=`[`MAX_TEMPO_BPM`], at most [`MAX_LOOP_WRAPS_PER_BLOCK`] loop
//! wraps are followed per block, and loops shorter than one frame are ignored.

use crate::frames::{MelodyFrame, Note, TimeSignature, FRAMES_PER_BEAT};

const FRAMES_PER_BEAT_F64: f64 = FRAMES_PER_BEAT as f64;
const PITCH_COUNT: usize = 128;

/// Slowest tempo the quantizer follows; slower host values are clamped (bounds work per block).
pub const MIN_TEMPO_BPM: f64 = 1.0;
/// Fastest tempo the quantizer follows; faster host values are clamped (bounds work per block).
pub const MAX_TEMPO_BPM: f64 = 1000.0;
/// Tempo used when a host reports a non-finite tempo.
pub const DEFAULT_TEMPO_BPM: f64 = 120.0;
/// Largest mismatch between the host's block-start beat and the quantizer's own clock that is
/// still treated as the same timeline (about 8 ms at 120 BPM): absorbs host rounding and
/// in-block tempo ramps the host does not report.
pub const JUMP_TOLERANCE_BEATS: f64 = 1.0 / 64.0;
/// Largest song position (in beats, either sign) accepted from a host or an offline caller;
/// beyond it (or non-finite) the transport counts as stopped, keeping frame indices far from
/// integer overflow.
pub const MAX_BEAT_POSITION: f64 = 1e12;
/// Loop wraps followed inside one block; a pathological host loop cannot stall the audio thread.
pub const MAX_LOOP_WRAPS_PER_BLOCK: u32 = 8;

/// What the host says about its timeline at the first sample of a block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transport {
    /// Tempo at the block start, in quarter notes per minute.
    pub tempo_bpm: f64,
    /// Song position at the block start, in quarter-note beats. A value beyond
    /// [`MAX_BEAT_POSITION`] (or non-finite) is treated like a stopped transport.
    pub beat_position: f64,
    /// Whether the transport is rolling; a stopped transport produces no frames.
    pub playing: bool,
    /// Active loop `[start, end)` in beats; pass `None` when looping is off.
    pub loop_range: Option<(f64, f64)>,
    pub time_signature: TimeSignature,
}

/// One audio block's timing context.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Block {
    /// `None` when the host gives no transport: the free-running clock takes over.
    pub transport: Option<Transport>,
    /// Block length in samples.
    pub len_samples: u32,
    /// Samples per second; a non-positive or non-finite rate makes the block timeless (keys are
    /// tracked, no time passes).
    pub sample_rate: f64,
}

/// Whether a key goes down or up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoteEventKind {
    On,
    Off,
}

/// A note event inside a block, at a sample offset from the block start.
///
/// Events are handled in slice order; an offset earlier than its predecessor's is treated as
/// simultaneous with it, and offsets past the block are clamped to its last sample. A MIDI
/// note-on with velocity 0 should be passed as [`NoteEventKind::Off`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NoteEvent {
    pub offset: u32,
    pub pitch: u8,
    pub kind: NoteEventKind,
}

impl NoteEvent {
    /// A key press at `offset`.
    pub fn on(offset: u32, pitch: u8) -> Self {
        Self {
            offset,
            pitch,
            kind: NoteEventKind::On,
        }
    }

    /// A key release at `offset`.
    pub fn off(offset: u32, pitch: u8) -> Self {
        Self {
            offset,
            pitch,
            kind: NoteEventKind::Off,
        }
    }
}

/// A tempo change inside a block (hosts with sample-accurate tempo automation).
/// Changes are applied in slice order and must have non-decreasing offsets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TempoChange {
    pub offset: u32,
    pub tempo_bpm: f64,
}

/// Identifies one phrase; wraps around after `u32::MAX` phrases.
pub type PhraseId = u32;

/// Which clock a phrase follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClockSource {
    /// The host transport; frame indices are absolute song positions.
    Host,
    /// The free-running fallback clock; frame 0 is the first note.
    Free,
}

/// Why a phrase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhraseEndReason {
    /// The host transport stopped.
    Stopped,
    /// The host position jumped (locate, scrub, tempo map edit).
    Jump,
    /// The host wrapped its loop.
    LoopWrap,
    /// The transport appeared or disappeared, so the clock source changed.
    ClockChanged,
    /// Free-running clock only: nobody played for [`QuantizerConfig::free_idle_beats`].
    Idle,
}

/// What the quantizer tells its consumer (the model thread, the panel).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QuantizerOutput {
    /// A new phrase begins; frames that follow belong to it, starting at `first_frame`.
    PhraseStart {
        phrase: PhraseId,
        first_frame: i64,
        time_signature: TimeSignature,
        clock: ClockSource,
    },
    /// One final melody frame, emitted in increasing `index` order within a phrase.
    Frame {
        phrase: PhraseId,
        index: i64,
        frame: MelodyFrame,
    },
    /// The phrase is over; no more frames for it.
    PhraseEnd {
        phrase: PhraseId,
        reason: PhraseEndReason,
    },
}

/// Tuning knobs, fixed at construction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantizerConfig {
    /// Note events handled per block; extra events (MIDI floods) are dropped and counted.
    pub max_events_per_block: usize,
    /// Tempo of the free-running clock used when the host has no transport.
    pub free_tempo_bpm: f64,
    /// Beats without any key down or note event after which a free-running phrase ends.
    pub free_idle_beats: f64,
}

impl Default for QuantizerConfig {
    fn default() -> Self {
        Self {
            max_events_per_block: 256,
            free_tempo_bpm: DEFAULT_TEMPO_BPM,
            free_idle_beats: 8.0,
        }
    }
}

/// Counters a UI can show; they only grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuantizerStats {
    /// Note events not handled: over the per-block cap, or a pitch above 127.
    pub dropped_events: u64,
    /// Phrases started so far.
    pub phrases_started: u64,
}

/// A fixed-capacity output sink: never grows, counts what did not fit.
///
/// Allocates once in [`OutputBuffer::with_capacity`]; [`OutputBuffer::push`] and
/// [`OutputBuffer::clear`] never allocate, so it can live on the audio thread.
#[derive(Debug, Clone)]
pub struct OutputBuffer {
    items: Vec<QuantizerOutput>,
    capacity: usize,
    dropped: u64,
}

impl OutputBuffer {
    /// A buffer holding at most `capacity` outputs.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            items: Vec::with_capacity(capacity),
            capacity,
            dropped: 0,
        }
    }

    /// Stores `output`, or counts it as dropped when full.
    pub fn push(&mut self, output: QuantizerOutput) {
        if self.items.len() < self.capacity {
            self.items.push(output);
        } else {
            self.dropped += 1;
        }
    }

    /// The outputs stored since the last [`OutputBuffer::clear`].
    pub fn as_slice(&self) -> &[QuantizerOutput] {
        &self.items
    }

    /// Empties the buffer, keeping its storage.
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Outputs lost to a full buffer since construction.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// The real-time quantizer: feed it every audio block, read frames from the sink.
#[derive(Debug, Clone)]
pub struct Quantizer {
    config: QuantizerConfig,
    line: Line,
    phrase: Option<RunningPhrase>,
    next_phrase: PhraseId,
    stats: QuantizerStats,
}

#[derive(Debug, Clone, Copy)]
struct RunningPhrase {
    id: PhraseId,
    clock: ClockSource,
    /// Free clock only: beat of the last note event, for the idle timeout.
    last_activity_beat: f64,
}

/// The piecewise-linear map from sample offsets to beats inside one block.
#[derive(Debug, Clone, Copy)]
struct Segment {
    sample: f64,
    beat: f64,
    beats_per_sample: f64,
}

impl Segment {
    fn beat_at(&self, sample: f64) -> f64 {
        self.beat + (sample - self.sample) * self.beats_per_sample
    }
}

impl Quantizer {
    /// A quantizer with no phrase running and no keys down.
    pub fn new(config: QuantizerConfig) -> Self {
        Self {
            config,
            line: Line::new(),
            phrase: None,
            next_phrase: 0,
            stats: QuantizerStats::default(),
        }
    }

    /// Drop and overflow counters.
    pub fn stats(&self) -> QuantizerStats {
        self.stats
    }

    /// The phrase currently producing frames, if any.
    pub fn current_phrase(&self) -> Option<PhraseId> {
        self.phrase.map(|p| p.id)
    }

    /// Forgets all held keys (host "all notes off", plugin reset) without ending the phrase.
    pub fn release_all_keys(&mut self) {
        self.line.release_all();
    }

    /// Processes one audio block: `events` and `tempo_changes` carry sample offsets inside it.
    /// Outputs go to `sink` in order. Never allocates.
    pub fn process_block(
        &mut self,
        block: &Block,
        tempo_changes: &[TempoChange],
        events: &[NoteEvent],
        sink: &mut impl FnMut(QuantizerOutput),
    ) {
        let handled = events.len().min(self.config.max_events_per_block);
        self.stats.dropped_events += (events.len() - handled) as u64;
        let events = events.get(..handled).unwrap_or_default();

        let timeless = !(block.sample_rate.is_finite() && block.sample_rate > 0.0);
        match block.transport {
            _ if timeless => self.track_keys(events),
            Some(transport)
                if transport.playing && transport.beat_position.abs() <= MAX_BEAT_POSITION =>
            {
                self.process_host_block(block, &transport, tempo_changes, events, sink);
            }
            Some(_) => {
                self.end_phrase(PhraseEndReason::Stopped, sink);
                self.track_keys(events);
            }
            None => self.process_free_block(block, events, sink),
        }
    }

    fn process_host_block(
        &mut self,
        block: &Block,
        transport: &Transport,
        tempo_changes: &[TempoChange],
        events: &[NoteEvent],
        sink: &mut impl FnMut(QuantizerOutput),
    ) {
        let host_beat = transport.beat_position;
        let loop_range = transport.loop_range.filter(|&(start, end)| {
            start.abs() <= MAX_BEAT_POSITION
                && end.abs() <= MAX_BEAT_POSITION
                && end - start >= 1.0 / FRAMES_PER_BEAT_F64
        });
        match self.phrase {
            Some(phrase) if phrase.clock == ClockSource::Host => {
                let expected = self.line.position;
                if (host_beat - expected).abs() > JUMP_TOLERANCE_BEATS {
                    let wrapped = loop_range.is_some_and(|(_, end)| {
                        host_beat < expected && expected >= end - JUMP_TOLERANCE_BEATS
                    });
                    let reason = if wrapped {
                        PhraseEndReason::LoopWrap
                    } else {
                        PhraseEndReason::Jump
                    };
                    self.end_phrase(reason, sink);
                    self.start_phrase(
                        host_beat,
                        ClockSource::Host,
                        transport.time_signature,
                        true,
                        sink,
                    );
                } else {
                    self.advance(host_beat, sink);
                }
            }
            Some(_) => {
                self.end_phrase(PhraseEndReason::ClockChanged, sink);
                self.start_phrase(
                    host_beat,
                    ClockSource::Host,
                    transport.time_signature,
                    true,
                    sink,
                );
            }
            None => self.start_phrase(
                host_beat,
                ClockSource::Host,
                transport.time_signature,
                true,
                sink,
            ),
        }

        let position = self.line.position;
        let mut clock = HostClock {
            segment: Segment {
                sample: 0.0,
                beat: position,
                beats_per_sample: beats_per_sample(transport.tempo_bpm, block.sample_rate),
            },
            tempo_changes,
            next_change: 0,
            loop_range: loop_range.filter(|&(start, end)| position >= start && position < end),
            wraps: 0,
            sample_rate: block.sample_rate,
            time_signature: transport.time_signature,
        };
        let last_sample = block.len_samples.saturating_sub(1) as f64;
        let mut previous_sample = 0.0_f64;
        for event in events {
            let sample = (event.offset as f64).min(last_sample).max(previous_sample);
            previous_sample = sample;
            self.advance_host_clock(&mut clock, sample, sink);
            self.apply_event(event, sink);
        }
        self.advance_host_clock(&mut clock, block.len_samples as f64, sink);
    }

    /// Moves the host clock to `target` samples into the block, applying tempo changes and
    /// loop wraps on the way.
    fn advance_host_clock(
        &mut self,
        clock: &mut HostClock,
        target: f64,
        sink: &mut impl FnMut(QuantizerOutput),
    ) {
        loop {
            let change = clock
                .tempo_changes
                .get(clock.next_change)
                .filter(|change| (change.offset as f64) <= target);
            let segment_end =
                change.map_or(target, |c| (c.offset as f64).max(clock.segment.sample));
            let beat = clock.segment.beat_at(segment_end);
            if let Some((loop_start, loop_end)) = clock.loop_range {
                if beat >= loop_end && clock.segment.beat < loop_end {
                    let wrap_sample = clock.segment.sample
                        + (loop_end - clock.segment.beat) / clock.segment.beats_per_sample;
                    self.advance(loop_end, sink);
                    self.end_phrase(PhraseEndReason::LoopWrap, sink);
                    self.start_phrase(
                        loop_start,
                        ClockSource::Host,
                        clock.time_signature,
                        true,
                        sink,
                    );
                    clock.segment.sample = wrap_sample;
                    clock.segment.beat = loop_start;
                    clock.wraps += 1;
                    if clock.wraps >= MAX_LOOP_WRAPS_PER_BLOCK {
                        clock.loop_range = None;
                    }
                    continue;
                }
            }
            self.advance(beat, sink);
            clock.segment.sample = segment_end;
            clock.segment.beat = self.line.position;
            match change {
                Some(change) => {
                    clock.segment.beats_per_sample =
                        beats_per_sample(change.tempo_bpm, clock.sample_rate);
                    clock.next_change += 1;
                }
                None => break,
            }
        }
    }

    fn process_free_block(
        &mut self,
        block: &Block,
        events: &[NoteEvent],
        sink: &mut impl FnMut(QuantizerOutput),
    ) {
        if self.phrase.is_some_and(|p| p.clock == ClockSource::Host) {
            self.end_phrase(PhraseEndReason::ClockChanged, sink);
        }
        let mut segment = Segment {
            sample: 0.0,
            beat: self.line.position,
            beats_per_sample: beats_per_sample(self.config.free_tempo_bpm, block.sample_rate),
        };
        let last_sample = block.len_samples.saturating_sub(1) as f64;
        let mut previous_sample = 0.0_f64;
        for event in events {
            let sample = (event.offset as f64).min(last_sample).max(previous_sample);
            previous_sample = sample;
            if self.phrase.is_some() {
                self.advance_free(segment.beat_at(sample), sink);
            }
            if self.phrase.is_none() && event.kind == NoteEventKind::On {
                let signature = TimeSignature::default();
                self.start_phrase(0.0, ClockSource::Free, signature, false, sink);
                segment.sample = sample;
                segment.beat = 0.0;
            }
            if let Some(phrase) = self.phrase.as_mut() {
                phrase.last_activity_beat = self.line.position;
            }
            self.apply_event(event, sink);
        }
        if self.phrase.is_some() {
            self.advance_free(segment.beat_at(block.len_samples as f64), sink);
        }
    }

    /// Advances the free clock, ending the phrase once it has been idle long enough.
    fn advance_free(&mut self, beat: f64, sink: &mut impl FnMut(QuantizerOutput)) {
        let Some(phrase) = self.phrase else { return };
        let deadline = phrase.last_activity_beat + self.config.free_idle_beats;
        if self.line.held_count == 0 && beat >= deadline {
            self.advance(deadline, sink);
            self.end_phrase(PhraseEndReason::Idle, sink);
        } else {
            self.advance(beat, sink);
        }
    }

    fn apply_event(&mut self, event: &NoteEvent, sink: &mut impl FnMut(QuantizerOutput)) {
        if event.pitch as usize >= PITCH_COUNT {
            self.stats.dropped_events += 1;
            return;
        }
        match event.kind {
            NoteEventKind::On => {
                let phrase = self.phrase.map(|p| p.id);
                self.line.press(event.pitch, &mut |index, frame| {
                    if let Some(phrase) = phrase {
                        sink(QuantizerOutput::Frame {
                            phrase,
                            index,
                            frame,
                        });
                    }
                });
            }
            NoteEventKind::Off => self.line.release(event.pitch),
        }
    }

    fn track_keys(&mut self, events: &[NoteEvent]) {
        for event in events {
            if event.pitch as usize >= PITCH_COUNT {
                self.stats.dropped_events += 1;
                continue;
            }
            match event.kind {
                NoteEventKind::On => self.line.press(event.pitch, &mut |_, _| {}),
                NoteEventKind::Off => self.line.release(event.pitch),
            }
        }
    }

    fn advance(&mut self, beat: f64, sink: &mut impl FnMut(QuantizerOutput)) {
        let Some(phrase) = self.phrase.map(|p| p.id) else {
            return;
        };
        self.line.advance_to(beat, &mut |index, frame| {
            sink(QuantizerOutput::Frame {
                phrase,
                index,
                frame,
            })
        });
    }

    fn start_phrase(
        &mut self,
        beat: f64,
        clock: ClockSource,
        time_signature: TimeSignature,
        carry_held_note: bool,
        sink: &mut impl FnMut(QuantizerOutput),
    ) {
        let phrase = self.next_phrase;
        self.next_phrase = self.next_phrase.wrapping_add(1);
        self.stats.phrases_started += 1;
        self.phrase = Some(RunningPhrase {
            id: phrase,
            clock,
            last_activity_beat: beat,
        });
        let first_frame = frame_of(beat);
        sink(QuantizerOutput::PhraseStart {
            phrase,
            first_frame,
            time_signature,
            clock,
        });
        self.line
            .start_phrase(beat, carry_held_note, &mut |index, frame| {
                sink(QuantizerOutput::Frame {
                    phrase,
                    index,
                    frame,
                });
            });
    }

    fn end_phrase(&mut self, reason: PhraseEndReason, sink: &mut impl FnMut(QuantizerOutput)) {
        let Some(phrase) = self.phrase.take() else {
            return;
        };
        let id = phrase.id;
        self.line.end_phrase(&mut |index, frame| {
            sink(QuantizerOutput::Frame {
                phrase: id,
                index,
                frame,
            })
        });
        sink(QuantizerOutput::PhraseEnd { phrase: id, reason });
    }
}

/// Host-clock state while walking through one block.
struct HostClock<'a> {
    segment: Segment,
    tempo_changes: &'a [TempoChange],
    next_change: usize,
    loop_range: Option<(f64, f64)>,
    wraps: u32,
    sample_rate: f64,
    time_signature: TimeSignature,
}

fn sanitize_tempo(bpm: f64) -> f64 {
    if bpm.is_finite() {
        bpm.clamp(MIN_TEMPO_BPM, MAX_TEMPO_BPM)
    } else {
        DEFAULT_TEMPO_BPM
    }
}

fn beats_per_sample(bpm: f64, sample_rate: f64) -> f64 {
    sanitize_tempo(bpm) / 60.0 / sample_rate
}

/// How close below a frame boundary a position still counts as on it: hosts compute block
/// positions in floating point (summing block lengths, converting samples), so a note written on
/// a beat can arrive a hair before it, and without this which frame it lands in would depend on
/// the host's block size. A millionth of a frame is far below a sample at any tempo.
const BOUNDARY_TOLERANCE_FRAMES: f64 = 1e-6;

fn frame_of(beat: f64) -> i64 {
    (beat * FRAMES_PER_BEAT_F64 + BOUNDARY_TOLERANCE_FRAMES).floor() as i64
}

fn frame_start(index: i64) -> f64 {
    index as f64 / FRAMES_PER_BEAT_F64
}

/// Where a release decides between `Hold` and the next rule (exact in binary floating point).
fn frame_midpoint(index: i64) -> f64 {
    (index as f64 + 0.5) / FRAMES_PER_BEAT_F64
}

#[derive(Debug, Clone, Copy, Default)]
struct Key {
    held: bool,
    press_seq: u64,
}

#[derive(Debug, Clone, Copy)]
struct OpenFrame {
    index: i64,
    emitted: bool,
    /// The frame's value if no onset arrives, fixed at the midpoint.
    fallback: Option<MelodyFrame>,
}

impl OpenFrame {
    fn new(index: i64) -> Self {
        Self {
            index,
            emitted: false,
            fallback: None,
        }
    }
}

/// The monophonic line: key state plus the frame being filled. Shared by the real-time and the
/// offline quantizer so both follow the same rules by construction.
#[derive(Debug, Clone)]
struct Line {
    keys: [Key; PITCH_COUNT],
    held_count: u32,
    next_seq: u64,
    /// Pitch of the note the line is on (it may have been released since).
    current: Option<u8>,
    /// Press sequence number of the note that last won a frame.
    winner_seq: u64,
    open: Option<OpenFrame>,
    /// Beat reached so far in the running phrase; never decreases within a phrase.
    position: f64,
}

impl Line {
    fn new() -> Self {
        Self {
            keys: [Key::default(); PITCH_COUNT],
            held_count: 0,
            next_seq: 1,
            current: None,
            winner_seq: 0,
            open: None,
            position: 0.0,
        }
    }

    fn key(&self, pitch: u8) -> Key {
        self.keys.get(pitch as usize).copied().unwrap_or_default()
    }

    fn start_phrase(
        &mut self,
        beat: f64,
        carry_held_note: bool,
        emit: &mut impl FnMut(i64, MelodyFrame),
    ) {
        let carried = if carry_held_note {
            self.note_to_carry()
        } else {
            None
        };
        self.current = None;
        self.position = beat;
        let index = frame_of(beat);
        self.open = Some(OpenFrame::new(index));
        if beat >= frame_midpoint(index) {
            self.snapshot_once();
        }
        if let Some(pitch) = carried {
            self.press(pitch, emit);
        }
    }

    /// The note that keeps sounding into a new phrase: the current note if still down, else
    /// the most recently pressed key still down.
    fn note_to_carry(&self) -> Option<u8> {
        if let Some(pitch) = self.current.filter(|&p| self.key(p).held) {
            return Some(pitch);
        }
        (0..PITCH_COUNT as u8)
            .filter(|&p| self.key(p).held)
            .max_by_key(|&p| self.key(p).press_seq)
    }

    fn end_phrase(&mut self, emit: &mut impl FnMut(i64, MelodyFrame)) {
        let started = self
            .open
            .is_some_and(|f| self.position > frame_start(f.index));
        if started {
            self.close_open_frame(emit);
        }
        self.open = None;
    }

    /// Moves time forward to `beat`, emitting every frame whose end it passes.
    fn advance_to(&mut self, beat: f64, emit: &mut impl FnMut(i64, MelodyFrame)) {
        if beat.is_nan() || beat <= self.position {
            return;
        }
        while let Some(index) = self.open.map(|f| f.index) {
            if beat >= frame_midpoint(index) {
                self.snapshot_once();
            }
            if frame_of(beat) <= index {
                break;
            }
            self.close_open_frame(emit);
            self.open = Some(OpenFrame::new(index + 1));
        }
        self.position = beat;
    }

    /// Emits the open frame unless its onset already went out.
    fn close_open_frame(&mut self, emit: &mut impl FnMut(i64, MelodyFrame)) {
        if let Some(frame) = self.open.filter(|f| !f.emitted) {
            let value = frame.fallback.unwrap_or_else(|| self.fallback_value());
            self.commit(value);
            emit(frame.index, value);
        }
    }

    /// Fixes the open frame's no-onset value at its midpoint (first call only).
    fn snapshot_once(&mut self) {
        if self.open.is_some_and(|f| f.fallback.is_none()) {
            let value = self.fallback_value();
            if let Some(frame) = self.open.as_mut() {
                frame.fallback = Some(value);
            }
        }
    }

    /// What the open frame becomes if no onset lands in it, judged from the keys right now.
    fn fallback_value(&self) -> MelodyFrame {
        if let Some(pitch) = self.current.filter(|&p| self.key(p).held) {
            return MelodyFrame::Hold(pitch);
        }
        (0..PITCH_COUNT as u8)
            .filter(|&p| {
                let key = self.key(p);
                key.held && key.press_seq > self.winner_seq
            })
            .min_by_key(|&p| self.key(p).press_seq)
            .map_or(MelodyFrame::Silence, MelodyFrame::Onset)
    }

    /// Makes `value` the line's state once its frame is final.
    fn commit(&mut self, value: MelodyFrame) {
        match value {
            MelodyFrame::Onset(pitch) => {
                self.current = Some(pitch);
                self.winner_seq = self.key(pitch).press_seq;
            }
            MelodyFrame::Hold(_) => {}
            MelodyFrame::Silence => self.current = None,
        }
    }

    fn press(&mut self, pitch: u8, emit: &mut impl FnMut(i64, MelodyFrame)) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let Some(key) = self.keys.get_mut(pitch as usize) else {
            return;
        };
        if !key.held {
            self.held_count += 1;
        }
        *key = Key {
            held: true,
            press_seq: seq,
        };
        if let Some(frame) = self.open.as_mut().filter(|f| !f.emitted) {
            frame.emitted = true;
            let index = frame.index;
            self.current = Some(pitch);
            self.winner_seq = seq;
            emit(index, MelodyFrame::Onset(pitch));
        }
    }

    fn release(&mut self, pitch: u8) {
        if let Some(key) = self.keys.get_mut(pitch as usize) {
            if key.held {
                key.held = false;
                self.held_count -= 1;
            }
        }
    }

    fn release_all(&mut self) {
        for key in &mut self.keys {
            key.held = false;
        }
        self.held_count = 0;
    }
}

/// A note event on a beat timeline, for the offline quantizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimedNoteEvent {
    pub beat: f64,
    pub pitch: u8,
    pub kind: NoteEventKind,
}

/// A frame with its absolute index, as the offline quantizer returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IndexedFrame {
    pub index: i64,
    pub frame: MelodyFrame,
}

/// Quantizes one phrase played from `start_beat` to `end_beat`, with exactly the rules and
/// frames of the real-time [`Quantizer`] (host clock, one phrase).
///
/// Events are taken in beat order (stable, so simultaneous events keep their order). Events
/// before `start_beat` only set which keys are down (a key still down at the start is carried
/// in as an onset); events at or after `end_beat`, with a non-finite beat or a pitch above 127
/// are ignored. Returns frames `floor(4·start)` up to the last frame the phrase touches; nothing
/// when a bound is beyond [`MAX_BEAT_POSITION`] or not finite.
pub fn quantize_timeline(
    events: &[TimedNoteEvent],
    start_beat: f64,
    end_beat: f64,
) -> Vec<IndexedFrame> {
    let mut sorted: Vec<TimedNoteEvent> = events
        .iter()
        .copied()
        .filter(|e| e.beat.is_finite() && (e.pitch as usize) < PITCH_COUNT && e.beat < end_beat)
        .collect();
    sorted.sort_by(|a, b| a.beat.total_cmp(&b.beat));
    let mut frames = Vec::new();
    if !(start_beat.abs() <= MAX_BEAT_POSITION && end_beat.abs() <= MAX_BEAT_POSITION) {
        return frames;
    }
    let mut emit = |index, frame| frames.push(IndexedFrame { index, frame });
    let mut line = Line::new();
    let split = sorted.partition_point(|e| e.beat < start_beat);
    let (before, during) = sorted.split_at(split);
    for event in before {
        match event.kind {
            NoteEventKind::On => line.press(event.pitch, &mut emit),
            NoteEventKind::Off => line.release(event.pitch),
        }
    }
    line.start_phrase(start_beat, true, &mut emit);
    for event in during {
        line.advance_to(event.beat, &mut emit);
        match event.kind {
            NoteEventKind::On => line.press(event.pitch, &mut emit),
            NoteEventKind::Off => line.release(event.pitch),
        }
    }
    line.advance_to(end_beat, &mut emit);
    line.end_phrase(&mut emit);
    frames
}

/// Quantizes a note list (beats from the start, as read from a MIDI file) into frames from
/// frame 0 through the frame holding the last release (or the last onset frame): the melody the
/// model sees for an offline song.
///
/// A note ending exactly where another of the same pitch starts is released first, so repeated
/// notes stay separate. Notes before beat 0 only sound if still held at beat 0.
pub fn quantize_notes(notes: &[Note]) -> Vec<MelodyFrame> {
    let mut events = Vec::with_capacity(notes.len() * 2);
    let mut frame_count = 0_i64;
    for note in notes {
        if !(note.onset_beat.is_finite() && note.offset_beat.is_finite()) {
            continue;
        }
        let offset = note.offset_beat.max(note.onset_beat);
        events.push((note.onset_beat, NoteEventKind::On, note.pitch));
        events.push((offset, NoteEventKind::Off, note.pitch));
        let last_frame_end =
            ((offset * FRAMES_PER_BEAT_F64).ceil() as i64).max(frame_of(note.onset_beat) + 1);
        frame_count = frame_count.max(last_frame_end);
    }
    let off_first = |kind: NoteEventKind| matches!(kind, NoteEventKind::On);
    events.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then(off_first(a.1).cmp(&off_first(b.1)))
    });
    let timeline: Vec<TimedNoteEvent> = events
        .into_iter()
        .map(|(beat, kind, pitch)| TimedNoteEvent { beat, pitch, kind })
        .collect();
    quantize_timeline(&timeline, 0.0, frame_start(frame_count))
        .into_iter()
        .map(|f| f.frame)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use MelodyFrame::{Hold, Onset, Silence};

    fn note(pitch: u8, onset_beat: f64, offset_beat: f64) -> Note {
        Note {
            pitch,
            onset_beat,
            offset_beat,
        }
    }

    #[test]
    fn notes_become_onset_then_holds() {
        let frames = quantize_notes(&[note(60, 0.0, 1.0), note(62, 1.0, 1.5)]);
        assert_eq!(
            frames,
            vec![Onset(60), Hold(60), Hold(60), Hold(60), Onset(62), Hold(62)]
        );
    }

    #[test]
    fn a_note_shorter_than_a_frame_takes_one_frame() {
        assert_eq!(
            quantize_notes(&[note(60, 0.3, 0.31)]),
            vec![Silence, Onset(60)]
        );
    }

    #[test]
    fn first_onset_in_a_frame_wins() {
        let frames = quantize_notes(&[note(64, 0.1, 1.0), note(60, 0.01, 1.0)]);
        assert_eq!(frames, vec![Onset(60), Hold(60), Hold(60), Hold(60)]);
    }

    #[test]
    fn a_grace_note_delays_the_main_note_instead_of_swallowing_it() {
        let frames = quantize_notes(&[note(60, 0.01, 0.1), note(62, 0.05, 1.0)]);
        assert_eq!(frames, vec![Onset(60), Onset(62), Hold(62), Hold(62)]);
    }

    #[test]
    fn a_release_rounds_to_the_nearest_frame_boundary() {
        assert_eq!(
            quantize_notes(&[note(60, 0.0, 0.37)]),
            vec![Onset(60), Silence]
        );
        assert_eq!(
            quantize_notes(&[note(60, 0.0, 0.375)]),
            vec![Onset(60), Hold(60)]
        );
    }

    #[test]
    fn repeated_pitches_restart_with_an_onset() {
        let frames = quantize_notes(&[note(60, 0.0, 0.5), note(60, 0.5, 1.0)]);
        assert_eq!(frames, vec![Onset(60), Hold(60), Onset(60), Hold(60)]);
    }

    #[test]
    fn a_held_bass_never_becomes_a_hold_without_onset() {
        let frames = quantize_notes(&[note(36, 0.0, 2.0), note(64, 0.5, 1.0)]);
        assert_eq!(
            frames[..6],
            [Onset(36), Hold(36), Onset(64), Hold(64), Silence, Silence]
        );
    }

    const RATE: f64 = 48_000.0;
    /// Samples per 16th-note frame at 120 BPM and 48 kHz.
    const FRAME: u32 = 6_000;

    fn playing(beat: f64) -> Block {
        Block {
            transport: Some(Transport {
                tempo_bpm: 120.0,
                beat_position: beat,
                playing: true,
                loop_range: None,
                time_signature: TimeSignature::default(),
            }),
            len_samples: FRAME,
            sample_rate: RATE,
        }
    }

    fn run(q: &mut Quantizer, block: Block, events: &[NoteEvent]) -> Vec<QuantizerOutput> {
        let mut out = Vec::new();
        q.process_block(&block, &[], events, &mut |o| out.push(o));
        out
    }

    fn frames(outputs: &[QuantizerOutput]) -> Vec<(i64, MelodyFrame)> {
        outputs
            .iter()
            .filter_map(|o| match *o {
                QuantizerOutput::Frame { index, frame, .. } => Some((index, frame)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn onsets_go_out_at_once_and_holds_when_their_frame_ends() {
        let mut q = Quantizer::new(QuantizerConfig::default());
        let first = run(&mut q, playing(0.0), &[NoteEvent::on(100, 60)]);
        assert!(matches!(
            first[0],
            QuantizerOutput::PhraseStart {
                first_frame: 0,
                clock: ClockSource::Host,
                ..
            }
        ));
        assert_eq!(frames(&first), vec![(0, Onset(60))]);
        let second = run(&mut q, playing(0.25), &[]);
        assert_eq!(frames(&second), vec![(1, Hold(60))]);
    }

    #[test]
    fn stopping_flushes_and_ends_the_phrase() {
        let mut q = Quantizer::new(QuantizerConfig::default());
        let mut half = playing(0.0);
        half.len_samples = FRAME / 2;
        run(&mut q, half, &[NoteEvent::on(0, 60)]);
        let mut stopped = playing(0.125);
        if let Some(t) = stopped.transport.as_mut() {
            t.playing = false;
        }
        let out = run(&mut q, stopped, &[NoteEvent::on(10, 62)]);
        assert_eq!(
            out,
            vec![QuantizerOutput::PhraseEnd {
                phrase: 0,
                reason: PhraseEndReason::Stopped
            }]
        );
        assert_eq!(run(&mut q, stopped, &[]), vec![]);
    }

    #[test]
    fn a_jump_starts_a_new_phrase_carrying_the_held_note() {
        let mut q = Quantizer::new(QuantizerConfig::default());
        run(&mut q, playing(0.0), &[NoteEvent::on(0, 60)]);
        let out = run(&mut q, playing(8.0), &[]);
        assert_eq!(
            out[0],
            QuantizerOutput::PhraseEnd {
                phrase: 0,
                reason: PhraseEndReason::Jump
            }
        );
        assert!(matches!(
            out[1],
            QuantizerOutput::PhraseStart {
                phrase: 1,
                first_frame: 32,
                ..
            }
        ));
        assert_eq!(frames(&out), vec![(32, Onset(60))]);
    }

    #[test]
    fn a_loop_wrap_inside_a_block_starts_a_new_phrase_at_the_loop_start() {
        let mut q = Quantizer::new(QuantizerConfig::default());
        let mut block = playing(1.5);
        block.len_samples = 4 * FRAME;
        if let Some(t) = block.transport.as_mut() {
            t.loop_range = Some((0.0, 2.0));
        }
        let out = run(&mut q, block, &[NoteEvent::on(3 * FRAME, 67)]);
        let end = out.iter().position(|o| {
            matches!(
                o,
                QuantizerOutput::PhraseEnd {
                    reason: PhraseEndReason::LoopWrap,
                    ..
                }
            )
        });
        assert!(end.is_some(), "{out:?}");
        assert_eq!(
            frames(&out),
            vec![(6, Silence), (7, Silence), (0, Silence), (1, Onset(67))]
        );
        let mut next = block;
        if let Some(t) = next.transport.as_mut() {
            t.beat_position = 0.5;
        }
        let out = run(&mut q, next, &[]);
        assert!(
            out.iter()
                .all(|o| matches!(o, QuantizerOutput::Frame { phrase: 1, .. })),
            "{out:?}"
        );
    }

    #[test]
    fn a_tempo_change_inside_a_block_moves_the_frame_grid() {
        let mut q = Quantizer::new(QuantizerConfig::default());
        let mut block = playing(0.0);
        block.len_samples = 3 * FRAME;
        let mut out = Vec::new();
        // 120 BPM for one frame, then 240 BPM: the other two frames' worth of samples hold four.
        let change = [TempoChange {
            offset: FRAME,
            tempo_bpm: 240.0,
        }];
        q.process_block(
            &block,
            &change,
            &[NoteEvent::on(FRAME + FRAME / 2 + 10, 60)],
            &mut |o| out.push(o),
        );
        assert_eq!(
            frames(&out),
            vec![
                (0, Silence),
                (1, Silence),
                (2, Onset(60)),
                (3, Hold(60)),
                (4, Hold(60))
            ]
        );
    }

    #[test]
    fn without_transport_the_first_note_starts_a_free_clock_that_idles_out() {
        let config = QuantizerConfig {
            free_idle_beats: 1.0,
            ..QuantizerConfig::default()
        };
        let mut q = Quantizer::new(config);
        let mut block = playing(0.0);
        block.transport = None;
        assert_eq!(run(&mut q, block, &[]), vec![]);
        let out = run(
            &mut q,
            block,
            &[NoteEvent::on(FRAME / 2, 60), NoteEvent::off(FRAME - 1, 60)],
        );
        assert!(matches!(
            out[0],
            QuantizerOutput::PhraseStart {
                first_frame: 0,
                clock: ClockSource::Free,
                ..
            }
        ));
        assert_eq!(frames(&out), vec![(0, Onset(60))]);
        let mut later = Vec::new();
        for _ in 0..8 {
            later.extend(run(&mut q, block, &[]));
        }
        assert_eq!(
            later.last(),
            Some(&QuantizerOutput::PhraseEnd {
                phrase: 0,
                reason: PhraseEndReason::Idle
            })
        );
        assert_eq!(
            frames(&later).len(),
            4,
            "frames up to beat 1 after the release: {later:?}"
        );
        let again = run(&mut q, block, &[NoteEvent::on(3, 64)]);
        assert!(matches!(
            again[0],
            QuantizerOutput::PhraseStart {
                phrase: 1,
                first_frame: 0,
                ..
            }
        ));
        assert_eq!(frames(&again), vec![(0, Onset(64))]);
    }

    #[test]
    fn a_midi_flood_is_capped_and_counted() {
        let config = QuantizerConfig {
            max_events_per_block: 4,
            ..QuantizerConfig::default()
        };
        let mut q = Quantizer::new(config);
        let flood: Vec<NoteEvent> = (0..10).map(|i| NoteEvent::on(i, 60 + i as u8)).collect();
        let out = run(&mut q, playing(0.0), &flood);
        assert_eq!(q.stats().dropped_events, 6);
        assert_eq!(frames(&out), vec![(0, Onset(60))]);
    }

    #[test]
    fn a_full_output_buffer_counts_drops() {
        let mut buffer = OutputBuffer::with_capacity(1);
        let output = QuantizerOutput::PhraseEnd {
            phrase: 0,
            reason: PhraseEndReason::Stopped,
        };
        buffer.push(output);
        buffer.push(output);
        assert_eq!((buffer.as_slice().len(), buffer.dropped()), (1, 1));
    }
}
