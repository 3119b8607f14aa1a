//! Judging whole progressions the way a musician compares options: does it hold the melody
//! (strong beats most), does it stay in the key, does it change chords on strong beats at a
//! natural pace, does it cadence, does the model find it likely — and then offering options that
//! differ in function, not in small shifts.

use crate::chord::ChordTable;
use crate::fit::chord_masks;
use comper_realtime::frames::{ChordFrame, MelodyFrame, FRAMES_PER_BEAT};

use super::guide::change_cost;
use super::key::Key;
use super::meter::{Level, Meter};
use super::triad::{Quality, Triad};

/// Each vocabulary chord's pitch classes and triad, looked up once per request.
#[derive(Debug, Clone)]
pub struct ChordSounds {
    masks: Vec<u16>,
    triads: Vec<Option<Triad>>,
}

impl ChordSounds {
    /// Indexes every chord of `table`.
    pub fn new(table: &ChordTable) -> Self {
        let masks = chord_masks(table);
        let triads = (0..masks.len())
            .map(|i| {
                u16::try_from(i)
                    .ok()
                    .and_then(|index| table.tones(index))
                    .and_then(Triad::of_tones)
            })
            .collect();
        Self { masks, triads }
    }

    /// Pitch classes of the chord sounding in `frame` (0 for silence).
    pub fn mask(&self, frame: ChordFrame) -> u16 {
        frame
            .chord()
            .and_then(|c| self.masks.get(usize::from(c)))
            .copied()
            .unwrap_or(0)
    }

    /// The sound of every frame of `chords`: pitch classes and triad (`None` for silence or a
    /// chord without a triad), the form `comper eval --melodies` scores.
    pub fn track(&self, chords: &[ChordFrame]) -> Vec<Option<(u16, Triad)>> {
        chords
            .iter()
            .map(|&frame| self.triad(frame).map(|triad| (self.mask(frame), triad)))
            .collect()
    }

    /// Each chord's triad, by chord index (`None` for a chord without one).
    pub fn triads(&self) -> &[Option<Triad>] {
        &self.triads
    }

    /// Triad of the chord sounding in `frame`.
    pub fn triad(&self, frame: ChordFrame) -> Option<Triad> {
        frame
            .chord()
            .and_then(|c| self.triads.get(usize::from(c)).copied().flatten())
    }
}

/// What the critic hears in one candidate, each part on its own scale.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Critique {
    /// Metric-weighted share of melody in the chord (0–1).
    pub fit: f64,
    /// Share of chord frames whose triad is in the key (0–1).
    pub in_key: f64,
    /// Cost of the harmonic rhythm per bar: changes off strong beats, too static or too busy.
    pub rhythm_cost: f64,
    /// 1 for a tonic chord on the last bar's downbeat (plus 0.5 with a dominant before it).
    pub cadence: f64,
    /// The model's log-likelihood per bar.
    pub likelihood_per_bar: f64,
    /// Chord changes per bar.
    pub changes_per_bar: f64,
    /// The weighted total the options are ranked by.
    pub score: f64,
}

/// Weights of the critic's total.
const FIT_WEIGHT: f64 = 4.0;
const KEY_WEIGHT: f64 = 1.5;
const RHYTHM_WEIGHT: f64 = 0.3;
const CADENCE_WEIGHT: f64 = 0.4;
const LIKELIHOOD_WEIGHT: f64 = 0.15;
/// Chord changes per bar a lead sheet usually has: fewer sounds static, more sounds busy.
const CALM_CHANGES_PER_BAR: f64 = 0.75;
const BUSY_CHANGES_PER_BAR: f64 = 2.0;

/// The phrase a candidate accompanies.
#[derive(Debug, Clone, Copy)]
pub struct Phrase<'a> {
    pub melody: &'a [MelodyFrame],
    pub meter: Meter,
    pub key: Key,
    /// Frame where the phrase's last bar starts (the cadence), if known.
    pub last_bar: Option<usize>,
}

/// Judges one candidate with its model log-likelihood.
pub fn critique(
    phrase: &Phrase,
    chords: &[ChordFrame],
    log_likelihood: f64,
    sounds: &ChordSounds,
) -> Critique {
    let meter = phrase.meter;
    let (mut hit, mut weight) = (0.0, 0.0);
    for (t, (note, &chord)) in phrase.melody.iter().zip(chords).enumerate() {
        let Some(pitch) = note.pitch() else { continue };
        let w = meter.weight(t)
            * if matches!(note, MelodyFrame::Onset(_)) {
                1.0
            } else {
                0.7
            };
        weight += w;
        if sounds.mask(chord) & (1 << (pitch % 12)) != 0 {
            hit += w;
        }
    }
    let fit = if weight > 0.0 { hit / weight } else { 0.0 };

    let triads: Vec<Option<Triad>> = chords.iter().map(|&c| sounds.triad(c)).collect();
    let sounding = triads.iter().flatten().count();
    let in_key = if sounding == 0 {
        0.0
    } else {
        triads
            .iter()
            .flatten()
            .filter(|t| t.is_diatonic(phrase.key))
            .count() as f64
            / sounding as f64
    };

    let bars = (chords.len() as f64 / meter.bar.max(1) as f64).max(1.0);
    let mut changes = 0usize;
    let mut off_beat_cost = 0.0;
    for t in 0..chords.len() {
        let now = sounds.mask(chords[t]);
        let before = t.checked_sub(1).map(|p| sounds.mask(chords[p]));
        if now != 0 && before != Some(now) {
            if t > 0 {
                changes += 1;
            }
            off_beat_cost += f64::from(change_cost(meter.level(t)));
        }
    }
    let changes_per_bar = changes as f64 / bars;
    let pace_cost = if changes_per_bar < CALM_CHANGES_PER_BAR {
        (CALM_CHANGES_PER_BAR - changes_per_bar) * 4.0
    } else if changes_per_bar > BUSY_CHANGES_PER_BAR {
        changes_per_bar - BUSY_CHANGES_PER_BAR
    } else {
        0.0
    };
    let rhythm_cost = off_beat_cost / bars + pace_cost;

    let cadence = phrase
        .last_bar
        .map_or(0.0, |bar| cadence_score(&triads, bar, meter, phrase.key));
    let likelihood_per_bar = log_likelihood / bars;
    let score = FIT_WEIGHT * fit + KEY_WEIGHT * in_key - RHYTHM_WEIGHT * rhythm_cost
        + CADENCE_WEIGHT * cadence
        + LIKELIHOOD_WEIGHT * likelihood_per_bar;
    Critique {
        fit,
        in_key,
        rhythm_cost,
        cadence,
        likelihood_per_bar,
        changes_per_bar,
        score,
    }
}

/// 1 for the tonic triad on the downbeat of the last bar, +0.5 when a dominant (V) sounds on a
/// strong beat of the bar before.
fn cadence_score(triads: &[Option<Triad>], last_bar: usize, meter: Meter, key: Key) -> f64 {
    let tonic = Triad::tonic_of(key);
    let dominant_root = (key.tonic + 7) % 12;
    let ends_home = triads.get(last_bar).copied().flatten() == Some(tonic);
    let before = last_bar.saturating_sub(meter.bar)..last_bar;
    let dominant_before = before.clone().any(|t| {
        meter.level(t) <= Level::Beat
            && triads
                .get(t)
                .copied()
                .flatten()
                .is_some_and(|tr| tr.root == dominant_root && tr.quality == Quality::Major)
    });
    match (ends_home, dominant_before) {
        (true, true) => 1.5,
        (true, false) => 1.0,
        (false, _) => 0.0,
    }
}

/// The triad on every beat of a progression: what "the same progression" means to the ear.
pub fn beat_triads(chords: &[ChordFrame], sounds: &ChordSounds) -> Vec<Option<Triad>> {
    chords
        .iter()
        .step_by(FRAMES_PER_BEAT as usize)
        .map(|&c| sounds.triad(c))
        .collect()
}

/// Share of beats on which two progressions have the same triad.
pub fn similarity(a: &[Option<Triad>], b: &[Option<Triad>]) -> f64 {
    let n = a.len().max(b.len());
    if n == 0 {
        return 1.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / n as f64
}

/// Options closer than this (share of beats with the same triad) count as the same idea.
pub const SAME_IDEA: f64 = 0.8;
/// Score given up per unit of similarity to an option already chosen.
const DIVERSITY_WEIGHT: f64 = 1.5;

/// Picks `count` candidates (indices into `scores` / `beats`): the best first, then each time the
/// one whose score minus its closeness to those chosen is highest, skipping near copies
/// ([`SAME_IDEA`]) while others remain.
pub fn select_diverse(scores: &[f64], beats: &[Vec<Option<Triad>>], count: usize) -> Vec<usize> {
    let mut chosen: Vec<usize> = Vec::with_capacity(count);
    while chosen.len() < count.min(scores.len()) {
        let closeness = |i: usize| {
            chosen
                .iter()
                .map(|&j| similarity(&beats[i], &beats[j]))
                .fold(0.0, f64::max)
        };
        // Prefer a new idea, then at least a different progression, then anything.
        let pick = |limit: f64| {
            (0..scores.len())
                .filter(|i| !chosen.contains(i))
                .filter(|&i| closeness(i) < limit)
                .max_by(|&a, &b| {
                    let value = |i: usize| scores[i] - DIVERSITY_WEIGHT * closeness(i);
                    value(a).total_cmp(&value(b)).then(b.cmp(&a))
                })
        };
        match pick(SAME_IDEA)
            .or_else(|| pick(1.0))
            .or_else(|| pick(f64::INFINITY))
        {
            Some(i) => chosen.push(i),
            None => break,
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Vocabulary;
    use comper_realtime::frames::TimeSignature;

    fn setup() -> (ChordSounds, Meter) {
        let vocab = Vocabulary::new(
            ["C", "F", "G", "Db"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
        .unwrap();
        (
            ChordSounds::new(&ChordTable::new(&vocab)),
            Meter::new(TimeSignature::default()),
        )
    }

    fn bars(chords: &[u16]) -> Vec<ChordFrame> {
        chords
            .iter()
            .flat_map(|&c| {
                std::iter::once(ChordFrame::Onset(c))
                    .chain(std::iter::repeat_n(ChordFrame::Hold(c), 15))
            })
            .collect()
    }

    fn notes(pitches: &[u8]) -> Vec<MelodyFrame> {
        pitches
            .iter()
            .flat_map(|&p| {
                std::iter::once(MelodyFrame::Onset(p))
                    .chain(std::iter::repeat_n(MelodyFrame::Hold(p), 15))
            })
            .collect()
    }

    #[test]
    fn a_fitting_cadencing_progression_beats_a_clashing_one() {
        let (sounds, meter) = setup();
        let melody = notes(&[60, 65, 67, 60]);
        let phrase = Phrase {
            melody: &melody,
            meter,
            key: Key::parse("C").unwrap(),
            last_bar: Some(48),
        };
        let good = critique(&phrase, &bars(&[0, 1, 2, 0]), -10.0, &sounds);
        let clash = critique(&phrase, &bars(&[3, 3, 3, 3]), -10.0, &sounds);
        assert!(good.fit > 0.99 && good.cadence == 1.5 && good.in_key == 1.0);
        assert!(good.score > clash.score);
        let mut pushed = bars(&[0, 1, 2, 0]);
        pushed[17] = ChordFrame::Onset(2);
        let off = critique(&phrase, &pushed, -10.0, &sounds);
        assert!(
            off.rhythm_cost > good.rhythm_cost,
            "a change on a 16th costs"
        );
    }

    #[test]
    fn selection_skips_near_copies() {
        let t = |r: u8| {
            Some(Triad {
                root: r,
                quality: Quality::Major,
            })
        };
        let beats = vec![
            vec![t(0), t(5), t(7), t(0)],
            vec![t(0), t(5), t(7), t(7)],
            vec![t(9), t(5), t(0), t(7)],
        ];
        // 0 and 1 share 3 of 4 beats (0.75 < SAME_IDEA) but the diversity cost still prefers 2.
        let picked = select_diverse(&[3.0, 2.9, 2.5], &beats, 2);
        assert_eq!(picked, vec![0, 2]);
        assert_eq!(select_diverse(&[1.0, 2.0], &beats[..2], 5), vec![1, 0]);
    }
}
