//! The runtime: the one inference state machine behind every way Comper plays along. It owns the
//! models, turns the quantizer's frames into Suggest mode's captured phrases and options or into
//! live sessions, and sends voiced plans to the audio side.
//!
//! The plugin runs it on its inference thread ([`spawn`]); `comper jam` drives the same state
//! machine in lock-step with a simulated clock ([`super::simulate`]), one [`Runtime::step`] per
//! batch of inputs, so what `comper jam` measures is what the plugin ships. Whoever runs it
//! supplies a [`Host`]: the settings, the session it saves, and where its models come from.
//!
//! Failures never reach the audio side: a model that does not load or a panic shows as
//! [`WorkerStatus::Error`] and the audio side keeps passing MIDI through.
//!
//! A mode change takes effect at the next phrase (transport start, jump or loop wrap), because a
//! live session must hear a phrase from its start.
//!
//! Live mode re-plans after every frame, so the chords depend only on what was played, not on
//! how the host cut it into blocks; only a real-time runtime that has fallen more than
//! [`COALESCE_BACKLOG`] outputs behind plans once for the whole backlog. Whatever it received it
//! reports in [`Shared::frames_done`] once handled, for offline renders.

use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{select, Receiver, Sender};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::capture::{Capture, CaptureProgress, CapturedPhrase};
use super::loop_plan::{loop_plan, transpose_plan, VoicingChoice};
use super::models::ModelPair;
use super::session::{chords_by_name, chords_in_vocabulary, Session, SessionOption};
use crate::live::{LiveConfig, LiveEngine};
use crate::sample::SamplingParams;
use crate::suggest::{frames_per_bar, suggest, Phrase};
use comper_music::chord::ChordTable;
use comper_music::harmony::GuideSettings;
use comper_music::midi_file::{read_melody, MelodyChoice};
use comper_music::tokens::Vocabulary;
use comper_realtime::frames::{ChordFrame, MelodyFrame};
use comper_realtime::link::{lock, Command, LiveFrame, Shared, ToAudio, WorkerLink, WorkerStatus};
use comper_realtime::quantize::QuantizerOutput;
use comper_realtime::schedule::PlanUpdate;

/// Options offered for a captured phrase.
pub const OPTION_COUNT: usize = 5;
/// Frames of live history the panel's timeline keeps (two bars).
const LIVE_HISTORY_FRAMES: i64 = 32;
/// Frames of the heard melody kept for the panel's live timeline (and its key): eight bars of 4/4.
const LIVE_MELODY_FRAMES: i64 = 128;
/// How often the runtime looks at settings and saved-state loads when nothing arrives.
const TICK: Duration = Duration::from_millis(20);
/// Quantizer outputs waiting beyond which a real-time runtime plans once for all of them.
pub const COALESCE_BACKLOG: usize = 4;
/// Longest an offline runtime waits for room to send a plan (the audio side takes them while it
/// waits for us, so this only runs out when the host stopped rendering).
const OFFLINE_SEND_LIMIT: Duration = Duration::from_secs(5);

/// What the runtime does with the frames it hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Capture a phrase, offer options, loop the chosen one.
    #[default]
    Suggest,
    /// Accompany while the player plays, planning a few beats ahead (ReaLJam).
    Live,
}

/// The settings the runtime works with, read from its [`Host`] once per batch of inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub mode: Mode,
    /// Bars Suggest mode captures.
    pub phrase_bars: usize,
    /// How Suggest mode samples its options.
    pub sampling: SamplingParams,
    /// How Suggest mode leans on the melody.
    pub guide: GuideSettings,
    /// How Suggest mode's loop is voiced, and the octave live plans move by.
    pub voicing: VoicingChoice,
    /// The live session's settings (used from the next phrase on).
    pub live: LiveConfig,
}

/// What the runtime needs from whoever runs it (the plugin's parameters and saved state, or a
/// command-line tool's fixed settings).
pub trait Host {
    /// The settings now.
    fn settings(&self) -> Settings;
    /// Suggest mode's session, which the runtime writes and the host saves with its project.
    fn session(&self) -> MutexGuard<'_, Session>;
    /// Moves whenever the host loads a saved session, so the runtime applies it.
    fn session_generation(&self) -> u64;
    /// The models of the weights folder `weights`, or the default models with `None`.
    fn load_models(&self, weights: Option<&Path>) -> Result<ModelPair, String>;
    /// A line for the user's log (a warning that needs no status).
    fn log(&self, message: &str);
}

/// A host shared with whoever started the runtime (a test reading the session it wrote).
impl<H: Host + ?Sized> Host for Arc<H> {
    fn settings(&self) -> Settings {
        (**self).settings()
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        (**self).session()
    }

    fn session_generation(&self) -> u64 {
        (**self).session_generation()
    }

    fn load_models(&self, weights: Option<&Path>) -> Result<ModelPair, String> {
        (**self).load_models(weights)
    }

    fn log(&self, message: &str) {
        (**self).log(message);
    }
}

impl Settings {
    /// Live mode with `config`, the other settings at their defaults (no octave shift).
    pub fn live(config: LiveConfig) -> Self {
        Self {
            mode: Mode::Live,
            phrase_bars: 4,
            sampling: SamplingParams::default(),
            guide: config.guide,
            voicing: VoicingChoice {
                style: config.voicing,
                octave: 0,
            },
            live: config,
        }
    }

    /// Suggest mode capturing `phrase_bars` bars, the other settings at their defaults.
    pub fn suggest(phrase_bars: usize) -> Self {
        let live = LiveConfig::default();
        Self {
            mode: Mode::Suggest,
            phrase_bars,
            sampling: SamplingParams::default(),
            guide: GuideSettings::default(),
            voicing: VoicingChoice {
                style: live.voicing,
                octave: 0,
            },
            live,
        }
    }
}

/// A host with fixed settings and nothing saved: how `comper jam` and the tests run the runtime.
pub struct FixedHost {
    settings: Settings,
    session: Mutex<Session>,
    models: ModelPair,
}

impl FixedHost {
    /// A host that always answers `settings` and hands out `models`, whatever folder is asked for.
    pub fn new(settings: Settings, models: ModelPair) -> Self {
        Self {
            settings,
            session: Mutex::new(Session::default()),
            models,
        }
    }
}

impl Host for FixedHost {
    fn settings(&self) -> Settings {
        self.settings
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        lock(&self.session)
    }

    fn session_generation(&self) -> u64 {
        0
    }

    fn load_models(&self, _weights: Option<&Path>) -> Result<ModelPair, String> {
        Ok(self.models.clone())
    }

    fn log(&self, message: &str) {
        eprintln!("{message}");
    }
}

/// Files the runtime reads or writes besides its channels.
#[derive(Debug, Clone, Default)]
pub struct RuntimeFiles {
    /// A `.mid` file whose melody is used as if it had just been captured, once the models are
    /// ready (standalone use without a MIDI keyboard, the panel's screenshot test).
    pub melody: Option<PathBuf>,
    /// A file to which every plan handed to the audio side is appended (in real time also one its
    /// full channel then refused), one JSON object a line: `{"plan": "loop" | "live", "phrase",
    /// "first_frame", "frames": [{"pitches": [..], "onset": bool, "committed": bool}]}`. What
    /// the runtime says it plays, for tests that check what a host rendered (and bug reports).
    pub chord_log: Option<PathBuf>,
}

/// Starts the runtime on its own thread (the plugin's inference thread). It ends when the audio
/// side closes its end of the frames channel.
pub fn spawn<H: Host + Send + 'static>(
    host: H,
    shared: Arc<Shared>,
    link: WorkerLink,
    files: RuntimeFiles,
) -> std::io::Result<JoinHandle<()>> {
    // Alive from before the thread runs, so an offline block right after activation waits for it.
    shared.worker_alive.store(true, Ordering::Release);
    let alive = AliveFlag(shared.clone());
    std::thread::Builder::new()
        .name("comper-inference".into())
        .spawn(move || {
            let _alive = alive;
            let WorkerLink {
                frames,
                plans,
                recycled,
                commands,
            } = link;
            let runtime = Runtime::new(host, shared.clone(), plans, recycled, files);
            if let Err(panic) =
                panic::catch_unwind(AssertUnwindSafe(|| runtime.run(&frames, &commands)))
            {
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

/// What a [`Runtime::step`] asks of the loop around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Go on with the same models.
    Continue,
    /// The user chose other weights: load them (the folder is in the session).
    Reload,
}

/// Loaded models with what is built from them: the chord table that voices plans and the live
/// session's engine.
pub struct Engines<'m> {
    models: &'m ModelPair,
    table: ChordTable,
    live: Option<(LiveEngine<'m>, LiveConfig)>,
}

impl<'m> Engines<'m> {
    /// What the runtime builds from newly loaded models; the live engine starts at the next phrase.
    pub fn new(models: &'m ModelPair) -> Self {
        Self {
            models,
            table: ChordTable::new(models.vocabulary()),
            live: None,
        }
    }
}

/// The state machine; see the module docs.
pub struct Runtime<H> {
    host: H,
    shared: Arc<Shared>,
    plans: Sender<ToAudio>,
    recycled: Receiver<PlanUpdate>,
    settings: Settings,
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
    /// A melody file to use once the models are ready ([`RuntimeFiles::melody`]).
    melody_file: Option<PathBuf>,
    /// Quantizer outputs received so far (see [`Shared::frames_done`]).
    received: u64,
    /// Where to log the plans sent ([`RuntimeFiles::chord_log`]).
    chord_log: Option<PathBuf>,
}

impl<H: Host> Runtime<H> {
    /// A runtime sending its plans on `plans` and taking back used ones from `recycled`.
    pub fn new(
        host: H,
        shared: Arc<Shared>,
        plans: Sender<ToAudio>,
        recycled: Receiver<PlanUpdate>,
        files: RuntimeFiles,
    ) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let settings = host.settings();
        Self {
            host,
            shared,
            plans,
            recycled,
            settings,
            capture: Capture::new(),
            rng: StdRng::seed_from_u64(seed),
            applied_generation: u64::MAX,
            unsent: None,
            sent_voicing: None,
            error: None,
            generating: false,
            melody_file: files.melody,
            received: 0,
            chord_log: files.chord_log,
        }
    }

    /// Loads the models (again after [`Step::Reload`]) and serves the channels until the audio
    /// side closes `frames`.
    pub fn run(mut self, frames: &Receiver<QuantizerOutput>, commands: &Receiver<Command>) {
        loop {
            self.shared.set_status(WorkerStatus::LoadingModel);
            let weights = self.host.session().weights_path.clone();
            let models = match self.host.load_models(weights.as_deref()) {
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
            let mut engines = models.as_ref().map(Engines::new);
            loop {
                let mut batch = Vec::new();
                let mut orders = Vec::new();
                select! {
                    recv(frames) -> output => match output {
                        Ok(output) => batch.push(output),
                        Err(_) => return,
                    },
                    recv(commands) -> command => {
                        if let Ok(command) = command {
                            orders.push(command);
                        }
                    },
                    default(TICK) => {}
                }
                batch.extend(frames.try_iter());
                orders.extend(commands.try_iter());
                if self.step(engines.as_mut(), &batch, &orders) == Step::Reload {
                    break;
                }
            }
        }
    }

    /// Handles one batch: the quantizer outputs and commands that arrived since the last step
    /// (all that were waiting), then settings, saved-state loads and unsent plans. `engines` is
    /// `None` while no model is loaded.
    pub fn step(
        &mut self,
        engines: Option<&mut Engines<'_>>,
        batch: &[QuantizerOutput],
        commands: &[Command],
    ) -> Step {
        self.received += batch.len() as u64;
        self.settings = self.host.settings();
        let Some(engines) = engines else {
            for plan in self.recycled.try_iter() {
                drop(plan);
            }
            if commands
                .iter()
                .any(|c| matches!(c, Command::LoadWeights(_)))
            {
                self.apply_weights_commands(commands);
                return Step::Reload;
            }
            self.update_status();
            self.report_done();
            return Step::Continue;
        };
        for plan in self.recycled.try_iter() {
            if let Some((engine, _)) = engines.live.as_mut() {
                engine.recycle(plan);
            }
        }
        let mode = self.settings.mode;
        self.apply_saved_session(engines);
        if let Some(path) = self.melody_file.take() {
            self.use_melody_file(engines, &path);
        }
        self.keep_capture_armed(mode);
        let offline = self.shared.offline.load(Ordering::Acquire);
        let coalesce = !offline && batch.len() > COALESCE_BACKLOG;
        let mut live_heard = false;
        for output in batch {
            if let Some(phrase) = self.capture.push(output) {
                self.captured(engines, phrase);
            }
            if mode != Mode::Live {
                continue;
            }
            match *output {
                QuantizerOutput::PhraseStart { .. } => {
                    engines.live = self.start_live(engines.models, engines.live.take());
                    self.shared.set_live_frames(Vec::new());
                    self.shared.clear_live_melody();
                }
                QuantizerOutput::Frame { index, frame, .. } => {
                    self.shared
                        .push_live_melody(index, frame, LIVE_MELODY_FRAMES);
                }
                QuantizerOutput::PhraseEnd { .. } => {}
            }
            if let Some((engine, _)) = engines.live.as_mut() {
                engine.push(output);
                let frame = matches!(output, QuantizerOutput::Frame { .. });
                if frame && !coalesce {
                    self.replan(engine, engines.models.vocabulary());
                } else {
                    live_heard |= frame;
                }
            }
        }
        if live_heard {
            if let Some((engine, _)) = engines.live.as_mut() {
                self.replan(engine, engines.models.vocabulary());
            }
        }
        for command in commands {
            if let Command::LoadWeights(_) = command {
                self.apply_weights_commands(commands);
                return Step::Reload;
            }
            self.command(engines, command);
        }
        self.resend_on_voicing_change(engines);
        self.flush_unsent();
        self.update_status();
        self.report_done();
        Step::Continue
    }

    /// Tells an offline audio side that everything received so far is handled.
    fn report_done(&self) {
        self.shared
            .frames_done
            .store(self.received, Ordering::Release);
    }

    /// Appends `message` to the [`RuntimeFiles::chord_log`] file, if one was asked for.
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
            self.host
                .log(&format!("Comper: could not write {}: {e}", path.display()));
        }
    }

    /// Sends a plan to the audio side. In real time a full channel hands the message back (the
    /// audio thread is behind; the caller keeps or recycles it); offline the worker waits for
    /// room, because a dropped plan would be heard in the render.
    fn send_to_audio(&self, message: ToAudio) -> Result<(), ToAudio> {
        self.log_plan(&message);
        if self.shared.offline.load(Ordering::Acquire) {
            return self
                .plans
                .send_timeout(message, OFFLINE_SEND_LIMIT)
                .map_err(|e| e.into_inner());
        }
        self.plans.try_send(message).map_err(|e| e.into_inner())
    }

    /// Uses a melody file's first bars as the captured phrase.
    fn use_melody_file(&mut self, engines: &Engines<'_>, path: &Path) {
        match read_melody(path, MelodyChoice::Auto) {
            Ok(melody) => {
                let bars = self.settings.phrase_bars;
                let bar = frames_per_bar(melody.time_signature);
                let phrase = Phrase::from_notes(&melody.notes, melody.time_signature, bars * bar);
                self.capture.disarm();
                self.captured(
                    engines,
                    CapturedPhrase {
                        melody: phrase.melody,
                        first_frame: 0,
                        time_signature: melody.time_signature,
                    },
                );
            }
            Err(e) => self.error = Some(format!("melody file {}: {e}", path.display())),
        }
    }

    fn apply_weights_commands(&mut self, commands: &[Command]) {
        for command in commands {
            if let Command::LoadWeights(path) = command {
                self.host.session().weights_path = path.clone();
            }
        }
    }

    fn start_live<'m>(
        &mut self,
        models: &'m ModelPair,
        previous: Option<(LiveEngine<'m>, LiveConfig)>,
    ) -> Option<(LiveEngine<'m>, LiveConfig)> {
        let config = self.settings.live;
        if let Some((engine, old)) = previous {
            if old == config {
                return Some((engine, old));
            }
        }
        match models.live_engine(config) {
            Ok(engine) => Some((engine, config)),
            Err(e) => {
                self.error = Some(format!("live mode cannot start: {e}"));
                None
            }
        }
    }

    fn replan(&mut self, engine: &mut LiveEngine<'_>, vocab: &Vocabulary) {
        let start = Instant::now();
        match engine.replan() {
            Ok(Some(mut plan)) => {
                plan.replan_ms = start.elapsed().as_secs_f64() * 1e3;
                self.publish_live(&plan, vocab);
                transpose_plan(&mut plan, self.settings.voicing.octave);
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

    fn captured(&mut self, engines: &Engines<'_>, phrase: CapturedPhrase) {
        {
            let mut session = self.host.session();
            session.melody = phrase.melody;
            session.time_signature = phrase.time_signature;
            session.first_frame = phrase.first_frame;
            session.options.clear();
            session.locked.clear();
            session.selected = 0;
        }
        self.regenerate(engines, None);
    }

    /// Samples options for the captured phrase: all of them, or only `only`.
    fn regenerate(&mut self, engines: &Engines<'_>, only: Option<usize>) {
        let (melody, time_signature, locked_names) = {
            let session = self.host.session();
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
        let max_frames = engines.models.harmonizer().max_frames() / bar * bar;
        let melody: Vec<MelodyFrame> = melody.into_iter().take(max_frames.max(bar)).collect();
        let locked = match chords_in_vocabulary(&locked_names, engines.models.vocabulary()) {
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
        let sampling = self.settings.sampling;
        let result = suggest(
            engines.models.harmonizer(),
            &phrase,
            &locked,
            count,
            &sampling,
            &self.settings.guide,
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
                frames: chords_by_name(&s.frames, engines.models.vocabulary()),
                log_likelihood: s.log_likelihood,
                melody_fit: s.melody_fit,
                description: s.description.clone(),
            })
            .collect();
        {
            let mut session = self.host.session();
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
        self.send_loop(engines);
    }

    fn command(&mut self, engines: &Engines<'_>, command: &Command) {
        match *command {
            Command::Select(index) => {
                let changed = {
                    let mut session = self.host.session();
                    let valid = index < session.options.len() && session.selected != index;
                    if valid {
                        session.selected = index;
                    }
                    valid
                };
                if changed {
                    self.send_loop(engines);
                }
            }
            Command::Regenerate => self.regenerate(engines, None),
            Command::RegenerateOne(index) => {
                self.regenerate(engines, Some(index));
            }
            Command::Recapture => {
                {
                    let mut session = self.host.session();
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
        let mut session = self.host.session();
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
    fn apply_saved_session(&mut self, engines: &Engines<'_>) {
        let generation = self.host.session_generation();
        if generation == self.applied_generation {
            return;
        }
        self.applied_generation = generation;
        let usable = {
            let session = self.host.session();
            session.has_options()
                && session
                    .options
                    .iter()
                    .map(|o| &o.frames)
                    .chain(std::iter::once(&session.locked))
                    .all(|frames| chords_in_vocabulary(frames, engines.models.vocabulary()).is_ok())
        };
        if usable {
            self.capture.disarm();
            self.send_loop(engines);
        } else {
            let mut session = self.host.session();
            if session.has_options() {
                self.host.log(
                    "Comper: the saved options use chords this model does not know; capturing anew",
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
        let has_options = self.host.session().has_options();
        let progress = self.capture.progress();
        match mode {
            Mode::Live if progress != CaptureProgress::Off => self.capture.disarm(),
            Mode::Suggest if !has_options && progress == CaptureProgress::Off => {
                self.capture.arm(self.settings.phrase_bars);
            }
            _ => {}
        }
    }

    fn resend_on_voicing_change(&mut self, engines: &Engines<'_>) {
        let choice = self.settings.voicing;
        if self.sent_voicing.is_some_and(|sent| sent != choice) {
            self.send_loop(engines);
        }
    }

    /// Sends the selected option, voiced with the current settings, to the audio thread.
    fn send_loop(&mut self, engines: &Engines<'_>) {
        let choice = self.settings.voicing;
        let plan = {
            let session = self.host.session();
            let Some(option) = session.options.get(session.selected) else {
                return;
            };
            let Ok(frames) = chords_in_vocabulary(&option.frames, engines.models.vocabulary())
            else {
                return;
            };
            loop_plan(
                &frames,
                session.first_frame,
                engines.models.vocabulary(),
                &engines.table,
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
        } else if self.settings.mode == Mode::Live {
            WorkerStatus::Jamming
        } else {
            match self.capture.progress() {
                CaptureProgress::Recording { bar, of } => WorkerStatus::Capturing { bar, of },
                CaptureProgress::Armed => WorkerStatus::Listening,
                CaptureProgress::Off if self.host.session().has_options() => WorkerStatus::Ready,
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
