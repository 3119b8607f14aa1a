//! A live session replayed from a melody, as if played in real time: the real quantizer, the
//! plugin's runtime (its channels and state machine) and scheduler, driven by a simulated clock.
//!
//! # Time accounting
//! Time is simulated, not waited for, so a run is fast and its timeline reproducible: the audio
//! side advances block by block; quantizer outputs of a block reach the runtime at the block's
//! end; the runtime takes a [`Runtime::step`] as soon as it is idle and something new has
//! arrived, with everything that arrived by then (as the plugin's inference thread drains its
//! channel, re-planning after each frame, or once for a backlog). Each plan reaches the scheduler
//! when the re-plans of the step up to it are done — their measured wall time
//! ([`ReplanTime::Measured`], what `comper jam` uses) or a fixed time ([`ReplanTime::Fixed`],
//! fully deterministic, for tests). A frame that comes due before its plan arrived counts as
//! late.

use std::collections::VecDeque;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use super::models::ModelPair;
use super::worker::{Engines, FixedHost, Runtime, RuntimeFiles, Settings};
use crate::live::{LiveConfig, LiveError};
use comper_music::progression::{name_chords, NamedChord, VoicedChord};
use comper_music::tokens::Vocabulary;
use comper_realtime::frames::TimeSignature;
use comper_realtime::frames::{ChordFrame, Note, FRAMES_PER_BEAT};
use comper_realtime::link::{command_channel, link, Shared, ToAudio, WorkerStatus};
use comper_realtime::quantize::{
    Block, NoteEvent, NoteEventKind, Quantizer, QuantizerConfig, QuantizerOutput, Transport,
};
use comper_realtime::schedule::{PlanUpdate, Scheduler, SchedulerOutput};

/// How long a re-plan takes in simulated time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReplanTime {
    /// The measured wall time of each re-plan.
    Measured,
    /// This many milliseconds for every re-plan that produced a plan.
    Fixed(f64),
}

/// The simulated performance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JamSettings {
    pub tempo_bpm: f64,
    pub sample_rate: f64,
    /// Samples per audio block.
    pub block_len: u32,
    pub replan_time: ReplanTime,
    pub time_signature: TimeSignature,
    /// Beats the transport keeps running after the last note ends.
    pub tail_beats: f64,
}

impl Default for JamSettings {
    fn default() -> Self {
        Self {
            tempo_bpm: 120.0,
            sample_rate: 48_000.0,
            block_len: 512,
            replan_time: ReplanTime::Measured,
            time_signature: TimeSignature::default(),
            tail_beats: 0.0,
        }
    }
}

impl JamSettings {
    fn validate(&self) -> Result<(), LiveError> {
        let bad = |msg: String| Err(LiveError::BadSimulation(msg));
        if !(self.tempo_bpm.is_finite() && (1.0..=1000.0).contains(&self.tempo_bpm)) {
            return bad(format!("tempo {} BPM must be in 1..=1000", self.tempo_bpm));
        }
        if !(self.sample_rate.is_finite() && self.sample_rate >= 1000.0) {
            return bad(format!("sample rate {} must be ≥ 1000", self.sample_rate));
        }
        if self.block_len == 0 {
            return bad("block length must be at least 1 sample".into());
        }
        if !(self.tail_beats.is_finite() && self.tail_beats >= 0.0) {
            return bad(format!("tail {} beats must be ≥ 0", self.tail_beats));
        }
        if let ReplanTime::Fixed(ms) = self.replan_time {
            if !(ms.is_finite() && ms >= 0.0) {
                return bad(format!("fixed re-plan time {ms} ms must be ≥ 0"));
            }
        }
        Ok(())
    }

    fn beats_per_sample(&self) -> f64 {
        self.tempo_bpm / 60.0 / self.sample_rate
    }
}

/// A chord note as the scheduler played it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayedNote {
    pub pitch: u8,
    pub start_beat: f64,
    pub end_beat: f64,
}

/// What happened in a simulated session.
#[derive(Debug, Clone, PartialEq)]
pub struct JamReport {
    /// The chord sounding from each frame (index = frame from beat 0), as the scheduler played it.
    pub played: Vec<ChordFrame>,
    /// Every note event the scheduler emitted, with its absolute sample.
    pub events: Vec<(u64, NoteEvent)>,
    /// The chord notes, paired from `events`; a note still on at the end is not listed.
    pub notes: Vec<PlayedNote>,
    /// Every plan the scheduler accepted, in order.
    pub plans: Vec<PlanUpdate>,
    /// Frames due before their plan arrived.
    pub late_frames: u64,
    /// Wall time of every re-plan that produced a plan, in order.
    pub replan_ms: Vec<f64>,
    /// Length of the performance in beats.
    pub total_beats: f64,
}

/// The `comper jam --json` output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JamSummary {
    /// The chords as played, in beats from the start.
    pub chords: Vec<NamedChord>,
    pub late_frames: u64,
    /// Median and 99th-percentile re-plan wall time (`null` without re-plans).
    pub replan_ms_p50: Option<f64>,
    pub replan_ms_p99: Option<f64>,
}

impl JamReport {
    /// The summary `comper jam` prints.
    pub fn summary(&self, vocab: &Vocabulary) -> JamSummary {
        JamSummary {
            chords: self.chords(vocab),
            late_frames: self.late_frames,
            replan_ms_p50: self.replan_percentile(0.5),
            replan_ms_p99: self.replan_percentile(0.99),
        }
    }

    /// Nearest-rank percentile (`q` in 0..=1) of the re-plan times; `None` without re-plans.
    pub fn replan_percentile(&self, q: f64) -> Option<f64> {
        let mut sorted = self.replan_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
        sorted.get(rank - 1).copied()
    }

    /// The played chords, named, in beats.
    pub fn chords(&self, vocab: &Vocabulary) -> Vec<NamedChord> {
        name_chords(&self.played, vocab)
    }

    /// The played notes grouped into chords (notes that start and end together).
    pub fn voiced_chords(&self, velocity: u8) -> Vec<VoicedChord> {
        let mut notes = self.notes.clone();
        notes.sort_by(|a, b| {
            a.start_beat
                .total_cmp(&b.start_beat)
                .then(a.end_beat.total_cmp(&b.end_beat))
                .then(a.pitch.cmp(&b.pitch))
        });
        let mut chords: Vec<VoicedChord> = Vec::new();
        for note in notes {
            match chords.last_mut() {
                Some(chord)
                    if chord.start_beat == note.start_beat && chord.end_beat == note.end_beat =>
                {
                    chord.pitches.push(note.pitch);
                }
                _ => chords.push(VoicedChord {
                    pitches: vec![note.pitch],
                    start_beat: note.start_beat,
                    end_beat: note.end_beat,
                    velocity,
                }),
            }
        }
        chords
    }
}

/// Plays `melody` (beats from 0) through a live session of `config` on `models`; see the module
/// docs for how time is accounted.
pub fn simulate_jam(
    models: &ModelPair,
    melody: &[Note],
    config: &LiveConfig,
    settings: &JamSettings,
) -> Result<JamReport, LiveError> {
    settings.validate()?;
    config.validate()?;
    // Refuse here, with the reason, settings the models cannot run.
    models.live_engine(*config)?;
    let (_commands, command_inbox) = command_channel();
    let (audio, worker) = link(command_inbox);
    let shared = Arc::new(Shared::default());
    let runtime = Runtime::new(
        FixedHost::new(Settings::live(*config), models.clone()),
        shared.clone(),
        worker.plans,
        worker.recycled,
        RuntimeFiles::default(),
    );
    let mut simulation = Simulation {
        settings: *settings,
        runtime,
        engines: Engines::new(models),
        shared,
        plans_in: &audio.plans,
        recycle: &audio.recycle,
        quantizer: Quantizer::new(QuantizerConfig::default()),
        scheduler: Scheduler::new(config.listen_frames() as u32),
        queue: VecDeque::new(),
        engine_free_at: 0.0,
        pending: VecDeque::new(),
        played: Vec::new(),
        events: Vec::new(),
        plans: Vec::new(),
        replan_ms: Vec::new(),
    };
    simulation.run(melody)
}

struct Simulation<'m> {
    settings: JamSettings,
    runtime: Runtime<FixedHost>,
    engines: Engines<'m>,
    shared: Arc<Shared>,
    plans_in: &'m Receiver<ToAudio>,
    recycle: &'m Sender<PlanUpdate>,
    quantizer: Quantizer,
    scheduler: Scheduler,
    /// Quantizer outputs not yet taken by the runtime, with the time they became available.
    queue: VecDeque<(f64, QuantizerOutput)>,
    /// Simulated time at which the runtime finishes its last step.
    engine_free_at: f64,
    /// Plans made but not yet arrived (in simulated time): when each arrives, and what.
    pending: VecDeque<(f64, PlanUpdate)>,
    played: Vec<ChordFrame>,
    events: Vec<(u64, NoteEvent)>,
    plans: Vec<PlanUpdate>,
    replan_ms: Vec<f64>,
}

impl Simulation<'_> {
    fn run(&mut self, melody: &[Note]) -> Result<JamReport, LiveError> {
        let sample_rate = self.settings.sample_rate;
        let beats_per_sample = self.settings.beats_per_sample();
        let sample_of = |beat: f64| (beat.max(0.0) / beats_per_sample).round() as u64;
        let mut key_events: Vec<(u64, NoteEventKind, u8)> = Vec::with_capacity(2 * melody.len());
        for note in melody {
            let on = sample_of(note.onset_beat);
            let off = sample_of(note.offset_beat).max(on + 1);
            key_events.push((on, NoteEventKind::On, note.pitch));
            key_events.push((off, NoteEventKind::Off, note.pitch));
        }
        // At the same sample a release comes before a press, so repeated notes re-trigger.
        key_events.sort_by_key(|&(sample, kind, _)| (sample, kind == NoteEventKind::On));
        let last_beat = melody.iter().map(|n| n.offset_beat).fold(0.0, f64::max);
        let total_beats = ((last_beat + self.settings.tail_beats) * f64::from(FRAMES_PER_BEAT))
            .ceil()
            / f64::from(FRAMES_PER_BEAT);
        let block_len = u64::from(self.settings.block_len);
        let blocks = sample_of(total_beats).div_ceil(block_len);

        let mut next_key = 0;
        let mut block_events = Vec::new();
        for index in 0..=blocks {
            let start = index * block_len;
            let playing = index < blocks;
            self.settle(start as f64 / sample_rate)?;
            block_events.clear();
            while let Some(&(sample, kind, pitch)) = key_events.get(next_key) {
                if sample >= start + block_len {
                    break;
                }
                let offset = (sample - start) as u32;
                block_events.push(NoteEvent {
                    offset,
                    pitch,
                    kind,
                });
                next_key += 1;
            }
            let block = Block {
                transport: Some(Transport {
                    tempo_bpm: self.settings.tempo_bpm,
                    beat_position: start as f64 * beats_per_sample,
                    playing,
                    loop_range: None,
                    time_signature: self.settings.time_signature,
                }),
                len_samples: self.settings.block_len,
                sample_rate,
            };
            self.audio_block(&block, &block_events, start);
        }

        let notes = pair_notes(&self.events, beats_per_sample);
        Ok(JamReport {
            played: std::mem::take(&mut self.played),
            events: std::mem::take(&mut self.events),
            notes,
            plans: std::mem::take(&mut self.plans),
            late_frames: self.scheduler.stats().late_frames,
            replan_ms: std::mem::take(&mut self.replan_ms),
            total_beats,
        })
    }

    /// What the audio thread does for one block: quantize, send, schedule.
    fn audio_block(&mut self, block: &Block, keys: &[NoteEvent], start_sample: u64) {
        let available_at =
            (start_sample + u64::from(block.len_samples)) as f64 / self.settings.sample_rate;
        let mut started = None;
        let queue = &mut self.queue;
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
                queue.push_back((available_at, output));
            });
        let (played, events) = (&mut self.played, &mut self.events);
        self.scheduler
            .process_block(block, &mut |output| match output {
                SchedulerOutput::Note(event) => {
                    events.push((start_sample + u64::from(event.offset), event));
                }
                SchedulerOutput::FrameDue { index, chord, .. } => {
                    if let Ok(index) = usize::try_from(index) {
                        if played.len() <= index {
                            played.resize(index + 1, ChordFrame::Silence);
                        }
                        if let Some(slot) = played.get_mut(index) {
                            *slot = chord;
                        }
                    }
                }
            });
        if let Some((phrase, first_frame)) = started {
            if let Some(old) = self.scheduler.begin_phrase(phrase, first_frame) {
                self.give_back(old);
            }
        }
    }

    /// Advances the runtime to simulated time `now`: delivers the plans finished by then and
    /// takes the steps that would have started by then.
    fn settle(&mut self, now: f64) -> Result<(), LiveError> {
        loop {
            while let Some(&(ready, _)) = self.pending.front() {
                if ready > now {
                    return Ok(());
                }
                if let Some((_, plan)) = self.pending.pop_front() {
                    self.plans.push(plan.clone());
                    if let Some(old) = self.scheduler.accept(plan) {
                        self.give_back(old);
                    }
                }
            }
            let Some(&(arrived, _)) = self.queue.front() else {
                return Ok(());
            };
            let start = self.engine_free_at.max(arrived);
            if start > now {
                return Ok(());
            }
            let mut batch = Vec::new();
            while let Some(&(arrived, output)) = self.queue.front() {
                if arrived > start {
                    break;
                }
                self.queue.pop_front();
                batch.push(output);
            }
            self.runtime.step(Some(&mut self.engines), &batch, &[]);
            if let WorkerStatus::Error(message) = self.shared.status() {
                return Err(LiveError::Runtime(message));
            }
            let mut done = start;
            for message in self.plans_in.try_iter() {
                if let ToAudio::Live(plan) = message {
                    done += match self.settings.replan_time {
                        ReplanTime::Measured => plan.replan_ms / 1e3,
                        ReplanTime::Fixed(ms) => ms / 1e3,
                    };
                    self.replan_ms.push(plan.replan_ms);
                    self.pending.push_back((done, plan));
                }
            }
            self.engine_free_at = done;
        }
    }

    /// Returns a plan to the runtime for reuse (a full channel just drops it: not the audio thread).
    fn give_back(&self, plan: PlanUpdate) {
        let _ = self.recycle.try_send(plan);
    }
}

/// Pairs note-ons with the next note-off of the same pitch.
fn pair_notes(events: &[(u64, NoteEvent)], beats_per_sample: f64) -> Vec<PlayedNote> {
    let mut started: [Option<u64>; 128] = [None; 128];
    let mut notes = Vec::new();
    for &(sample, event) in events {
        let Some(slot) = started.get_mut(usize::from(event.pitch)) else {
            continue;
        };
        match event.kind {
            NoteEventKind::On => *slot = Some(sample),
            NoteEventKind::Off => {
                if let Some(on) = slot.take() {
                    notes.push(PlayedNote {
                        pitch: event.pitch,
                        start_beat: on as f64 * beats_per_sample,
                        end_beat: sample as f64 * beats_per_sample,
                    });
                }
            }
        }
    }
    notes
}
