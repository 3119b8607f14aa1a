//! Melodies as JSON, and the five options as JSON: the shape a host application (a DAW written in
//! C++, a script) exchanges with Comper without MIDI files. `comper suggest melody.json`,
//! `comper suggest --json` and `comper serve`'s `/suggest` all use this one definition, so the
//! command line and the server answer alike.
//!
//! Request: `{"notes": [{"pitch": 60, "start_beat": 0, "end_beat": 1}, …], "bpm": 120,
//! "beats_per_bar": 4, "options": 5, "temperature": 0.8, "seed": 1, "fit": 0.8, "model":
//! "offline"}`; only `notes` is required. Every value is checked, and a bad one is reported
//! with its path (`notes[3].pitch: …`).

use serde::Serialize;
use serde_json::{Map, Value};

use crate::suggest::Suggestion;
use comper_music::chord::{ChordTable, VoicingRange};
use comper_music::midi_file::{write_progression, MidiFileError, ProgressionExport};
use comper_music::progression::{voice_progression, NamedChord, VoicingStyle};
use comper_realtime::frames::TimeSignature;
use comper_realtime::frames::{Note, FRAMES_PER_BEAT};

/// Most options one request may ask for.
pub const MAX_OPTIONS: usize = 16;
/// Tempo range accepted (it only sets the tempo of written MIDI files).
pub const BPM_RANGE: std::ops::RangeInclusive<f64> = 20.0..=400.0;
/// Highest sampling temperature accepted.
pub const MAX_TEMPERATURE: f64 = 3.0;

/// A bad value in a request: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// The value's path, e.g. `notes[3].pitch` (`body` for the request as a whole).
    pub field: String,
    pub problem: String,
}

impl FieldError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// A parsed `/suggest` request (or `comper suggest melody.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestRequest {
    /// Notes in beats from the phrase start, sorted by onset.
    pub notes: Vec<Note>,
    pub tempo_bpm: f64,
    pub time_signature: TimeSignature,
    /// Settings the request gives; `None` leaves the caller's default.
    pub options: Option<usize>,
    pub temperature: Option<f32>,
    pub seed: Option<u64>,
    pub fit: Option<f32>,
    /// `"offline"`, `"online"` or a loaded model's name.
    pub model: Option<String>,
}

/// Parses and checks a JSON melody request; `max_frames` is the longest phrase the model holds
/// (the melody must end within it).
pub fn parse_suggest_request(body: &[u8], max_frames: usize) -> Result<SuggestRequest, FieldError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| FieldError::new("body", format!("not valid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(FieldError::new("body", "expected a JSON object"));
    };
    let max_beats = max_frames as f64 / FRAMES_PER_BEAT as f64;
    let notes = parse_notes(&object, max_frames, max_beats)?;
    let beats_per_bar = optional_integer(&object, "beats_per_bar", 1, 16)?.unwrap_or(4);
    let time_signature = TimeSignature {
        numerator: beats_per_bar as u8,
        denominator: 4,
    };
    Ok(SuggestRequest {
        notes,
        tempo_bpm: optional_number(&object, "bpm", BPM_RANGE)?.unwrap_or(120.0),
        time_signature,
        options: optional_integer(&object, "options", 1, MAX_OPTIONS as u64)?.map(|n| n as usize),
        temperature: optional_number(&object, "temperature", 0.0..=MAX_TEMPERATURE)?
            .map(|t| t as f32),
        seed: optional_integer(&object, "seed", 0, u64::MAX)?,
        fit: optional_number(&object, "fit", 0.0..=1.0)?.map(|f| f as f32),
        model: optional_string(&object, "model")?,
    })
}

/// The `model` a JSON request names, if it names one as a string: read before the whole request,
/// because the chosen model's length bounds the melody (the full check is in
/// [`parse_suggest_request`]).
pub fn requested_model(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Model {
        model: Option<String>,
    }
    serde_json::from_slice::<Model>(body).ok()?.model
}

fn parse_notes(
    object: &Map<String, Value>,
    max_frames: usize,
    max_beats: f64,
) -> Result<Vec<Note>, FieldError> {
    let list = match object.get("notes") {
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(FieldError::new(
                "notes",
                format!("expected a list of notes, got {}", kind(other)),
            ))
        }
        None => return Err(FieldError::new("notes", "missing (the melody's notes)")),
    };
    if list.len() > max_frames {
        return Err(FieldError::new(
            "notes",
            format!(
                "{} notes; a phrase holds at most {max_frames} (one per 16th note)",
                list.len()
            ),
        ));
    }
    let mut notes = Vec::with_capacity(list.len());
    for (i, note) in list.iter().enumerate() {
        let field = |name: &str| format!("notes[{i}].{name}");
        let Value::Object(note) = note else {
            return Err(FieldError::new(
                format!("notes[{i}]"),
                format!("expected an object, got {}", kind(note)),
            ));
        };
        let pitch = required_integer(note, "pitch", &field("pitch"), 0, 127)? as u8;
        let start = required_number(note, "start_beat", &field("start_beat"))?;
        let end = required_number(note, "end_beat", &field("end_beat"))?;
        if start < 0.0 {
            return Err(FieldError::new(
                field("start_beat"),
                format!("{start} is negative"),
            ));
        }
        if end <= start {
            return Err(FieldError::new(
                field("end_beat"),
                format!("{end} is not after start_beat {start}"),
            ));
        }
        if end > max_beats {
            return Err(FieldError::new(
                field("end_beat"),
                format!(
                    "{end} is past the longest phrase the model holds ({max_beats} beats); send \
                     shorter phrases"
                ),
            ));
        }
        notes.push(Note {
            pitch,
            onset_beat: start,
            offset_beat: end,
        });
    }
    notes.sort_by(|a, b| a.onset_beat.total_cmp(&b.onset_beat));
    Ok(notes)
}

/// A JSON value's kind, for error messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The integer at `key` of `object`, in `min ..= max`; `path` names it in errors.
pub fn required_integer(
    object: &Map<String, Value>,
    key: &str,
    path: &str,
    min: u64,
    max: u64,
) -> Result<u64, FieldError> {
    match object.get(key) {
        None => Err(FieldError::new(path, "missing")),
        Some(value) => integer(value, path, min, max),
    }
}

/// `value` as an integer in `min ..= max` (a float with no fraction counts).
pub fn integer(value: &Value, path: &str, min: u64, max: u64) -> Result<u64, FieldError> {
    let out_of_range = || FieldError::new(path, format!("{value} is outside {min}–{max}"));
    let number = match value {
        Value::Number(n) => n,
        other => {
            return Err(FieldError::new(
                path,
                format!("expected an integer, got {}", kind(other)),
            ))
        }
    };
    if let Some(n) = number.as_u64() {
        return if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(out_of_range())
        };
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f >= min as f64 && f <= max as f64 => Ok(f as u64),
        Some(f) if f.fract() != 0.0 => Err(FieldError::new(
            path,
            format!("expected an integer, got {f}"),
        )),
        _ => Err(out_of_range()),
    }
}

fn required_number(object: &Map<String, Value>, key: &str, path: &str) -> Result<f64, FieldError> {
    match object.get(key) {
        None => Err(FieldError::new(path, "missing")),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| FieldError::new(path, "not a finite number")),
        Some(other) => Err(FieldError::new(
            path,
            format!("expected a number, got {}", kind(other)),
        )),
    }
}

fn optional_integer(
    object: &Map<String, Value>,
    key: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, FieldError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => integer(value, key, min, max).map(Some),
    }
}

fn optional_number(
    object: &Map<String, Value>,
    key: &str,
    range: std::ops::RangeInclusive<f64>,
) -> Result<Option<f64>, FieldError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => {
            let n = required_number(object, key, key)?;
            if range.contains(&n) {
                Ok(Some(n))
            } else {
                Err(FieldError::new(
                    key,
                    format!("{n} is outside {}–{}", range.start(), range.end()),
                ))
            }
        }
    }
}

fn optional_string(object: &Map<String, Value>, key: &str) -> Result<Option<String>, FieldError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(FieldError::new(
            key,
            format!("expected a string, got {}", kind(other)),
        )),
    }
}

/// The JSON of the five options (`comper suggest --json`, `/suggest`).
#[derive(Debug, Clone, Serialize)]
pub struct SuggestReply {
    pub options: Vec<OptionReply>,
    /// Bars cut from the end of a melody longer than the model holds (MIDI input only; JSON
    /// melodies that long are refused).
    #[serde(skip_serializing_if = "is_zero")]
    pub truncated_bars: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One option of a [`SuggestReply`].
#[derive(Debug, Clone, Serialize)]
pub struct OptionReply {
    pub chords: Vec<NamedChord>,
    pub log_likelihood: f64,
    pub melody_fit: f64,
    /// The option in words: Roman numerals in the melody's key, pace, colour.
    pub description: String,
    /// The critic's total the options are ranked by.
    pub score: f64,
    /// The option as a standard MIDI file, base64 (only where asked for: `/suggest/midi`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub midi_base64: Option<String>,
}

impl SuggestReply {
    /// The reply for `suggestions`, without MIDI.
    pub fn new(suggestions: &[Suggestion]) -> Self {
        Self {
            options: suggestions
                .iter()
                .map(|s| OptionReply {
                    chords: s.chords.clone(),
                    log_likelihood: s.log_likelihood,
                    melody_fit: s.melody_fit,
                    description: s.description.clone(),
                    score: s.critique.score,
                    midi_base64: None,
                })
                .collect(),
            truncated_bars: 0,
        }
    }
}

/// What a written option file holds besides the chords.
#[derive(Debug, Clone, Copy)]
pub struct OptionFile<'a> {
    /// The melody on its own track, or none (chords only).
    pub melody: Option<&'a [Note]>,
    pub tempo_bpm: f64,
    pub time_signature: TimeSignature,
    pub style: VoicingStyle,
}

/// An option as a standard MIDI file: the chords voiced as `comper suggest` writes them.
pub fn option_midi(
    suggestion: &Suggestion,
    table: &ChordTable,
    file: OptionFile,
) -> Result<Vec<u8>, MidiFileError> {
    let export = ProgressionExport {
        chords: voice_progression(
            &suggestion.chords,
            table,
            file.style,
            VoicingRange::default(),
            90,
        ),
        melody: file.melody.map(<[Note]>::to_vec),
        tempo_bpm: file.tempo_bpm,
        time_signature: file.time_signature,
        ..ProgressionExport::default()
    };
    write_progression(&export)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<SuggestRequest, FieldError> {
        parse_suggest_request(json.as_bytes(), 256)
    }

    #[test]
    fn reads_a_melody_with_defaults() {
        let request = parse(
            r#"{"notes": [{"pitch": 64, "start_beat": 1, "end_beat": 2},
                          {"pitch": 60, "start_beat": 0, "end_beat": 1}]}"#,
        )
        .unwrap();
        assert_eq!(request.notes.len(), 2);
        assert_eq!(request.notes[0].pitch, 60, "sorted by onset");
        assert_eq!(request.tempo_bpm, 120.0);
        assert_eq!(request.time_signature.numerator, 4);
        assert_eq!(request.options, None);
    }

    #[test]
    fn names_the_bad_field() {
        let cases = [
            ("{", "body"),
            ("[]", "body"),
            (r#"{}"#, "notes"),
            (r#"{"notes": 3}"#, "notes"),
            (
                r#"{"notes": [{"pitch": 200, "start_beat": 0, "end_beat": 1}]}"#,
                "notes[0].pitch",
            ),
            (
                r#"{"notes": [{"pitch": "C4", "start_beat": 0, "end_beat": 1}]}"#,
                "notes[0].pitch",
            ),
            (
                r#"{"notes": [{"pitch": 60, "start_beat": -1, "end_beat": 1}]}"#,
                "notes[0].start_beat",
            ),
            (
                r#"{"notes": [{"pitch": 60, "start_beat": 2, "end_beat": 1}]}"#,
                "notes[0].end_beat",
            ),
            (
                r#"{"notes": [{"pitch": 60, "start_beat": 0, "end_beat": 1e9}]}"#,
                "notes[0].end_beat",
            ),
            (r#"{"notes": [], "bpm": "fast"}"#, "bpm"),
            (r#"{"notes": [], "options": 0}"#, "options"),
            (r#"{"notes": [], "options": 2.5}"#, "options"),
            (r#"{"notes": [], "beats_per_bar": 40}"#, "beats_per_bar"),
            (r#"{"notes": [], "temperature": -1}"#, "temperature"),
            (r#"{"notes": [], "model": 7}"#, "model"),
        ];
        for (json, field) in cases {
            let error = parse(json).expect_err(json);
            assert_eq!(error.field, field, "{json}: {error}");
        }
    }

    #[test]
    fn refuses_more_notes_than_a_phrase_holds() {
        let notes: Vec<String> = (0..300)
            .map(|i| {
                format!(
                    r#"{{"pitch": 60, "start_beat": {}, "end_beat": {}}}"#,
                    i as f64 * 0.1,
                    i as f64 * 0.1 + 0.05
                )
            })
            .collect();
        let json = format!(r#"{{"notes": [{}]}}"#, notes.join(","));
        assert_eq!(parse(&json).unwrap_err().field, "notes");
    }
}
