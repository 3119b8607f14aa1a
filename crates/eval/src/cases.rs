//! Melody cases: a melody (`NAME.mid`) and the harmonization a musician would play under it
//! (`NAME.json`), the input of `comper eval --melodies` (format: `training/melodies/README.md`).
//! Also writes the converted test split in the same format.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::data::Example;
use super::EvalError;
use comper_music::harmony::key::melody_key;
use comper_music::harmony::{Key, Triad};
use comper_music::midi_file::{
    read_melody, write_progression_to_path, MelodyChoice, ProgressionExport,
};
use comper_music::tokens::{frames_to_chord_spans, frames_to_notes, Vocabulary};
use comper_realtime::frames::TimeSignature;
use comper_realtime::frames::{MelodyFrame, Note, FRAMES_PER_BEAT};

/// One chord of a case's reference, as written in its JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseChord {
    pub symbol: String,
    pub start_beat: f64,
    pub end_beat: f64,
}

/// A case's JSON file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseInfo {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub source: String,
    pub key: String,
    pub time_signature: [u8; 2],
    #[serde(default)]
    pub pickup_beats: f64,
    pub chords: Vec<CaseChord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpm: Option<f64>,
}

/// A reference chord with its sound: the pitch classes (bass included) and its triad.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReferenceChord {
    pub mask: u16,
    pub triad: Triad,
    pub start_beat: f64,
    pub end_beat: f64,
}

/// A case read from disk.
#[derive(Debug, Clone, PartialEq)]
pub struct MelodyCase {
    /// The file stem.
    pub name: String,
    pub info: CaseInfo,
    pub key: Key,
    pub time_signature: TimeSignature,
    pub tempo_bpm: f64,
    /// Notes in beats from the file start (a bar line).
    pub notes: Vec<Note>,
    pub reference: Vec<ReferenceChord>,
}

/// Reads every case of `dir` (files `*.json` with a `.mid` beside them), sorted by name.
pub fn read_cases(dir: &Path) -> Result<Vec<MelodyCase>, EvalError> {
    let bad = |path: &Path, message: String| EvalError::BadData {
        path: path.to_owned(),
        message,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| bad(dir, e.to_string()))?;
    let mut jsons: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    jsons.sort();
    if jsons.is_empty() {
        return Err(bad(
            dir,
            "no melody cases (NAME.json + NAME.mid) in this folder".into(),
        ));
    }
    jsons.iter().map(|path| read_case(path)).collect()
}

/// Reads one case from its JSON path (the `.mid` has the same stem).
pub fn read_case(json_path: &Path) -> Result<MelodyCase, EvalError> {
    let bad = |message: String| EvalError::BadData {
        path: json_path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(json_path).map_err(|e| bad(e.to_string()))?;
    let info: CaseInfo = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let key = Key::parse(&info.key).ok_or_else(|| bad(format!("unknown key {:?}", info.key)))?;
    let [numerator, denominator] = info.time_signature;
    if numerator == 0 || !matches!(denominator, 1 | 2 | 4 | 8 | 16) {
        return Err(bad(format!("bad time signature {numerator}/{denominator}")));
    }
    let mut reference = Vec::with_capacity(info.chords.len());
    let mut previous_end = 0.0;
    for chord in &info.chords {
        let triad = Triad::of_symbol(&chord.symbol)
            .ok_or_else(|| bad(format!("unknown chord symbol {:?}", chord.symbol)))?;
        let tones = comper_music::chord::ChordSymbol::parse(&chord.symbol)
            .and_then(|s| s.tones())
            .map_err(|e| bad(format!("chord {:?}: {e}", chord.symbol)))?;
        let mask = tones
            .pitch_classes
            .iter()
            .chain(std::iter::once(&tones.bass))
            .fold(0u16, |m, &pc| m | 1 << (pc % 12));
        let valid = chord.start_beat.is_finite()
            && chord.end_beat.is_finite()
            && chord.start_beat >= previous_end - 1e-9
            && chord.end_beat > chord.start_beat;
        if !valid {
            return Err(bad(format!(
                "chord {:?} at beats {}–{} overlaps the one before or is empty",
                chord.symbol, chord.start_beat, chord.end_beat
            )));
        }
        previous_end = chord.end_beat;
        reference.push(ReferenceChord {
            mask,
            triad,
            start_beat: chord.start_beat,
            end_beat: chord.end_beat,
        });
    }
    let midi_path = json_path.with_extension("mid");
    let melody = read_melody(&midi_path, MelodyChoice::Auto).map_err(|e| EvalError::BadData {
        path: midi_path.clone(),
        message: e.to_string(),
    })?;
    Ok(MelodyCase {
        name: json_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        key,
        time_signature: TimeSignature {
            numerator,
            denominator,
        },
        tempo_bpm: melody.tempo_bpm,
        notes: melody.notes,
        reference,
        info,
    })
}

impl MelodyCase {
    /// The reference as one entry per frame: the chord sounding there, if any.
    pub fn reference_frames(&self, frames: usize) -> Vec<Option<(u16, Triad)>> {
        let per_beat = f64::from(FRAMES_PER_BEAT);
        let mut out = vec![None; frames];
        for chord in &self.reference {
            let start = (chord.start_beat * per_beat).round().max(0.0) as usize;
            let end = ((chord.end_beat * per_beat).round().max(0.0) as usize).min(frames);
            for slot in out.iter_mut().take(end).skip(start) {
                *slot = Some((chord.mask, chord.triad));
            }
        }
        out
    }
}

/// Writes test-split examples as melody cases in `dir` (`test-00000.mid/json` …): the melody, the
/// ground-truth chords by vocabulary name, the key as heard ([`melody_key`]) and the metre from
/// the bar lines (16 frames: 4/4, 12: 3/4, 8: 2/4), padded so the file starts on a bar line.
/// Returns how many were written.
pub fn export_cases(
    examples: &[(usize, Example)],
    vocab: &Vocabulary,
    dir: &Path,
) -> Result<usize, EvalError> {
    let io = |path: &Path, e: String| EvalError::BadData {
        path: path.to_owned(),
        message: e,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e.to_string()))?;
    for (index, example) in examples {
        let bar = example
            .bars
            .windows(2)
            .map(|w| w[1] - w[0])
            .next()
            .unwrap_or(16)
            .max(1);
        let numerator = (bar / FRAMES_PER_BEAT as usize).clamp(1, 12) as u8;
        let pad = example
            .bars
            .first()
            .map_or(0, |&first| (bar - first % bar) % bar);
        let shift = pad as f64 / f64::from(FRAMES_PER_BEAT);
        let mut melody: Vec<MelodyFrame> = vec![MelodyFrame::Silence; pad];
        melody.extend_from_slice(&example.melody);
        let notes: Vec<Note> = frames_to_notes(&example.melody)
            .into_iter()
            .map(|n| Note {
                onset_beat: n.onset_beat + shift,
                offset_beat: n.offset_beat + shift,
                ..n
            })
            .collect();
        let chords: Vec<CaseChord> = frames_to_chord_spans(&example.chords)
            .into_iter()
            .map(|span| CaseChord {
                symbol: vocab.name(span.chord).unwrap_or("N.C.").to_string(),
                start_beat: span.onset_beat + shift,
                end_beat: span.offset_beat + shift,
            })
            .collect();
        let info = CaseInfo {
            title: format!("test example {index}"),
            source: "training/convert.py test split".into(),
            key: melody_key(&melody).name(),
            time_signature: [numerator, 4],
            pickup_beats: shift,
            chords,
            family: None,
            bpm: Some(120.0),
        };
        let stem = dir.join(format!("test-{index:05}"));
        let json = serde_json::to_string_pretty(&info).map_err(|e| io(&stem, e.to_string()))?;
        std::fs::write(stem.with_extension("json"), json + "\n")
            .map_err(|e| io(&stem, e.to_string()))?;
        let export = ProgressionExport {
            melody: Some(notes),
            tempo_bpm: 120.0,
            time_signature: TimeSignature {
                numerator,
                denominator: 4,
            },
            ..ProgressionExport::default()
        };
        write_progression_to_path(&export, &stem.with_extension("mid"))
            .map_err(|e| io(&stem, e.to_string()))?;
    }
    Ok(examples.len())
}
