//! The loop player's per-block path must never touch the heap: a counting global allocator
//! watches this thread while thousands of blocks go through every path (playing, chord
//! switches, plans set, cleared and handed back, tempo changes, jumps, stops, host loops).

use comper_realtime::frames::ChordFrame;
use comper_realtime::frames::TimeSignature;
use comper_realtime::quantize::{Block, NoteEventKind, Transport};
use comper_realtime::schedule::{LoopPlayer, PlanUpdate, PlannedFrame, SchedulerOutput, Voiced};

#[path = "../../../tests/common/heap_counter.rs"]
mod heap_counter;

const BLOCK: u32 = 512;
const RATE: f64 = 48_000.0;
const OPTIONS: usize = 5;

/// Option `n` of five progressions over a 16-frame region starting at frame 32.
fn option(n: u8) -> PlanUpdate {
    let frames = (0..16_u8)
        .map(|k| {
            let chord = n * 4 + k / 4;
            let voicing = Voiced::new(&[36 + chord, 48 + chord, 52 + chord, 55 + chord]);
            PlannedFrame {
                chord: if k % 4 == 0 {
                    ChordFrame::Onset(chord.into())
                } else {
                    ChordFrame::Hold(chord.into())
                },
                committed: false,
                voicing,
            }
        })
        .collect();
    PlanUpdate {
        phrase: n.into(),
        first_frame: 32,
        frames,
        replan_ms: 0.0,
    }
}

/// The plans not in the player, in fixed slots, so handing them around never allocates.
struct Pool([Option<PlanUpdate>; OPTIONS]);

impl Pool {
    /// The first plan in the pool from slot `n % OPTIONS` on, wrapping around.
    fn take(&mut self, n: usize) -> Option<PlanUpdate> {
        let (before, from) = self.0.split_at_mut(n % OPTIONS);
        from.iter_mut().chain(before).find_map(Option::take)
    }

    fn give_back(&mut self, plan: Option<PlanUpdate>) {
        if let Some(plan) = plan {
            let slot = self.0.iter_mut().find(|slot| slot.is_none());
            *slot.expect("the pool has a slot for every plan") = Some(plan);
        }
    }

    fn count(&self) -> usize {
        self.0.iter().flatten().count()
    }
}

/// The block of block number `n` of a scripted session that visits every path.
fn scripted_block(n: u32, beat: &mut f64) -> Block {
    let phase = n % 600;
    let playing = !(150..170).contains(&phase);
    let tempo_bpm = if phase < 300 { 120.0 } else { 173.0 };
    let transport = (phase < 500).then(|| Transport {
        tempo_bpm,
        beat_position: *beat,
        playing,
        loop_range: (phase >= 300).then_some((8.0, 11.3)),
        time_signature: TimeSignature::default(),
    });
    if phase == 120 {
        *beat += 13.0; // a jump
    }
    if playing {
        *beat += f64::from(BLOCK) * tempo_bpm / 60.0 / RATE;
    }
    if phase >= 300 && *beat >= 11.3 {
        *beat -= 3.3; // the host wraps between blocks
    }
    if phase == 299 {
        *beat = 8.0;
    }
    Block {
        transport,
        len_samples: BLOCK,
        sample_rate: RATE,
    }
}

#[derive(Default)]
struct Counts {
    note_ons: u64,
    frames: u64,
    switches: u64,
}

#[test]
fn playing_and_switching_plans_never_allocates() {
    let mut pool = Pool([(); OPTIONS].map(|_| None));
    for n in 0..OPTIONS {
        pool.give_back(Some(option(n as u8)));
    }
    let mut player = LoopPlayer::new();
    let mut counts = Counts::default();
    let mut beat = 0.0;
    let mut run = |blocks: std::ops::Range<u32>, pool: &mut Pool, counts: &mut Counts| {
        for n in blocks {
            match n % 97 {
                0 | 40 => {
                    let plan = pool.take(n as usize).expect("a plan in the pool");
                    pool.give_back(player.set_plan(plan));
                }
                60 if n % 3 == 0 => pool.give_back(player.clear_pending()),
                70 if n % 5 == 0 => pool.give_back(player.clear()),
                80 if n % 7 == 0 => player.all_notes_off(3, &mut |_| {}),
                _ => {}
            }
            let block = scripted_block(n, &mut beat);
            player.process_block(&block, &mut |output| match output {
                SchedulerOutput::Note(event) if event.kind == NoteEventKind::On => {
                    counts.note_ons += 1
                }
                SchedulerOutput::FrameDue { .. } => counts.frames += 1,
                SchedulerOutput::Note(_) => {}
            });
            if let Some(plan) = player.take_retired() {
                counts.switches += 1;
                pool.give_back(Some(plan));
            }
        }
    };

    run(0..600, &mut pool, &mut counts); // warm-up: one full pass of the script
    heap_counter::watch(true);
    run(600..30_600, &mut pool, &mut counts);
    heap_counter::watch(false);

    assert_eq!(heap_counter::heap_calls(), 0);
    assert!(counts.frames > 2_000, "frames: {}", counts.frames);
    assert!(counts.note_ons > 1_000, "note ons: {}", counts.note_ons);
    assert!(counts.switches > 100, "switches: {}", counts.switches);
    let in_player =
        usize::from(player.playing().is_some()) + usize::from(player.pending().is_some());
    assert_eq!(pool.count() + in_player, OPTIONS, "no plan was dropped");
}
