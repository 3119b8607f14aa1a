//! What Suggest mode has captured and offered, saved with the host project.
//!
//! The session is plain data (melody frames, option chords by *name*, the selection, locked
//! chords, the weights folder), so a project still opens when the model's vocabulary differs:
//! names are mapped to the loaded vocabulary when the worker restores the session. The stored
//! form is versioned JSON; a corrupt, unknown-version or nonsensical state loads as an empty
//! session with a logged warning, never a panic.
//!
//! The audio thread never touches this: the host saves and loads it on its main thread, the
//! runtime writes it, and the plugin's panel reads it.

use std::path::PathBuf;

use comper_music::tokens::Vocabulary;
use comper_realtime::frames::TimeSignature;
use comper_realtime::frames::{ChordFrame, MelodyFrame};
use serde::{Deserialize, Serialize};

/// Version of the stored JSON; older or newer states are not guessed at.
pub const STATE_VERSION: u32 = 1;
/// Longest phrase a state may hold (16 bars of 16/4 would be 1024 frames).
pub const MAX_STATE_FRAMES: usize = 1024;
/// Most options a state may hold.
pub const MAX_STATE_OPTIONS: usize = 16;

/// One offered progression, by chord name so it survives a vocabulary change.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionOption {
    /// One entry per melody frame: `None` is silence; `Some((name, onset))`.
    pub frames: Vec<Option<(String, bool)>>,
    pub log_likelihood: f64,
    pub melody_fit: f64,
    /// The option in words ("I–V–vi–IV, one chord per bar"), shown in the panel.
    pub description: String,
}

/// Suggest mode's captured phrase and its options.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Session {
    /// The captured melody, one frame per 16th note; empty when nothing was captured yet.
    pub melody: Vec<MelodyFrame>,
    pub time_signature: TimeSignature,
    /// Absolute host frame where the captured region starts (the loop is anchored there).
    pub first_frame: i64,
    pub options: Vec<SessionOption>,
    /// Index into `options` of the progression that plays.
    pub selected: usize,
    /// Chords the user locked, per melody frame (`None` = free); empty when nothing is locked.
    pub locked: Vec<Option<(String, bool)>>,
    /// A weights folder chosen by the user instead of the built-in model.
    pub weights_path: Option<PathBuf>,
}

impl Session {
    /// Whether there is a captured phrase with options to play.
    pub fn has_options(&self) -> bool {
        !self.melody.is_empty() && !self.options.is_empty()
    }

    /// Encodes the session as the versioned JSON stored in the project.
    pub fn to_json(&self) -> serde_json::Value {
        let stored = Stored {
            version: STATE_VERSION,
            melody: self.melody.iter().map(|&f| melody_code(f)).collect(),
            time_signature: [
                self.time_signature.numerator,
                self.time_signature.denominator,
            ],
            first_frame: self.first_frame,
            options: self
                .options
                .iter()
                .map(|o| StoredOption {
                    chords: encode_chords(&o.frames),
                    log_likelihood: finite_or_zero(o.log_likelihood),
                    melody_fit: finite_or_zero(o.melody_fit),
                    description: o.description.clone(),
                })
                .collect(),
            selected: self.selected,
            locked: encode_chords(&self.locked),
            weights_path: self.weights_path.clone(),
        };
        serde_json::to_value(stored).unwrap_or(serde_json::Value::Null)
    }

    /// Decodes a stored session, checking everything a hand-edited or damaged file could break.
    pub fn from_json(value: serde_json::Value) -> Result<Self, String> {
        let stored: Stored = serde_json::from_value(value).map_err(|e| e.to_string())?;
        if stored.version != STATE_VERSION {
            return Err(format!(
                "state version {} is not {STATE_VERSION}",
                stored.version
            ));
        }
        if stored.melody.len() > MAX_STATE_FRAMES {
            return Err(format!(
                "melody of {} frames is too long",
                stored.melody.len()
            ));
        }
        let melody = stored
            .melody
            .iter()
            .map(|&code| melody_frame(code))
            .collect::<Result<Vec<_>, _>>()?;
        let [numerator, denominator] = stored.time_signature;
        if numerator == 0 || !matches!(denominator, 1 | 2 | 4 | 8 | 16 | 32) {
            return Err(format!("time signature {numerator}/{denominator}"));
        }
        if stored.options.len() > MAX_STATE_OPTIONS {
            return Err(format!("{} options is too many", stored.options.len()));
        }
        let mut options = Vec::with_capacity(stored.options.len());
        for (i, option) in stored.options.into_iter().enumerate() {
            let frames = decode_chords(&option.chords)?;
            if frames.len() != melody.len() {
                return Err(format!(
                    "option {} has {} frames for a melody of {}",
                    i + 1,
                    frames.len(),
                    melody.len()
                ));
            }
            options.push(SessionOption {
                frames,
                log_likelihood: option.log_likelihood,
                melody_fit: option.melody_fit,
                description: option
                    .description
                    .chars()
                    .take(MAX_DESCRIPTION_CHARS)
                    .collect(),
            });
        }
        if !options.is_empty() && stored.selected >= options.len() {
            return Err(format!(
                "selected option {} does not exist",
                stored.selected + 1
            ));
        }
        let locked = decode_chords(&stored.locked)?;
        if !locked.is_empty() && locked.len() != melody.len() {
            return Err(format!(
                "{} locked frames for a melody of {}",
                locked.len(),
                melody.len()
            ));
        }
        Ok(Self {
            melody,
            time_signature: TimeSignature {
                numerator,
                denominator,
            },
            first_frame: stored.first_frame.clamp(-(1 << 40), 1 << 40),
            options,
            selected: stored.selected,
            locked,
            weights_path: stored.weights_path,
        })
    }
}

/// Chord frames of the model as names (for storing).
pub fn chords_by_name(frames: &[ChordFrame], vocab: &Vocabulary) -> Vec<Option<(String, bool)>> {
    frames
        .iter()
        .map(|frame| {
            let (index, onset) = match *frame {
                ChordFrame::Silence => return None,
                ChordFrame::Onset(i) => (i, true),
                ChordFrame::Hold(i) => (i, false),
            };
            vocab.name(index).map(|name| (name.to_owned(), onset))
        })
        .collect()
}

/// Stored chord names back to frames of `vocab`; a name the vocabulary lacks is an error.
pub fn chords_in_vocabulary(
    frames: &[Option<(String, bool)>],
    vocab: &Vocabulary,
) -> Result<Vec<ChordFrame>, String> {
    frames
        .iter()
        .map(|frame| match frame {
            None => Ok(ChordFrame::Silence),
            Some((name, onset)) => {
                let index = vocab
                    .index_of(name)
                    .ok_or_else(|| format!("chord {name:?} is not in the model's vocabulary"))?;
                Ok(if *onset {
                    ChordFrame::Onset(index)
                } else {
                    ChordFrame::Hold(index)
                })
            }
        })
        .collect()
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    /// -1 rest, 0..=127 onset of that pitch, 128..=255 hold of pitch − 128.
    melody: Vec<i16>,
    time_signature: [u8; 2],
    first_frame: i64,
    options: Vec<StoredOption>,
    selected: usize,
    locked: Vec<StoredChord>,
    weights_path: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct StoredOption {
    chords: Vec<StoredChord>,
    log_likelihood: f64,
    melody_fit: f64,
    /// Absent in sessions saved before options were described.
    #[serde(default)]
    description: String,
}

/// Longest option description kept from a stored session (a damaged file cannot bloat the panel).
const MAX_DESCRIPTION_CHARS: usize = 200;

/// A run of frames: a chord (onset then holds), a run of holds, or silence (`chord: null`).
#[derive(Serialize, Deserialize)]
struct StoredChord {
    chord: Option<String>,
    frames: u32,
    #[serde(default = "default_true")]
    onset: bool,
}

fn default_true() -> bool {
    true
}

fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

fn melody_code(frame: MelodyFrame) -> i16 {
    match frame {
        MelodyFrame::Silence => -1,
        MelodyFrame::Onset(p) => i16::from(p),
        MelodyFrame::Hold(p) => 128 + i16::from(p),
    }
}

fn melody_frame(code: i16) -> Result<MelodyFrame, String> {
    match code {
        -1 => Ok(MelodyFrame::Silence),
        0..=127 => Ok(MelodyFrame::Onset(code as u8)),
        128..=255 => Ok(MelodyFrame::Hold((code - 128) as u8)),
        _ => Err(format!("melody code {code}")),
    }
}

fn encode_chords(frames: &[Option<(String, bool)>]) -> Vec<StoredChord> {
    let mut runs: Vec<StoredChord> = Vec::new();
    for frame in frames {
        let extends = match (runs.last(), frame) {
            (Some(run), None) => run.chord.is_none(),
            (Some(run), Some((name, false))) => run.chord.as_deref() == Some(name.as_str()),
            _ => false,
        };
        match runs.last_mut() {
            Some(run) if extends => run.frames += 1,
            _ => runs.push(StoredChord {
                chord: frame.as_ref().map(|(name, _)| name.clone()),
                frames: 1,
                onset: frame.as_ref().is_none_or(|(_, onset)| *onset),
            }),
        }
    }
    runs
}

fn decode_chords(runs: &[StoredChord]) -> Result<Vec<Option<(String, bool)>>, String> {
    let total: u64 = runs.iter().map(|r| u64::from(r.frames)).sum();
    if total > MAX_STATE_FRAMES as u64 {
        return Err(format!("{total} chord frames is too many"));
    }
    let mut frames = Vec::with_capacity(total as usize);
    for run in runs {
        for k in 0..run.frames {
            frames.push(
                run.chord
                    .as_ref()
                    .map(|name| (name.clone(), k == 0 && run.onset)),
            );
        }
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chord(name: &str, onset: bool) -> Option<(String, bool)> {
        Some((name.to_owned(), onset))
    }

    fn session() -> Session {
        Session {
            melody: vec![
                MelodyFrame::Onset(60),
                MelodyFrame::Hold(60),
                MelodyFrame::Silence,
                MelodyFrame::Onset(64),
            ],
            time_signature: TimeSignature {
                numerator: 3,
                denominator: 4,
            },
            first_frame: 32,
            options: vec![SessionOption {
                frames: vec![
                    chord("C", true),
                    chord("C", false),
                    None,
                    chord("G7", false),
                ],
                log_likelihood: -3.5,
                melody_fit: 0.75,
                description: "I–V, one chord per bar".into(),
            }],
            selected: 0,
            locked: vec![chord("C", true), None, None, None],
            weights_path: Some(PathBuf::from("/tmp/w")),
        }
    }

    #[test]
    fn round_trips_through_json() {
        let s = session();
        assert_eq!(Session::from_json(s.to_json()).unwrap(), s);
        let text = serde_json::to_string(&s.to_json()).unwrap();
        assert!(text.contains("\"G7\""), "chords are stored by name: {text}");
    }

    #[test]
    fn broken_states_are_refused_with_a_reason() {
        let mut bad = session().to_json();
        bad["version"] = 99.into();
        assert!(Session::from_json(bad).unwrap_err().contains("version"));
        let mut bad = session().to_json();
        bad["selected"] = 4.into();
        assert!(Session::from_json(bad).is_err());
        let mut bad = session().to_json();
        bad["melody"] = serde_json::json!([60, 999]);
        assert!(Session::from_json(bad).is_err());
        assert!(Session::from_json(serde_json::json!("garbage")).is_err());
        let mut bad = session().to_json();
        bad["options"][0]["chords"][0]["frames"] = 4_000_000_000u32.into();
        assert!(Session::from_json(bad).is_err());
    }

    #[test]
    fn names_map_back_to_a_vocabulary() {
        let vocab = Vocabulary::new(vec!["C".into(), "G7".into()]).unwrap();
        let frames = [
            ChordFrame::Onset(1),
            ChordFrame::Hold(1),
            ChordFrame::Silence,
        ];
        let named = chords_by_name(&frames, &vocab);
        assert_eq!(chords_in_vocabulary(&named, &vocab).unwrap(), frames);
        let other = Vocabulary::new(vec!["C".into()]).unwrap();
        assert!(chords_in_vocabulary(&named, &other)
            .unwrap_err()
            .contains("G7"));
    }
}
