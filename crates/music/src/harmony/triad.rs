//! Chords reduced to what a musician compares first: root and triad quality. "G7" and "G" are the
//! same harmony for agreement, "Em" and "E" are not. Also names a chord's function in a key
//! (Roman numerals) for the option labels.

use crate::chord::{ChordSymbol, ChordTones};

use super::key::Key;

/// Triad quality: the third and fifth above the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quality {
    /// Major third (also suspended and augmented chords, which sound and function as major).
    Major,
    /// Minor third with a perfect fifth.
    Minor,
    /// Minor third with a diminished fifth (half-diminished and diminished sevenths too).
    Diminished,
}

/// Root pitch class and quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Triad {
    pub root: u8,
    pub quality: Quality,
}

impl Triad {
    /// The triad of a chord given by its tones (root first, as [`ChordSymbol::tones`] lists
    /// them); `None` for an empty chord.
    pub fn of_tones(tones: &ChordTones) -> Option<Self> {
        let root = *tones.pitch_classes.first()? % 12;
        let has = |interval: u8| {
            tones
                .pitch_classes
                .iter()
                .any(|&pc| (pc + 12 - root) % 12 == interval)
        };
        let quality = if has(3) && !has(4) {
            if has(6) && !has(7) {
                Quality::Diminished
            } else {
                Quality::Minor
            }
        } else {
            Quality::Major
        };
        Some(Self { root, quality })
    }

    /// The triad of a chord symbol (`"Am7"` → A minor); `None` if it does not parse.
    pub fn of_symbol(symbol: &str) -> Option<Self> {
        let tones = ChordSymbol::parse(symbol).ok()?.tones().ok()?;
        Self::of_tones(&tones)
    }

    /// The tonic chord of `key` (major or minor as the key is).
    pub fn tonic_of(key: Key) -> Self {
        Self {
            root: key.tonic,
            quality: if key.minor {
                Quality::Minor
            } else {
                Quality::Major
            },
        }
    }

    /// The triad's three pitch classes as a 12-bit mask.
    pub fn mask(self) -> u16 {
        let (third, fifth) = match self.quality {
            Quality::Major => (4, 7),
            Quality::Minor => (3, 7),
            Quality::Diminished => (3, 6),
        };
        [0, third, fifth]
            .iter()
            .fold(0u16, |mask, &i| mask | 1 << ((self.root + i) % 12))
    }

    /// Whether all three notes belong to `key`'s scale.
    pub fn is_diatonic(self, key: Key) -> bool {
        key.outside(self.mask()) == 0
    }

    /// The Roman numeral of the triad in `key`: upper case for major, lower case for minor,
    /// `°` for diminished, with `b`/`#` for roots off the scale (`bVII`, `#iv°`), counted from
    /// the major scale in major keys and from natural minor in minor keys.
    pub fn roman(self, key: Key) -> String {
        const NUMERALS: [&str; 7] = ["I", "II", "III", "IV", "V", "VI", "VII"];
        let degrees: [u8; 7] = if key.minor {
            [0, 2, 3, 5, 7, 8, 10]
        } else {
            [0, 2, 4, 5, 7, 9, 11]
        };
        let interval = (self.root + 12 - key.tonic % 12) % 12;
        let (prefix, step) = match degrees.iter().position(|&d| d == interval) {
            Some(step) => ("", step),
            None => match degrees.iter().position(|&d| d == (interval + 1) % 12) {
                // Prefer a flattened degree (bIII, bVI, bVII) in major; in minor a raised one
                // (#vii° is the leading-tone chord of harmonic minor).
                Some(step) if !key.minor => ("b", step),
                _ => match degrees.iter().position(|&d| (d + 1) % 12 == interval) {
                    Some(step) => ("#", step),
                    None => (
                        "b",
                        degrees
                            .iter()
                            .position(|&d| d == (interval + 1) % 12)
                            .unwrap_or(0),
                    ),
                },
            },
        };
        let numeral = NUMERALS[step];
        match self.quality {
            Quality::Major => format!("{prefix}{numeral}"),
            Quality::Minor => format!("{prefix}{}", numeral.to_lowercase()),
            Quality::Diminished => format!("{prefix}{}°", numeral.to_lowercase()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triad(symbol: &str) -> Triad {
        Triad::of_symbol(symbol).unwrap()
    }

    #[test]
    fn chords_reduce_to_root_and_quality() {
        assert_eq!(triad("G7"), triad("G"));
        assert_eq!(triad("Am7").quality, Quality::Minor);
        assert_eq!(triad("Bm7b5").quality, Quality::Diminished);
        assert_eq!(triad("Bdim").quality, Quality::Diminished);
        assert_eq!(triad("Gsus4").quality, Quality::Major);
        assert_eq!(triad("C/G"), triad("C"));
        assert_eq!(triad("F#m").root, 6);
        assert!(Triad::of_symbol("Xyz").is_none());
    }

    #[test]
    fn roman_numerals_name_function_in_the_key() {
        let c = Key::parse("C").unwrap();
        let numerals: Vec<String> = ["C", "G7", "Am", "F", "Dm7", "Bdim", "Bb", "E7", "Ab"]
            .iter()
            .map(|s| triad(s).roman(c))
            .collect();
        assert_eq!(
            numerals,
            ["I", "V", "vi", "IV", "ii", "vii°", "bVII", "III", "bVI"]
        );
        let a_minor = Key::parse("Am").unwrap();
        let numerals: Vec<String> = ["Am", "F", "C", "G", "E7", "Dm", "G#dim"]
            .iter()
            .map(|s| triad(s).roman(a_minor))
            .collect();
        assert_eq!(numerals, ["i", "VI", "III", "VII", "V", "iv", "#vii°"]);
    }

    #[test]
    fn diatonic_triads_are_in_the_scale() {
        let c = Key::parse("C").unwrap();
        assert!(triad("Dm").is_diatonic(c));
        assert!(!triad("D").is_diatonic(c));
        assert!(triad("E").is_diatonic(Key::parse("Am").unwrap()));
    }
}
