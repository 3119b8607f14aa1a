//! Strong and weak frames of a bar: a chord is heard against the notes on its downbeats and
//! main beats far more than against the 16ths between them, and lead sheets change chords on
//! strong beats. One weight per frame position, derived from the time signature.

use comper_realtime::frames::TimeSignature;
use comper_realtime::frames::FRAMES_PER_BEAT;

/// Metric levels of a frame within its bar, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The first frame of the bar.
    Downbeat,
    /// The middle of a bar that divides in two (beat 3 of 4/4, the second dotted quarter of 6/8).
    HalfBar,
    /// Any other beat (a quarter note; in compound time, a dotted quarter).
    Beat,
    /// An eighth note between beats.
    Eighth,
    /// A 16th note.
    Sixteenth,
}

impl Level {
    /// How much a melody note on this level counts when judging the chord under it.
    pub fn weight(self) -> f64 {
        match self {
            Level::Downbeat => 1.0,
            Level::HalfBar => 0.8,
            Level::Beat => 0.6,
            Level::Eighth => 0.4,
            Level::Sixteenth => 0.3,
        }
    }
}

/// The bar structure of a phrase that starts on a bar line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Meter {
    /// Frames per bar (at least 1).
    pub bar: usize,
    /// Frames per beat as the metre counts it: 4 (a quarter), or 6 in compound time (a dotted
    /// quarter of 6/8, 9/8, 12/8).
    pub beat: usize,
}

impl Meter {
    /// The metre of `time_signature`.
    pub fn new(time_signature: TimeSignature) -> Self {
        let per_beat = FRAMES_PER_BEAT as usize;
        let bar = ((time_signature.beats_per_bar() * per_beat as f64).round() as usize).max(1);
        let compound = time_signature.denominator == 8
            && time_signature.numerator.is_multiple_of(3)
            && time_signature.numerator > 3;
        let beat = if compound { 6 } else { per_beat };
        Self {
            bar,
            beat: beat.min(bar),
        }
    }

    /// The level of frame `frame` (counted from a bar line).
    pub fn level(self, frame: usize) -> Level {
        let at = frame % self.bar;
        let beats = self.bar / self.beat;
        if at == 0 {
            Level::Downbeat
        } else if at.is_multiple_of(self.beat) {
            if beats.is_multiple_of(2) && at == self.bar / 2 {
                Level::HalfBar
            } else {
                Level::Beat
            }
        } else if at.is_multiple_of(2) {
            Level::Eighth
        } else {
            Level::Sixteenth
        }
    }

    /// Weight of frame `frame`'s metric level.
    pub fn weight(self, frame: usize) -> f64 {
        self.level(frame).weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(numerator: u8, denominator: u8) -> TimeSignature {
        TimeSignature {
            numerator,
            denominator,
        }
    }

    #[test]
    fn common_time_has_a_strong_third_beat() {
        let m = Meter::new(ts(4, 4));
        let levels: Vec<Level> = [0, 4, 8, 12, 2, 1, 16]
            .iter()
            .map(|&f| m.level(f))
            .collect();
        use Level::*;
        assert_eq!(
            levels,
            [Downbeat, Beat, HalfBar, Beat, Eighth, Sixteenth, Downbeat]
        );
    }

    #[test]
    fn compound_and_triple_time() {
        let six_eight = Meter::new(ts(6, 8));
        assert_eq!((six_eight.bar, six_eight.beat), (12, 6));
        assert_eq!(six_eight.level(6), Level::HalfBar);
        assert_eq!(six_eight.level(4), Level::Eighth);
        let waltz = Meter::new(ts(3, 4));
        assert_eq!(waltz.bar, 12);
        assert_eq!(waltz.level(4), Level::Beat);
        assert_eq!(waltz.level(8), Level::Beat);
    }
}
