//! A small built-in polyphonic synth that sounds Comper's chords on the plugin's stereo output,
//! for hosts that pass no MIDI out of a plugin (Reason, Ableton Live).
//!
//! It runs on the audio thread: everything is allocated in [`Synth::new`], and every later call
//! does bounded work without allocating, locking or touching I/O.
//!
//! # The voice
//! Each of the [`MAX_VOICES`] voices plays two slightly detuned PolyBLEP sawtooth oscillators,
//! one weighted to each side for a little stereo width, through a gentle two-pole low-pass whose
//! cutoff follows the key, the velocity and the envelope (soft notes and decaying notes are
//! darker), shaped by an attack / decay-to-sustain / release envelope. Velocity sets the envelope
//! peak, so a retrigger at another velocity glides instead of jumping.
//!
//! # Clicks
//! Nothing jumps: a retrigger restarts the attack from the current level, a release decays
//! exponentially, and a stolen voice fades out linearly over [`STEAL_FADE_SECONDS`] before its
//! new note starts.
//!
//! # Sample accuracy
//! All state advances per sample, so rendering a block in one call or in many slices (split at
//! event offsets) gives bit-identical output.

use std::f32::consts::PI;

/// How many notes sound at once; a further note steals a voice.
pub const MAX_VOICES: usize = 16;

/// Used when the host reports a sample rate that is not a positive finite number.
pub const FALLBACK_SAMPLE_RATE: f32 = 48_000.0;
/// Lowest and highest sample rates taken as given; others are clamped into this range.
const SAMPLE_RATE_RANGE: (f32, f32) = (1_000.0, 1_536_000.0);

/// Linear rise time from silence to the peak.
pub const ATTACK_SECONDS: f32 = 0.02;
/// Time constant of the exponential decay from the peak to the sustain level.
pub const DECAY_SECONDS: f32 = 0.6;
/// Sustain level as a fraction of the velocity's peak.
pub const SUSTAIN_LEVEL: f32 = 0.7;
/// Time a released note takes to fall from full level to silence (`SILENCE_LEVEL`), when it is freed.
pub const RELEASE_SECONDS: f32 = 0.5;
/// Length of the linear fade-out of a stolen voice before its new note starts.
pub const STEAL_FADE_SECONDS: f32 = 0.004;

/// Envelope level below which a releasing voice is inaudible (-80 dB) and is freed.
const SILENCE_LEVEL: f32 = 1e-4;
/// Gain of one voice at full velocity: eight voices peaking together in phase stay below 1.0.
const VOICE_GAIN: f32 = 0.115;
/// Envelope peak at velocity 0; velocity 1 peaks at 1.0.
const QUIETEST_PEAK: f32 = 0.25;
/// Detune of each oscillator from the note, in cents (one up, one down).
const DETUNE_CENTS: f32 = 7.0;
/// Share of an oscillator in its own side; the rest goes to the other side.
const NEAR_SIDE_SHARE: f32 = 0.72;
/// Cutoff = key × `CUTOFF_KEY_RATIO` + `CUTOFF_BASE_HZ` + `CUTOFF_BRIGHT_HZ` × level × velocity.
const CUTOFF_KEY_RATIO: f32 = 2.0;
const CUTOFF_BASE_HZ: f32 = 400.0;
const CUTOFF_BRIGHT_HZ: f32 = 3_000.0;
/// Highest cutoff as a fraction of the sample rate, where the cheap coefficient is still close.
const MAX_CUTOFF_RATIO: f32 = 0.2;
/// Highest oscillator frequency as a fraction of the sample rate.
const MAX_FREQUENCY_RATIO: f32 = 0.45;

/// Per-sample constants derived from the sample rate.
#[derive(Debug, Clone, Copy)]
struct Coefficients {
    sample_rate: f32,
    attack_step: f32,
    decay_factor: f32,
    release_factor: f32,
    fade_samples: f32,
    /// π / sample rate: turns a cutoff in Hz into the filter's prewarped gain (small-angle tan).
    pi_over_rate: f32,
    max_cutoff_hz: f32,
}

impl Coefficients {
    fn new(sample_rate: f32) -> Self {
        let sample_rate = if sample_rate.is_finite() && sample_rate > 0.0 {
            sample_rate.clamp(SAMPLE_RATE_RANGE.0, SAMPLE_RATE_RANGE.1)
        } else {
            FALLBACK_SAMPLE_RATE
        };
        let samples = |seconds: f32| (seconds * sample_rate).max(1.0);
        Self {
            sample_rate,
            attack_step: 1.0 / samples(ATTACK_SECONDS),
            decay_factor: (-1.0 / samples(DECAY_SECONDS)).exp(),
            release_factor: (SILENCE_LEVEL.ln() / samples(RELEASE_SECONDS)).exp(),
            fade_samples: samples(STEAL_FADE_SECONDS),
            pi_over_rate: PI / sample_rate,
            max_cutoff_hz: MAX_CUTOFF_RATIO * sample_rate,
        }
    }
}

/// A sawtooth with PolyBLEP corrections at its wrap, which keeps aliasing low for a pad.
#[derive(Debug, Clone, Copy, Default)]
struct Saw {
    phase: f32,
    increment: f32,
    inverse_increment: f32,
}

impl Saw {
    fn start(&mut self, frequency_hz: f32, phase: f32, coefficients: &Coefficients) {
        let ratio = (frequency_hz / coefficients.sample_rate).clamp(1e-7, MAX_FREQUENCY_RATIO);
        self.phase = phase;
        self.increment = ratio;
        self.inverse_increment = 1.0 / ratio;
    }

    fn next(&mut self) -> f32 {
        let t = self.phase;
        let correction = if t < self.increment {
            let x = t * self.inverse_increment;
            x + x - x * x - 1.0
        } else if t > 1.0 - self.increment {
            let x = (t - 1.0) * self.inverse_increment;
            x * x + x + x + 1.0
        } else {
            0.0
        };
        self.phase += self.increment;
        if self.phase >= 1.0 {
            self.phase -= 1.0;
        }
        2.0 * t - 1.0 - correction
    }
}

/// Two cascaded zero-delay one-pole low-passes (12 dB/octave, no overshoot on a step).
#[derive(Debug, Clone, Copy, Default)]
struct LowPass {
    first: f32,
    second: f32,
}

impl LowPass {
    /// Filters `input` with `g`, the one-pole gain G / (1 + G) for the current cutoff.
    fn next(&mut self, input: f32, g: f32) -> f32 {
        let v1 = (input - self.first) * g;
        let y1 = v1 + self.first;
        self.first = y1 + v1;
        let v2 = (y1 - self.second) * g;
        let y2 = v2 + self.second;
        self.second = y2 + v2;
        y2
    }
}

/// Where a voice's envelope is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Idle,
    Attack,
    /// Falling towards the sustain level, and then holding it.
    Decay,
    Release,
    /// Fading out fast because the voice was stolen; its `pending` note starts at silence.
    Steal,
}

/// A note waiting for a stolen voice to fade out.
#[derive(Debug, Clone, Copy)]
struct PendingNote {
    pitch: u8,
    velocity: f32,
}

#[derive(Debug, Clone, Copy)]
struct Voice {
    stage: Stage,
    pitch: u8,
    velocity: f32,
    /// Envelope peak for this velocity; the level includes the velocity.
    peak: f32,
    level: f32,
    fade_step: f32,
    /// Note-on order, for stealing the oldest voice.
    started: u64,
    pending: Option<PendingNote>,
    key_cutoff_hz: f32,
    left_saw: Saw,
    right_saw: Saw,
    left_filter: LowPass,
    right_filter: LowPass,
}

impl Voice {
    const IDLE: Self = Self {
        stage: Stage::Idle,
        pitch: 0,
        velocity: 0.0,
        peak: 0.0,
        level: 0.0,
        fade_step: 0.0,
        started: 0,
        pending: None,
        key_cutoff_hz: 0.0,
        left_saw: Saw {
            phase: 0.0,
            increment: 0.0,
            inverse_increment: 0.0,
        },
        right_saw: Saw {
            phase: 0.0,
            increment: 0.0,
            inverse_increment: 0.0,
        },
        left_filter: LowPass {
            first: 0.0,
            second: 0.0,
        },
        right_filter: LowPass {
            first: 0.0,
            second: 0.0,
        },
    };

    /// The pitch this voice answers to for note-off and retrigger, if any.
    fn owner(&self) -> Option<u8> {
        match self.stage {
            Stage::Idle => None,
            Stage::Steal => self.pending.map(|note| note.pitch),
            Stage::Attack | Stage::Decay | Stage::Release => Some(self.pitch),
        }
    }

    fn is_releasing(&self) -> bool {
        self.stage == Stage::Release || (self.stage == Stage::Steal && self.pending.is_none())
    }

    /// Starts a note from silence with fresh oscillator phases (set `started` first).
    fn start(&mut self, note: PendingNote, coefficients: &Coefficients) {
        let phases = starting_phases(self.started);
        let frequency = 440.0 * ((f32::from(note.pitch) - 69.0) / 12.0).exp2();
        let detune = (DETUNE_CENTS / 1200.0).exp2();
        self.pitch = note.pitch;
        self.level = 0.0;
        self.left_saw
            .start(frequency / detune, phases.0, coefficients);
        self.right_saw
            .start(frequency * detune, phases.1, coefficients);
        self.left_filter = LowPass::default();
        self.right_filter = LowPass::default();
        self.key_cutoff_hz = frequency * CUTOFF_KEY_RATIO + CUTOFF_BASE_HZ;
        self.set_velocity(note.velocity);
        self.stage = Stage::Attack;
    }

    /// Restarts the attack from the current level, keeping the oscillators running.
    fn retrigger(&mut self, velocity: f32) {
        self.set_velocity(velocity);
        self.stage = Stage::Attack;
    }

    fn set_velocity(&mut self, velocity: f32) {
        self.velocity = velocity;
        self.peak = QUIETEST_PEAK + (1.0 - QUIETEST_PEAK) * velocity;
    }

    fn begin_steal(&mut self, note: PendingNote, coefficients: &Coefficients) {
        if self.stage != Stage::Steal {
            self.stage = Stage::Steal;
            self.fade_step = self.level / coefficients.fade_samples;
        }
        self.pending = Some(note);
    }

    fn release(&mut self) {
        match self.stage {
            Stage::Attack | Stage::Decay => self.stage = Stage::Release,
            Stage::Steal => self.pending = None,
            Stage::Idle | Stage::Release => {}
        }
    }

    /// Advances the envelope one sample; returns true when a pending note should start now.
    fn advance_envelope(&mut self, coefficients: &Coefficients) -> bool {
        match self.stage {
            Stage::Idle => {}
            Stage::Attack => {
                // A retrigger softer than the current level decays from where it is.
                if self.level >= self.peak {
                    self.stage = Stage::Decay;
                } else {
                    self.level = (self.level + coefficients.attack_step).min(self.peak);
                }
            }
            Stage::Decay => {
                let sustain = self.peak * SUSTAIN_LEVEL;
                self.level = sustain + (self.level - sustain) * coefficients.decay_factor;
            }
            Stage::Release => {
                self.level *= coefficients.release_factor;
                if self.level < SILENCE_LEVEL {
                    self.silence();
                }
            }
            Stage::Steal => {
                self.level -= self.fade_step;
                if self.level <= 0.0 {
                    self.level = 0.0;
                    return true;
                }
            }
        }
        false
    }

    fn silence(&mut self) {
        self.stage = Stage::Idle;
        self.level = 0.0;
        self.pending = None;
    }

    /// One stereo sample at the current envelope level.
    fn next_sample(&mut self, coefficients: &Coefficients) -> (f32, f32) {
        let cutoff = (self.key_cutoff_hz + CUTOFF_BRIGHT_HZ * self.level * self.velocity)
            .min(coefficients.max_cutoff_hz);
        let gain = cutoff * coefficients.pi_over_rate;
        let g = gain / (1.0 + gain);
        let a = self.left_saw.next();
        let b = self.right_saw.next();
        let far = 1.0 - NEAR_SIDE_SHARE;
        let left = self.left_filter.next(NEAR_SIDE_SHARE * a + far * b, g);
        let right = self.right_filter.next(far * a + NEAR_SIDE_SHARE * b, g);
        let amplitude = self.level * VOICE_GAIN;
        (left * amplitude, right * amplitude)
    }
}

/// A 16-voice stereo pad synth for sounding chords on the audio thread without allocating.
#[derive(Debug, Clone)]
pub struct Synth {
    coefficients: Coefficients,
    voices: [Voice; MAX_VOICES],
    note_ons: u64,
}

impl Synth {
    /// A silent synth for `sample_rate` (a non-positive or non-finite rate means 48 kHz).
    pub fn new(sample_rate: f32) -> Self {
        Self {
            coefficients: Coefficients::new(sample_rate),
            voices: [Voice::IDLE; MAX_VOICES],
            note_ons: 0,
        }
    }

    /// Follows a host sample-rate change; every voice goes silent, since its pitch and envelope
    /// were computed for the old rate.
    pub fn set_sample_rate(&mut self, sample_rate: f32) {
        self.coefficients = Coefficients::new(sample_rate);
        self.reset();
    }

    /// Starts `pitch` (0..=127, others ignored) at `velocity` (clamped to 0..=1, NaN is 0).
    /// A pitch already sounding is retriggered on its own voice; with every voice busy, the
    /// releasing voice nearest silence (the one released longest ago) is stolen, else the
    /// oldest note's voice, after a fade of [`STEAL_FADE_SECONDS`].
    pub fn note_on(&mut self, pitch: u8, velocity: f32) {
        if pitch > 127 {
            return;
        }
        let velocity = if velocity.is_nan() {
            0.0
        } else {
            velocity.clamp(0.0, 1.0)
        };
        self.note_ons = self.note_ons.wrapping_add(1);
        let started = self.note_ons;
        let note = PendingNote { pitch, velocity };
        let coefficients = self.coefficients;
        if let Some(voice) = self.voices.iter_mut().find(|v| v.owner() == Some(pitch)) {
            voice.started = started;
            match voice.pending.as_mut() {
                Some(pending) => pending.velocity = velocity,
                None => voice.retrigger(velocity),
            }
            return;
        }
        if let Some(voice) = self.voices.iter_mut().find(|v| v.stage == Stage::Idle) {
            voice.started = started;
            voice.start(note, &coefficients);
            return;
        }
        let quietest_releasing = self
            .voices
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_releasing())
            .min_by(|(_, a), (_, b)| a.level.total_cmp(&b.level))
            .map(|(index, _)| index);
        let oldest = || {
            self.voices
                .iter()
                .enumerate()
                .min_by_key(|(_, v)| v.started)
                .map(|(index, _)| index)
        };
        if let Some(voice) = quietest_releasing
            .or_else(oldest)
            .and_then(|index| self.voices.get_mut(index))
        {
            voice.started = started;
            voice.begin_steal(note, &coefficients);
        }
    }

    /// Releases `pitch`, which then fades over [`RELEASE_SECONDS`].
    pub fn note_off(&mut self, pitch: u8) {
        if let Some(voice) = self
            .voices
            .iter_mut()
            .find(|v| v.owner() == Some(pitch) && !v.is_releasing())
        {
            voice.release();
        }
    }

    /// Releases every note, for a transport stop or loop wrap.
    pub fn release_all(&mut self) {
        for voice in &mut self.voices {
            voice.release();
        }
    }

    /// Silences every voice at once, for a plugin reset or deactivation.
    pub fn reset(&mut self) {
        for voice in &mut self.voices {
            voice.silence();
        }
    }

    /// Adds the synth's output to `left` and `right` (mixing into what is there), for as many
    /// samples as the shorter slice holds.
    pub fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        let coefficients = self.coefficients;
        for voice in self.voices.iter_mut().filter(|v| v.stage != Stage::Idle) {
            for (l, r) in left.iter_mut().zip(right.iter_mut()) {
                if voice.advance_envelope(&coefficients) {
                    match voice.pending.take() {
                        Some(note) => voice.start(note, &coefficients),
                        None => voice.silence(),
                    }
                }
                if voice.stage == Stage::Idle {
                    break;
                }
                let (sample_left, sample_right) = voice.next_sample(&coefficients);
                *l += sample_left;
                *r += sample_right;
            }
        }
    }

    /// Voices still making sound (including releasing and fading ones).
    pub fn active_voices(&self) -> usize {
        self.voices
            .iter()
            .filter(|v| v.stage != Stage::Idle)
            .count()
    }
}

/// Two well-spread starting phases in 0..1 for note number `started`, so the notes of a chord do
/// not start in phase (which would add up to a loud first cycle). Derived from the note number
/// alone, so output does not depend on how a block is sliced.
fn starting_phases(started: u64) -> (f32, f32) {
    let mut x = started.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    let unit = |bits: u64| (bits & 0xFF_FFFF) as f32 / (1u32 << 24) as f32;
    (unit(x), unit(x >> 24))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: f32 = 48_000.0;

    fn owners(synth: &Synth) -> Vec<u8> {
        synth.voices.iter().filter_map(Voice::owner).collect()
    }

    fn render_samples(synth: &mut Synth, samples: usize) {
        let mut left = vec![0.0; samples];
        let mut right = vec![0.0; samples];
        synth.render(&mut left, &mut right);
    }

    fn hold_sixteen_notes(synth: &mut Synth) {
        for pitch in 40..40 + MAX_VOICES as u8 {
            synth.note_on(pitch, 1.0);
            render_samples(synth, 10);
        }
    }

    #[test]
    fn with_every_voice_held_the_oldest_note_is_stolen() {
        let mut synth = Synth::new(RATE);
        hold_sixteen_notes(&mut synth);
        synth.note_on(70, 1.0);
        let owners = owners(&synth);
        assert!(!owners.contains(&40) && owners.contains(&41) && owners.contains(&70));
        render_samples(&mut synth, 1_000);
        assert!(synth
            .voices
            .iter()
            .any(|v| v.pitch == 70 && v.stage != Stage::Steal));
    }

    #[test]
    fn a_releasing_voice_is_stolen_before_a_held_one() {
        let mut synth = Synth::new(RATE);
        hold_sixteen_notes(&mut synth);
        synth.note_off(47);
        render_samples(&mut synth, 100);
        synth.note_off(45); // released later, so louder than 47
        synth.note_on(70, 1.0);
        let owners = owners(&synth);
        assert!(owners.contains(&40) && owners.contains(&45) && !owners.contains(&47));
    }

    #[test]
    fn a_note_released_while_waiting_for_its_stolen_voice_never_starts() {
        let mut synth = Synth::new(RATE);
        hold_sixteen_notes(&mut synth);
        synth.note_on(70, 1.0);
        synth.note_off(70);
        render_samples(&mut synth, 1_000);
        assert_eq!(synth.active_voices(), MAX_VOICES - 1);
        assert!(!owners(&synth).contains(&70));
    }

    /// A click is a jump in a voice's envelope: whatever happens, no voice's level may move by
    /// more than the steal fade's step in one sample, and a new note starts only from silence.
    #[test]
    fn envelopes_never_jump() {
        let mut synth = Synth::new(RATE);
        let largest_step = 1.0 / synth.coefficients.fade_samples + 1e-6;
        let mut levels = [0.0_f32; MAX_VOICES];
        let mut check = |synth: &mut Synth, samples: usize| {
            for _ in 0..samples {
                render_samples(synth, 1);
                for (voice, previous) in synth.voices.iter().zip(levels.iter_mut()) {
                    let step = (voice.level - *previous).abs();
                    assert!(step <= largest_step, "jump of {step} in {voice:?}");
                    *previous = voice.level;
                }
            }
        };
        synth.note_on(60, 0.3);
        check(&mut synth, 500);
        synth.note_on(60, 1.0); // retrigger, louder, mid-attack
        check(&mut synth, 3_000);
        synth.note_on(60, 0.1); // retrigger, softer than the level
        check(&mut synth, 3_000);
        synth.note_off(60);
        check(&mut synth, 2_000);
        synth.note_on(60, 0.8); // retrigger during the release
        check(&mut synth, 2_000);
        for pitch in 40..80 {
            synth.note_on(pitch, 1.0); // steals, some of them mid-fade
            check(&mut synth, 37);
        }
        check(&mut synth, 3_000);
        synth.release_all();
        check(&mut synth, 30_000);
        assert_eq!(synth.active_voices(), 0);
    }
}
