//! A short description of an option, as a musician would tell two progressions apart: its
//! chords as Roman numerals in the melody's key, its pace, and what colours it
//! ("I–V–vi–IV, one chord per bar, with ii–V").

use comper_realtime::frames::ChordFrame;

use super::critic::ChordSounds;
use super::key::Key;
use super::meter::Meter;
use super::triad::{Quality, Triad};

/// Chords of the opening pattern the description names.
const PATTERN_CHORDS: usize = 4;

/// Describes `chords` in `key`.
pub fn describe(chords: &[ChordFrame], key: Key, meter: Meter, sounds: &ChordSounds) -> String {
    let mut sequence: Vec<Triad> = Vec::new();
    let mut changes = 0usize;
    let mut previous: Option<u16> = None;
    for &frame in chords {
        let mask = sounds.mask(frame);
        if mask != 0 && previous != Some(mask) {
            changes += 1;
            if let Some(triad) = sounds.triad(frame) {
                if sequence.last() != Some(&triad) {
                    sequence.push(triad);
                }
            }
        }
        previous = Some(mask);
    }
    if sequence.is_empty() {
        return "no chords".into();
    }
    let romans: Vec<String> = sequence.iter().map(|t| t.roman(key)).collect();
    let pattern = romans
        .iter()
        .take(PATTERN_CHORDS)
        .cloned()
        .collect::<Vec<_>>()
        .join("–");
    let bars = (chords.len() as f64 / meter.bar.max(1) as f64).max(1.0);
    let mut parts = vec![pattern, pace(changes as f64 / bars)];
    parts.extend(colours(&sequence, key));
    parts.join(", ")
}

/// The harmonic rhythm in words.
fn pace(changes_per_bar: f64) -> String {
    match changes_per_bar {
        x if x < 0.3 => "mostly one chord".into(),
        x if x < 0.7 => "a chord every two bars".into(),
        x if x < 1.3 => "one chord per bar".into(),
        x if x < 2.3 => "two chords per bar".into(),
        _ => "a chord on most beats".into(),
    }
}

/// What sets a progression apart beyond its opening: ii–V motion, secondary dominants,
/// borrowed chords, the relative key.
fn colours(sequence: &[Triad], key: Key) -> Vec<String> {
    let romans: Vec<String> = sequence.iter().map(|t| t.roman(key)).collect();
    let mut out = Vec::new();
    let has_two_five = romans
        .windows(2)
        .any(|w| matches!((w[0].as_str(), w[1].as_str()), ("ii", "V") | ("ii°", "V")));
    if has_two_five {
        out.push("with ii–V".to_string());
    }
    let secondary = sequence.windows(2).any(|w| {
        w[0].quality == Quality::Major
            && !w[0].is_diatonic(key)
            && (w[0].root + 5) % 12 == w[1].root
    });
    if secondary {
        out.push("secondary dominants".to_string());
    }
    let borrowed = sequence.iter().any(|t| {
        !t.is_diatonic(key) && {
            let r = t.roman(key);
            matches!(r.as_str(), "bVII" | "bVI" | "bIII" | "iv")
        }
    });
    if borrowed {
        out.push("borrowed chords".to_string());
    }
    let relative = if key.minor {
        Triad {
            root: (key.tonic + 3) % 12,
            quality: Quality::Major,
        }
    } else {
        Triad {
            root: (key.tonic + 9) % 12,
            quality: Quality::Minor,
        }
    };
    if sequence.first() == Some(&relative) {
        out.push(if key.minor {
            "from the relative major".to_string()
        } else {
            "from the relative minor".to_string()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chord::ChordTable;
    use crate::tokens::Vocabulary;
    use comper_realtime::frames::TimeSignature;

    #[test]
    fn a_pop_loop_reads_as_its_numerals() {
        let vocab = Vocabulary::new(
            ["C", "G", "Am", "F", "Dm7", "G7"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
        .unwrap();
        let sounds = ChordSounds::new(&ChordTable::new(&vocab));
        let bars = |chords: &[u16]| -> Vec<ChordFrame> {
            chords
                .iter()
                .flat_map(|&c| {
                    std::iter::once(ChordFrame::Onset(c))
                        .chain(std::iter::repeat_n(ChordFrame::Hold(c), 15))
                })
                .collect()
        };
        let meter = Meter::new(TimeSignature::default());
        let c = Key::parse("C").unwrap();
        assert_eq!(
            describe(&bars(&[0, 1, 2, 3]), c, meter, &sounds),
            "I–V–vi–IV, one chord per bar"
        );
        assert_eq!(
            describe(&bars(&[2, 3, 4, 5, 0, 0, 0, 0]), c, meter, &sounds),
            "vi–IV–ii–V, a chord every two bars, with ii–V, from the relative minor"
        );
        assert_eq!(
            describe(&[ChordFrame::Silence; 16], c, meter, &sounds),
            "no chords"
        );
    }
}
