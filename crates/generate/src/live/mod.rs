//! Live jamming: ReaLJam's listen-then-accompany loop, in-process.
//!
//! The shape is the plugin's: the audio thread runs the [`comper_realtime::quantize::Quantizer`]
//! and sends its outputs over a bounded channel (`try_send`, never blocking) to the inference
//! thread ([`crate::runtime`]), where a [`LiveEngine`] re-plans the next beats after every frame;
//! plans come back over another channel to the [`comper_realtime::schedule::Scheduler`], which
//! plays them at frame boundaries. [`crate::runtime::simulate`] drives the same path from a melody
//! file with a simulated clock (`comper jam`).
//!
//! # Sessions
//! A quantizer phrase is a session: the transport starting (or the free clock's first note)
//! begins one, a stop ends it, and a jump or a host loop wrap ends it and begins a new one — so a
//! looped section is listened to again before Comper plays along. Within a session:
//!
//! 1. **Listen** for `listen_beats`: no chords sound.
//! 2. **Intro**: `commit_beats` before the listening ends (ReaLJam: one beat before, enough for
//!    its network round trip; here the first plan, which also samples the intro, gets the same
//!    slack as every later one), the chords of the frames heard so far are filled in, so the
//!    model sees a chord history as if it had been playing. [`IntroMode::Sampled`] (the
//!    default) samples them at temperature 1, as ReaLJam's intro: with the offline
//!    encoder–decoder, as ReaLJam does, when the engine has one
//!    ([`LiveEngine::with_intro_model`]), else with the online model in one teacher-forced pass
//!    over the heard melody. [`IntroMode::Silence`] leaves them silent. These intro chords are
//!    context only; they never sound.
//! 3. **Accompany**: after every new frame the engine plans `lookahead` frames from the first
//!    frame not yet heard. Frames inside the commit window (planned `commit` frames ahead of an
//!    earlier plan's start) are fixed and teacher-forced while the model imagines the melody; the
//!    rest is sampled again ([`crate::sample::LivePlanner`], ReaLJam's steps 5–9). A plan made
//!    after `h` heard frames commits frames `h .. h + commit`; committed chords never change, and
//!    only committed chords are played (the rest is a preview).
//!
//! The context is trimmed to the model's maximum in jumps of four bars rather than ReaLJam's
//! one frame per re-plan, so between jumps the decoder cache is reused and a re-plan only pushes
//! the new frames and the plan (see `CONTEXT_HOP_FRAMES` in [`engine`]).
//!
//! # Timing
//! A plan reaches the audio side while up to `commit − 1` committed frames are still ahead of the
//! transport, so a re-plan may take that long before anything is late; when frames pile up
//! meanwhile the engine takes them all in one re-plan. A frame that comes due uncommitted is
//! *late*: the scheduler keeps the sounding chord. Known limitation: the engine then still
//! believes the planned chord was played for that frame (it hears no feedback from the audio
//! side), as ReaLJam's client does.

pub mod engine;

pub use engine::{ClientPlan, ClientTurn, LiveEngine};

use crate::sample::SampleError;
use comper_music::chord::VoicingRange;
use comper_music::harmony::GuideSettings;
use comper_music::progression::VoicingStyle;
use comper_realtime::frames::FRAMES_PER_BEAT;

/// How the chords of the listening period (the model's context, never played) are filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntroMode {
    /// Chord silence, as if Comper had been quiet (which it was).
    Silence,
    /// Chords sampled for the heard melody: by the offline model when the engine has one, else
    /// in one teacher-forced pass of the online model.
    #[default]
    Sampled,
}

/// Settings of a live session; lengths are in beats (4 frames each).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveConfig {
    /// Beats to listen before accompanying (ReaLJam: 8).
    pub listen_beats: u32,
    /// Beats planned ahead of the player (ReaLJam: 4).
    pub lookahead_beats: u32,
    /// Beats ahead that are fixed once planned (ReaLJam: 4; Comper: 1, so a chord is chosen
    /// having heard most of its bar's notes so far, see [`GuideContext::heard`]); at least 1
    /// and at most `lookahead_beats`. The frame due next is always committed, so a late re-plan
    /// only delays changes further ahead.
    ///
    /// [`GuideContext::heard`]: comper_music::harmony::guide::GuideContext::heard
    pub commit_beats: u32,
    /// Sampling temperature of the live plans (ReaLJam: 0.8).
    pub temperature: f32,
    /// Frames between the points where a planned chord may change, counted from the host's
    /// beats (ReaLJam: 1, any 16th; see [`crate::sample::SamplingParams::change_grid`]).
    pub change_grid: usize,
    /// Seed of the sampler.
    pub seed: u64,
    pub intro: IntroMode,
    /// How planned chords become pitches (computed on the inference thread).
    pub voicing: VoicingStyle,
    pub range: VoicingRange,
    /// How the plans lean on the melody heard: its key and strong-beat changes (the cadence
    /// term is unused: a live session does not know where the phrase ends).
    pub guide: GuideSettings,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            listen_beats: 8,
            lookahead_beats: 4,
            commit_beats: 1,
            temperature: 0.8,
            change_grid: 1,
            seed: 0,
            intro: IntroMode::default(),
            voicing: VoicingStyle::default(),
            range: VoicingRange::default(),
            guide: GuideSettings::default(),
        }
    }
}

impl LiveConfig {
    /// Listening period in frames.
    pub fn listen_frames(&self) -> usize {
        self.listen_beats as usize * FRAMES_PER_BEAT as usize
    }

    /// Lookahead in frames (`L`).
    pub fn lookahead_frames(&self) -> usize {
        self.lookahead_beats as usize * FRAMES_PER_BEAT as usize
    }

    /// Commit window in frames (`K`).
    pub fn commit_frames(&self) -> usize {
        self.commit_beats as usize * FRAMES_PER_BEAT as usize
    }

    /// Rejects settings the loop cannot run with.
    pub fn validate(&self) -> Result<(), LiveError> {
        let bad = |msg: String| Err(LiveError::BadConfig(msg));
        if self.listen_beats == 0 {
            return bad("listen beats must be at least 1".into());
        }
        if self.lookahead_beats == 0 {
            return bad("lookahead beats must be at least 1".into());
        }
        if self.commit_beats == 0 || self.commit_beats > self.lookahead_beats {
            return bad(format!(
                "commit beats {} must be between 1 and the lookahead ({})",
                self.commit_beats, self.lookahead_beats
            ));
        }
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!("temperature {} must be ≥ 0", self.temperature));
        }
        if self.change_grid == 0 {
            return bad("the chord-change grid must be at least 1 frame".into());
        }
        Ok(())
    }
}

/// Why live jamming could not run.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("invalid live setting: {0}")]
    BadConfig(String),
    #[error("a lookahead of {lookahead} frames leaves no context in a model of {max} frames")]
    LookaheadTooLong { lookahead: usize, max: usize },
    #[error(transparent)]
    Sample(#[from] SampleError),
    #[error("{0}")]
    Runtime(String),
    #[error("invalid simulation setting: {0}")]
    BadSimulation(String),
}
