//! Everything `process()` does, free of the plugin API so it can be tested directly: the melody
//! comes in note by note (and passes through when asked), goes to the quantizer and on to the
//! worker, plans come back and are played by the live scheduler or the loop player, and the
//! chords leave as MIDI notes and as the synth's sound.
//!
//! Real-time rules: after [`AudioEngine::new`] nothing here allocates, frees, locks or waits.
//! Plans replaced on this thread are handed back to the worker to be freed; event storage is
//! fixed; channel operations are `try_*`. Every chord note that was sent is tracked, so stop,
//! loop wrap, jump, option change, mode change, bypass and reset can always release it.
//!
//! # Offline renders
//! When the host renders offline (a bounce, a freeze, DawDreamer, pedalboard) blocks come far
//! faster than real time and waiting is allowed. Each block then first waits until the worker has
//! handled everything sent before it (a capture's five options, a live re-plan), so the block
//! plays what real-time playback plays when the worker keeps up: a plan made from the frames of
//! block `n` applies from block `n + 1`, in either mode. Real-time blocks never wait.
//!
//! # Without a rolling transport
//! [`SessionClock`] stands in for the host's transport when it is stopped or absent.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use comper_realtime::quantize::{
    Block, NoteEvent, NoteEventKind, Quantizer, QuantizerConfig, QuantizerOutput,
};
use comper_realtime::schedule::{LoopPlayer, PlanUpdate, Scheduler, SchedulerOutput};
use comper_realtime::synth::Synth;
use crossbeam_channel::TrySendError;

use crate::clock::SessionClock;
use crate::params::Mode;
use comper_realtime::link::{AudioLink, Shared, ToAudio};

/// Chord note events one block can emit; more are dropped (a block spans few frames).
pub const MAX_CHORD_EVENTS: usize = 512;
/// Melody note events one block takes; more are dropped (hosts send at most 1024 events a block).
pub const MAX_MELODY_EVENTS: usize = 1024;
/// Longest an offline block waits for the worker (a model still loading, a slow machine); past
/// it the render goes on without the answer rather than hang the host.
pub const OFFLINE_WAIT_LIMIT: Duration = Duration::from_secs(120);
/// Pause between looks at the worker's progress while an offline block waits.
const OFFLINE_POLL: Duration = Duration::from_micros(200);

/// Per-block settings read from the parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockSettings {
    pub mode: Mode,
    /// Note-on velocity of the chords, 1..=127.
    pub velocity: u8,
    /// Zero-based MIDI channel of the chords.
    pub channel: u8,
    pub synth_on: bool,
    pub bypass: bool,
    /// Listening period of live sessions, in frames.
    pub listen_frames: u32,
}

/// A MIDI note event at the plugin's edge, in either direction: a melody note from the host, a
/// melody note passed through, a chord note sent out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MidiNote {
    /// Sample offset in the block.
    pub offset: u32,
    /// Zero-based channel; `None`: any channel (a host's wildcard).
    pub channel: Option<u8>,
    pub pitch: u8,
    /// Note-on (`true`) or note-off.
    pub on: bool,
    /// 0..=1.
    pub velocity: f32,
}

/// The audio thread's state.
pub struct AudioEngine {
    link: AudioLink,
    shared: Arc<Shared>,
    quantizer: Quantizer,
    clock: SessionClock,
    live: Scheduler,
    looper: LoopPlayer,
    synth: Synth,
    /// Melody events of the current block, in time order.
    keys: Vec<NoteEvent>,
    /// Channels (bit mask) on which each melody key was passed through and is still down, so its
    /// release is passed too even if "Melody thru" was switched off meanwhile.
    thru_down: [u16; 128],
    /// Chord events of the current block, in time order.
    events: Vec<NoteEvent>,
    /// Channel + 1 of each pitch's sounding chord note (0 = not sounding).
    sounding: [u8; 128],
    mode: Mode,
    /// Sounding notes must be released before anything else (after a reset).
    release_pending: bool,
    /// A used plan the recycle channel had no room for.
    unreturned: Option<PlanUpdate>,
    /// The host renders offline: blocks wait for the worker (see the module docs).
    offline: bool,
    /// Quantizer outputs handed to the worker so far.
    sent: u64,
    /// Plans that could not be returned (worker gone or far behind); leaked, not freed here.
    pub leaked_plans: u64,
}

impl AudioEngine {
    /// Allocates everything the audio thread will use.
    pub fn new(link: AudioLink, shared: Arc<Shared>, sample_rate: f32, listen_frames: u32) -> Self {
        Self {
            link,
            shared,
            quantizer: Quantizer::new(QuantizerConfig::default()),
            clock: SessionClock::new(),
            live: Scheduler::new(listen_frames),
            looper: LoopPlayer::new(),
            synth: Synth::new(sample_rate),
            keys: Vec::with_capacity(MAX_MELODY_EVENTS),
            thru_down: [0; 128],
            events: Vec::with_capacity(MAX_CHORD_EVENTS),
            sounding: [0; 128],
            mode: Mode::Suggest,
            release_pending: false,
            unreturned: None,
            offline: false,
            sent: 0,
            leaked_plans: 0,
        }
    }

    /// Takes a new (re-)activation's settings, keeping the plans and the models' work: the
    /// synth is rebuilt for `sample_rate` (this allocates: call it off the audio thread) and
    /// everything sounding is released as after [`AudioEngine::reset`].
    pub fn prepare(&mut self, sample_rate: f32, offline: bool) {
        self.synth = Synth::new(sample_rate);
        self.offline = offline;
        self.reset();
    }

    /// Hands the engine a new worker's channels (the old worker ended); plans held for the old
    /// one are dropped here, off the audio thread.
    pub fn relink(&mut self, link: AudioLink) {
        self.link = link;
        self.sent = 0;
        self.shared.frames_done.store(0, Ordering::Release);
        self.unreturned = None;
    }

    /// The host reset or re-activated: silence the synth now and release MIDI notes at the start
    /// of the next block (nothing can be sent from here).
    pub fn reset(&mut self) {
        self.synth.reset();
        self.quantizer.release_all_keys();
        self.clock.reset();
        self.release_pending = true;
    }

    /// Takes a melody note from the host for the coming block. Returns it if it passes through to
    /// the output: with `thru` on, and a release whose press passed (even if `thru` went off
    /// since), so no passed note is left hanging.
    pub fn hear(&mut self, note: MidiNote, thru: bool) -> Option<MidiNote> {
        if note.pitch > 127 {
            return None;
        }
        let bit = 1u16 << note.channel.filter(|&c| c < 16).unwrap_or(0);
        let down = &mut self.thru_down[usize::from(note.pitch)];
        let passes = if note.on { thru } else { *down & bit != 0 };
        if passes {
            if note.on {
                *down |= bit;
            } else {
                *down &= !bit;
            }
        }
        self.hear_key(if note.on {
            NoteEvent::on(note.offset, note.pitch)
        } else {
            NoteEvent::off(note.offset, note.pitch)
        });
        passes.then_some(note)
    }

    /// Takes a melody key event for the coming block, in time order; events at the same sample
    /// keep the order they came in (a host's zero-length note is a press, then its release).
    /// Events beyond [`MAX_MELODY_EVENTS`] are dropped.
    pub fn hear_key(&mut self, key: NoteEvent) {
        if self.keys.len() == self.keys.capacity() {
            return;
        }
        let at = self.keys.partition_point(|e| e.offset <= key.offset);
        self.keys.insert(at, key);
    }

    /// One block: `host` is the host's timing, the melody what [`Self::hear`] took since the last
    /// block; chord notes go to `midi_out`, the synth plays into `left`/`right` at `gain` (read
    /// once per sample, for a smoothed level).
    pub fn process(
        &mut self,
        host: &Block,
        settings: BlockSettings,
        midi_out: &mut impl FnMut(MidiNote),
        left: &mut [f32],
        right: &mut [f32],
        mut gain: impl FnMut() -> f32,
    ) {
        left.fill(0.0);
        right.fill(0.0);
        self.events.clear();
        if self.offline {
            self.wait_for_worker();
        }
        if self.release_pending {
            self.release_pending = false;
            self.release_all_midi(0, midi_out);
        }
        self.take_plans();
        if settings.mode != self.mode || settings.bypass {
            self.release_players();
            self.mode = settings.mode;
        }
        let looping = self.looper.playing().is_some() || self.looper.pending().is_some();
        let keys = std::mem::take(&mut self.keys);
        let block = self
            .clock
            .block(host, &keys, settings.mode == Mode::Suggest && looping);
        if !settings.bypass {
            let started = self.quantize(&block, &keys);
            self.play(&block, settings, started);
        }
        self.keys = keys;
        self.keys.clear();
        self.emit(settings, midi_out, left, right);
        for (l, r) in left.iter_mut().zip(right.iter_mut()) {
            let gain = gain();
            *l *= gain;
            *r *= gain;
        }
        self.publish(&block);
    }

    /// Offline only: waits until the worker has handled every output sent so far (or is gone,
    /// or [`OFFLINE_WAIT_LIMIT`] passes), taking plans meanwhile so the worker never waits on us.
    fn wait_for_worker(&mut self) {
        let started = Instant::now();
        while self.shared.frames_done.load(Ordering::Acquire) < self.sent
            && self.shared.worker_alive.load(Ordering::Acquire)
            && started.elapsed() < OFFLINE_WAIT_LIMIT
        {
            self.take_plans();
            std::thread::sleep(OFFLINE_POLL);
        }
    }

    fn take_plans(&mut self) {
        while let Ok(message) = self.link.plans.try_recv() {
            let returned = match message {
                ToAudio::Loop(plan) => self.looper.set_plan(plan),
                ToAudio::StopLoop => {
                    let pending = self.looper.clear_pending();
                    self.give_back(pending);
                    self.looper.clear()
                }
                ToAudio::Live(plan) => self.live.accept(plan),
            };
            self.give_back(returned);
        }
    }

    fn give_back(&mut self, plan: Option<PlanUpdate>) {
        if let Some(old) = self.unreturned.take() {
            self.return_plan(old);
        }
        if let Some(plan) = plan {
            self.return_plan(plan);
        }
    }

    fn return_plan(&mut self, plan: PlanUpdate) {
        match self.link.recycle.try_send(plan) {
            Ok(()) => {}
            Err(TrySendError::Full(plan)) => {
                if let Some(older) = self.unreturned.replace(plan) {
                    self.leak(older);
                }
            }
            Err(TrySendError::Disconnected(plan)) => self.leak(plan),
        }
    }

    /// Freeing here is forbidden; a plan nobody can take back is leaked (and counted).
    fn leak(&mut self, plan: PlanUpdate) {
        std::mem::forget(plan);
        self.leaked_plans += 1;
    }

    /// Releases whatever either player sounds (mode change, bypass).
    fn release_players(&mut self) {
        let events = &mut self.events;
        let mut sink = |output: SchedulerOutput| push_note(events, output);
        self.live.all_notes_off(0, &mut sink);
        self.looper.all_notes_off(0, &mut sink);
    }

    /// Runs the quantizer and forwards its outputs; returns a phrase that started in the block.
    fn quantize(&mut self, block: &Block, keys: &[NoteEvent]) -> Option<(u32, i64)> {
        let mut started = None;
        let frames = &self.link.frames;
        let shared = &self.shared;
        let sent = &mut self.sent;
        self.quantizer
            .process_block(block, &[], keys, &mut |output| {
                if let QuantizerOutput::PhraseStart {
                    phrase,
                    first_frame,
                    ..
                } = output
                {
                    started = Some((phrase, first_frame));
                }
                if frames.try_send(output).is_ok() {
                    *sent += 1;
                } else {
                    shared.dropped_frames.fetch_add(1, Ordering::Relaxed);
                }
            });
        started
    }

    fn play(&mut self, block: &Block, settings: BlockSettings, started: Option<(u32, i64)>) {
        let events = &mut self.events;
        let mut sink = |output: SchedulerOutput| push_note(events, output);
        match settings.mode {
            Mode::Live => {
                self.live.process_block(block, &mut sink);
                if let Some((phrase, first_frame)) = started {
                    self.live.set_listen_frames(settings.listen_frames);
                    let old = self.live.begin_phrase(phrase, first_frame);
                    self.give_back(old);
                }
                self.shared
                    .late_frames
                    .store(self.live.stats().late_frames, Ordering::Relaxed);
            }
            Mode::Suggest => {
                self.looper.process_block(block, &mut sink);
                let retired = self.looper.take_retired();
                self.give_back(retired);
            }
        }
    }

    /// Sends the block's chord events as MIDI and plays them on the synth, sample-accurately.
    fn emit(
        &mut self,
        settings: BlockSettings,
        midi_out: &mut impl FnMut(MidiNote),
        left: &mut [f32],
        right: &mut [f32],
    ) {
        let len = left.len().min(right.len());
        let mut rendered = 0;
        let level = f32::from(settings.velocity.clamp(1, 127)) / 127.0;
        for i in 0..self.events.len() {
            let event = self.events[i];
            let at = (event.offset as usize).min(len);
            if settings.synth_on && at > rendered {
                self.synth
                    .render(&mut left[rendered..at], &mut right[rendered..at]);
                rendered = at;
            }
            let pitch = usize::from(event.pitch.min(127));
            match event.kind {
                NoteEventKind::On => {
                    if self.sounding[pitch] != 0 {
                        self.note_off_midi(event.offset, event.pitch, midi_out);
                    }
                    self.sounding[pitch] = settings.channel.min(15) + 1;
                    midi_out(MidiNote {
                        offset: event.offset,
                        channel: Some(settings.channel.min(15)),
                        pitch: event.pitch,
                        on: true,
                        velocity: level,
                    });
                    if settings.synth_on {
                        self.synth.note_on(event.pitch, level);
                    }
                }
                NoteEventKind::Off => {
                    self.note_off_midi(event.offset, event.pitch, midi_out);
                    self.synth.note_off(event.pitch);
                }
            }
        }
        if settings.synth_on {
            if rendered < len {
                self.synth
                    .render(&mut left[rendered..len], &mut right[rendered..len]);
            }
        } else {
            self.synth.reset();
        }
    }

    fn note_off_midi(&mut self, offset: u32, pitch: u8, midi_out: &mut impl FnMut(MidiNote)) {
        let slot = &mut self.sounding[usize::from(pitch.min(127))];
        if *slot != 0 {
            midi_out(MidiNote {
                offset,
                channel: Some(*slot - 1),
                pitch,
                on: false,
                velocity: 0.0,
            });
            *slot = 0;
        }
    }

    fn release_all_midi(&mut self, offset: u32, midi_out: &mut impl FnMut(MidiNote)) {
        for pitch in 0..128u8 {
            self.note_off_midi(offset, pitch, midi_out);
        }
        self.synth.release_all();
    }

    fn publish(&self, block: &Block) {
        if let Some(t) = block.transport {
            self.shared
                .set_transport(t.beat_position, t.tempo_bpm, t.playing);
        }
    }

    /// The MIDI notes sounding now (channel + 1 per pitch, 0 = off).
    pub fn sounding_channels(&self) -> [u8; 128] {
        self.sounding
    }
}

/// Keeps a player's note events in time order (they arrive ordered; a release at the block start
/// after a mode change comes first), dropping any beyond the fixed capacity.
fn push_note(events: &mut Vec<NoteEvent>, output: SchedulerOutput) {
    let SchedulerOutput::Note(event) = output else {
        return;
    };
    if events.len() == events.capacity() {
        return;
    }
    let at = events.partition_point(|e| e.offset <= event.offset);
    events.insert(at, event);
}

#[cfg(test)]
mod tests {
    use super::*;
    use comper_realtime::frames::ChordFrame;
    use comper_realtime::frames::TimeSignature;
    use comper_realtime::link::{command_channel, link, WorkerLink};
    use comper_realtime::quantize::Transport;
    use comper_realtime::schedule::{PlannedFrame, Voiced};

    const LEN: u32 = 6_000; // one frame at 120 BPM, 48 kHz

    fn engine() -> (AudioEngine, WorkerLink) {
        let (audio, worker) = link(command_channel().1);
        (
            AudioEngine::new(audio, Arc::new(Shared::default()), 48_000.0, 16),
            worker,
        )
    }

    fn block(frame: i64, playing: bool) -> Block {
        Block {
            transport: Some(Transport {
                tempo_bpm: 120.0,
                beat_position: frame as f64 / 4.0,
                playing,
                loop_range: None,
                time_signature: TimeSignature::default(),
            }),
            len_samples: LEN,
            sample_rate: 48_000.0,
        }
    }

    fn settings(bypass: bool, mode: Mode) -> BlockSettings {
        BlockSettings {
            mode,
            velocity: 100,
            channel: 2,
            synth_on: true,
            bypass,
            listen_frames: 16,
        }
    }

    fn run(engine: &mut AudioEngine, block: &Block, settings: BlockSettings) -> Vec<MidiNote> {
        let mut out = Vec::new();
        let mut left = vec![0.0; LEN as usize];
        let mut right = vec![0.0; LEN as usize];
        engine.process(
            block,
            settings,
            &mut |n| out.push(n),
            &mut left,
            &mut right,
            || 1.0,
        );
        out
    }

    fn c_major() -> PlanUpdate {
        PlanUpdate {
            phrase: 0,
            first_frame: 0,
            frames: vec![PlannedFrame {
                chord: ChordFrame::Onset(0),
                committed: true,
                voicing: Voiced::new(&[48, 52, 55]),
            }],
            replan_ms: 0.0,
        }
    }

    fn ons(notes: &[MidiNote]) -> usize {
        notes.iter().filter(|n| n.on).count()
    }

    fn offs(notes: &[MidiNote]) -> usize {
        notes.iter().filter(|n| !n.on).count()
    }

    #[test]
    fn plays_a_loop_and_releases_on_stop_loop_bypass_and_mode_change() {
        let (mut engine, worker) = engine();
        let suggest = settings(false, Mode::Suggest);
        run(&mut engine, &block(0, true), suggest);
        worker.plans.send(ToAudio::Loop(c_major())).unwrap();
        let played = run(&mut engine, &block(1, true), suggest);
        assert_eq!(ons(&played), 3, "{played:?}");
        assert!(played
            .iter()
            .all(|n| n.channel == Some(2) && n.velocity == 100.0 / 127.0));
        // A one-frame loop retriggers every frame: off then on at the same sample.
        let again = run(&mut engine, &block(2, true), suggest);
        assert_eq!((offs(&again), ons(&again)), (3, 3));
        assert!(again.iter().position(|n| !n.on) < again.iter().position(|n| n.on));

        let bypassed = run(&mut engine, &block(3, true), settings(true, Mode::Suggest));
        assert_eq!((offs(&bypassed), ons(&bypassed)), (3, 0));
        assert_eq!(ons(&run(&mut engine, &block(4, true), suggest)), 3);
        let live = run(&mut engine, &block(5, true), settings(false, Mode::Live));
        assert_eq!((offs(&live), ons(&live)), (3, 0));

        run(&mut engine, &block(6, true), suggest);
        worker.plans.send(ToAudio::StopLoop).unwrap();
        let stopped = run(&mut engine, &block(7, true), suggest);
        assert_eq!(ons(&stopped), 0);
        assert_eq!(engine.sounding_channels(), [0; 128]);
        // Every plan came back to the worker side to be freed there.
        assert!(worker.recycled.try_iter().count() >= 1);
    }

    #[test]
    fn notes_sounding_at_a_reset_or_re_activation_are_released_first() {
        let (mut engine, worker) = engine();
        let suggest = settings(false, Mode::Suggest);
        worker.plans.send(ToAudio::Loop(c_major())).unwrap();
        run(&mut engine, &block(0, true), suggest);
        run(&mut engine, &block(1, true), suggest);
        let left = engine.sounding_channels();
        assert_eq!(left.iter().filter(|&&c| c == 3).count(), 3);

        engine.reset();
        let after_reset = run(&mut engine, &block(2, false), suggest);
        assert_eq!(offs(&after_reset), 3);
        assert!(after_reset
            .iter()
            .all(|n| n.channel == Some(2) && n.offset == 0));

        // Re-activated at another rate: the loop plan is kept and plays on.
        run(&mut engine, &block(3, true), suggest);
        engine.prepare(96_000.0, false);
        let released = run(&mut engine, &block(0, false), suggest);
        assert_eq!(offs(&released), 3);
        assert_eq!(ons(&run(&mut engine, &block(0, true), suggest)), 3);
    }

    fn note(offset: u32, channel: u8, pitch: u8, on: bool) -> MidiNote {
        MidiNote {
            offset,
            channel: Some(channel),
            pitch,
            on,
            velocity: if on { 0.8 } else { 0.0 },
        }
    }

    #[test]
    fn melody_thru_never_leaves_a_passed_note_hanging() {
        let (mut engine, _worker) = engine();
        // Thru on: the press passes; thru switched off before the release: the release still
        // passes. A press heard with thru off never passes, nor does its release.
        assert_eq!(
            engine.hear(note(0, 1, 60, true), true),
            Some(note(0, 1, 60, true))
        );
        assert_eq!(engine.hear(note(10, 1, 62, true), false), None);
        assert_eq!(
            engine.hear(note(20, 1, 60, false), false),
            Some(note(20, 1, 60, false))
        );
        assert_eq!(engine.hear(note(30, 1, 62, false), true), None);
        // The same key on another channel is its own note.
        engine.hear(note(40, 3, 64, true), true);
        assert_eq!(engine.hear(note(50, 4, 64, false), true), None);
        assert!(engine.hear(note(60, 3, 64, false), true).is_some());
        assert_eq!(engine.hear(note(70, 0, 200, true), true), None);
    }

    #[test]
    fn melody_events_reach_the_quantizer_in_time_order() {
        let (mut engine, _worker) = engine();
        engine.hear_key(NoteEvent::on(300, 64));
        engine.hear(note(100, 0, 60, true), false);
        engine.hear_key(NoteEvent::off(100, 59));
        engine.hear_key(NoteEvent::on(100, 62));
        let order: Vec<(u32, u8, bool)> = engine
            .keys
            .iter()
            .map(|k| (k.offset, k.pitch, k.kind == NoteEventKind::On))
            .collect();
        // Same sample: the order they came in.
        assert_eq!(
            order,
            [
                (100, 60, true),
                (100, 59, false),
                (100, 62, true),
                (300, 64, true)
            ]
        );
        run(&mut engine, &block(0, true), settings(false, Mode::Suggest));
        assert!(engine.keys.is_empty(), "a block takes its melody");
        // A flood is cut at the capacity, with no allocation.
        for i in 0..2 * MAX_MELODY_EVENTS {
            engine.hear_key(NoteEvent::on(i as u32, 60));
        }
        assert_eq!(engine.keys.len(), MAX_MELODY_EVENTS);
        assert_eq!(engine.keys.capacity(), MAX_MELODY_EVENTS);
    }
}
