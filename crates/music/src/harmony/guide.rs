//! Decoding that listens: a bias added to the model's chord logits at every chord decision, so
//! that sampled chords fit the melody notes they will sound under, stay in the melody's key,
//! change on strong beats and close on the tonic.
//!
//! The bias is a log-prior in nats, added before temperature scaling:
//! * **fit** — the mean log-probability of the melody notes ahead of the frame (until the next
//!   bar line, at least two beats) under a chord-tone emission model: a note is a chord tone
//!   with probability 0.8, spread over the chord's tones, else one of the other pitch classes.
//!   Notes on strong beats and note onsets count most, and nearer notes more than later ones.
//!   A four-note chord covers more but claims each tone less, so a triad that holds the melody
//!   beats a thirteenth that holds everything.
//! * **key** — a cost per chord tone outside the melody's key.
//! * **harmonic rhythm** — a cost for starting a chord off the bar line, growing as the metric
//!   level weakens; holding the sounding chord costs nothing.
//! * **cadence** — a bonus for the tonic chord in the phrase's last bar (Suggest only: a live
//!   session does not know where the phrase ends).
//!
//! The model's own log-likelihood of the chosen chords is still reported unbiased.

use crate::chord::ChordTable;
use crate::fit::chord_masks;
use crate::tokens::{Vocabulary, CHORD_BASE, SILENCE};
use comper_realtime::frames::MelodyFrame;

use super::key::Key;
use super::loops::Expected;
use super::meter::{Level, Meter};
use super::triad::Triad;

/// Probability that a melody note is a chord tone, in the fit term's emission model.
const CHORD_TONE_PROBABILITY: f64 = 0.8;
/// Weight of a held frame relative to the frame where its note starts.
const HOLD_WEIGHT: f64 = 0.7;
/// How much each later beat of the window counts relative to the one before.
const WINDOW_DECAY_PER_BEAT: f64 = 0.8;

/// How strongly each term leans on the model; all zero leaves the model's distribution as is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuideSettings {
    /// Nats per unit of mean note log-probability (the fit term's scale).
    pub fit: f32,
    /// Nats per chord tone outside the key.
    pub key: f32,
    /// Scale of the harmonic-rhythm costs (1 = the costs listed in [`change_cost`]).
    pub rhythm: f32,
    /// Nats of bonus for the tonic chord in the last bar; 0 when the phrase end is unknown.
    pub cadence: f32,
    /// Nats of bonus, at full belief, for the chord a repeating progression brings back (live
    /// sessions, [`ChordGuide::expect`]).
    pub repeat: f32,
}

impl GuideSettings {
    /// No guidance: the model samples as trained.
    pub const OFF: Self = Self {
        fit: 0.0,
        key: 0.0,
        rhythm: 0.0,
        cadence: 0.0,
        repeat: 0.0,
    };

    /// The guidance for a `fit_vs_surprise` position in 0..=1 (1 = fit the melody as closely
    /// as possible, 0 = the model alone): what the panel's Variety control moves along with the
    /// temperature.
    pub fn with_strength(strength: f32) -> Self {
        let s = strength.clamp(0.0, 1.0);
        Self {
            fit: 2.5 * s,
            key: 1.2 * s,
            rhythm: 0.5 * s,
            cadence: 2.0 * s,
            repeat: 2.0 * s,
        }
    }

    /// Every term multiplied by `factor`.
    pub fn scaled(self, factor: f32) -> Self {
        Self {
            fit: self.fit * factor,
            key: self.key * factor,
            rhythm: self.rhythm * factor,
            cadence: self.cadence * factor,
            repeat: self.repeat * factor,
        }
    }

    /// Whether every term is zero.
    pub fn is_off(&self) -> bool {
        *self == Self::OFF
    }
}

impl Default for GuideSettings {
    /// The musical default: the melody leads, the model still chooses among chords that fit.
    fn default() -> Self {
        Self::with_strength(DEFAULT_STRENGTH)
    }
}

/// The default position of [`GuideSettings::with_strength`].
pub const DEFAULT_STRENGTH: f32 = 0.8;

/// How much harder the guide must lean on the online decoder than on the offline model for the
/// same effect: the online model was fine-tuned for melody fit (`training/rl.py`) and is far more
/// certain of its chords, so a bias that reshapes the offline model's choice barely moves it.
/// Measured with `comper eval --melodies training/melodies/progressions --max-cases 40`: online
/// Suggest's best-of-five agreement 0.60 at scale 1, 0.69 at 1.6, 0.70 at 2.2; Live's 0.33 at 1,
/// 0.38 at 2.2, 0.34 at 4.
pub const ONLINE_MODEL_SCALE: f32 = 2.2;

/// The guide strength that goes with a Variety (temperature) setting: the panel's one control
/// runs from "fit the melody" (low Variety: cool sampling, strong guide) to "surprise me" (high
/// Variety: hot sampling, a light guide). The default Variety 0.8 gives [`DEFAULT_STRENGTH`].
pub fn strength_for_variety(variety: f32) -> f32 {
    (1.6 - variety).clamp(0.1, 1.0)
}

/// Nats it costs to start a chord on a frame of this metric level (before
/// [`GuideSettings::rhythm`]).
pub fn change_cost(level: Level) -> f32 {
    match level {
        Level::Downbeat => 0.0,
        Level::HalfBar => 0.3,
        Level::Beat => 1.0,
        Level::Eighth => 3.0,
        Level::Sixteenth => 4.0,
    }
}

/// What the guide knows about the phrase it accompanies.
#[derive(Debug, Clone)]
pub struct GuideContext<'a> {
    /// The melody as far as it is known.
    pub melody: &'a [MelodyFrame],
    pub meter: Meter,
    /// Frames the melody's frame 0 lies after a bar line (0 when it starts on one).
    pub phase: usize,
    /// The melody's key.
    pub key: Key,
    /// Frames the guide covers, `frames.start .. frames.end` (may run past the melody).
    pub frames: std::ops::Range<usize>,
    /// The frame where the phrase's last bar starts, when the phrase end is known.
    pub last_bar: Option<usize>,
    /// In a live session, how far the melody has been heard: a frame at or past it is judged
    /// against the notes already heard in its bar as well, since a chord usually holds for the
    /// bar and the notes ahead are not known yet.
    pub heard: Option<usize>,
}

/// Per-frame logit biases for every token of a vocabulary (zero outside the chord part).
#[derive(Debug, Clone)]
pub struct ChordGuide {
    start: usize,
    num_tokens: usize,
    /// Token id of the first chord onset (the first chord hold is [`CHORD_BASE`]).
    on_base: usize,
    bias: Vec<f32>,
}

impl ChordGuide {
    /// Computes the biases of `context.frames` for `vocab`'s chords.
    pub fn new(
        context: &GuideContext,
        vocab: &Vocabulary,
        table: &ChordTable,
        settings: &GuideSettings,
    ) -> Self {
        let num_tokens = vocab.num_tokens() as usize;
        let chords = ChordProfiles::new(vocab, table, context.key);
        let frames = context.frames.clone();
        let mut bias = vec![0.0f32; frames.len() * num_tokens];
        let on_base = vocab.chord_on_base() as usize;
        let hold_base = CHORD_BASE as usize;
        let mut fit = vec![0.0f64; chords.len()];
        for (row, frame) in bias.chunks_exact_mut(num_tokens.max(1)).zip(frames.clone()) {
            let from = match context.heard {
                Some(heard) if frame >= heard => {
                    let bar_start = ((frame + context.phase) / context.meter.bar
                        * context.meter.bar)
                        .saturating_sub(context.phase);
                    bar_start.min(frame)
                }
                _ => frame,
            };
            let window = note_window(context.melody, context.meter, context.phase, from, frame);
            for (c, value) in fit.iter_mut().enumerate() {
                *value = chords.fit(c, &window);
            }
            let cost = settings.rhythm * change_cost(context.meter.level(frame + context.phase));
            let in_last_bar = context.last_bar.is_some_and(|bar| frame >= bar);
            let mut lowest = f32::INFINITY;
            for (c, &f) in fit.iter().enumerate() {
                let mut base =
                    settings.fit * f as f32 - settings.key * chords.outside_key[c] as f32;
                if in_last_bar && chords.is_tonic[c] {
                    base += settings.cadence;
                }
                if let Some(hold) = row.get_mut(hold_base + c) {
                    *hold = base;
                }
                if let Some(onset) = row.get_mut(on_base + c) {
                    *onset = base - cost;
                }
                lowest = lowest.min(base);
            }
            // Silence under a melody is no accompaniment: never better than the worst chord.
            if let Some(silence) = row.get_mut(SILENCE as usize) {
                *silence = if window.total > 0.0 && lowest.is_finite() {
                    lowest - 0.4 * settings.fit
                } else {
                    0.0
                };
            }
        }
        Self {
            start: frames.start,
            num_tokens,
            on_base,
            bias,
        }
    }

    /// Leans frame `frame` toward the triads a repeating progression expects there:
    /// `nats × belief` for every chord whose triad is expected (`triads[c]` is chord `c`'s),
    /// held or started alike.
    pub fn expect(
        &mut self,
        frame: usize,
        expected: &Expected,
        triads: &[Option<Triad>],
        nats: f32,
    ) {
        let on_base = self.on_base;
        let Some(row) = self.bias_mut(frame) else {
            return;
        };
        for (c, triad) in triads.iter().enumerate() {
            let Some(belief) = expected
                .iter()
                .find(|(t, _)| Some(*t) == *triad)
                .map(|(_, b)| *b)
            else {
                continue;
            };
            let bonus = nats * belief as f32;
            for token in [CHORD_BASE as usize + c, on_base + c] {
                if let Some(value) = row.get_mut(token) {
                    *value += bonus;
                }
            }
        }
    }

    /// The biases of frame `frame` (one per token id), or `None` outside the covered frames.
    pub fn bias(&self, frame: usize) -> Option<&[f32]> {
        let row = frame.checked_sub(self.start)?;
        let from = row.checked_mul(self.num_tokens)?;
        self.bias.get(from..from + self.num_tokens)
    }

    /// The biases of frame `frame`, to change; `None` outside the covered frames.
    fn bias_mut(&mut self, frame: usize) -> Option<&mut [f32]> {
        let row = frame.checked_sub(self.start)?;
        let from = row.checked_mul(self.num_tokens)?;
        self.bias.get_mut(from..from + self.num_tokens)
    }

    /// The same biases numbered from `from` (frame `from` becomes frame 0): for a request whose
    /// melody starts at `from`.
    pub fn shifted(mut self, from: usize) -> Self {
        self.start = self.start.saturating_sub(from);
        self
    }

    /// Adds frame `frame`'s biases to `logits` (nothing outside the covered frames).
    pub fn apply(&self, frame: usize, logits: &[f32], out: &mut Vec<f32>) -> bool {
        out.clear();
        let Some(bias) = self.bias(frame) else {
            return false;
        };
        out.extend(logits.iter().zip(bias).map(|(&l, &b)| l + b));
        true
    }
}

/// The melody ahead of a frame, as weighted pitch-class totals.
struct NoteWindow {
    weights: [f64; 12],
    total: f64,
}

/// The notes a chord starting at `frame` would sound under: from `from` (normally `frame`) to the
/// next bar line, and at least two beats past `frame`. Notes before `frame` count as much as those
/// on it.
fn note_window(
    melody: &[MelodyFrame],
    meter: Meter,
    phase: usize,
    from: usize,
    frame: usize,
) -> NoteWindow {
    let next_bar = ((frame + phase) / meter.bar + 1) * meter.bar - phase;
    let end = next_bar.max(frame + 2 * meter.beat).min(melody.len());
    let mut weights = [0.0; 12];
    let mut total = 0.0;
    for t in from..end {
        let Some(note) = melody.get(t) else { break };
        let Some(pitch) = note.pitch() else { continue };
        let onset = if matches!(note, MelodyFrame::Onset(_)) {
            1.0
        } else {
            HOLD_WEIGHT
        };
        let beats_ahead = t.saturating_sub(frame) as f64 / meter.beat as f64;
        let w = meter.weight(t + phase) * onset * WINDOW_DECAY_PER_BEAT.powf(beats_ahead);
        weights[usize::from(pitch % 12)] += w;
        total += w;
    }
    NoteWindow { weights, total }
}

/// Per chord of the vocabulary: the emission log-probabilities and what the key thinks of it.
struct ChordProfiles {
    /// Per chord: log-probability of each pitch class as a melody note under it.
    emission: Vec<[f64; 12]>,
    outside_key: Vec<u32>,
    is_tonic: Vec<bool>,
}

impl ChordProfiles {
    fn new(vocab: &Vocabulary, table: &ChordTable, key: Key) -> Self {
        let masks = chord_masks(table);
        let tonic = Triad::tonic_of(key);
        let mut emission = Vec::with_capacity(masks.len());
        let mut outside_key = Vec::with_capacity(masks.len());
        let mut is_tonic = Vec::with_capacity(masks.len());
        for (i, &mask) in masks.iter().enumerate() {
            let tones = mask.count_ones().clamp(1, 11) as f64;
            let inside = (CHORD_TONE_PROBABILITY / tones).ln();
            let outside = ((1.0 - CHORD_TONE_PROBABILITY) / (12.0 - tones)).ln();
            let mut row = [0.0; 12];
            for (pc, value) in row.iter_mut().enumerate() {
                *value = if mask & (1 << pc) != 0 {
                    inside
                } else {
                    outside
                };
            }
            if mask == 0 {
                row = [f64::from(-30.0f32); 12];
            }
            emission.push(row);
            outside_key.push(if mask == 0 { 12 } else { key.outside(mask) });
            let triad = u16::try_from(i)
                .ok()
                .and_then(|index| table.tones(index))
                .and_then(Triad::of_tones);
            is_tonic.push(triad == Some(tonic) && mask.count_ones() <= 4);
        }
        debug_assert_eq!(emission.len(), vocab.num_chords());
        Self {
            emission,
            outside_key,
            is_tonic,
        }
    }

    fn len(&self) -> usize {
        self.emission.len()
    }

    /// Mean log-probability of the window's notes under chord `c` (0 without notes).
    fn fit(&self, c: usize, window: &NoteWindow) -> f64 {
        if window.total <= 0.0 {
            return 0.0;
        }
        let Some(emission) = self.emission.get(c) else {
            return 0.0;
        };
        let sum: f64 = emission
            .iter()
            .zip(&window.weights)
            .map(|(lp, w)| lp * w)
            .sum();
        sum / window.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::TokenId;
    use comper_realtime::frames::TimeSignature;

    fn vocab() -> Vocabulary {
        Vocabulary::new(
            ["C", "F", "G7", "C13", "Db"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
        .unwrap()
    }

    fn held(pitch: u8, frames: usize) -> Vec<MelodyFrame> {
        let mut out = vec![MelodyFrame::Hold(pitch); frames];
        out[0] = MelodyFrame::Onset(pitch);
        out
    }

    fn guide(melody: &[MelodyFrame], settings: GuideSettings) -> (Vocabulary, ChordGuide) {
        let v = vocab();
        let table = ChordTable::new(&v);
        let context = GuideContext {
            melody,
            meter: Meter::new(TimeSignature::default()),
            phase: 0,
            key: Key::parse("C").unwrap(),
            frames: 0..melody.len(),
            last_bar: Some(16),
            heard: None,
        };
        let g = ChordGuide::new(&context, &v, &table, &settings);
        (v, g)
    }

    #[test]
    fn chords_holding_the_melody_are_favoured_and_triads_beat_thirteenths() {
        // Bar 1: A (in F, not in C or G7); bar 2: G (in C, G7 and C13).
        let melody: Vec<MelodyFrame> = held(69, 16).into_iter().chain(held(67, 16)).collect();
        let (v, g) = guide(
            &melody,
            GuideSettings {
                key: 0.0,
                cadence: 0.0,
                ..GuideSettings::default()
            },
        );
        let on = |frame: usize, chord: u16| {
            g.bias(frame).unwrap()[(v.chord_on_base() + TokenId::from(chord)) as usize]
        };
        assert!(on(0, 1) > on(0, 0), "F holds the A");
        assert!(on(16, 0) > on(16, 1), "C holds the G");
        assert!(
            on(16, 0) > on(16, 3),
            "a triad holding the note beats a thirteenth"
        );
        assert!(
            on(4, 1) < on(0, 1),
            "starting a chord on beat 2 costs more than on the bar line"
        );
        let hold = g.bias(4).unwrap()[(CHORD_BASE + 1) as usize];
        assert!(hold > on(4, 1), "holding costs nothing");
    }

    #[test]
    fn out_of_key_chords_and_silence_are_pushed_down_and_the_end_cadences() {
        let melody: Vec<MelodyFrame> = held(67, 32);
        let (v, g) = guide(&melody, GuideSettings::default());
        let on = |frame: usize, chord: u16| {
            g.bias(frame).unwrap()[(v.chord_on_base() + TokenId::from(chord)) as usize]
        };
        assert!(on(0, 4) < on(0, 1), "Db is outside C major");
        assert!(g.bias(0).unwrap()[SILENCE as usize] < on(0, 4));
        assert!(
            on(16, 0) - on(16, 2) > on(0, 0) - on(0, 2),
            "the last bar prefers the tonic"
        );
        assert!(g.bias(32).is_none());
        assert_eq!(g.bias(0).unwrap()[100], 0.0, "melody tokens are untouched");
    }

    #[test]
    fn off_is_all_zero_and_strength_scales() {
        let melody = held(60, 16);
        let (_, g) = guide(&melody, GuideSettings::OFF);
        assert!(g.bias(3).unwrap().iter().all(|&b| b == 0.0));
        assert!(GuideSettings::with_strength(0.0).is_off());
        assert!(GuideSettings::with_strength(1.0).fit > GuideSettings::default().fit);
    }
}
