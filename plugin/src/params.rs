//! The host-automatable parameters and the persisted session. Everything a musician sets is here,
//! so the host saves it with the project.

use comper_generate::live::LiveConfig;
use comper_generate::runtime::{self, Settings, VoicingChoice};
use comper_generate::sample::SamplingParams;
use comper_music::chord::VoicingRange;
use comper_music::harmony::guide::{strength_for_variety, GuideSettings};
use comper_music::progression::VoicingStyle;
use nice_plug::prelude::*;

use crate::panel::PanelSize;
use crate::session::SessionStore;

/// What Comper does with the melody it hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum Mode {
    /// Capture a phrase, offer five progressions, loop the chosen one.
    #[name = "Suggest"]
    Suggest,
    /// Accompany while you play, planning a few beats ahead (ReaLJam).
    #[name = "Live"]
    Live,
}

/// Length of the phrase Suggest mode captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum PhraseBars {
    #[name = "2 bars"]
    Two,
    #[name = "4 bars"]
    Four,
    #[name = "8 bars"]
    Eight,
    #[name = "16 bars"]
    Sixteen,
}

impl PhraseBars {
    /// The number of bars.
    pub fn bars(self) -> usize {
        match self {
            Self::Two => 2,
            Self::Four => 4,
            Self::Eight => 8,
            Self::Sixteen => 16,
        }
    }
}

/// How chords become notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum Voicing {
    /// Root-position chord over a bass note, as ReaLJam plays them.
    #[name = "Plain"]
    Plain,
    /// Each chord moves as little as possible from the previous one.
    #[name = "Voice-led"]
    VoiceLed,
}

/// Where a chord may change. The model was trained on 16th-note frames and, sampled freely, starts
/// one chord in eight between beats, where lead sheets start one in thirty; holding chords
/// between the grid's points keeps the note-in-chord fit (`comper eval --change-grid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum ChordChanges {
    /// Any 16th note, as ReaLJam.
    #[name = "Any 16th"]
    Sixteenths,
    /// On 8th notes: on the beat or pushed half a beat ahead.
    #[name = "8th notes"]
    Eighths,
    /// Only on beats.
    #[name = "Beats"]
    Beats,
}

impl ChordChanges {
    /// Frames between change points.
    pub fn grid(self) -> usize {
        match self {
            Self::Sixteenths => 1,
            Self::Eighths => 2,
            Self::Beats => 4,
        }
    }
}

/// All parameters; `session` is the non-automatable state saved with the project.
#[derive(Params)]
pub struct ComperParams {
    /// The captured phrase, the options and the chosen one, saved with the project.
    #[persist = "session"]
    pub session: SessionStore,
    /// The panel's window size and zoom, saved with the project.
    #[persist = "editor-size"]
    pub editor_size: PanelSize,

    /// Suggest (capture a phrase, offer five options) or Live (accompany as you play).
    #[id = "mode"]
    pub mode: EnumParam<Mode>,
    /// Sampling temperature; its other side is how closely the chords follow the melody
    /// ([`strength_for_variety`]).
    #[id = "temperature"]
    pub temperature: FloatParam,
    /// Nucleus sampling: only the likeliest chords whose probabilities add up to this are drawn.
    #[id = "top_p"]
    pub top_p: FloatParam,
    /// Where a chord may change ([`ChordChanges`]).
    #[id = "changes"]
    pub chord_changes: EnumParam<ChordChanges>,
    /// Bars a Suggest capture lasts.
    #[id = "phrase"]
    pub phrase_bars: EnumParam<PhraseBars>,
    /// How chords become notes: voice-led from the last chord, or plain root position.
    #[id = "voicing"]
    pub voicing: EnumParam<Voicing>,
    /// Octaves the chord notes are moved by.
    #[id = "octave"]
    pub chord_octave: IntParam,
    /// Velocity of the chord notes (MIDI out and the synth).
    #[id = "velocity"]
    pub velocity: IntParam,
    /// MIDI channel of the chord notes (1–16).
    #[id = "channel"]
    pub midi_channel: IntParam,
    /// Whether the melody played in is passed on to the MIDI out.
    #[id = "thru"]
    pub melody_thru: BoolParam,
    /// Whether the built-in synth sounds the chords on the audio out (for hosts that drop a
    /// plugin's MIDI out).
    #[id = "synth"]
    pub synth_on: BoolParam,
    /// Output level of the built-in synth.
    #[id = "level"]
    pub synth_level: FloatParam,
    /// Live: beats Comper listens before it plays.
    #[id = "listen"]
    pub listen_beats: IntParam,
    /// Live: beats planned ahead of the player.
    #[id = "lookahead"]
    pub lookahead_beats: IntParam,
    /// Live: beats ahead that are fixed once planned (at most the lookahead).
    #[id = "commit"]
    pub commit_beats: IntParam,
    /// The host's bypass: MIDI passes through, no chords sound.
    #[id = "bypass"]
    pub bypass: BoolParam,
}

impl Default for ComperParams {
    fn default() -> Self {
        Self {
            session: SessionStore::default(),
            editor_size: PanelSize::default(),
            mode: EnumParam::new("Mode", Mode::Suggest),
            temperature: FloatParam::new("Variety", 0.8, FloatRange::Linear { min: 0.1, max: 1.5 })
                .with_step_size(0.05),
            top_p: FloatParam::new("Top-p", 1.0, FloatRange::Linear { min: 0.5, max: 1.0 })
                .with_step_size(0.01),
            chord_changes: EnumParam::new("Chord changes", ChordChanges::Eighths),
            phrase_bars: EnumParam::new("Phrase length", PhraseBars::Four),
            voicing: EnumParam::new("Voicing", Voicing::VoiceLed),
            chord_octave: IntParam::new("Chord octave", 0, IntRange::Linear { min: -2, max: 2 }),
            velocity: IntParam::new("Velocity", 90, IntRange::Linear { min: 1, max: 127 }),
            midi_channel: IntParam::new("MIDI channel", 1, IntRange::Linear { min: 1, max: 16 }),
            melody_thru: BoolParam::new("Melody thru", true),
            synth_on: BoolParam::new("Synth", true),
            synth_level: FloatParam::new(
                "Synth level",
                util::db_to_gain(-6.0),
                FloatRange::Skewed {
                    min: util::db_to_gain(-40.0),
                    max: util::db_to_gain(6.0),
                    factor: FloatRange::gain_skew_factor(-40.0, 6.0),
                },
            )
            .with_smoother(SmoothingStyle::Logarithmic(30.0))
            .with_unit(" dB")
            .with_value_to_string(formatters::v2s_f32_gain_to_db(1))
            .with_string_to_value(formatters::s2v_f32_gain_to_db()),
            listen_beats: IntParam::new("Listen beats", 8, IntRange::Linear { min: 1, max: 32 }),
            lookahead_beats: IntParam::new(
                "Lookahead beats",
                4,
                IntRange::Linear { min: 1, max: 8 },
            ),
            commit_beats: IntParam::new("Commit beats", 1, IntRange::Linear { min: 1, max: 8 }),
            bypass: BoolParam::new("Bypass", false).make_bypass(),
        }
    }
}

/// Environment variable choosing the mode a new instance starts in (`live`; anything else is
/// Suggest): for the standalone app, which has no host to set parameters, and its screenshots.
pub const MODE_ENV: &str = "COMPER_MODE";

impl ComperParams {
    /// The default parameters, starting in the mode [`MODE_ENV`] names.
    pub fn from_env() -> Self {
        let mode = match std::env::var(MODE_ENV).as_deref() {
            Ok("live") => Mode::Live,
            _ => Mode::Suggest,
        };
        Self {
            mode: EnumParam::new("Mode", mode),
            ..Self::default()
        }
    }

    /// Sampling settings for Suggest mode.
    pub fn sampling(&self) -> SamplingParams {
        let top_p = self.top_p.value();
        SamplingParams {
            temperature: self.temperature.value(),
            top_p: (top_p < 1.0).then_some(top_p),
            change_grid: self.chord_changes.value().grid(),
            ..SamplingParams::default()
        }
    }

    /// How strongly Suggest and Live lean on the melody: the other side of Variety.
    pub fn guide(&self) -> GuideSettings {
        GuideSettings::with_strength(strength_for_variety(self.temperature.value()))
    }

    /// The voicing style and the octave the chords move by.
    pub fn voicing(&self) -> VoicingChoice {
        let style = match self.voicing.value() {
            Voicing::Plain => VoicingStyle::Plain,
            Voicing::VoiceLed => VoicingStyle::VoiceLed,
        };
        VoicingChoice {
            style,
            octave: self.chord_octave.value().clamp(-2, 2) as i8,
        }
    }

    /// Everything the runtime works with, as set now.
    pub fn runtime_settings(&self) -> Settings {
        Settings {
            mode: match self.mode.value() {
                Mode::Suggest => runtime::Mode::Suggest,
                Mode::Live => runtime::Mode::Live,
            },
            phrase_bars: self.phrase_bars.value().bars(),
            sampling: self.sampling(),
            guide: self.guide(),
            voicing: self.voicing(),
            live: self.live_config(),
        }
    }

    /// Live-mode settings; the commit window is clamped to the lookahead.
    pub fn live_config(&self) -> LiveConfig {
        let lookahead = self.lookahead_beats.value().clamp(1, 8) as u32;
        let voicing = self.voicing().style;
        LiveConfig {
            listen_beats: self.listen_beats.value().clamp(1, 32) as u32,
            lookahead_beats: lookahead,
            commit_beats: (self.commit_beats.value().clamp(1, 8) as u32).min(lookahead),
            temperature: self.temperature.value(),
            change_grid: self.chord_changes.value().grid(),
            voicing,
            range: VoicingRange::default(),
            guide: self.guide(),
            ..LiveConfig::default()
        }
    }
}
