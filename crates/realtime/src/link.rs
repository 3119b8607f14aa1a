//! How the audio thread, the inference thread and the panel talk.
//!
//! * Audio → worker: quantizer outputs over a bounded channel (`try_send`; a full channel drops
//!   and counts). Plans the audio thread is done with go back the same way, so memory is only
//!   ever freed on the worker.
//! * Worker → audio: [`ToAudio`] messages over a small bounded channel (`try_recv` per block).
//! * Panel/host → worker: [`Command`]s over an unbounded channel (never touched by audio).
//! * Everyone → panel: [`Shared`], atomics written by the audio thread and a mutex written by
//!   the worker (the audio thread never locks it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::quantize::QuantizerOutput;
use crate::schedule::PlanUpdate;
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

/// Quantizer outputs waiting for the worker: many seconds of frames.
pub const FRAME_CAPACITY: usize = 1024;
/// Plans waiting for the audio thread.
pub const PLAN_CAPACITY: usize = 8;
/// Plans waiting to be freed on the worker; larger than the plans that can be in flight.
pub const RECYCLE_CAPACITY: usize = 64;

/// A message from the inference thread to the audio thread.
#[derive(Debug)]
pub enum ToAudio {
    /// Suggest mode: loop this progression (one cycle, anchored at `first_frame`).
    Loop(PlanUpdate),
    /// Suggest mode: stop looping (nothing captured any more).
    StopLoop,
    /// Live mode: the latest plan of the running session.
    Live(PlanUpdate),
}

/// A request from the panel (or the host's main thread) to the inference thread.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Play option `index` (switches at the next chord boundary).
    Select(usize),
    /// Sample new options for the captured phrase, keeping locked chords.
    Regenerate,
    /// Sample a new progression for one option only.
    RegenerateOne(usize),
    /// Forget the phrase and capture the next one.
    Recapture,
    /// Lock (or unlock) the chord of the selected option that covers `frame`.
    ToggleLock { frame: usize },
    /// Use the weights folder at this path, or the built-in model with `None`.
    LoadWeights(Option<std::path::PathBuf>),
}

/// The audio thread's ends.
pub struct AudioLink {
    pub frames: Sender<QuantizerOutput>,
    pub plans: Receiver<ToAudio>,
    pub recycle: Sender<PlanUpdate>,
}

/// The inference thread's ends.
pub struct WorkerLink {
    pub frames: Receiver<QuantizerOutput>,
    pub plans: Sender<ToAudio>,
    pub recycled: Receiver<PlanUpdate>,
    pub commands: Receiver<Command>,
}

/// The panel's command channel; it outlives activations, so a panel opened before the plugin
/// is activated can still send.
pub fn command_channel() -> (Sender<Command>, Receiver<Command>) {
    unbounded()
}

/// Creates the audio ↔ worker channels; the worker also reads `commands`.
pub fn link(commands: Receiver<Command>) -> (AudioLink, WorkerLink) {
    let (frames_tx, frames_rx) = bounded(FRAME_CAPACITY);
    let (plans_tx, plans_rx) = bounded(PLAN_CAPACITY);
    let (recycle_tx, recycle_rx) = bounded(RECYCLE_CAPACITY);
    (
        AudioLink {
            frames: frames_tx,
            plans: plans_rx,
            recycle: recycle_tx,
        },
        WorkerLink {
            frames: frames_rx,
            plans: plans_tx,
            recycled: recycle_rx,
            commands,
        },
    )
}

/// What the inference thread is doing, for the panel's status line.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum WorkerStatus {
    /// Not started (the plugin is not active).
    #[default]
    Idle,
    LoadingModel,
    /// Suggest mode, waiting for the first note of a phrase.
    Listening,
    /// Suggest mode, recording bar `bar` (1-based) of `of`.
    Capturing {
        bar: usize,
        of: usize,
    },
    Generating,
    /// Suggest mode: options are ready.
    Ready,
    /// Live mode: a session runs.
    Jamming,
    /// Something failed; Comper keeps passing MIDI through.
    Error(String),
}

/// One frame of the live timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveFrame {
    /// Absolute host frame.
    pub index: i64,
    /// Chord name, `None` for silence.
    pub chord: Option<String>,
    pub onset: bool,
    /// Fixed (will sound) rather than a preview that may still change.
    pub committed: bool,
}

/// State every thread may read; see the module docs for who writes what.
#[derive(Debug, Default)]
pub struct Shared {
    status: Mutex<WorkerStatus>,
    live: Mutex<Vec<LiveFrame>>,
    /// What the player played in the live session, `(absolute frame, frame)`, recent ones only.
    live_melody: Mutex<Vec<(i64, crate::frames::MelodyFrame)>>,
    model_name: Mutex<String>,
    /// Host position (beats, as f64 bits), tempo (f64 bits) and whether it plays.
    position_beats: AtomicU64,
    tempo_bpm: AtomicU64,
    playing: AtomicBool,
    /// Quantizer outputs lost because the worker's channel was full.
    pub dropped_frames: AtomicU64,
    /// Live frames that came due before their chord was committed.
    pub late_frames: AtomicU64,
    /// Quantizer outputs the worker has received and finished with (options generated, plans
    /// sent): an offline block waits until it has caught up with what the audio side sent.
    pub frames_done: AtomicU64,
    /// The inference thread runs (false before it starts and after it ends or panics), so an
    /// offline block never waits for nobody.
    pub worker_alive: AtomicBool,
    /// The host renders offline (set on activation): the worker re-plans every frame and waits
    /// for room to send a plan rather than drop it.
    pub offline: AtomicBool,
    /// Bumped whenever options, selection or status change, so a panel knows to redraw.
    pub revision: AtomicU64,
}

impl Shared {
    /// The worker's status (panel, tests).
    pub fn status(&self) -> WorkerStatus {
        lock(&self.status).clone()
    }

    /// Worker only.
    pub fn set_status(&self, status: WorkerStatus) {
        *lock(&self.status) = status;
        self.revision.fetch_add(1, Ordering::Relaxed);
    }

    /// The live timeline: recent committed frames and the latest plan, in frame order.
    pub fn live_frames(&self) -> Vec<LiveFrame> {
        lock(&self.live).clone()
    }

    /// Worker only.
    pub fn set_live_frames(&self, frames: Vec<LiveFrame>) {
        *lock(&self.live) = frames;
        self.revision.fetch_add(1, Ordering::Relaxed);
    }

    /// The melody heard in the live session, recent frames in order (panel).
    pub fn live_melody(&self) -> Vec<(i64, crate::frames::MelodyFrame)> {
        lock(&self.live_melody).clone()
    }

    /// Worker only: a frame heard in the live session; frames more than `keep` before it go.
    pub fn push_live_melody(&self, index: i64, frame: crate::frames::MelodyFrame, keep: i64) {
        let mut melody = lock(&self.live_melody);
        melody.retain(|&(i, _)| i > index - keep && i < index);
        melody.push((index, frame));
    }

    /// Worker only: a new live session starts.
    pub fn clear_live_melody(&self) {
        lock(&self.live_melody).clear();
    }

    /// Name of the model in use.
    pub fn model_name(&self) -> String {
        lock(&self.model_name).clone()
    }

    /// Worker only.
    pub fn set_model_name(&self, name: String) {
        *lock(&self.model_name) = name;
    }

    /// Audio thread only: lock-free.
    pub fn set_transport(&self, beats: f64, tempo_bpm: f64, playing: bool) {
        self.position_beats
            .store(beats.to_bits(), Ordering::Relaxed);
        self.tempo_bpm.store(tempo_bpm.to_bits(), Ordering::Relaxed);
        self.playing.store(playing, Ordering::Relaxed);
    }

    /// Host position in beats, tempo and whether it plays, as of the last block.
    pub fn transport(&self) -> (f64, f64, bool) {
        (
            f64::from_bits(self.position_beats.load(Ordering::Relaxed)),
            f64::from_bits(self.tempo_bpm.load(Ordering::Relaxed)),
            self.playing.load(Ordering::Relaxed),
        )
    }
}

/// Locks `mutex`, recovering the data if a thread panicked while holding it (the worker's panic
/// is reported in the status; the panel and host must still read and save state).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
