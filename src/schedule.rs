//! The audio-thread side of live jamming: the latest chord plan becomes note on/off events at
//! 16th-note frame boundaries, at the right sample offsets, without allocating.
//!
//! The inference thread ([`crate::live`]) sends [`PlanUpdate`]s: for a run of frames, the chord
//! and the exact pitches to sound (voiced on the inference thread, so this side only copies
//! them). The [`Scheduler`] keeps one plan in a single slot; a plan it replaces or refuses is
//! handed back to the caller, who returns it to the inference thread for reuse, so nothing is
//! freed here either.
//!
//! # Per block
//! Call the quantizer first, then [`Scheduler::process_block`] with the same block, then
//! [`Scheduler::begin_phrase`] if the quantizer started a phrase in that block. The scheduler
//! follows the host transport with the quantizer's rules: a stop, a jump (position off by more
//! than [`JUMP_TOLERANCE_BEATS`]) or a loop wrap releases every sounding note (at the sample where
//! it happens) and disarms it until the next phrase begins, because the plan belonged to the
//! phrase that just ended. Tempo is taken as constant within a block; each block re-syncs to the
//! host's position.
//!
//! # Late frames
//! Only committed chords are played: a tentative chord may still be re-sampled, and what was
//! played must not change afterwards. A frame after the listening period whose chord is not
//! committed in the current plan when its boundary comes is *late*: it is counted, and whatever
//! sounds keeps sounding (no gap, no re-trigger), so a slow re-plan only delays a chord change.

use crate::frames::{ChordFrame, ChordIndex, FRAMES_PER_BEAT};
use crate::quantize::{
    Block, NoteEvent, PhraseId, Transport, JUMP_TOLERANCE_BEATS, MAX_BEAT_POSITION,
    MAX_LOOP_WRAPS_PER_BLOCK, MAX_TEMPO_BPM, MIN_TEMPO_BPM,
};

const FRAMES_PER_BEAT_F64: f64 = FRAMES_PER_BEAT as f64;

/// Most notes one planned chord sounds (a 13th chord has seven tones, plus the bass); extra
/// pitches of a voicing are dropped.
pub const MAX_VOICES: usize = 8;

/// The pitches of one chord voicing in fixed storage, so plans can be copied without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Voiced {
    pitches: [u8; MAX_VOICES],
    len: u8,
}

impl Voiced {
    /// The first [`MAX_VOICES`] of `pitches`, in order.
    pub fn new(pitches: &[u8]) -> Self {
        let mut voiced = Self::default();
        for (slot, &pitch) in voiced.pitches.iter_mut().zip(pitches) {
            *slot = pitch;
            voiced.len += 1;
        }
        voiced
    }

    /// The pitches, in the order given to [`Voiced::new`].
    pub fn pitches(&self) -> &[u8] {
        self.pitches
            .get(..usize::from(self.len))
            .unwrap_or_default()
    }

    /// Whether no pitch sounds (silence, or a chord whose name could not be voiced).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One planned frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PlannedFrame {
    pub chord: ChordFrame,
    /// Whether this chord is final: every later plan repeats it with the same voicing. Only
    /// committed chords are played; the others are a preview that may still change.
    pub committed: bool,
    /// What to sound from this frame on (empty for silence).
    pub voicing: Voiced,
}

/// A plan for consecutive frames of one phrase, made on the inference thread.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanUpdate {
    /// The quantizer phrase the plan belongs to; other phrases' plans are refused.
    pub phrase: PhraseId,
    /// Absolute host frame index of `frames[0]`.
    pub first_frame: i64,
    pub frames: Vec<PlannedFrame>,
    /// Wall time the plan took to make, in milliseconds.
    pub replan_ms: f64,
}

impl PlanUpdate {
    /// The planned frame with absolute index `index`, if the plan covers it.
    pub fn get(&self, index: i64) -> Option<&PlannedFrame> {
        let offset = usize::try_from(index.checked_sub(self.first_frame)?).ok()?;
        self.frames.get(offset)
    }

    /// One past the last absolute frame index the plan covers.
    pub fn end_frame(&self) -> i64 {
        self.first_frame.saturating_add(self.frames.len() as i64)
    }
}

/// What the scheduler tells its caller during a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerOutput {
    /// A note to play (`NoteEvent::on`) or release (`NoteEvent::off`) at a sample offset.
    Note(NoteEvent),
    /// A frame boundary of the armed phrase was reached at `offset`; `chord` is what sounds from
    /// there (after the listening period: the planned chord, or, when `late`, the chord that
    /// keeps sounding as a `Hold`, or silence). For displays and logs.
    FrameDue {
        index: i64,
        offset: u32,
        chord: ChordFrame,
        late: bool,
    },
}

/// Counters a UI can show; they only grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchedulerStats {
    /// Frames after the listening period that were due before their chord was planned.
    pub late_frames: u64,
    /// Plans refused because they belonged to another phrase than the armed one.
    pub refused_plans: u64,
}

#[derive(Debug, Clone, Copy)]
struct ArmedPhrase {
    id: PhraseId,
    first_frame: i64,
}

/// Plays the latest plan; see the module docs for the call order.
#[derive(Debug, Clone)]
pub struct Scheduler {
    listen_frames: i64,
    phrase: Option<ArmedPhrase>,
    plan: Option<PlanUpdate>,
    sounding_chord: Option<ChordIndex>,
    sounding: Voiced,
    /// Beat where the previous block ended; `None` while stopped.
    position: Option<f64>,
    /// Next frame boundary to handle.
    next_frame: i64,
    stats: SchedulerStats,
}

impl Scheduler {
    /// A scheduler that expects no chords in the first `listen_frames` frames of a phrase (the
    /// engine's listening period) and counts frames after it as late when unplanned.
    pub fn new(listen_frames: u32) -> Self {
        Self {
            listen_frames: i64::from(listen_frames),
            phrase: None,
            plan: None,
            sounding_chord: None,
            sounding: Voiced::default(),
            position: None,
            next_frame: 0,
            stats: SchedulerStats::default(),
        }
    }

    /// Counters since construction.
    pub fn stats(&self) -> SchedulerStats {
        self.stats
    }

    /// The pitches sounding now.
    pub fn sounding(&self) -> &[u8] {
        self.sounding.pitches()
    }

    /// Arms the scheduler for a phrase the quantizer just started (its `first_frame`); the old
    /// plan, if any, is handed back.
    pub fn begin_phrase(&mut self, phrase: PhraseId, first_frame: i64) -> Option<PlanUpdate> {
        self.phrase = Some(ArmedPhrase {
            id: phrase,
            first_frame,
        });
        self.plan.take()
    }

    /// Takes a plan for the armed phrase, handing back the one it replaces; a plan for another
    /// phrase (or while disarmed) is handed straight back.
    pub fn accept(&mut self, plan: PlanUpdate) -> Option<PlanUpdate> {
        match self.phrase {
            Some(armed) if armed.id == plan.phrase => self.plan.replace(plan),
            _ => {
                self.stats.refused_plans += 1;
                Some(plan)
            }
        }
    }

    /// Releases every sounding note at `offset` (host "all notes off", bypass, reset).
    pub fn all_notes_off(&mut self, offset: u32, sink: &mut impl FnMut(SchedulerOutput)) {
        for &pitch in self.sounding.pitches() {
            sink(SchedulerOutput::Note(NoteEvent::off(offset, pitch)));
        }
        self.sounding = Voiced::default();
        self.sounding_chord = None;
    }

    /// Plays one audio block: note events at frame boundaries, releases on stop/jump/loop wrap.
    /// Without a host transport (or with a stopped one) nothing plays. Never allocates.
    pub fn process_block(&mut self, block: &Block, sink: &mut impl FnMut(SchedulerOutput)) {
        let timed = block.sample_rate.is_finite() && block.sample_rate > 0.0;
        let transport = match block.transport {
            Some(t) if timed && t.playing && t.beat_position.abs() <= MAX_BEAT_POSITION => t,
            _ => {
                self.stop(sink);
                return;
            }
        };
        let start = transport.beat_position;
        let continuous = self
            .position
            .is_some_and(|p| (start - p).abs() <= JUMP_TOLERANCE_BEATS);
        if !continuous {
            self.stop(sink);
            self.next_frame = first_boundary_at_or_after(start);
        }
        let beats_per_sample = beats_per_sample(&transport, block.sample_rate);
        let len = block.len_samples;
        let end = start + f64::from(len) * beats_per_sample;
        let loop_end = valid_loop(&transport).filter(|&(ls, le)| start >= ls && start < le);
        match loop_end {
            Some((loop_start, loop_end)) if end >= loop_end => {
                self.play_frames(start, loop_end, beats_per_sample, len, sink);
                let wrap_offset = offset_of(loop_end, start, beats_per_sample, len);
                self.stop(&mut sink_at(wrap_offset, sink));
                let length = loop_end - loop_start;
                let mut position = loop_start + (end - loop_end);
                for _ in 1..MAX_LOOP_WRAPS_PER_BLOCK {
                    if position < loop_end {
                        break;
                    }
                    position -= length;
                }
                self.position = Some(position);
                self.next_frame = first_boundary_at_or_after(position);
            }
            _ => {
                self.play_frames(start, end, beats_per_sample, len, sink);
                self.position = Some(end);
            }
        }
    }

    /// Handles every frame boundary in `[from, to)` (beats) of a block starting at beat `from`.
    fn play_frames(
        &mut self,
        from: f64,
        to: f64,
        beats_per_sample: f64,
        len: u32,
        sink: &mut impl FnMut(SchedulerOutput),
    ) {
        loop {
            let index = self.next_frame;
            let beat = index as f64 / FRAMES_PER_BEAT_F64;
            if beat >= to {
                break;
            }
            self.next_frame = index.saturating_add(1);
            if beat < from - JUMP_TOLERANCE_BEATS {
                continue;
            }
            let offset = offset_of(beat, from, beats_per_sample, len);
            self.frame_due(index, offset, sink);
        }
    }

    fn frame_due(&mut self, index: i64, offset: u32, sink: &mut impl FnMut(SchedulerOutput)) {
        let Some(armed) = self.phrase else { return };
        let listening = index.saturating_sub(armed.first_frame) < self.listen_frames;
        let planned = self
            .plan
            .as_ref()
            .filter(|plan| plan.phrase == armed.id)
            .and_then(|plan| plan.get(index))
            .filter(|entry| entry.committed)
            .copied();
        let (chord, late) = match planned {
            _ if listening => (ChordFrame::Silence, false),
            Some(entry) => {
                self.apply(&entry, offset, sink);
                (entry.chord, false)
            }
            None => {
                self.stats.late_frames += 1;
                let still = self
                    .sounding_chord
                    .map_or(ChordFrame::Silence, ChordFrame::Hold);
                (still, true)
            }
        };
        sink(SchedulerOutput::FrameDue {
            index,
            offset,
            chord,
            late,
        });
    }

    fn apply(&mut self, entry: &PlannedFrame, offset: u32, sink: &mut impl FnMut(SchedulerOutput)) {
        let retrigger = match entry.chord {
            ChordFrame::Silence => {
                self.all_notes_off(offset, sink);
                return;
            }
            ChordFrame::Onset(_) => true,
            ChordFrame::Hold(chord) => {
                self.sounding_chord != Some(chord) || self.sounding != entry.voicing
            }
        };
        if retrigger {
            self.all_notes_off(offset, sink);
            for &pitch in entry.voicing.pitches() {
                sink(SchedulerOutput::Note(NoteEvent::on(offset, pitch)));
            }
            self.sounding = entry.voicing;
            self.sounding_chord = entry.chord.chord();
        }
    }

    /// Releases everything and disarms: the phrase is over.
    fn stop(&mut self, sink: &mut impl FnMut(SchedulerOutput)) {
        self.all_notes_off(0, sink);
        self.phrase = None;
        self.position = None;
    }
}

/// A sink that moves every note event of `stop`'s release to `offset`.
fn sink_at<'a>(
    offset: u32,
    sink: &'a mut impl FnMut(SchedulerOutput),
) -> impl FnMut(SchedulerOutput) + 'a {
    move |output| match output {
        SchedulerOutput::Note(event) => sink(SchedulerOutput::Note(NoteEvent { offset, ..event })),
        other => sink(other),
    }
}

fn beats_per_sample(transport: &Transport, sample_rate: f64) -> f64 {
    let bpm = if transport.tempo_bpm.is_finite() {
        transport.tempo_bpm.clamp(MIN_TEMPO_BPM, MAX_TEMPO_BPM)
    } else {
        crate::quantize::DEFAULT_TEMPO_BPM
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

/// Sample offset of `beat` in a block starting at `block_start`, inside `0..len`.
fn offset_of(beat: f64, block_start: f64, beats_per_sample: f64, len: u32) -> u32 {
    let samples = ((beat - block_start) / beats_per_sample).floor();
    samples.clamp(0.0, f64::from(len.saturating_sub(1))) as u32
}

fn first_boundary_at_or_after(beat: f64) -> i64 {
    (beat * FRAMES_PER_BEAT_F64).ceil() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantize::{NoteEventKind, TimeSignature};

    const SR: f64 = 48_000.0;

    fn block(beat: f64, playing: bool, loop_range: Option<(f64, f64)>) -> Block {
        Block {
            transport: Some(Transport {
                tempo_bpm: 120.0,
                beat_position: beat,
                playing,
                loop_range,
                time_signature: TimeSignature::default(),
            }),
            len_samples: 6_000, // one frame at 120 BPM
            sample_rate: SR,
        }
    }

    fn plan(phrase: PhraseId, first_frame: i64, chords: &[(ChordFrame, &[u8])]) -> PlanUpdate {
        PlanUpdate {
            phrase,
            first_frame,
            frames: chords
                .iter()
                .map(|&(chord, pitches)| PlannedFrame {
                    chord,
                    committed: true,
                    voicing: Voiced::new(pitches),
                })
                .collect(),
            replan_ms: 0.0,
        }
    }

    fn run(scheduler: &mut Scheduler, block: &Block) -> Vec<SchedulerOutput> {
        let mut out = Vec::new();
        scheduler.process_block(block, &mut |o| out.push(o));
        out
    }

    fn notes(outputs: &[SchedulerOutput]) -> Vec<(u32, u8, NoteEventKind)> {
        outputs
            .iter()
            .filter_map(|o| match o {
                SchedulerOutput::Note(e) => Some((e.offset, e.pitch, e.kind)),
                SchedulerOutput::FrameDue { .. } => None,
            })
            .collect()
    }

    #[test]
    fn voiced_keeps_at_most_max_voices() {
        let v = Voiced::new(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(v.pitches(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(Voiced::new(&[]).is_empty());
    }

    #[test]
    fn plays_on_frame_boundaries_and_holds_without_retrigger() {
        let mut s = Scheduler::new(0);
        assert!(
            run(&mut s, &block(0.0, true, None)).is_empty(),
            "not armed yet"
        );
        assert!(s.begin_phrase(7, 0).is_none());
        let c = ChordFrame::Onset(0);
        let p = plan(7, 1, &[(c, &[48, 52]), (ChordFrame::Hold(0), &[48, 52])]);
        assert!(s.accept(p).is_none());
        // Block 1 covers beat 0.25 .. 0.5: frame 1 starts at its first sample.
        let out = run(&mut s, &block(0.25, true, None));
        assert_eq!(
            notes(&out),
            vec![(0, 48, NoteEventKind::On), (0, 52, NoteEventKind::On)]
        );
        let out = run(&mut s, &block(0.5, true, None));
        assert!(notes(&out).is_empty(), "a hold does not retrigger: {out:?}");
        // Frame 3 is not planned: late, the chord keeps sounding.
        let out = run(&mut s, &block(0.75, true, None));
        assert!(notes(&out).is_empty());
        assert_eq!(s.stats().late_frames, 1);
        assert!(out.contains(&SchedulerOutput::FrameDue {
            index: 3,
            offset: 0,
            chord: ChordFrame::Hold(0),
            late: true
        }));
        // Stop releases everything.
        let out = run(&mut s, &block(1.0, false, None));
        assert_eq!(
            notes(&out),
            vec![(0, 48, NoteEventKind::Off), (0, 52, NoteEventKind::Off)]
        );
        assert!(s.sounding().is_empty());
    }

    #[test]
    fn tentative_chords_are_not_played() {
        let mut s = Scheduler::new(0);
        run(&mut s, &block(0.0, true, None));
        s.begin_phrase(0, 0);
        let mut p = plan(0, 1, &[(ChordFrame::Onset(1), &[50])]);
        p.frames[0].committed = false;
        s.accept(p);
        let out = run(&mut s, &block(0.25, true, None));
        assert!(notes(&out).is_empty());
        assert_eq!(s.stats().late_frames, 1);
    }

    #[test]
    fn boundary_inside_a_block_gets_its_sample_offset() {
        let mut s = Scheduler::new(0);
        run(&mut s, &block(-0.125, true, None));
        s.begin_phrase(0, 0);
        s.accept(plan(0, 1, &[(ChordFrame::Onset(1), &[50])]));
        // The block spans beats 0.125 .. 0.375: frame 1 (beat 0.25) is 3000 samples in.
        let out = run(&mut s, &block(0.125, true, None));
        assert_eq!(notes(&out), vec![(3000, 50, NoteEventKind::On)]);
    }

    #[test]
    fn jump_and_loop_wrap_release_and_disarm() {
        let mut s = Scheduler::new(0);
        run(&mut s, &block(0.0, true, None));
        s.begin_phrase(0, 0);
        let held: &[u8] = &[50];
        s.accept(plan(0, 1, &[(ChordFrame::Onset(1), held); 8]));
        run(&mut s, &block(0.25, true, None));
        assert_eq!(s.sounding(), &[50]);
        // Jump to beat 4: released at offset 0, and nothing plays until the next phrase.
        let out = run(&mut s, &block(4.0, true, None));
        assert_eq!(notes(&out), vec![(0, 50, NoteEventKind::Off)]);
        assert!(s
            .accept(plan(0, 16, &[(ChordFrame::Onset(1), &[50])]))
            .is_some());
        assert_eq!(s.stats().refused_plans, 1);

        // Loop [0, 1.375): the block from 1.25 plays frame 5, then wraps half-way through.
        let looped = Some((0.0, 1.375));
        let mut s = Scheduler::new(0);
        run(&mut s, &block(1.0, true, looped));
        s.begin_phrase(3, 4);
        s.accept(plan(3, 5, &[(ChordFrame::Onset(2), &[60])]));
        let out = run(&mut s, &block(1.25, true, looped));
        assert_eq!(
            notes(&out),
            vec![(0, 60, NoteEventKind::On), (3000, 60, NoteEventKind::Off)]
        );
        let out = run(&mut s, &block(0.125, true, looped));
        assert!(notes(&out).is_empty(), "continues after the wrap, disarmed");
        assert!(s.sounding().is_empty());
    }

    #[test]
    fn listening_frames_are_silent_and_not_late() {
        let mut s = Scheduler::new(2);
        run(&mut s, &block(0.0, true, None));
        s.begin_phrase(0, 0);
        let mut due = Vec::new();
        for k in 1..4 {
            for o in run(&mut s, &block(f64::from(k) * 0.25, true, None)) {
                if let SchedulerOutput::FrameDue { index, late, .. } = o {
                    due.push((index, late));
                }
            }
        }
        assert_eq!(due, vec![(1, false), (2, true), (3, true)]);
        assert_eq!(s.stats().late_frames, 2);
    }
}
