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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::ChordFrame::{Hold, Onset, Silence};
    use crate::frames::TimeSignature;
    use crate::quantize::{NoteEventKind, Transport};
    use crate::schedule::note_events as notes;
    use crate::schedule::Voiced;
    use NoteEventKind::{Off, On};

    const C: &[u8] = &[48, 52, 55];
    const D: &[u8] = &[50, 53];
    const E: &[u8] = &[52];

    /// One frame (6000 samples at 120 BPM, 48 kHz) starting at frame `frame`.
    fn block_at(frame: f64, loop_frames: Option<(f64, f64)>) -> Block {
        Block {
            transport: Some(Transport {
                tempo_bpm: 120.0,
                beat_position: frame / 4.0,
                playing: true,
                loop_range: loop_frames.map(|(s, e)| (s / 4.0, e / 4.0)),
                time_signature: TimeSignature::default(),
            }),
            len_samples: 6_000,
            sample_rate: 48_000.0,
        }
    }

    fn plan(first_frame: i64, chords: &[(ChordFrame, &[u8])]) -> PlanUpdate {
        PlanUpdate {
            phrase: 0,
            first_frame,
            frames: chords
                .iter()
                .map(|&(chord, pitches)| PlannedFrame {
                    chord,
                    committed: false,
                    voicing: Voiced::new(pitches),
                })
                .collect(),
            replan_ms: 0.0,
        }
    }

    /// C for two frames, then D for two frames; the region starts at frame 8.
    fn c_then_d() -> PlanUpdate {
        plan(
            8,
            &[(Onset(1), C), (Hold(1), C), (Onset(2), D), (Hold(2), D)],
        )
    }

    fn run(player: &mut LoopPlayer, block: &Block) -> Vec<SchedulerOutput> {
        let mut out = Vec::new();
        player.process_block(block, &mut |o| out.push(o));
        out
    }

    fn chords_due(outputs: &[SchedulerOutput]) -> Vec<(i64, ChordFrame)> {
        outputs
            .iter()
            .filter_map(|o| match *o {
                SchedulerOutput::FrameDue { index, chord, .. } => Some((index, chord)),
                SchedulerOutput::Note(_) => None,
            })
            .collect()
    }

    fn at(offset: u32, pitches: &[u8], kind: NoteEventKind) -> Vec<(u32, u8, NoteEventKind)> {
        pitches.iter().map(|&p| (offset, p, kind)).collect()
    }

    fn change(offset: u32, from: &[u8], to: &[u8]) -> Vec<(u32, u8, NoteEventKind)> {
        [at(offset, from, Off), at(offset, to, On)].concat()
    }

    /// A player that has taken `plan` and played the frame before `frame`.
    fn playing_from(plan: PlanUpdate, frame: f64) -> LoopPlayer {
        let mut player = LoopPlayer::new();
        assert!(player.set_plan(plan).is_none());
        run(&mut player, &block_at(frame - 1.0, None));
        player
    }

    #[test]
    fn plays_the_region_and_repeats_it_after_without_retriggering_holds() {
        let mut player = LoopPlayer::new();
        player.set_plan(c_then_d());
        let mut per_frame = Vec::new();
        let mut due = Vec::new();
        for frame in 8..14 {
            let out = run(&mut player, &block_at(f64::from(frame), None));
            per_frame.push(notes(&out));
            due.extend(chords_due(&out));
        }
        let expected = vec![
            at(0, C, On),
            vec![],
            change(0, C, D),
            vec![],
            change(0, D, C),
            vec![],
        ];
        assert_eq!(per_frame, expected);
        assert_eq!(
            due,
            vec![
                (8, Onset(1)),
                (9, Hold(1)),
                (10, Onset(2)),
                (11, Hold(2)),
                (12, Onset(1)),
                (13, Hold(1))
            ]
        );
        assert_eq!(player.sounding(), C);
    }

    #[test]
    fn the_cycle_repeats_before_the_region_and_a_start_mid_chord_sounds_it() {
        let mut player = LoopPlayer::new();
        player.set_plan(c_then_d());
        // Frame 1 is 7 frames before the region: step 1 of the cycle, C held.
        let out = run(&mut player, &block_at(1.0, None));
        assert_eq!(notes(&out), at(0, C, On));
        assert_eq!(chords_due(&out), vec![(1, Hold(1))]);
        let out = run(&mut player, &block_at(2.0, None));
        assert_eq!(notes(&out), change(0, C, D));
    }

    #[test]
    fn a_start_inside_a_block_sounds_the_chord_at_the_next_boundary() {
        let mut player = LoopPlayer::new();
        player.set_plan(c_then_d());
        // Beats 2.625 .. 2.875: frame 11 (D held) starts 3000 samples in.
        let out = run(&mut player, &block_at(10.5, None));
        assert_eq!(notes(&out), at(3000, D, On));
    }

    #[test]
    fn a_new_plan_waits_for_the_next_chord_boundary() {
        let mut player = playing_from(c_then_d(), 9.0); // C sounds from frame 8
        let e_held = plan(0, &[(Hold(3), E), (Hold(3), E)]);
        assert!(player.set_plan(e_held).is_none());
        // Frame 9: C holds and the new plan only holds: no boundary, C keeps sounding.
        let out = run(&mut player, &block_at(9.0, None));
        assert!(notes(&out).is_empty(), "{out:?}");
        assert!(player.pending().is_some());
        // Frame 10: the playing plan changes chord, so the new plan takes over with its hold.
        let out = run(&mut player, &block_at(10.0, None));
        assert_eq!(notes(&out), change(0, C, E));
        assert_eq!(chords_due(&out), vec![(10, Hold(3))]);
        assert_eq!(player.take_retired(), Some(c_then_d()));
        assert!(player.pending().is_none());
        // The same chord and voicing keeps sounding across the new cycle.
        let out = run(&mut player, &block_at(11.0, None));
        assert!(notes(&out).is_empty());
    }

    #[test]
    fn an_onset_in_the_new_plan_is_a_boundary_too() {
        let mut player = playing_from(c_then_d(), 9.0);
        player.set_plan(plan(9, &[(Onset(4), E), (Hold(4), E)]));
        let out = run(&mut player, &block_at(9.0, None));
        assert_eq!(notes(&out), change(0, C, E));
    }

    #[test]
    fn a_plan_set_while_nothing_sounds_takes_over_at_the_next_frame() {
        let mut player = playing_from(c_then_d(), 9.0);
        let mut stopped = block_at(9.0, None);
        if let Some(t) = stopped.transport.as_mut() {
            t.playing = false;
        }
        run(&mut player, &stopped);
        player.set_plan(plan(0, &[(Hold(2), D)]));
        // Frame 9 holds C in the playing plan, but nothing sounds after the stop.
        let out = run(&mut player, &block_at(9.0, None));
        assert_eq!(notes(&out), at(0, D, On));
        assert_eq!(player.take_retired(), Some(c_then_d()));
    }

    #[test]
    fn a_jump_into_the_middle_of_a_chord_sounds_it() {
        let mut player = playing_from(c_then_d(), 11.0); // D sounds from frame 10
                                                         // Frame 13 is step 1 of the cycle: C held.
        let out = run(&mut player, &block_at(13.0, None));
        assert_eq!(notes(&out), change(0, D, C));
        assert_eq!(chords_due(&out), vec![(13, Hold(1))]);
    }

    #[test]
    fn a_stop_releases_everything_and_a_restart_plays_on() {
        let mut player = playing_from(c_then_d(), 9.0);
        let mut stopped = block_at(9.0, None);
        if let Some(t) = stopped.transport.as_mut() {
            t.playing = false;
        }
        let out = run(&mut player, &stopped);
        assert_eq!(notes(&out), at(0, C, Off));
        assert!(player.sounding().is_empty());
        assert!(run(&mut player, &stopped).is_empty());
        let out = run(&mut player, &block_at(9.0, None));
        assert_eq!(notes(&out), at(0, C, On));
    }

    #[test]
    fn a_loop_wrap_releases_at_its_sample_and_plays_on_from_the_loop_start() {
        // Host loop over frames 9 .. 11.5: the block from frame 11 wraps half-way through.
        let looped = Some((9.0, 11.5));
        let mut player = LoopPlayer::new();
        player.set_plan(c_then_d());
        run(&mut player, &block_at(10.0, looped));
        let out = run(&mut player, &block_at(11.0, looped));
        assert_eq!(
            notes(&out),
            [at(3000, D, Off), at(3000, C, On)].concat(),
            "D holds at frame 11, then frame 9 (C held) sounds at the wrap"
        );
        assert_eq!(chords_due(&out), vec![(11, Hold(2)), (9, Hold(1))]);
        let out = run(&mut player, &block_at(9.5, looped));
        assert_eq!(notes(&out), change(3000, C, D));
    }

    #[test]
    fn an_empty_plan_is_silent() {
        let mut player = LoopPlayer::new();
        player.set_plan(plan(0, &[]));
        for frame in 0..4 {
            let out = run(&mut player, &block_at(f64::from(frame), None));
            assert!(notes(&out).is_empty());
            assert_eq!(chords_due(&out), vec![(i64::from(frame), Silence)]);
        }
        // Switching to it from a playing plan releases at the next chord boundary.
        let mut player = playing_from(c_then_d(), 9.0);
        player.set_plan(plan(0, &[]));
        assert!(notes(&run(&mut player, &block_at(9.0, None))).is_empty());
        let out = run(&mut player, &block_at(10.0, None));
        assert_eq!(notes(&out), at(0, C, Off));
    }

    #[test]
    fn clear_releases_at_the_start_of_the_next_block() {
        let mut player = playing_from(c_then_d(), 9.0);
        assert_eq!(player.clear(), Some(c_then_d()));
        let out = run(&mut player, &block_at(9.5, None));
        assert_eq!(notes(&out), at(0, C, Off));
        assert!(chords_due(&out).is_empty());
        assert!(run(&mut player, &block_at(10.5, None)).is_empty());
    }

    #[test]
    fn all_notes_off_releases_and_the_next_boundary_sounds_the_chord_again() {
        let mut player = playing_from(c_then_d(), 9.0);
        let mut out = Vec::new();
        player.all_notes_off(17, &mut |o| out.push(o));
        assert_eq!(notes(&out), at(17, C, Off));
        let out = run(&mut player, &block_at(9.0, None));
        assert_eq!(notes(&out), at(0, C, On));
    }

    #[test]
    fn every_plan_is_handed_back() {
        let tagged = |tag: u32| PlanUpdate {
            phrase: tag,
            ..c_then_d()
        };
        let mut player = LoopPlayer::new();
        let mut back = Vec::new();
        back.extend(player.set_plan(tagged(1)));
        back.extend(player.set_plan(tagged(2))); // displaces pending 1
        run(&mut player, &block_at(8.0, None)); // 2 plays
        back.extend(player.set_plan(tagged(3)));
        run(&mut player, &block_at(10.0, None)); // 3 takes over, 2 retires
        back.extend(player.set_plan(tagged(4))); // hands back retired 2
        back.extend(player.clear_pending()); // 4
        assert!(player.clear_pending().is_none());
        back.extend(player.set_plan(tagged(5)));
        run(&mut player, &block_at(12.0, None)); // 5 takes over, 3 retires
        back.extend(player.take_retired()); // 3
        assert!(player.take_retired().is_none());
        back.extend(player.clear()); // 5
        let mut tags: Vec<u32> = back.iter().map(|p| p.phrase).collect();
        tags.sort_unstable();
        assert_eq!(tags, vec![1, 2, 3, 4, 5]);
        assert!(player.playing().is_none() && player.pending().is_none());
    }
}
