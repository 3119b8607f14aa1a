//! Everything `process()` does, free of the plugin API so it can be tested directly: the melody
//! goes to the quantizer and on to the worker, plans come back and are played by the live
//! scheduler or the loop player, and the chords leave as MIDI notes and as the synth's sound.
//!
//! Real-time rules: after [`AudioEngine::new`] nothing here allocates, frees, locks or waits.
//! Plans replaced on this thread are handed back to the worker to be freed; event storage is
//! fixed; channel operations are `try_*`. Every chord note that was sent is tracked, so stop,
//! loop wrap, jump, option change, mode change, bypass and reset can always release it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use comper::quantize::{
    Block, NoteEvent, NoteEventKind, Quantizer, QuantizerConfig, QuantizerOutput,
};
use comper::schedule::{LoopPlayer, PlanUpdate, Scheduler, SchedulerOutput};
use comper::synth::Synth;
use crossbeam_channel::TrySendError;

use crate::link::{AudioLink, Shared, ToAudio};
use crate::params::Mode;

/// Chord note events one block can emit; more are dropped (a block spans few frames).
pub const MAX_CHORD_EVENTS: usize = 512;

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

/// A chord note to send as MIDI (zero-based channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChordNote {
    pub offset: u32,
    pub channel: u8,
    pub pitch: u8,
    /// 0 for a note-off.
    pub velocity: u8,
}

/// The audio thread's state.
pub struct AudioEngine {
    link: AudioLink,
    shared: Arc<Shared>,
    quantizer: Quantizer,
    live: Scheduler,
    looper: LoopPlayer,
    synth: Synth,
    /// Chord events of the current block, in time order.
    events: Vec<NoteEvent>,
    /// Channel + 1 of each pitch's sounding chord note (0 = not sounding).
    sounding: [u8; 128],
    mode: Mode,
    /// Sounding notes must be released before anything else (after a reset).
    release_pending: bool,
    /// A used plan the recycle channel had no room for.
    unreturned: Option<PlanUpdate>,
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
            live: Scheduler::new(listen_frames),
            looper: LoopPlayer::new(),
            synth: Synth::new(sample_rate),
            events: Vec::with_capacity(MAX_CHORD_EVENTS),
            sounding: [0; 128],
            mode: Mode::Suggest,
            release_pending: false,
            unreturned: None,
            leaked_plans: 0,
        }
    }

    /// The host reset or re-activated: silence the synth now and release MIDI notes at the start
    /// of the next block (nothing can be sent from here).
    pub fn reset(&mut self) {
        self.synth.reset();
        self.quantizer.release_all_keys();
        self.release_pending = true;
    }

    /// One block: `keys` are the melody's note events; chord notes go to `midi_out`, the synth
    /// is mixed into `left`/`right` (which the caller has cleared).
    pub fn process(
        &mut self,
        block: &Block,
        keys: &[NoteEvent],
        settings: BlockSettings,
        midi_out: &mut impl FnMut(ChordNote),
        left: &mut [f32],
        right: &mut [f32],
    ) {
        self.events.clear();
        if self.release_pending {
            self.release_pending = false;
            self.release_all_midi(0, midi_out);
        }
        self.take_plans();
        if settings.mode != self.mode || settings.bypass {
            self.release_players();
            self.mode = settings.mode;
        }
        if !settings.bypass {
            let started = self.quantize(block, keys);
            self.play(block, settings, started);
        }
        self.emit(settings, midi_out, left, right);
        self.publish(block);
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
                if frames.try_send(output).is_err() {
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
        midi_out: &mut impl FnMut(ChordNote),
        left: &mut [f32],
        right: &mut [f32],
    ) {
        let len = left.len().min(right.len());
        let mut rendered = 0;
        let velocity = settings.velocity.clamp(1, 127);
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
                    midi_out(ChordNote {
                        offset: event.offset,
                        channel: settings.channel.min(15),
                        pitch: event.pitch,
                        velocity,
                    });
                    if settings.synth_on {
                        self.synth.note_on(event.pitch, f32::from(velocity) / 127.0);
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

    fn note_off_midi(&mut self, offset: u32, pitch: u8, midi_out: &mut impl FnMut(ChordNote)) {
        let slot = &mut self.sounding[usize::from(pitch.min(127))];
        if *slot != 0 {
            midi_out(ChordNote {
                offset,
                channel: *slot - 1,
                pitch,
                velocity: 0,
            });
            *slot = 0;
        }
    }

    fn release_all_midi(&mut self, offset: u32, midi_out: &mut impl FnMut(ChordNote)) {
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

    /// Chord pitches sounding as MIDI notes now (for tests and the panel).
    pub fn sounding_notes(&self) -> usize {
        self.sounding.iter().filter(|&&c| c != 0).count()
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
