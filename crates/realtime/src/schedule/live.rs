//! The live player: the latest chord plan from the inference thread becomes note on/off events
//! at 16th-note frame boundaries, at the right sample offsets, without allocating.
//!
//! The inference thread (`comper_generate::runtime`) sends [`PlanUpdate`]s: for a run of frames,
//! the chord and the exact pitches to sound (voiced on the inference thread, so this side only
//! copies them). The [`Scheduler`] keeps one plan in a single slot; a plan it replaces or refuses
//! is handed back to the caller, who returns it to the inference thread for reuse, so nothing is
//! freed here either.
//!
//! # Per block
//! Call the quantizer first, then [`Scheduler::process_block`] with the same block, then
//! [`Scheduler::begin_phrase`] if the quantizer started a phrase in that block. The scheduler
//! follows the host transport through a [`FrameClock`]: a stop, a jump or a loop wrap releases
//! every sounding note (at the sample where it happens) and disarms it until the next phrase
//! begins, because the plan belonged to the phrase that just ended.
//!
//! # Late frames
//! Only committed chords are played: a tentative chord may still be re-sampled, and what was
//! played must not change afterwards. A frame after the listening period whose chord is not
//! committed in the current plan when its boundary comes is *late*: it is counted, and whatever
//! sounds keeps sounding (no gap, no re-trigger), so a slow re-plan only delays a chord change.

use super::clock::{ClockEvent, FrameClock};
use super::plan::{PlanUpdate, SchedulerOutput};
use super::sounding::Sounding;
use crate::frames::ChordFrame;
use crate::quantize::{Block, PhraseId};

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
    sounding: Sounding,
    clock: FrameClock,
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
            sounding: Sounding::default(),
            clock: FrameClock::new(),
            stats: SchedulerStats::default(),
        }
    }

    /// Changes the listening period for phrases armed from now on (a live setting changed).
    pub fn set_listen_frames(&mut self, listen_frames: u32) {
        self.listen_frames = i64::from(listen_frames);
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
        self.sounding.release(offset, sink);
    }

    /// Plays one audio block: note events at frame boundaries, releases on stop/jump/loop wrap.
    /// Without a host transport (or with a stopped one) nothing plays. Never allocates.
    pub fn process_block(&mut self, block: &Block, sink: &mut impl FnMut(SchedulerOutput)) {
        // The clock is a small `Copy` value: stepping a copy lets its events borrow `self`.
        let mut clock = self.clock;
        clock.process_block(block, &mut |event| match event {
            ClockEvent::Frame { index, offset } => self.frame_due(index, offset, sink),
            ClockEvent::Break { offset, .. } => self.end_phrase(offset, sink),
        });
        self.clock = clock;
        if !clock.is_running() {
            // Without a rolling host transport no phrase plays: a phrase the quantizer starts on
            // its free-running clock is not armed, and its plans are refused.
            self.phrase = None;
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
                self.sounding.play(&entry, offset, sink);
                (entry.chord, false)
            }
            None => {
                self.stats.late_frames += 1;
                let still = self
                    .sounding
                    .chord()
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

    /// Releases everything at `offset` and disarms: the timeline broke, the phrase is over.
    fn end_phrase(&mut self, offset: u32, sink: &mut impl FnMut(SchedulerOutput)) {
        self.sounding.release(offset, sink);
        self.phrase = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::TimeSignature;
    use crate::quantize::{NoteEventKind, PhraseId, Transport};
    use crate::schedule::note_events as notes;
    use crate::schedule::{PlannedFrame, Voiced};

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
    fn without_a_rolling_transport_phrases_are_not_armed() {
        let mut s = Scheduler::new(0);
        let free_running = Block {
            transport: None,
            ..block(0.0, true, None)
        };
        run(&mut s, &free_running);
        s.begin_phrase(1, 0);
        run(&mut s, &free_running);
        assert!(s
            .accept(plan(1, 0, &[(ChordFrame::Onset(1), &[50])]))
            .is_some());
        assert_eq!(s.stats().refused_plans, 1);
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
