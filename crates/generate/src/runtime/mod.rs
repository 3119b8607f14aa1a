//! The runtime every product plays through: one inference state machine ([`Runtime`]) fed by
//! the audio side's quantizer outputs and the user's [`Command`]s over bounded channels
//! ([`comper_realtime::link`]), answering with voiced plans ([`ToAudio`]).
//!
//! [`Command`]: comper_realtime::link::Command
//! [`ToAudio`]: comper_realtime::link::ToAudio
//!
//! * The plugin runs it on its inference thread ([`spawn`]) with its parameters and saved
//!   session as the [`Host`].
//! * `comper jam` ([`simulate_jam`]) drives the same state machine step by step beside the real
//!   quantizer and scheduler, with a simulated clock.
//! * `comper serve` answers stateless requests (ReaLJam's `/play` carries the whole session), so
//!   it uses the runtime's [`ModelPair`] and the same engines (`LiveEngine`, `suggest`) without
//!   the state machine's capture and session.

pub mod capture;
pub mod loop_plan;
pub mod models;
pub mod session;
pub mod simulate;
mod worker;

pub use loop_plan::VoicingChoice;
pub use models::ModelPair;
pub use session::{Session, SessionOption};
pub use simulate::{simulate_jam, JamReport, JamSettings, JamSummary, PlayedNote, ReplanTime};
pub use worker::{
    spawn, Engines, FixedHost, Host, Mode, Runtime, RuntimeFiles, Settings, Step, COALESCE_BACKLOG,
    OPTION_COUNT,
};
