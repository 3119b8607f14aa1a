//! Chord symbols in note_seq 0.0.5's grammar, their pitch classes, and voicings.
//!
//! ReaLchords names its chord tokens with `note_seq.chord_symbols_lib`, and ReaLJam turns a
//! sampled chord back into notes with `chord_symbol_pitches` / `chord_symbol_bass`. Comper must
//! sound the same notes, so this parser follows note_seq's regular expression exactly (including
//! its quirks, see [`ChordSymbol::parse`]) and [`ChordSymbol::pitch_classes`] reproduces its
//! degree arithmetic bug for bug. Voicings turn pitch classes into MIDI notes.

use std::fmt;
use std::str::FromStr;

use crate::tokens::Vocabulary;
use comper_realtime::frames::ChordIndex;

/// Errors from reading a chord symbol or computing its pitches.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ChordError {
    /// The name does not match the note_seq grammar (e.g. `N.C.`).
    #[error("unknown chord symbol {0:?}")]
    Unknown(String),
    /// A scale degree number does not fit in 32 bits (note_seq would accept it).
    #[error("chord symbol {0:?} has a scale degree too large to handle")]
    DegreeTooLarge(String),
    /// An `add` modification names a degree the chord already has.
    #[error("chord symbol {name:?} adds scale degree {degree}, which the chord already has")]
    DegreeAlreadyPresent { name: String, degree: u32 },
    /// A `no` modification names a degree the chord does not have.
    #[error("chord symbol {name:?} removes scale degree {degree}, which the chord does not have")]
    DegreeMissing { name: String, degree: u32 },
}

/// A spelled pitch class: a letter with sharps (positive `alter`) or flats (negative).
///
/// Kept spelled rather than as a number so a symbol prints back exactly as it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpelledPitch {
    letter: char,
    alter: i64,
}

impl SpelledPitch {
    /// The letter `A`–`G`.
    pub fn letter(self) -> char {
        self.letter
    }

    /// Number of sharps (positive) or flats (negative).
    pub fn alter(self) -> i64 {
        self.alter
    }

    /// Pitch class 0–11 (C = 0), as note_seq computes it.
    pub fn pitch_class(self) -> u8 {
        let natural = match self.letter {
            'C' => 0,
            'D' => 2,
            'E' => 4,
            'F' => 5,
            'G' => 7,
            'A' => 9,
            _ => 11,
        };
        (natural + self.alter).rem_euclid(12) as u8
    }
}

impl fmt::Display for SpelledPitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter)?;
        let accidental = if self.alter >= 0 { '#' } else { 'b' };
        for _ in 0..self.alter.unsigned_abs() {
            write!(f, "{accidental}")?;
        }
        Ok(())
    }
}

/// The 29 chord kinds of note_seq, in its table order (which is also the parser's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChordKind {
    Major,
    Minor,
    Augmented,
    Diminished,
    Dominant7,
    Major7,
    Minor7,
    Diminished7,
    Augmented7,
    HalfDiminished,
    MinorMajor7,
    Major6,
    Minor6,
    Dominant9,
    Major9,
    Minor9,
    Augmented9,
    SixNine,
    Dominant11,
    Major11,
    Minor11,
    Dominant13,
    Major13,
    Minor13,
    Sus2,
    Sus4,
    Sus7,
    Pedal,
    Power,
}

/// One row of note_seq's kind table: abbreviations (first = the one its namer emits) and the
/// scale degrees as `(number, alteration)`.
struct KindRow {
    kind: ChordKind,
    abbreviations: &'static [&'static str],
    degrees: &'static [(u32, i64)],
}

const MAJOR_TRIAD: &[(u32, i64)] = &[(1, 0), (3, 0), (5, 0)];
const MINOR_TRIAD: &[(u32, i64)] = &[(1, 0), (3, -1), (5, 0)];

static KIND_TABLE: [KindRow; 29] = [
    KindRow {
        kind: ChordKind::Major,
        abbreviations: &["", "maj", "M"],
        degrees: MAJOR_TRIAD,
    },
    KindRow {
        kind: ChordKind::Minor,
        abbreviations: &["m", "min", "-"],
        degrees: MINOR_TRIAD,
    },
    KindRow {
        kind: ChordKind::Augmented,
        abbreviations: &["+", "aug"],
        degrees: &[(1, 0), (3, 0), (5, 1)],
    },
    KindRow {
        kind: ChordKind::Diminished,
        abbreviations: &["o", "dim"],
        degrees: &[(1, 0), (3, -1), (5, -1)],
    },
    KindRow {
        kind: ChordKind::Dominant7,
        abbreviations: &["7"],
        degrees: &[(1, 0), (3, 0), (5, 0), (7, -1)],
    },
    KindRow {
        kind: ChordKind::Major7,
        abbreviations: &["maj7", "M7"],
        degrees: &[(1, 0), (3, 0), (5, 0), (7, 0)],
    },
    KindRow {
        kind: ChordKind::Minor7,
        abbreviations: &["m7", "min7", "-7"],
        degrees: &[(1, 0), (3, -1), (5, 0), (7, -1)],
    },
    KindRow {
        kind: ChordKind::Diminished7,
        abbreviations: &["o7", "dim7"],
        degrees: &[(1, 0), (3, -1), (5, -1), (7, -2)],
    },
    KindRow {
        kind: ChordKind::Augmented7,
        abbreviations: &["+7", "aug7"],
        degrees: &[(1, 0), (3, 0), (5, 1), (7, -1)],
    },
    KindRow {
        kind: ChordKind::HalfDiminished,
        abbreviations: &["m7b5", "-7b5", "/o", "/o7"],
        degrees: &[(1, 0), (3, -1), (5, -1), (7, -1)],
    },
    KindRow {
        kind: ChordKind::MinorMajor7,
        abbreviations: &[
            "mmaj7",
            "mM7",
            "minmaj7",
            "minM7",
            "-maj7",
            "-M7",
            "m(maj7)",
            "m(M7)",
            "min(maj7)",
            "min(M7)",
            "-(maj7)",
            "-(M7)",
        ],
        degrees: &[(1, 0), (3, -1), (5, 0), (7, 0)],
    },
    KindRow {
        kind: ChordKind::Major6,
        abbreviations: &["6"],
        degrees: &[(1, 0), (3, 0), (5, 0), (6, 0)],
    },
    KindRow {
        kind: ChordKind::Minor6,
        abbreviations: &["m6", "min6", "-6"],
        degrees: &[(1, 0), (3, -1), (5, 0), (6, 0)],
    },
    KindRow {
        kind: ChordKind::Dominant9,
        abbreviations: &["9"],
        degrees: &[(1, 0), (3, 0), (5, 0), (7, -1), (9, 0)],
    },
    KindRow {
        kind: ChordKind::Major9,
        abbreviations: &["maj9", "M9"],
        degrees: &[(1, 0), (3, 0), (5, 0), (7, 0), (9, 0)],
    },
    KindRow {
        kind: ChordKind::Minor9,
        abbreviations: &["m9", "min9", "-9"],
        degrees: &[(1, 0), (3, -1), (5, 0), (7, -1), (9, 0)],
    },
    KindRow {
        kind: ChordKind::Augmented9,
        abbreviations: &["+9", "aug9"],
        degrees: &[(1, 0), (3, 0), (5, 1), (7, -1), (9, 0)],
    },
    KindRow {
        kind: ChordKind::SixNine,
        abbreviations: &["6/9"],
        degrees: &[(1, 0), (3, 0), (5, 0), (6, 0), (9, 0)],
    },
    KindRow {
        kind: ChordKind::Dominant11,
        abbreviations: &["11"],
        degrees: &[(1, 0), (3, 0), (5, 0), (7, -1), (9, 0), (11, 0)],
    },
    KindRow {
        kind: ChordKind::Major11,
        abbreviations: &["maj11", "M11"],
        degrees: &[(1, 0), (3, 0), (5, 0), (7, 0), (9, 0), (11, 0)],
    },
    KindRow {
        kind: ChordKind::Minor11,
        abbreviations: &["m11", "min11", "-11"],
        degrees: &[(1, 0), (3, -1), (5, 0), (7, -1), (9, 0), (11, 0)],
    },
    KindRow {
        kind: ChordKind::Dominant13,
        abbreviations: &["13"],
        degrees: &[(1, 0), (3, 0), (5, 0), (7, -1), (9, 0), (11, 0), (13, 0)],
    },
    KindRow {
        kind: ChordKind::Major13,
        abbreviations: &["maj13", "M13"],
        degrees: &[(1, 0), (3, 0), (5, 0), (7, 0), (9, 0), (11, 0), (13, 0)],
    },
    KindRow {
        kind: ChordKind::Minor13,
        abbreviations: &["m13", "min13", "-13"],
        degrees: &[(1, 0), (3, -1), (5, 0), (7, -1), (9, 0), (11, 0), (13, 0)],
    },
    KindRow {
        kind: ChordKind::Sus2,
        abbreviations: &["sus2"],
        degrees: &[(1, 0), (2, 0), (5, 0)],
    },
    KindRow {
        kind: ChordKind::Sus4,
        abbreviations: &["sus", "sus4"],
        degrees: &[(1, 0), (4, 0), (5, 0)],
    },
    KindRow {
        kind: ChordKind::Sus7,
        abbreviations: &["sus7", "7sus"],
        degrees: &[(1, 0), (4, 0), (5, 0), (7, -1)],
    },
    KindRow {
        kind: ChordKind::Pedal,
        abbreviations: &["ped"],
        degrees: &[(1, 0)],
    },
    KindRow {
        kind: ChordKind::Power,
        abbreviations: &["5"],
        degrees: &[(1, 0), (5, 0)],
    },
];

impl ChordKind {
    /// All kinds in note_seq's table order.
    pub const ALL: [ChordKind; 29] = [
        ChordKind::Major,
        ChordKind::Minor,
        ChordKind::Augmented,
        ChordKind::Diminished,
        ChordKind::Dominant7,
        ChordKind::Major7,
        ChordKind::Minor7,
        ChordKind::Diminished7,
        ChordKind::Augmented7,
        ChordKind::HalfDiminished,
        ChordKind::MinorMajor7,
        ChordKind::Major6,
        ChordKind::Minor6,
        ChordKind::Dominant9,
        ChordKind::Major9,
        ChordKind::Minor9,
        ChordKind::Augmented9,
        ChordKind::SixNine,
        ChordKind::Dominant11,
        ChordKind::Major11,
        ChordKind::Minor11,
        ChordKind::Dominant13,
        ChordKind::Major13,
        ChordKind::Minor13,
        ChordKind::Sus2,
        ChordKind::Sus4,
        ChordKind::Sus7,
        ChordKind::Pedal,
        ChordKind::Power,
    ];

    fn row(self) -> &'static KindRow {
        // The table lists the kinds in declaration order, so the discriminant is the row.
        &KIND_TABLE[self as usize]
    }

    /// The abbreviations the parser accepts, in its order; the first is the one note_seq's
    /// namer emits.
    pub fn abbreviations(self) -> &'static [&'static str] {
        self.row().abbreviations
    }

    /// The kind's scale degrees as `(number, alteration)`, e.g. `(7, -1)` for a flat seventh.
    pub fn degrees(self) -> &'static [(u32, i64)] {
        self.row().degrees
    }
}

/// The operator of a scale-degree modification, in the parser's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModificationOp {
    /// `add`: add an unaltered degree.
    Add,
    /// `add#`: add a raised degree.
    AddSharp,
    /// `addb`: add a lowered degree.
    AddFlat,
    /// `no`: remove a degree.
    No,
    /// `#`: raise a degree, adding it if absent.
    Sharp,
    /// `b`: lower a degree, adding it if absent.
    Flat,
}

impl ModificationOp {
    /// All operators in the order note_seq's regular expression tries them.
    pub const ALL: [ModificationOp; 6] = [
        ModificationOp::Add,
        ModificationOp::AddSharp,
        ModificationOp::AddFlat,
        ModificationOp::No,
        ModificationOp::Sharp,
        ModificationOp::Flat,
    ];

    /// How the operator is written.
    pub fn syntax(self) -> &'static str {
        match self {
            ModificationOp::Add => "add",
            ModificationOp::AddSharp => "add#",
            ModificationOp::AddFlat => "addb",
            ModificationOp::No => "no",
            ModificationOp::Sharp => "#",
            ModificationOp::Flat => "b",
        }
    }

    /// Semitones the operator applies to its degree.
    pub fn alter(self) -> i64 {
        match self {
            ModificationOp::AddSharp | ModificationOp::Sharp => 1,
            ModificationOp::AddFlat | ModificationOp::Flat => -1,
            ModificationOp::Add | ModificationOp::No => 0,
        }
    }

    fn adds(self) -> bool {
        matches!(
            self,
            ModificationOp::Add | ModificationOp::AddSharp | ModificationOp::AddFlat
        )
    }
}

/// One scale-degree modification such as `(b9)` or `add2`, with its (optional, possibly
/// unpaired) parentheses remembered so the symbol prints back as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Modification {
    pub op: ModificationOp,
    pub degree: u32,
    pub open_paren: bool,
    pub close_paren: bool,
}

impl fmt::Display for Modification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let open = if self.open_paren { "(" } else { "" };
        let close = if self.close_paren { ")" } else { "" };
        write!(f, "{open}{}{}{close}", self.op.syntax(), self.degree)
    }
}

/// A parsed chord symbol: root, kind, modifications and optional slash bass.
///
/// Built only by parsing, so it always prints back to a name that parses to the same value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChordSymbol {
    root: SpelledPitch,
    kind: ChordKind,
    abbreviation: &'static str,
    modifications: Vec<Modification>,
    bass: Option<SpelledPitch>,
}

/// Degree offsets in semitones for the normalised degrees 1–7 (index 0 unused).
const DEGREE_OFFSETS: [i64; 8] = [0, 0, 2, 4, 5, 7, 9, 11];

impl ChordSymbol {
    /// Parses a name with note_seq 0.0.5's grammar:
    /// `ROOT KIND MODIFICATIONS ['/' ROOT]`, where ROOT is a letter A–G and a run of only `#`
    /// or only `b` not followed by another `#`/`b`, KIND is the first abbreviation in table
    /// order after which the rest still parses, and each modification is `[(]op digits[)]`.
    ///
    /// Like Python's `re.match(...$)`, one trailing `"\n"` is ignored (`"C\n"` parses as `C`).
    pub fn parse(name: &str) -> Result<Self, ChordError> {
        let unknown = || ChordError::Unknown(name.to_string());
        let text = name.strip_suffix('\n').unwrap_or(name).as_bytes();
        let (root, rest) = parse_spelled_pitch(text).ok_or_else(unknown)?;
        for row in &KIND_TABLE {
            for &abbreviation in row.abbreviations {
                let Some(after) = rest.strip_prefix(abbreviation.as_bytes()) else {
                    continue;
                };
                let Some((raw_mods, bass)) = parse_tail(after) else {
                    continue;
                };
                let modifications = raw_mods
                    .iter()
                    .map(RawModification::resolve)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| ChordError::DegreeTooLarge(name.to_string()))?;
                return Ok(Self {
                    root,
                    kind: row.kind,
                    abbreviation,
                    modifications,
                    bass,
                });
            }
        }
        Err(unknown())
    }

    /// The root as written.
    pub fn root(&self) -> SpelledPitch {
        self.root
    }

    /// The chord kind.
    pub fn kind(&self) -> ChordKind {
        self.kind
    }

    /// The kind abbreviation as written (e.g. `m7` in `Cm7b5`, `""` for a major triad).
    pub fn kind_abbreviation(&self) -> &'static str {
        self.abbreviation
    }

    /// The scale-degree modifications in written order.
    pub fn modifications(&self) -> &[Modification] {
        &self.modifications
    }

    /// The slash bass, if written.
    pub fn bass(&self) -> Option<SpelledPitch> {
        self.bass
    }

    /// Root pitch class 0–11.
    pub fn root_pitch_class(&self) -> u8 {
        self.root.pitch_class()
    }

    /// Bass pitch class: the slash bass if any, else the root (note_seq's `chord_symbol_bass`,
    /// which succeeds even where [`Self::pitch_classes`] fails).
    pub fn bass_pitch_class(&self) -> u8 {
        self.bass.unwrap_or(self.root).pitch_class()
    }

    /// The chord's pitch classes exactly as note_seq's `chord_symbol_pitches` lists them: the
    /// kind's degrees in order, then modifications applied left to right, duplicates kept.
    ///
    /// Bug-compatible: adding degree 7 lowers it by a semitone (`add7` gives a flat seventh,
    /// `addb7` a double-flat one); degrees above 7 wrap (9 → 2, 0 → 7); a slash bass is not
    /// included unless it is a chord tone. Adding a present degree or removing an absent one
    /// is an error, as in note_seq.
    pub fn pitch_classes(&self) -> Result<Vec<u8>, ChordError> {
        let mut degrees: Vec<(u32, i64)> = self.kind.degrees().to_vec();
        for m in &self.modifications {
            let existing = degrees.iter().position(|&(d, _)| d == m.degree);
            match (m.op, existing) {
                (op, None) if op.adds() => {
                    let quirk = if m.degree == 7 { 1 } else { 0 };
                    degrees.push((m.degree, op.alter() - quirk));
                }
                (op, Some(_)) if op.adds() => {
                    return Err(ChordError::DegreeAlreadyPresent {
                        name: self.to_string(),
                        degree: m.degree,
                    });
                }
                (ModificationOp::No, Some(index)) => {
                    degrees.remove(index);
                }
                (ModificationOp::No, None) => {
                    return Err(ChordError::DegreeMissing {
                        name: self.to_string(),
                        degree: m.degree,
                    });
                }
                (op, Some(index)) => {
                    if let Some(entry) = degrees.get_mut(index) {
                        entry.1 += op.alter();
                    }
                }
                (op, None) => degrees.push((m.degree, op.alter())),
            }
        }
        let root = i64::from(self.root_pitch_class());
        Ok(degrees
            .into_iter()
            .map(|(degree, alter)| {
                let step = (i64::from(degree) - 1).rem_euclid(7) + 1;
                let offset = DEGREE_OFFSETS.get(step as usize).copied().unwrap_or(0);
                (root + offset + alter).rem_euclid(12) as u8
            })
            .collect())
    }

    /// Pitch classes and bass together, the form voicings and [`ChordTable`] use.
    pub fn tones(&self) -> Result<ChordTones, ChordError> {
        Ok(ChordTones {
            pitch_classes: self.pitch_classes()?,
            bass: self.bass_pitch_class(),
        })
    }
}

impl FromStr for ChordSymbol {
    type Err = ChordError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name)
    }
}

impl fmt::Display for ChordSymbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.root, self.abbreviation)?;
        for m in &self.modifications {
            write!(f, "{m}")?;
        }
        if let Some(bass) = self.bass {
            write!(f, "/{bass}")?;
        }
        Ok(())
    }
}

/// A modification before its digits are turned into a number.
struct RawModification<'a> {
    op: ModificationOp,
    digits: &'a [u8],
    open_paren: bool,
    close_paren: bool,
}

impl RawModification<'_> {
    fn resolve(&self) -> Option<Modification> {
        let degree = std::str::from_utf8(self.digits).ok()?.parse().ok()?;
        Some(Modification {
            op: self.op,
            degree,
            open_paren: self.open_paren,
            close_paren: self.close_paren,
        })
    }
}

/// `[A-G](#*|b*)(?![#b])` at the start of `text`.
fn parse_spelled_pitch(text: &[u8]) -> Option<(SpelledPitch, &[u8])> {
    let (&letter, rest) = text.split_first()?;
    if !(b'A'..=b'G').contains(&letter) {
        return None;
    }
    let accidental = rest.first().copied().filter(|&c| c == b'#' || c == b'b');
    let run = accidental.map_or(0, |a| rest.iter().take_while(|&&c| c == a).count());
    let rest = rest.get(run..)?;
    if matches!(rest.first(), Some(b'#' | b'b')) {
        return None;
    }
    let count = i64::try_from(run).ok()?;
    let alter = if accidental == Some(b'b') {
        -count
    } else {
        count
    };
    Some((
        SpelledPitch {
            letter: char::from(letter),
            alter,
        },
        rest,
    ))
}

/// Modifications then an optional `/ROOT`, covering all of `text`.
fn parse_tail(text: &[u8]) -> Option<(Vec<RawModification<'_>>, Option<SpelledPitch>)> {
    let (mods_text, bass) = match text.iter().position(|&c| c == b'/') {
        None => (text, None),
        Some(slash) => {
            let (pitch, rest) = parse_spelled_pitch(text.get(slash + 1..)?)?;
            if !rest.is_empty() {
                return None;
            }
            (text.get(..slash)?, Some(pitch))
        }
    };
    let mut mods = Vec::new();
    let mut rest = mods_text;
    while !rest.is_empty() {
        let (modification, after) = parse_modification(rest)?;
        mods.push(modification);
        rest = after;
    }
    Some((mods, bass))
}

/// `\(?(add|add#|addb|no|#|b)[0-9]+\)?` at the start of `text`.
fn parse_modification(text: &[u8]) -> Option<(RawModification<'_>, &[u8])> {
    let open_paren = text.first() == Some(&b'(');
    let body = if open_paren { text.get(1..)? } else { text };
    ModificationOp::ALL.iter().find_map(|&op| {
        let after_op = body.strip_prefix(op.syntax().as_bytes())?;
        let digit_count = after_op.iter().take_while(|c| c.is_ascii_digit()).count();
        if digit_count == 0 {
            return None;
        }
        let (digits, rest) = after_op.split_at(digit_count);
        let close_paren = rest.first() == Some(&b')');
        let rest = if close_paren { rest.get(1..)? } else { rest };
        Some((
            RawModification {
                op,
                digits,
                open_paren,
                close_paren,
            },
            rest,
        ))
    })
}

/// What a chord sounds like: pitch classes (note_seq order, duplicates kept) and bass.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChordTones {
    pub pitch_classes: Vec<u8>,
    pub bass: u8,
}

/// Every chord of a vocabulary parsed once, so the sampler and voicer never parse at run time.
///
/// Names that do not parse (or whose pitches note_seq cannot compute) are kept as errors: a
/// model vocabulary with one odd name is still usable, and ReaLJam plays such chords as
/// silence.
#[derive(Debug, Clone)]
pub struct ChordTable {
    entries: Vec<Result<ChordTones, ChordError>>,
}

impl ChordTable {
    /// Parses every name of `vocabulary`, in index order.
    pub fn new(vocabulary: &Vocabulary) -> Self {
        let entries = vocabulary
            .names()
            .iter()
            .map(|name| ChordSymbol::parse(name).and_then(|symbol| symbol.tones()))
            .collect();
        Self { entries }
    }

    /// Number of chords (the vocabulary's `C`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no chords (never true for a valid vocabulary).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Tones of chord `index`, or the reason there are none; `None` if out of range.
    pub fn get(&self, index: ChordIndex) -> Option<&Result<ChordTones, ChordError>> {
        self.entries.get(usize::from(index))
    }

    /// Tones of chord `index`; `None` if out of range or unplayable.
    pub fn tones(&self, index: ChordIndex) -> Option<&ChordTones> {
        self.get(index).and_then(|entry| entry.as_ref().ok())
    }

    /// The chords that could not be parsed, with why.
    pub fn failures(&self) -> impl Iterator<Item = (ChordIndex, &ChordError)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, entry)| entry.as_ref().err().map(|e| (i as ChordIndex, e)))
    }
}

/// MIDI note of pitch class 0 for ReaLJam's chord tones (`CHORD_OCTAVE` 4).
pub const PLAIN_CHORD_BASE: u8 = 48;
/// MIDI note of pitch class 0 for ReaLJam's bass (`BASS_OCTAVE` 3).
pub const PLAIN_BASS_BASE: u8 = 36;

/// ReaLJam's voicing: every listed pitch class at `48 + pc` (duplicates kept, in note_seq
/// order), then the bass at `36 + bass`. Use it to sound exactly like ReaLJam.
pub fn plain_voicing(tones: &ChordTones) -> Vec<u8> {
    tones
        .pitch_classes
        .iter()
        .map(|&pc| PLAIN_CHORD_BASE + pc % 12)
        .chain(std::iter::once(PLAIN_BASS_BASE + tones.bass % 12))
        .collect()
}

/// Errors from configuring a voicing range.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VoicingError {
    #[error(
        "voicing range {low}..={high} with center {center} must lie within MIDI 0..=127, \
         span at least {min_span} semitones and contain its center"
    )]
    InvalidRange {
        low: u8,
        high: u8,
        center: u8,
        min_span: u8,
    },
}

/// Where a voice-led voicing may go: all notes within `low..=high`, the first chord's upper
/// voices centred near `center`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoicingRange {
    low: u8,
    high: u8,
    center: u8,
}

impl VoicingRange {
    /// Smallest allowed `high - low`: enough for any close-position chord plus a bass below.
    pub const MIN_SPAN: u8 = 36;

    /// Checks and builds a range.
    pub fn new(low: u8, high: u8, center: u8) -> Result<Self, VoicingError> {
        let valid = high <= 127
            && high >= low
            && high - low >= Self::MIN_SPAN
            && (low..=high).contains(&center);
        if valid {
            Ok(Self { low, high, center })
        } else {
            Err(VoicingError::InvalidRange {
                low,
                high,
                center,
                min_span: Self::MIN_SPAN,
            })
        }
    }

    /// Lowest allowed MIDI note.
    pub fn low(self) -> u8 {
        self.low
    }

    /// Highest allowed MIDI note.
    pub fn high(self) -> u8 {
        self.high
    }

    /// Target pitch for the middle of the first chord's upper voices.
    pub fn center(self) -> u8 {
        self.center
    }
}

impl Default for VoicingRange {
    /// Bass from C2 up, chords up to C6, centred around D4.
    fn default() -> Self {
        Self {
            low: 36,
            high: 84,
            center: 62,
        }
    }
}

/// A chord as MIDI notes: a bass strictly below ascending upper voices.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Voicing {
    pub bass: u8,
    pub upper: Vec<u8>,
}

impl Voicing {
    /// All notes, bass first, then the upper voices from low to high.
    pub fn notes(&self) -> Vec<u8> {
        std::iter::once(self.bass)
            .chain(self.upper.iter().copied())
            .collect()
    }
}

/// Voices `tones` close to `previous` (minimal total movement of the upper voices plus the
/// bass), inside `range`, with the bass below the chord. Each distinct pitch class sounds once
/// in the upper voices, in close position (some inversion, spanning less than an octave).
/// Without a previous voicing the upper voices are centred on `range.center()` and the bass
/// sits about an octave below them. Ties go to the voicing nearer the center, then the lower.
pub fn voice_led(tones: &ChordTones, previous: Option<&Voicing>, range: VoicingRange) -> Voicing {
    let candidates = candidate_voicings(tones, range);
    let cost = |v: &Voicing| -> (u32, u32, u8, u8) {
        let center_distance = center_distance(&v.upper, range.center());
        let lowest = v.upper.first().copied().unwrap_or(v.bass);
        match previous {
            Some(p) => (
                movement(&v.upper, &p.upper) + u32::from(v.bass.abs_diff(p.bass)),
                center_distance,
                lowest,
                v.bass,
            ),
            None => (
                center_distance,
                u32::from(v.bass.abs_diff(lowest.saturating_sub(12))),
                lowest,
                v.bass,
            ),
        }
    };
    candidates
        .into_iter()
        .min_by_key(cost)
        .unwrap_or_else(|| Voicing {
            // Unreachable for a checked range (it always has room); sound ReaLJam's voicing then.
            bass: PLAIN_BASS_BASE + tones.bass % 12,
            upper: distinct_pitch_classes(tones)
                .iter()
                .map(|&pc| PLAIN_CHORD_BASE + pc)
                .collect(),
        })
}

/// Distinct pitch classes of a chord, ascending.
fn distinct_pitch_classes(tones: &ChordTones) -> Vec<u8> {
    let mut pcs: Vec<u8> = tones.pitch_classes.iter().map(|&pc| pc % 12).collect();
    pcs.sort_unstable();
    pcs.dedup();
    pcs
}

/// Every close-position voicing in range, each with every bass placement up to two octaves
/// below its lowest upper voice.
fn candidate_voicings(tones: &ChordTones, range: VoicingRange) -> Vec<Voicing> {
    let pcs = distinct_pitch_classes(tones);
    let bass_pc = tones.bass % 12;
    let basses_below = |ceiling: u8| {
        let floor = range.low.max(ceiling.saturating_sub(24));
        (floor..ceiling).filter(move |&b| b % 12 == bass_pc)
    };
    if pcs.is_empty() {
        return basses_below(range.high.saturating_add(1))
            .map(|bass| Voicing {
                bass,
                upper: Vec::new(),
            })
            .collect();
    }
    let mut candidates = Vec::new();
    for inversion in 0..pcs.len() {
        let order = pcs.iter().cycle().skip(inversion).take(pcs.len());
        let first_pc = order.clone().next().copied().unwrap_or(0);
        for lowest in (range.low..=range.high).filter(|&n| n % 12 == first_pc) {
            let mut upper = Vec::with_capacity(pcs.len());
            let mut next_floor = lowest;
            for &pc in order.clone() {
                // Smallest note of this pitch class at or above the previous voice.
                let up = (pc + 12 - next_floor % 12) % 12;
                let note = next_floor + up;
                upper.push(note);
                next_floor = note + 1;
            }
            if upper.last().is_some_and(|&top| top <= range.high) {
                candidates.extend(basses_below(lowest).map(|bass| Voicing {
                    bass,
                    upper: upper.clone(),
                }));
            }
        }
    }
    candidates
}

/// Semitones the upper voices move: voice by voice when the counts match, otherwise each note
/// to its nearest neighbour in the other chord, both ways.
fn movement(upper: &[u8], previous: &[u8]) -> u32 {
    if upper.len() == previous.len() {
        return upper
            .iter()
            .zip(previous)
            .map(|(&a, &b)| u32::from(a.abs_diff(b)))
            .sum();
    }
    let nearest = |note: u8, others: &[u8]| -> u32 {
        others
            .iter()
            .map(|&o| u32::from(note.abs_diff(o)))
            .min()
            .unwrap_or(0)
    };
    let forward: u32 = upper.iter().map(|&n| nearest(n, previous)).sum();
    let backward: u32 = previous.iter().map(|&n| nearest(n, upper)).sum();
    forward + backward
}

/// Distance (in semitones times the voice count) from the voices' mean to `center`.
fn center_distance(upper: &[u8], center: u8) -> u32 {
    let sum: u32 = upper.iter().map(|&n| u32::from(n)).sum();
    sum.abs_diff(u32::from(center) * upper.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcs(name: &str) -> Vec<u8> {
        ChordSymbol::parse(name).unwrap().pitch_classes().unwrap()
    }

    fn tones(name: &str) -> ChordTones {
        ChordSymbol::parse(name).unwrap().tones().unwrap()
    }

    #[test]
    fn kind_table_is_in_declaration_order() {
        for (i, kind) in ChordKind::ALL.iter().enumerate() {
            assert_eq!(KIND_TABLE[i].kind, *kind);
            assert_eq!(kind.row().kind, *kind);
        }
        let abbreviations: usize = ChordKind::ALL.iter().map(|k| k.abbreviations().len()).sum();
        assert_eq!(abbreviations, 68);
    }

    #[test]
    fn specification_examples() {
        assert_eq!(pcs("C"), [0, 4, 7]);
        assert_eq!(pcs("Cm7b5"), [0, 3, 6, 10]);
        assert_eq!(pcs("Co7"), [0, 3, 6, 9]);
        assert_eq!(pcs("C9"), [0, 4, 7, 10, 2]);
        assert_eq!(pcs("C13"), [0, 4, 7, 10, 2, 5, 9]);
        assert_eq!(pcs("C7(b9)(#11)"), [0, 4, 7, 10, 1, 6]);
        assert_eq!(pcs("Gb7(b13)"), [6, 10, 1, 4, 2]);
        assert_eq!(pcs("C(add2)"), [0, 4, 7, 2]);
        assert_eq!(pcs("Cped(add3)"), [0, 4]);
        assert_eq!(pcs("Cped(add7)"), [0, 10]);
        assert_eq!(pcs("Cped(addb7)"), [0, 9]);
        assert_eq!(
            tones("Dbmaj7/C"),
            ChordTones {
                pitch_classes: vec![1, 5, 8, 0],
                bass: 0
            }
        );
        assert_eq!(
            tones("Ab/Eb"),
            ChordTones {
                pitch_classes: vec![8, 0, 3],
                bass: 3
            }
        );
        assert_eq!(tones("D5(add6)(addb7)/C").pitch_classes, [2, 9, 11, 11]);
    }

    #[test]
    fn kind_is_the_first_abbreviation_that_lets_the_rest_parse() {
        let half_diminished = ChordSymbol::parse("Cm7b5").unwrap();
        assert_eq!(half_diminished.kind(), ChordKind::Minor7);
        assert_eq!(half_diminished.modifications().len(), 1);
        let six_nine = ChordSymbol::parse("F6/9/C").unwrap();
        assert_eq!(six_nine.kind(), ChordKind::SixNine);
        assert_eq!(six_nine.bass_pitch_class(), 0);
        assert_eq!(
            ChordSymbol::parse("C/o7").unwrap().kind(),
            ChordKind::HalfDiminished
        );
        assert_eq!(ChordSymbol::parse("Csus4").unwrap().kind(), ChordKind::Sus4);
        // `Cb5` is a C-flat power chord: the root takes every accidental.
        let cb5 = ChordSymbol::parse("Cb5").unwrap();
        assert_eq!((cb5.root_pitch_class(), cb5.kind()), (11, ChordKind::Power));
    }

    #[test]
    fn errors_quote_the_name() {
        let err = ChordSymbol::parse("N.C.").unwrap_err();
        assert_eq!(err.to_string(), r#"unknown chord symbol "N.C.""#);
        for bad in [
            "", "C#b", "H", "c", " C", "C ", "C/", "C//E", "Cadd", "C\n\n", "C♯",
        ] {
            assert_eq!(
                ChordSymbol::parse(bad),
                Err(ChordError::Unknown(bad.to_string()))
            );
        }
        let added = ChordSymbol::parse("C(add3)").unwrap();
        assert_eq!(added.bass_pitch_class(), 0);
        assert_eq!(
            added.pitch_classes().unwrap_err().to_string(),
            r#"chord symbol "C(add3)" adds scale degree 3, which the chord already has"#
        );
        assert!(matches!(
            ChordSymbol::parse("C(no9)").unwrap().pitch_classes(),
            Err(ChordError::DegreeMissing { degree: 9, .. })
        ));
        assert!(matches!(
            ChordSymbol::parse("C(add99999999999)"),
            Err(ChordError::DegreeTooLarge(_))
        ));
    }

    #[test]
    fn python_dollar_quirk_and_odd_spellings() {
        assert_eq!(ChordSymbol::parse("C\n").unwrap().to_string(), "C");
        assert_eq!(pcs("C(add09)"), [0, 4, 7, 2]);
        assert_eq!(pcs("C(add0)"), [0, 4, 7, 11]);
        assert_eq!(pcs("C#5#5"), [1, 9]);
        assert_eq!(pcs("Cno5)(b9"), [0, 4, 1]);
        assert_eq!(pcs("Cpedno1"), Vec::<u8>::new());
        assert_eq!(
            tones("Fb/E#"),
            ChordTones {
                pitch_classes: vec![4, 8, 11],
                bass: 5
            }
        );
    }

    #[test]
    fn names_print_back_as_written() {
        for name in [
            "Cm7b5",
            "C/o",
            "F6/9/C",
            "Bbbm(maj7)(b9",
            "Cadd2)no5",
            "G#-(M7)/D##",
        ] {
            assert_eq!(ChordSymbol::parse(name).unwrap().to_string(), name);
        }
    }

    #[test]
    fn plain_voicing_is_realjams() {
        assert_eq!(plain_voicing(&tones("C")), [48, 52, 55, 36]);
        assert_eq!(plain_voicing(&tones("Ab/Eb")), [56, 48, 51, 39]);
        assert_eq!(
            plain_voicing(&tones("D5(add6)(addb7)/C")),
            [50, 57, 59, 59, 36]
        );
    }

    fn check_voicing(v: &Voicing, t: &ChordTones, range: VoicingRange) {
        let notes = v.notes();
        assert!(
            notes
                .iter()
                .all(|&n| (range.low()..=range.high()).contains(&n)),
            "{v:?}"
        );
        assert!(
            v.upper.iter().all(|&n| n > v.bass),
            "bass must be lowest: {v:?}"
        );
        assert!(v.upper.windows(2).all(|w| w[0] < w[1]), "{v:?}");
        assert_eq!(v.bass % 12, t.bass);
        let mut upper_pcs: Vec<u8> = v.upper.iter().map(|n| n % 12).collect();
        upper_pcs.sort_unstable();
        assert_eq!(upper_pcs, distinct_pitch_classes(t));
    }

    #[test]
    fn voice_leading_moves_little_and_stays_in_range() {
        let range = VoicingRange::default();
        let mut previous: Option<Voicing> = None;
        let mut moves = Vec::new();
        for name in [
            "C", "F", "G", "C", "Am7", "Dm7", "G7", "Cmaj7", "E/G#", "Cpedno1",
        ] {
            let t = tones(name);
            let v = voice_led(&t, previous.as_ref(), range);
            check_voicing(&v, &t, range);
            if let Some(p) = &previous {
                moves.push(movement(&v.upper, &p.upper));
            }
            previous = Some(v);
        }
        // C→F→G→C: the best close-position moves are 3, 6 and 3 semitones (root position
        // throughout would move 15, 6 and 21).
        assert_eq!(moves[..3], [3, 6, 3]);
        assert!(moves.iter().all(|&m| m <= 6), "{moves:?}");
    }

    #[test]
    fn first_chord_is_centred_and_deterministic() {
        let range = VoicingRange::new(30, 90, 66).unwrap();
        let v = voice_led(&tones("C"), None, range);
        assert_eq!(v, voice_led(&tones("C"), None, range));
        let mean = v.upper.iter().map(|&n| f64::from(n)).sum::<f64>() / v.upper.len() as f64;
        assert!((mean - 66.0).abs() <= 4.0, "{v:?}");
        assert!(v.bass < v.upper[0] && v.upper[0] - v.bass <= 24, "{v:?}");
    }

    #[test]
    fn voicing_respects_a_narrow_range() {
        let range = VoicingRange::new(40, 76, 60).unwrap();
        let mut previous = None;
        for name in ["C13", "Bb/D", "F#m7b5", "Ebmaj9/G", "Db"] {
            let t = tones(name);
            let v = voice_led(&t, previous.as_ref(), range);
            check_voicing(&v, &t, range);
            previous = Some(v);
        }
        assert!(VoicingRange::new(40, 70, 60).is_err());
        assert!(VoicingRange::new(40, 128, 60).is_err());
        assert!(VoicingRange::new(40, 90, 30).is_err());
    }

    #[test]
    fn chord_table_keeps_going_past_bad_names() {
        let names = ["C", "N.C.", "C(add3)", "Am7/G"].map(String::from).to_vec();
        let table = ChordTable::new(&Vocabulary::new(names).unwrap());
        assert_eq!(table.len(), 4);
        assert_eq!(table.tones(3).unwrap().bass, 7);
        assert!(table.tones(1).is_none() && table.tones(4).is_none());
        let failed: Vec<ChordIndex> = table.failures().map(|(i, _)| i).collect();
        assert_eq!(failed, [1, 2]);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Strings built from the grammar's pieces, so that many of them parse.
        fn chordish() -> impl Strategy<Value = String> {
            let pieces = prop::sample::select(vec![
                "C", "D", "E", "F", "G", "A", "B", "#", "b", "m", "maj", "7", "9", "5", "6", "/",
                "(", ")", "add", "no", "sus", "o", "+", "-", "13", "11", "/o", "M", "ped", "é",
                "\n", "2",
            ]);
            prop::collection::vec(pieces, 1..8).prop_map(|p| p.concat())
        }

        proptest! {
            #[test]
            fn parsing_never_panics(name in any::<String>()) {
                if let Ok(symbol) = ChordSymbol::parse(&name) {
                    let _ = symbol.pitch_classes();
                }
            }

            #[test]
            fn printing_a_parsed_symbol_reparses_to_it(name in chordish()) {
                if let Ok(symbol) = ChordSymbol::parse(&name) {
                    let printed = symbol.to_string();
                    prop_assert_eq!(ChordSymbol::parse(&printed), Ok(symbol.clone()));
                    let _ = symbol.pitch_classes();
                }
            }

            #[test]
            fn voicings_always_fit(
                pitch_classes in prop::collection::vec(0u8..12, 0..8),
                bass in 0u8..12,
                low in 0u8..60,
                span in 36u8..60,
                previous_notes in prop::option::of(prop::collection::vec(30u8..100, 1..6)),
            ) {
                let range = VoicingRange::new(low, low + span, low + span / 2).unwrap();
                let t = ChordTones { pitch_classes, bass };
                let previous = previous_notes.map(|mut upper| {
                    upper.sort_unstable();
                    Voicing { bass: upper[0].saturating_sub(5), upper }
                });
                let v = voice_led(&t, previous.as_ref(), range);
                check_voicing(&v, &t, range);
            }
        }
    }
}
