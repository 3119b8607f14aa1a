//! The inference thread: owns the model, turns the quantizer's frames into captured phrases and
//! live sessions, and sends voiced plans to the audio thread.
//!
//! It starts when the plugin is activated and ends when the audio side's channel closes
//! (deactivation). Failures never reach the audio thread: a model that does not load or a panic
//! shows as [`WorkerStatus::Error`] and the plugin keeps passing MIDI through.
//!
//! A mode change takes effect at the next phrase (transport start, jump or loop wrap), because a
//! live session must hear a phrase from its start.
//!
//! Live mode re-plans after every frame, so the chords depend only on what was played, not on
//! how the host cut it into blocks; only a real-time worker that has fallen more than
//! [`COALESCE_BACKLOG`] outputs behind plans once for the whole backlog. Whatever it received it
//! reports in [`Shared::frames_done`] once handled, for offline renders (see [`crate::audio`]).

use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use comper::chord::ChordTable;
use comper::frames::{ChordFrame, MelodyFrame};
use comper::live::{LiveConfig, LiveEngine};
use comper::midi_file::{read_melody, MelodyChoice};

use comper::quantize::QuantizerOutput;
use comper::schedule::PlanUpdate;
use comper::suggest::{frames_per_bar, suggest, Phrase};
use comper::tokens::Vocabulary;
use crossbeam_channel::select;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::capture::{Capture, CaptureProgress, CapturedPhrase};
use crate::link::{Command, LiveFrame, Shared, ToAudio, WorkerLink, WorkerStatus};
use crate::models::{load_models, Models};
use crate::params::{ComperParams, Mode};
use crate::plan::{loop_plan, transpose_plan, VoicingChoice};
use crate::session::{chords_by_name, chords_in_vocabulary, Session, SessionOption};

/// Options offered for a captured phrase.
pub const OPTION_COUNT: usize = 5;
/// Frames of live history the panel's timeline keeps (two bars).
const LIVE_HISTORY_FRAMES: i64 = 32;
/// Frames of the heard melody kept for the panel's live timeline (and its key): eight bars of 4/4.
const LIVE_MELODY_FRAMES: i64 = 128;
/// How often the worker looks at parameters and saved-state loads when nothing arrives.
const TICK: Duration = Duration::from_millis(20);
/// Quantizer outputs waiting beyond which a real-time worker plans once for all of them.
pub const COALESCE_BACKLOG: usize = 4;
/// Longest an offline worker waits for room to send a plan (the audio side takes them while it
/// waits for us, so this only runs out when the host stopped rendering).
const OFFLINE_SEND_LIMIT: Duration = Duration::from_secs(5);

/// Environment variable naming a `.mid` file whose melody is used as if it had just been
/// captured (standalone use without a MIDI keyboard, and the panel's screenshot test).
pub const MELODY_ENV: &str = "COMPER_MELODY";
/// Environment variable naming a file to which every plan handed to the audio thread is appended
/// (in real time also one its full channel then refused),
/// one JSON object a line: `{"plan": "loop" | "live", "phrase", "first_frame", "frames":
/// [{"pitches": [..], "onset": bool, "committed": bool}]}`. What the plugin says it plays, for
/// tests that check what a host rendered (and for bug reports).
pub const CHORD_LOG_ENV: &str = "COMPER_CHORD_LOG";

/// Starts the inference thread.
pub fn spawn(
    params: Arc<ComperParams>,
    shared: Arc<Shared>,
    link: WorkerLink,
) -> std::io::Result<JoinHandle<()>> {
    // Alive from before the thread runs, so an offline block right after activation waits for it.
    shared.worker_alive.store(true, Ordering::Release);
    let alive = AliveFlag(shared.clone());
    std::thread::Builder::new()
        .name("comper-inference".into())
        .spawn(move || {
            let _alive = alive;
            let worker = Worker::new(params, shared.clone(), link);
            if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| worker.run())) {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                shared.set_status(WorkerStatus::Error(format!(
                    "the inference thread stopped: {message}"
                )));
            }
        })
}

/// Clears [`Shared::worker_alive`] when the thread ends, however it ends.
struct AliveFlag(Arc<Shared>);

impl Drop for AliveFlag {
    fn drop(&mut self) {
        self.0.worker_alive.store(false, Ordering::Release);
    }
}

enum Exit {
    /// The audio side went away (deactivation).
    Disconnected,
    /// The user chose other weights.
    Reload,
}

struct Worker {
    params: Arc<ComperParams>,
    shared: Arc<Shared>,
    link: WorkerLink,
    capture: Capture,
    rng: StdRng,
    /// Session loads by the host already applied.
    applied_generation: u64,
    /// A plan the audio channel had no room for yet.
    unsent: Option<ToAudio>,
    /// Voicing of the loop plan last sent.
    sent_voicing: Option<VoicingChoice>,
    error: Option<String>,
    generating: bool,
    /// A melody file to use once the model is ready ([`MELODY_ENV`]).
    melody_file: Option<std::path::PathBuf>,
    /// Quantizer outputs received so far (see [`Shared::frames_done`]).
    received: u64,
    /// Where to log the plans sent ([`CHORD_LOG_ENV`]).
    chord_log: Option<std::path::PathBuf>,
}

impl Worker {
    fn new(params: Arc<ComperParams>, shared: Arc<Shared>, link: WorkerLink) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            params,
            shared,
            link,
            capture: Capture::new(),
            rng: StdRng::seed_from_u64(seed),
            applied_generation: u64::MAX,
            unsent: None,
            sent_voicing: None,
            error: None,
            generating: false,
            melody_file: std::env::var_os(MELODY_ENV).map(std::path::PathBuf::from),
            received: 0,
            chord_log: std::env::var_os(CHORD_LOG_ENV).map(std::path::PathBuf::from),
        }
    }

    fn run(mut self) {
        loop {
            self.shared.set_status(WorkerStatus::LoadingModel);
            let path = self.params.session.lock().weights_path.clone();
            let models = match load_models(path.as_deref()) {
                Ok(models) => {
                    self.shared.set_model_name(models.name.clone());
                    self.error = None;
                    Some(models)
                }
                Err(message) => {
                    self.shared.set_model_name("none".into());
                    self.error = Some(format!("the model did not load: {message}"));
                    None
                }
            };
            self.applied_generation = u64::MAX;
            match self.serve(models.as_ref()) {
                Exit::Disconnected => return,
                Exit::Reload => continue,
            }
        }
    }

    fn serve(&mut self, models: Option<&Models>) -> Exit {
        let table = models.map(|m| ChordTable::new(m.vocabulary()));
        let mut live: Option<(LiveEngine<'_>, LiveConfig)> = None;
        loop {
            let mut batch = Vec::new();
            let mut commands = Vec::new();
            select! {
                recv(self.link.frames) -> output => match output {
                    Ok(output) => batch.push(output),
                    Err(_) => return Exit::Disconnected,
                },
                recv(self.link.commands) -> command => {
                    if let Ok(command) = command {
                        commands.push(command);
                    }
                },
                default(TICK) => {}
            }
            batch.extend(self.link.frames.try_iter());
            self.received += batch.len() as u64;
            commands.extend(self.link.commands.try_iter());
            for plan in self.link.recycled.try_iter() {
                if let Some((engine, _)) = live.as_mut() {
                    engine.recycle(plan);
                }
            }
            let (Some(models), Some(table)) = (models, table.as_ref()) else {
                if commands
                    .iter()
                    .any(|c| matches!(c, Command::LoadWeights(_)))
                {
                    self.apply_weights_commands(&commands);
                    return Exit::Reload;
                }
                self.update_status();
                self.report_done();
                continue;
            };
            let mode = self.params.mode.value();
            self.apply_saved_session(models, table);
            if let Some(path) = self.melody_file.take() {
                self.use_melody_file(models, table, &path);
            }
            self.keep_capture_armed(mode);
            let offline = self.shared.offline.load(Ordering::Acquire);
            let coalesce = !offline && batch.len() > COALESCE_BACKLOG;
            let mut live_heard = false;
            for output in &batch {
                if let Some(phrase) = self.capture.push(output) {
                    self.captured(models, table, phrase);
                }
                if mode != Mode::Live {
                    continue;
                }
                match *output {
                    QuantizerOutput::PhraseStart { .. } => {
                        live = self.start_live(models, live.take());
                        self.shared.set_live_frames(Vec::new());
                        self.shared.clear_live_melody();
                    }
                    QuantizerOutput::Frame { index, frame, .. } => {
                        self.shared
                            .push_live_melody(index, frame, LIVE_MELODY_FRAMES);
                    }
                    QuantizerOutput::PhraseEnd { .. } => {}
                }
                if let Some((engine, _)) = live.as_mut() {
                    engine.push(output);
                    let frame = matches!(output, QuantizerOutput::Frame { .. });
                    if frame && !coalesce {
                        self.replan(engine, models.vocabulary());
                    } else {
                        live_heard |= frame;
                    }
                }
            }
            if live_heard {
                if let Some((engine, _)) = live.as_mut() {
                    self.replan(engine, models.vocabulary());
                }
            }
            for command in &commands {
                if let Command::LoadWeights(_) = command {
                    self.apply_weights_commands(&commands);
                    return Exit::Reload;
                }
                self.command(models, table, command);
            }
            self.resend_on_voicing_change(models, table);
            self.flush_unsent();
            self.update_status();
            self.report_done();
        }
    }

    /// Tells an offline audio side that everything received so far is handled.
    fn report_done(&self) {
        self.shared
            .frames_done
            .store(self.received, Ordering::Release);
    }

    /// Appends `message` to the [`CHORD_LOG_ENV`] file, if one was asked for.
    fn log_plan(&self, message: &ToAudio) {
        let Some(path) = &self.chord_log else { return };
        let (kind, plan) = match message {
            ToAudio::Loop(plan) => ("loop", plan),
            ToAudio::Live(plan) => ("live", plan),
            ToAudio::StopLoop => return,
        };
        let frames: Vec<serde_json::Value> = plan
            .frames
            .iter()
            .map(|f| {
                serde_json::json!({
                    "pitches": f.voicing.pitches(),
                    "onset": matches!(f.chord, ChordFrame::Onset(_)),
                    "committed": f.committed,
                })
            })
            .collect();
        let line = serde_json::json!({
            "plan": kind,
            "phrase": plan.phrase,
            "first_frame": plan.first_frame,
            "frames": frames,
        });
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            nice_plug::nice_log!("Comper: could not write {}: {e}", path.display());
        }
    }

    /// Sends a plan to the audio side. In real time a full channel hands the message back (the
    /// audio thread is behind; the caller keeps or recycles it); offline the worker waits for
    /// room, because a dropped plan would be heard in the render.
    fn send_to_audio(&self, message: ToAudio) -> Result<(), ToAudio> {
        self.log_plan(&message);
        if self.shared.offline.load(Ordering::Acquire) {
            return self
                .link
                .plans
                .send_timeout(message, OFFLINE_SEND_LIMIT)
                .map_err(|e| e.into_inner());
        }
        self.link
            .plans
            .try_send(message)
            .map_err(|e| e.into_inner())
    }

    /// Uses a melody file's first bars as the captured phrase.
    fn use_melody_file(&mut self, models: &Models, table: &ChordTable, path: &Path) {
        match read_melody(path, MelodyChoice::Auto) {
            Ok(melody) => {
                let bars = self.params.phrase_bars.value().bars();
                let bar = frames_per_bar(melody.time_signature);
                let phrase = Phrase::from_notes(&melody.notes, melody.time_signature, bars * bar);
                self.capture.disarm();
                self.captured(
                    models,
                    table,
                    CapturedPhrase {
                        melody: phrase.melody,
                        first_frame: 0,
                        time_signature: melody.time_signature,
                    },
                );
            }
            Err(e) => self.error = Some(format!("{MELODY_ENV}: {e}")),
        }
    }

    fn apply_weights_commands(&mut self, commands: &[Command]) {
        for command in commands {
            if let Command::LoadWeights(path) = command {
                self.params.session.lock().weights_path = path.clone();
            }
        }
    }

    fn start_live<'m>(
        &mut self,
        models: &'m Models,
        previous: Option<(LiveEngine<'m>, LiveConfig)>,
    ) -> Option<(LiveEngine<'m>, LiveConfig)> {
        let config = self.params.live_config();
        if let Some((engine, old)) = previous {
            if old == config {
                return Some((engine, old));
            }
        }
        match LiveEngine::for_models(&models.online, models.offline.as_ref(), config) {
            Ok(engine) => Some((engine, config)),
            Err(e) => {
                self.error = Some(format!("live mode cannot start: {e}"));
                None
            }
        }
    }

    fn replan(&mut self, engine: &mut LiveEngine<'_>, vocab: &Vocabulary) {
        match engine.replan() {
            Ok(Some(mut plan)) => {
                self.publish_live(&plan, vocab);
                let (_, octave) = self.params.voicing();
                transpose_plan(&mut plan, octave);
                if let Err(ToAudio::Live(plan)) = self.send_to_audio(ToAudio::Live(plan)) {
                    engine.recycle(plan);
                }
            }
            Ok(None) => {}
            Err(e) => self.error = Some(format!("live re-plan failed: {e}")),
        }
    }

    /// Merges a plan into the panel's live timeline (keeping the last few bars heard).
    fn publish_live(&mut self, plan: &PlanUpdate, vocab: &Vocabulary) {
        let mut frames = self.shared.live_frames();
        frames.retain(|f| f.index < plan.first_frame);
        frames.extend(plan.frames.iter().enumerate().map(|(k, planned)| {
            let (chord, onset) = match planned.chord {
                ChordFrame::Silence => (None, false),
                ChordFrame::Onset(i) => (vocab.name(i).map(str::to_owned), true),
                ChordFrame::Hold(i) => (vocab.name(i).map(str::to_owned), false),
            };
            LiveFrame {
                index: plan.first_frame + k as i64,
                chord,
                onset,
                committed: planned.committed,
            }
        }));
        let keep_from = plan.first_frame - LIVE_HISTORY_FRAMES;
        frames.retain(|f| f.index >= keep_from);
        self.shared.set_live_frames(frames);
    }

    fn captured(&mut self, models: &Models, table: &ChordTable, phrase: CapturedPhrase) {
        {
            let mut session = self.params.session.lock();
            session.melody = phrase.melody;
            session.time_signature = phrase.time_signature;
            session.first_frame = phrase.first_frame;
            session.options.clear();
            session.locked.clear();
            session.selected = 0;
        }
        self.regenerate(models, table, None);
    }

    /// Samples options for the captured phrase: all of them, or only `only`.
    fn regenerate(&mut self, models: &Models, table: &ChordTable, only: Option<usize>) {
        let (melody, time_signature, locked_names) = {
            let session = self.params.session.lock();
            (
                session.melody.clone(),
                session.time_signature,
                session.locked.clone(),
            )
        };
        if melody.is_empty() {
            return;
        }
        let bar = frames_per_bar(time_signature);
        let max_frames = models.harmonizer().max_frames() / bar * bar;
        let melody: Vec<MelodyFrame> = melody.into_iter().take(max_frames.max(bar)).collect();
        let locked = match chords_in_vocabulary(&locked_names, models.vocabulary()) {
            Ok(frames) => locked_frames(&frames, &locked_names, melody.len()),
            Err(_) => Vec::new(),
        };
        let phrase = Phrase {
            melody,
            time_signature,
            truncated_bars: 0,
        };
        self.generating = true;
        self.update_status();
        let count = if only.is_some() { 1 } else { OPTION_COUNT };
        let sampling = self.params.sampling();
        let result = suggest(
            models.harmonizer(),
            &phrase,
            &locked,
            count,
            &sampling,
            &self.params.guide(),
            &mut self.rng,
        );
        self.generating = false;
        let suggestions = match result {
            Ok(s) => s,
            Err(e) => {
                self.error = Some(format!("generating options failed: {e}"));
                return;
            }
        };
        self.error = None;
        let fresh: Vec<SessionOption> = suggestions
            .iter()
            .map(|s| SessionOption {
                frames: chords_by_name(&s.frames, models.vocabulary()),
                log_likelihood: s.log_likelihood,
                melody_fit: s.melody_fit,
                description: s.description.clone(),
            })
            .collect();
        {
            let mut session = self.params.session.lock();
            session.melody = phrase.melody;
            match only {
                Some(index) if index < session.options.len() => {
                    if let Some(option) = fresh.into_iter().next() {
                        session.options[index] = option;
                    }
                }
                _ => {
                    session.options = fresh;
                    session.selected = 0;
                }
            }
        }
        self.send_loop(models, table);
    }

    fn command(&mut self, models: &Models, table: &ChordTable, command: &Command) {
        match *command {
            Command::Select(index) => {
                let changed = {
                    let mut session = self.params.session.lock();
                    let valid = index < session.options.len() && session.selected != index;
                    if valid {
                        session.selected = index;
                    }
                    valid
                };
                if changed {
                    self.send_loop(models, table);
                }
            }
            Command::Regenerate => self.regenerate(models, table, None),
            Command::RegenerateOne(index) => {
                self.regenerate(models, table, Some(index));
            }
            Command::Recapture => {
                {
                    let mut session = self.params.session.lock();
                    let weights = session.weights_path.take();
                    *session = Session {
                        weights_path: weights,
                        ..Session::default()
                    };
                }
                self.queue(ToAudio::StopLoop);
                self.capture.disarm();
            }
            Command::ToggleLock { frame } => self.toggle_lock(frame),
            Command::LoadWeights(_) => {}
        }
        self.shared
            .revision
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Locks the selected option's chord covering `frame` (or unlocks it if locked).
    fn toggle_lock(&mut self, frame: usize) {
        let mut session = self.params.session.lock();
        let Some(option) = session.options.get(session.selected) else {
            return;
        };
        let frames = option.frames.clone();
        if frame >= frames.len() {
            return;
        }
        let start = (0..=frame)
            .rev()
            .find(|&i| frames[i].as_ref().is_none_or(|(_, onset)| *onset))
            .unwrap_or(0);
        let end = (frame + 1..frames.len())
            .find(|&i| frames[i].as_ref().is_none_or(|(_, onset)| *onset))
            .unwrap_or(frames.len());
        if session.locked.len() != frames.len() {
            session.locked = vec![None; frames.len()];
        }
        let unlock = session.locked[frame].is_some();
        for (slot, frame) in session.locked[start..end]
            .iter_mut()
            .zip(&frames[start..end])
        {
            *slot = if unlock { None } else { frame.clone() };
        }
        if session.locked.iter().all(Option::is_none) {
            session.locked.clear();
        }
    }

    /// Applies a session the host just loaded with the project.
    fn apply_saved_session(&mut self, models: &Models, table: &ChordTable) {
        let generation = self.params.session.generation();
        if generation == self.applied_generation {
            return;
        }
        self.applied_generation = generation;
        let usable = {
            let session = self.params.session.lock();
            session.has_options()
                && session
                    .options
                    .iter()
                    .map(|o| &o.frames)
                    .chain(std::iter::once(&session.locked))
                    .all(|frames| chords_in_vocabulary(frames, models.vocabulary()).is_ok())
        };
        if usable {
            self.capture.disarm();
            self.send_loop(models, table);
        } else {
            let mut session = self.params.session.lock();
            if session.has_options() {
                nice_plug::nice_log!(
                    "Comper: the saved options use chords this model does not know; capturing anew"
                );
            }
            session.options.clear();
            session.melody.clear();
            session.locked.clear();
            drop(session);
            self.queue(ToAudio::StopLoop);
        }
    }

    fn keep_capture_armed(&mut self, mode: Mode) {
        let has_options = self.params.session.lock().has_options();
        let progress = self.capture.progress();
        match mode {
            Mode::Live if progress != CaptureProgress::Off => self.capture.disarm(),
            Mode::Suggest if !has_options && progress == CaptureProgress::Off => {
                self.capture.arm(self.params.phrase_bars.value().bars());
            }
            _ => {}
        }
    }

    fn resend_on_voicing_change(&mut self, models: &Models, table: &ChordTable) {
        let (style, octave) = self.params.voicing();
        let choice = VoicingChoice { style, octave };
        if self.sent_voicing.is_some_and(|sent| sent != choice) {
            self.send_loop(models, table);
        }
    }

    /// Sends the selected option, voiced with the current settings, to the audio thread.
    fn send_loop(&mut self, models: &Models, table: &ChordTable) {
        let (style, octave) = self.params.voicing();
        let choice = VoicingChoice { style, octave };
        let plan = {
            let session = self.params.session.lock();
            let Some(option) = session.options.get(session.selected) else {
                return;
            };
            let Ok(frames) = chords_in_vocabulary(&option.frames, models.vocabulary()) else {
                return;
            };
            loop_plan(
                &frames,
                session.first_frame,
                models.vocabulary(),
                table,
                choice,
            )
        };
        self.sent_voicing = Some(choice);
        self.queue(ToAudio::Loop(plan));
        self.shared
            .revision
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sends now, or keeps the message (replacing an older unsent one) until there is room.
    fn queue(&mut self, message: ToAudio) {
        self.unsent = Some(message);
        self.flush_unsent();
    }

    fn flush_unsent(&mut self) {
        if let Some(message) = self.unsent.take() {
            if let Err(message) = self.send_to_audio(message) {
                self.unsent = Some(message);
            }
        }
    }

    fn update_status(&self) {
        let status = if let Some(error) = &self.error {
            WorkerStatus::Error(error.clone())
        } else if self.generating {
            WorkerStatus::Generating
        } else if self.params.mode.value() == Mode::Live {
            WorkerStatus::Jamming
        } else {
            match self.capture.progress() {
                CaptureProgress::Recording { bar, of } => WorkerStatus::Capturing { bar, of },
                CaptureProgress::Armed => WorkerStatus::Listening,
                CaptureProgress::Off if self.params.session.lock().has_options() => {
                    WorkerStatus::Ready
                }
                CaptureProgress::Off => WorkerStatus::Listening,
            }
        };
        if self.shared.status() != status {
            self.shared.set_status(status);
        }
    }
}

/// Locked chords as the sampler wants them: one entry per melody frame, or none at all.
fn locked_frames(
    frames: &[ChordFrame],
    names: &[Option<(String, bool)>],
    len: usize,
) -> Vec<Option<ChordFrame>> {
    if names.is_empty() || frames.len() < len {
        return Vec::new();
    }
    frames
        .iter()
        .zip(names)
        .take(len)
        .map(|(&frame, name)| name.as_ref().map(|_| frame))
        .collect()
}
