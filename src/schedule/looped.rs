//! The loop player: plays the chord progression the user picked for a captured phrase, looping
//! one cycle of it over the captured region in step with the host transport.
//!
//! The plan is a [`PlanUpdate`] whose `frames` are one cycle of the progression and whose
//! `first_frame` is the host frame where the captured region starts; `phrase`, `committed` and
//! `replan_ms` are ignored. At host frame `i` the player sounds
//! `frames[(i - first_frame).rem_euclid(frames.len())]`, so the progression repeats before and
//! after the region wherever the transport is; an empty plan is silent.
//!
//! # Plans in and out
//! [`LoopPlayer::set_plan`] makes a plan *pending*: it takes over at the next chord boundary
//! (a frame where the pending or the playing plan has an onset or silence), or at the next frame
//! when nothing sounds. The player holds at most three plans (playing, pending or retired) and
//! never drops one: every call that displaces a plan returns it, and the plan a switch retires
//! waits for [`LoopPlayer::take_retired`] (or the next `set_plan`, which returns it). Send them
//! back to the thread that made them. Dropping the player drops what it still holds, so take
//! its plans first if it is dropped on the audio thread.
//!
//! # Stopping
//! [`LoopPlayer::clear`] hands the playing plan back at once; whatever still sounds is released
//! at the first sample of the next block, so stopping a suggestion does not wait for a frame.
//!
//! # Transport
//! The player follows the host through a [`FrameClock`], like the live scheduler: a stop, jump
//! or loop wrap releases every sounding note at its sample. Unlike the scheduler it stays armed,
//! because its plan is not tied to a quantizer phrase: after a start, a jump or a wrap, the next
//! boundary sounds the chord covering it, even in the middle of that chord.

use super::clock::{ClockEvent, FrameClock};
use super::plan::{PlanUpdate, PlannedFrame, SchedulerOutput};
use super::sounding::Sounding;
use crate::frames::ChordFrame;
use crate::quantize::Block;

/// A plan that is not playing.
#[derive(Debug, Clone)]
enum Spare {
    /// Takes over at the next chord boundary.
    Pending(PlanUpdate),
    /// Was playing until a switch; waits to be handed back.
    Retired(PlanUpdate),
}

impl Spare {
    fn into_plan(self) -> PlanUpdate {
        match self {
            Spare::Pending(plan) | Spare::Retired(plan) => plan,
        }
    }
}

/// Loops a chosen progression over the host timeline; see the module docs. Never allocates.
#[derive(Debug, Clone, Default)]
pub struct LoopPlayer {
    playing: Option<PlanUpdate>,
    spare: Option<Spare>,
    sounding: Sounding,
    clock: FrameClock,
}

impl LoopPlayer {
    /// A silent player with no plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `plan` pending (it takes over at the next chord boundary) and hands back the plan
    /// it displaces: an older pending plan, or a retired one not yet taken.
    pub fn set_plan(&mut self, plan: PlanUpdate) -> Option<PlanUpdate> {
        self.spare
            .replace(Spare::Pending(plan))
            .map(Spare::into_plan)
    }

    /// Stops playback: hands back the playing plan; the notes still sounding are released at
    /// offset 0 of the next block. A pending plan stays pending (see [`Self::clear_pending`]).
    pub fn clear(&mut self) -> Option<PlanUpdate> {
        self.playing.take()
    }

    /// Hands back the pending plan, so it never takes over.
    pub fn clear_pending(&mut self) -> Option<PlanUpdate> {
        match self.spare.take() {
            Some(Spare::Pending(plan)) => Some(plan),
            other => {
                self.spare = other;
                None
            }
        }
    }

    /// Hands back the plan the last switch replaced; call it after each block.
    pub fn take_retired(&mut self) -> Option<PlanUpdate> {
        match self.spare.take() {
            Some(Spare::Retired(plan)) => Some(plan),
            other => {
                self.spare = other;
                None
            }
        }
    }

    /// The plan playing now, for displays.
    pub fn playing(&self) -> Option<&PlanUpdate> {
        self.playing.as_ref()
    }

    /// The plan waiting for the next chord boundary, for displays.
    pub fn pending(&self) -> Option<&PlanUpdate> {
        match &self.spare {
            Some(Spare::Pending(plan)) => Some(plan),
            _ => None,
        }
    }

    /// The pitches sounding now.
    pub fn sounding(&self) -> &[u8] {
        self.sounding.pitches()
    }

    /// Releases every sounding note at `offset` (host "all notes off", bypass, reset); the
    /// next boundary sounds the chord covering it again.
    pub fn all_notes_off(&mut self, offset: u32, sink: &mut impl FnMut(SchedulerOutput)) {
        self.sounding.release(offset, sink);
    }

    /// Plays one audio block: chord changes at frame boundaries, releases on stop, jump and
    /// loop wrap. Without a rolling host transport nothing plays.
    pub fn process_block(&mut self, block: &Block, sink: &mut impl FnMut(SchedulerOutput)) {
        if self.playing.is_none() {
            self.sounding.release(0, sink);
        }
        // The clock is a small `Copy` value: stepping a copy lets its events borrow `self`.
        let mut clock = self.clock;
        clock.process_block(block, &mut |event| match event {
            ClockEvent::Frame { index, offset } => self.frame_due(index, offset, sink),
            ClockEvent::Break { offset, .. } => self.sounding.release(offset, sink),
        });
        self.clock = clock;
    }

    fn frame_due(&mut self, index: i64, offset: u32, sink: &mut impl FnMut(SchedulerOutput)) {
        self.switch_if_due(index);
        let Some(plan) = &self.playing else { return };
        let entry = cycle_frame(plan, index).copied().unwrap_or_default();
        self.sounding.play(&entry, offset, sink);
        sink(SchedulerOutput::FrameDue {
            index,
            offset,
            chord: entry.chord,
            late: false,
        });
    }

    /// Lets the pending plan take over at frame `index` if a chord boundary is there.
    fn switch_if_due(&mut self, index: i64) {
        match self.spare.take() {
            Some(Spare::Pending(next)) if self.switch_due(&next, index) => {
                self.spare = self.playing.replace(next).map(Spare::Retired);
            }
            other => self.spare = other,
        }
    }

    fn switch_due(&self, next: &PlanUpdate, index: i64) -> bool {
        let Some(current) = &self.playing else {
            return true;
        };
        self.sounding.chord().is_none()
            || changes_chord(current, index)
            || changes_chord(next, index)
    }
}

/// The frame of the cycle that sounds at host frame `index`; `None` for an empty plan.
fn cycle_frame(plan: &PlanUpdate, index: i64) -> Option<&PlannedFrame> {
    let cycle = i128::try_from(plan.frames.len()).ok()?;
    let step = (i128::from(index) - i128::from(plan.first_frame)).checked_rem_euclid(cycle)?;
    plan.frames.get(usize::try_from(step).ok()?)
}

/// Whether a chord starts or stops at host frame `index` in `plan`.
fn changes_chord(plan: &PlanUpdate, index: i64) -> bool {
    cycle_frame(plan, index).is_some_and(|entry| !matches!(entry.chord, ChordFrame::Hold(_)))
}
