//! The runtime the plugin, `comper jam` and these tests share, driven on its own thread exactly
//! as the plugin's inference thread runs it: quantizer outputs and commands in, plans out.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use comper_generate::runtime::{spawn, FixedHost, Host, RuntimeFiles, Settings, OPTION_COUNT};
use comper_realtime::frames::MelodyFrame;
use comper_realtime::frames::TimeSignature;
use comper_realtime::link::{command_channel, link};
use comper_realtime::link::{AudioLink, Command, Shared, ToAudio, WorkerStatus};
use comper_realtime::quantize::{ClockSource, QuantizerOutput};
use comper_realtime::schedule::PlanUpdate;
use crossbeam_channel::Sender;

#[path = "common/tiny_model.rs"]
mod tiny_model;

const WAIT: Duration = Duration::from_secs(120);

struct Running {
    host: Arc<FixedHost>,
    shared: Arc<Shared>,
    audio: AudioLink,
    commands: Sender<Command>,
    thread: JoinHandle<()>,
}

impl Running {
    fn start(settings: Settings) -> Self {
        let (commands, inbox) = command_channel();
        let (audio, worker) = link(inbox);
        let host = Arc::new(FixedHost::new(settings, tiny_model::tiny_model().into()));
        let shared = Arc::new(Shared::default());
        let thread = spawn(
            Arc::clone(&host),
            shared.clone(),
            worker,
            RuntimeFiles::default(),
        )
        .unwrap();
        Self {
            host,
            shared,
            audio,
            commands,
            thread,
        }
    }

    fn send(&self, output: QuantizerOutput) {
        self.audio.frames.try_send(output).unwrap();
    }

    /// The next loop plan (Suggest mode), skipping other messages.
    fn next_loop(&self) -> PlanUpdate {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.audio.plans.recv_timeout(left).expect("a loop plan") {
                ToAudio::Loop(plan) => return plan,
                ToAudio::StopLoop | ToAudio::Live(_) => {}
            }
        }
    }

    fn wait_for_status(&self, wanted: &WorkerStatus) {
        let deadline = Instant::now() + WAIT;
        while &self.shared.status() != wanted {
            assert!(
                Instant::now() < deadline,
                "status {:?}, wanted {wanted:?}",
                self.shared.status()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(self) {
        drop(self.audio);
        self.thread.join().unwrap();
    }
}

fn phrase_start() -> QuantizerOutput {
    QuantizerOutput::PhraseStart {
        phrase: 0,
        first_frame: 0,
        time_signature: TimeSignature::default(),
        clock: ClockSource::Host,
    }
}

/// Frame `index` of a scale in quarter notes.
fn scale_frame(index: i64) -> QuantizerOutput {
    let pitch = [60, 62, 64, 65, 67, 69, 71, 72][(index / 4 % 8) as usize];
    let frame = if index % 4 == 0 {
        MelodyFrame::Onset(pitch)
    } else {
        MelodyFrame::Hold(pitch)
    };
    QuantizerOutput::Frame {
        phrase: 0,
        index,
        frame,
    }
}

#[test]
fn suggest_mode_captures_offers_options_and_loops_the_one_chosen() {
    let runtime = Running::start(Settings::suggest(2));
    runtime.wait_for_status(&WorkerStatus::Listening);
    runtime.send(phrase_start());
    // Two bars, and the first frame after them completes the capture.
    for index in 0..=32 {
        runtime.send(scale_frame(index));
    }
    let first = runtime.next_loop();
    assert_eq!((first.first_frame, first.frames.len()), (0, 32));
    assert!(first.frames.iter().all(|f| f.committed));
    runtime.wait_for_status(&WorkerStatus::Ready);
    {
        let session = runtime.host.session();
        assert_eq!(session.melody.len(), 32);
        assert_eq!(session.options.len(), OPTION_COUNT);
        assert_eq!(session.selected, 0);
    }

    runtime.commands.send(Command::Select(3)).unwrap();
    let chosen = runtime.next_loop();
    let session = runtime.host.session().clone();
    assert_eq!(session.selected, 3);
    let sounding: Vec<bool> = chosen
        .frames
        .iter()
        .map(|f| !f.voicing.is_empty())
        .collect();
    let named: Vec<bool> = session.options[3]
        .frames
        .iter()
        .map(Option::is_some)
        .collect();
    assert_eq!(sounding, named, "the loop plays the chosen option");

    runtime.commands.send(Command::Recapture).unwrap();
    runtime.wait_for_status(&WorkerStatus::Listening);
    assert!(runtime.host.session().options.is_empty());
    runtime.stop();
}

#[test]
fn every_frame_sent_is_reported_done_once_handled() {
    let mut settings = Settings::live(comper_generate::live::LiveConfig {
        listen_beats: 2,
        ..comper_generate::live::LiveConfig::default()
    });
    settings.live.seed = 3;
    let runtime = Running::start(settings);
    // An offline render: the runtime re-plans every frame and waits for room to send.
    runtime
        .shared
        .offline
        .store(true, std::sync::atomic::Ordering::Release);
    runtime.send(phrase_start());
    for index in 0..40 {
        runtime.send(scale_frame(index));
    }
    let mut plans = 0;
    let deadline = Instant::now() + WAIT;
    while runtime
        .shared
        .frames_done
        .load(std::sync::atomic::Ordering::Acquire)
        < 41
    {
        assert!(Instant::now() < deadline, "the runtime caught up");
        if let Ok(ToAudio::Live(plan)) = runtime.audio.plans.try_recv() {
            plans += 1;
            runtime.audio.recycle.try_send(plan).unwrap();
        }
    }
    while let Ok(message) = runtime.audio.plans.try_recv() {
        plans += usize::from(matches!(message, ToAudio::Live(_)));
    }
    // One plan per frame from the intro on: once four frames are heard, a commit window (one
    // beat) before the two listening beats end.
    assert_eq!(plans, 40 - 3, "plans");
    assert_eq!(runtime.shared.status(), WorkerStatus::Jamming);
    runtime.stop();
}
