//! The plugin's inference thread: the shared runtime ([`comper_generate::runtime`]) with the
//! plugin's parameters, saved session and built-in models as its [`Host`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, MutexGuard};
use std::thread::JoinHandle;

use comper_generate::runtime::{self, Host, ModelPair, RuntimeFiles, Session, Settings};
use comper_realtime::link::{Shared, WorkerLink};

use crate::models::load_models;
use crate::params::ComperParams;

/// Environment variable naming a `.mid` file whose melody is used as if it had just been
/// captured (standalone use without a MIDI keyboard, and the panel's screenshot test).
pub const MELODY_ENV: &str = "COMPER_MELODY";
/// Environment variable naming a file to which every plan handed to the audio thread is
/// appended, one JSON object a line (see [`RuntimeFiles::chord_log`]): what the plugin says it
/// plays, for tests that check what a host rendered (and for bug reports).
pub const CHORD_LOG_ENV: &str = "COMPER_CHORD_LOG";

/// The runtime's view of the plugin.
struct PluginHost {
    params: Arc<ComperParams>,
}

impl Host for PluginHost {
    fn settings(&self) -> Settings {
        self.params.runtime_settings()
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        self.params.session.lock()
    }

    fn session_generation(&self) -> u64 {
        self.params.session.generation()
    }

    fn load_models(&self, weights: Option<&Path>) -> Result<ModelPair, String> {
        load_models(weights)
    }

    fn log(&self, message: &str) {
        nice_plug::nice_log!("{message}");
    }
}

/// Starts the inference thread.
pub fn spawn(
    params: Arc<ComperParams>,
    shared: Arc<Shared>,
    link: WorkerLink,
) -> std::io::Result<JoinHandle<()>> {
    let files = RuntimeFiles {
        melody: std::env::var_os(MELODY_ENV).map(PathBuf::from),
        chord_log: std::env::var_os(CHORD_LOG_ENV).map(PathBuf::from),
    };
    runtime::spawn(PluginHost { params }, shared, link, files)
}
