//! Progressions repeat: a pop song loops four chords, a folk tune repeats its eight-bar strain, a
//! blues turns around every twelve bars. A musician jamming along hears the first pass, then
//! expects the chords of the bars a period back. This module turns the chords the melody heard so
//! far calls for (a hindsight harmonization, one triad per frame) into that expectation for the
//! frames ahead: a share of belief per triad, weighing each period by how well the heard bars
//! already repeat at it.

use std::ops::Range;

use super::meter::Meter;
use super::triad::Triad;

/// Periods, in bars, a progression is expected to repeat at, and how likely each is before any
/// evidence (the rest of the belief goes to "no repeat"). Four-bar loops are the commonest in
/// popular music, eight-bar strains in folk tunes.
const PERIODS: [(usize, f64); 4] = [(1, 0.10), (2, 0.20), (4, 0.35), (8, 0.15)];

/// Prior belief that the progression does not repeat at any of [`PERIODS`].
const NO_REPEAT: f64 = 0.20;

/// Log-likelihood ratio, per beat compared, of "repeats at this period" over "does not": a beat
/// whose triad equals the one a period earlier counts for the period, one that differs against.
/// Beats under one held chord are far from independent, so each counts for less than the
/// ln(0.75 / 0.25) two independent observations would.
const EVIDENCE_PER_BEAT: f64 = 0.5;

/// The most evidence one period can collect either way (keeps one long passage from deciding
/// the rest of a session).
const MAX_EVIDENCE: f64 = 8.0;

/// The triads expected at one frame, with the share of belief in each (summing to at most 1;
/// the rest is "nothing expected").
pub type Expected = Vec<(Triad, f64)>;

/// What each frame of `frames` is expected to hold if the progression repeats, given the hindsight
/// triads of the frames heard so far (`hindsight[t]` for frame `t`, `None` where nothing
/// sounds or nothing is known). `phase` is how many frames frame 0 lies after a bar line.
pub fn expected_triads(
    hindsight: &[Option<Triad>],
    meter: Meter,
    phase: usize,
    frames: Range<usize>,
) -> Vec<Expected> {
    let weights = period_weights(hindsight, meter, phase);
    let total: f64 = NO_REPEAT + weights.iter().map(|(_, w)| w).sum::<f64>();
    frames
        .map(|frame| {
            let mut expected: Expected = Vec::new();
            for &(lag, weight) in &weights {
                let Some(triad) = frame
                    .checked_sub(lag)
                    .and_then(|earlier| hindsight.get(earlier).copied().flatten())
                else {
                    continue;
                };
                let share = weight / total;
                match expected.iter_mut().find(|(t, _)| *t == triad) {
                    Some((_, belief)) => *belief += share,
                    None => expected.push((triad, share)),
                }
            }
            expected
        })
        .collect()
}

/// Each period's lag in frames and its unnormalized belief: the prior times the evidence of the
/// heard beats that can be compared with the beat a period earlier.
fn period_weights(hindsight: &[Option<Triad>], meter: Meter, phase: usize) -> Vec<(usize, f64)> {
    PERIODS
        .iter()
        .map(|&(bars, prior)| {
            let lag = bars * meter.bar;
            let mut evidence = 0.0;
            for t in (lag..hindsight.len()).filter(|t| (t + phase).is_multiple_of(meter.beat)) {
                if let (Some(now), Some(then)) = (hindsight[t], hindsight[t - lag]) {
                    evidence += if now == then {
                        EVIDENCE_PER_BEAT
                    } else {
                        -EVIDENCE_PER_BEAT
                    };
                }
            }
            (
                lag,
                prior * evidence.clamp(-MAX_EVIDENCE, MAX_EVIDENCE).exp(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harmony::triad::Quality;
    use comper_realtime::frames::TimeSignature;

    fn major(root: u8) -> Option<Triad> {
        Some(Triad {
            root,
            quality: Quality::Major,
        })
    }

    fn minor(root: u8) -> Option<Triad> {
        Some(Triad {
            root,
            quality: Quality::Minor,
        })
    }

    /// Frames of whole bars of 4/4 holding `bars` in turn.
    fn bars(bars: &[Option<Triad>]) -> Vec<Option<Triad>> {
        bars.iter()
            .flat_map(|&t| std::iter::repeat_n(t, 16))
            .collect()
    }

    fn meter() -> Meter {
        Meter::new(TimeSignature::default())
    }

    fn belief(expected: &Expected, triad: Option<Triad>) -> f64 {
        expected
            .iter()
            .filter(|(t, _)| Some(*t) == triad)
            .map(|(_, b)| b)
            .sum()
    }

    #[test]
    fn a_four_bar_loop_heard_twice_is_expected_again() {
        let (c, g, am, f) = (major(0), major(7), minor(9), major(5));
        let heard = bars(&[c, g, am, f, c, g, am, f]);
        let ahead = expected_triads(&heard, meter(), 0, 128..192);
        for (bar, chord) in [c, g, am, f].into_iter().enumerate() {
            let b = belief(&ahead[bar * 16], chord);
            assert!(b > 0.8, "bar {bar}: belief {b}");
        }
    }

    #[test]
    fn the_first_pass_already_leans_on_four_bars_and_contradicted_periods_fade() {
        let (c, g, am, f) = (major(0), major(7), minor(9), major(5));
        let heard = bars(&[c, g, am, f]);
        let ahead = expected_triads(&heard, meter(), 0, 64..80);
        let expected_c = belief(&ahead[0], c);
        assert!(
            (0.3..0.9).contains(&expected_c),
            "bar 5 leans to the first bar's C without certainty: {expected_c}"
        );
        // One- and two-bar repeats were contradicted by every bar heard.
        assert!(belief(&ahead[0], f) < 0.05, "{:?}", ahead[0]);
        assert!(belief(&ahead[0], am) < 0.05, "{:?}", ahead[0]);
    }

    #[test]
    fn a_progression_that_never_repeats_expects_little() {
        let heard = bars(&[
            major(0),
            major(2),
            major(4),
            major(6),
            major(8),
            major(10),
            major(1),
        ]);
        let ahead = expected_triads(&heard, meter(), 0, 112..113);
        let total: f64 = ahead[0].iter().map(|(_, b)| b).sum();
        assert!(total < 0.1, "{:?}", ahead[0]);
    }

    #[test]
    fn nothing_heard_expects_nothing() {
        let ahead = expected_triads(&[], meter(), 0, 0..4);
        assert!(ahead.iter().all(Vec::is_empty));
    }
}
