//! Comper as a CLAP / VST3 plugin (and a standalone app): it hears the melody on its MIDI input,
//! and plays chords from the ReaLchords-style model as MIDI notes and through a small built-in
//! synth on its stereo output (for hosts that pass no MIDI out of a plugin).
//!
//! Threads: the host's audio thread runs [`audio::AudioEngine`] inside `process()`; the
//! inference thread ([`worker`]) runs the shared runtime ([`comper_generate::runtime`]), which owns
//! the models; [`comper_realtime::link`] connects them. Parameters and the saved session live in
//! [`params`] and [`session`].

pub mod audio;
pub mod clock;
pub mod demo;
pub mod drag;
pub mod export;
pub mod midi;
pub mod models;
pub mod panel;
pub mod params;
pub mod session;
pub mod worker;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::thread::JoinHandle;

use comper_realtime::frames::TimeSignature;
use comper_realtime::frames::FRAMES_PER_BEAT;
use comper_realtime::quantize::{self, Block};
use crossbeam_channel::{Receiver, Sender};
use nice_plug::prelude::*;

use audio::{AudioEngine, BlockSettings};
use comper_realtime::link;
use comper_realtime::link::{Command, Shared, WorkerStatus};
use params::ComperParams;

/// The plugin.
///
/// The audio engine and the inference thread are made at the first activation and live as long
/// as the plugin: hosts re-activate for every render or rate change (DawDreamer does per render),
/// and neither the loaded models nor the playing progression should go with it.
pub struct Comper {
    params: Arc<ComperParams>,
    shared: Arc<Shared>,
    audio: Option<AudioEngine>,
    worker: Option<JoinHandle<()>>,
    /// The panel's (and tests') way to the worker; lives as long as the plugin.
    commands: Sender<Command>,
    command_inbox: Receiver<Command>,
    /// A melody file played into the input ([`demo::PLAY_ENV`]).
    demo: Option<demo::DemoPlayer>,
}

impl Default for Comper {
    fn default() -> Self {
        let (commands, command_inbox) = link::command_channel();
        Self {
            params: Arc::new(ComperParams::from_env()),
            shared: Arc::new(Shared::default()),
            audio: None,
            worker: None,
            commands,
            command_inbox,
            demo: demo::DemoPlayer::from_env(),
        }
    }
}

impl Comper {
    /// Starts the inference thread if none runs (first activation, or it ended), linked to the
    /// audio engine.
    fn ensure_worker(&mut self, sample_rate: f32) {
        if self.worker.as_ref().is_some_and(|w| !w.is_finished()) && self.audio.is_some() {
            return;
        }
        self.join_worker();
        // Leave the host's audio threads a core (before the first generation builds the
        // model's pool; `COMPER_THREADS` overrides it).
        comper_model::set_default_threads(comper_model::plugin_default_threads());
        let (audio_link, worker_link) = link::link(self.command_inbox.clone());
        match self.audio.as_mut() {
            Some(audio) => audio.relink(audio_link),
            None => {
                let listen = self.settings().listen_frames;
                self.audio = Some(AudioEngine::new(
                    audio_link,
                    self.shared.clone(),
                    sample_rate,
                    listen,
                ));
            }
        }
        match worker::spawn(self.params.clone(), self.shared.clone(), worker_link) {
            Ok(handle) => self.worker = Some(handle),
            Err(e) => self.shared.set_status(WorkerStatus::Error(format!(
                "could not start the inference thread: {e}"
            ))),
        }
    }

    fn join_worker(&mut self) {
        if let Some(handle) = self.worker.take() {
            if handle.join().is_err() {
                nice_log!("Comper: the inference thread panicked while stopping");
            }
        }
    }

    fn settings(&self) -> BlockSettings {
        let p = &self.params;
        BlockSettings {
            mode: p.mode.value(),
            velocity: p.velocity.value().clamp(1, 127) as u8,
            channel: (p.midi_channel.value().clamp(1, 16) - 1) as u8,
            synth_on: p.synth_on.value(),
            bypass: p.bypass.value(),
            listen_frames: p.live_config().listen_beats * FRAMES_PER_BEAT,
        }
    }
}

/// The host's transport as the quantizer sees it.
fn block_of(transport: &Transport, len: usize) -> Block {
    let host = match (transport.tempo, transport.pos_beats()) {
        (Some(tempo), Some(beats)) => Some(quantize::Transport {
            tempo_bpm: tempo,
            beat_position: beats,
            playing: transport.playing,
            loop_range: transport.loop_range_beats(),
            time_signature: match (transport.time_sig_numerator, transport.time_sig_denominator) {
                (Some(n), Some(d)) if (1..=64).contains(&n) && (1..=64).contains(&d) => {
                    TimeSignature {
                        numerator: n as u8,
                        denominator: d as u8,
                    }
                }
                _ => TimeSignature::default(),
            },
        }),
        _ => None,
    };
    Block {
        transport: host,
        len_samples: u32::try_from(len).unwrap_or(u32::MAX),
        sample_rate: f64::from(transport.sample_rate),
    }
}

impl Plugin for Comper {
    const NAME: &'static str = "Comper";
    const VENDOR: &'static str = "Comper";
    const URL: &'static str = "https://github.com/comper-audio/comper";
    const EMAIL: &'static str = "hello@comper.invalid";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[AudioIOLayout {
        main_input_channels: None,
        main_output_channels: NonZeroU32::new(2),
        ..AudioIOLayout::const_default()
    }];
    const MIDI_INPUT: MidiConfig = MidiConfig::Basic;
    const MIDI_OUTPUT: MidiConfig = MidiConfig::Basic;

    type Editor = panel::PanelEditor;
    type SysExMessage = ();
    type BackgroundTask = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        let panel = panel::Panel::new(
            self.params.clone(),
            self.shared.clone(),
            self.commands.clone(),
        );
        Some(panel::PanelEditor::new(
            panel,
            self.params.editor_size.clone(),
        ))
    }

    fn activate(
        &mut self,
        _audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
        _context: &mut impl ActivateContext<Self>,
    ) -> bool {
        let offline = buffer_config.process_mode == ProcessMode::Offline;
        self.shared
            .offline
            .store(offline, std::sync::atomic::Ordering::Release);
        self.ensure_worker(buffer_config.sample_rate);
        if let Some(audio) = self.audio.as_mut() {
            audio.prepare(buffer_config.sample_rate, offline);
        }
        true
    }

    fn reset(&mut self) {
        if let Some(audio) = self.audio.as_mut() {
            audio.reset();
        }
    }

    fn deactivate(&mut self) {
        // The worker and the audio engine stay (see `Comper`); the next activation releases
        // whatever still sounds.
        if let Some(audio) = self.audio.as_mut() {
            audio.reset();
        }
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        let settings = self.settings();
        let thru = self.params.melody_thru.value() || settings.bypass;
        let block = block_of(context.transport(), buffer.samples());
        let Some(audio) = self.audio.as_mut() else {
            for channel in buffer.as_slice() {
                channel.fill(0.0);
            }
            return ProcessStatus::Normal;
        };
        while let Some(event) = context.next_event() {
            if let Some(note) = midi::note_from_host(&event) {
                if let Some(passed) = audio.hear(note, thru) {
                    let _ = context.try_send_event(midi::note_to_host(passed));
                }
            }
        }
        if let Some(demo) = &self.demo {
            demo.play(&block, &mut |key| audio.hear_key(key));
        }
        let gain = &self.params.synth_level.smoothed;
        let mut send = |note| {
            let _ = context.try_send_event(midi::note_to_host(note));
        };
        match buffer.as_slice() {
            [left, right, ..] => {
                audio.process(&block, settings, &mut send, left, right, || gain.next());
            }
            _ => audio.process(&block, settings, &mut send, &mut [], &mut [], || {
                gain.next()
            }),
        }
        ProcessStatus::Normal
    }
}

impl Drop for Comper {
    fn drop(&mut self) {
        // Dropping the audio side closes the worker's input, which ends it.
        self.audio = None;
        self.join_worker();
    }
}

impl ClapPlugin for Comper {
    const CLAP_ID: &'static str = "audio.comper.comper";
    const CLAP_DESCRIPTION: Option<&'static str> =
        Some("Listens to your melody and accompanies it with chords");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[
        ClapFeature::NoteEffect,
        ClapFeature::Instrument,
        ClapFeature::Synthesizer,
        ClapFeature::Stereo,
    ];
}

impl Vst3Plugin for Comper {
    const VST3_CLASS_ID: [u8; 16] = *b"ComperChordsAcmp";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] =
        &[Vst3SubCategory::Instrument, Vst3SubCategory::Synth];
}

nice_export_clap!(Comper);
nice_export_vst3!(Comper);
