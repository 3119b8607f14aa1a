//! ReaLJam's `/play` protocol (realjam 1.0.1, `server.py` and `agent_interface.py`), answered by
//! Comper's live engine. The client keeps the whole session and sends it with every request:
//! the note events so far, its chord track (our token ids, `-1` for gaps), the frame to plan
//! from, lookahead and commitahead in frames, the listening length and whether it already holds
//! the intro chords. The reply has one `[symbol, pitches, is_onset]` per planned frame, their
//! tokens, the intro's tokens when it was sampled, and the frame echoed.

use serde::Serialize;
use serde_json::{Map, Value};

use comper_generate::live::{ClientPlan, ClientTurn};
use comper_generate::melody_json::{integer, kind, FieldError};
use comper_music::chord::{plain_voicing, ChordTable};
use comper_music::tokens::{melody_to_frames, TokenId, Vocabulary};
use comper_realtime::frames::{ChordFrame, MelodyFrame, Note, FRAMES_PER_BEAT};

/// Latest frame a request may name (about 4½ hours at 60 BPM); a session longer than the model's
/// context is trimmed to its most recent frames anyway.
pub const MAX_FRAME: u64 = 1 << 20;
/// Most note events one request may carry.
pub const MAX_NOTE_EVENTS: usize = 200_000;
/// Longest lookahead accepted, in frames (ReaLJam's page offers up to 8 beats).
pub const MAX_LOOKAHEAD: u64 = 64;

/// A parsed `/play` request.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayRequest {
    pub model: String,
    /// The melody heard, frames `0 .. frame`.
    pub melody: Vec<MelodyFrame>,
    /// The client's chord track.
    pub chords: Vec<ChordFrame>,
    pub frame: usize,
    pub lookahead: usize,
    pub commitahead: usize,
    pub temperature: f32,
    pub silence_till: usize,
    pub intro_set: bool,
}

impl PlayRequest {
    /// The engine's view of this request.
    pub fn turn(&self) -> ClientTurn<'_> {
        ClientTurn {
            melody: &self.melody,
            chords: &self.chords,
            lookahead: self.lookahead,
            commitahead: self.commitahead,
            listen: self.silence_till,
            intro_set: self.intro_set,
            temperature: self.temperature,
        }
    }
}

/// Parses and checks a `/play` body against `vocab` (chord tokens must be chord tokens of it).
pub fn parse_play(body: &[u8], vocab: &Vocabulary) -> Result<PlayRequest, FieldError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| FieldError {
        field: "body".into(),
        problem: format!("not valid JSON: {e}"),
    })?;
    let Value::Object(object) = value else {
        return Err(field_error("body", "expected a JSON object"));
    };
    let frame = required_integer(&object, "frame", 0, MAX_FRAME)? as usize;
    let lookahead = required_integer(&object, "lookahead", 1, MAX_LOOKAHEAD)? as usize;
    let commitahead = required_integer(&object, "commitahead", 0, lookahead as u64)? as usize;
    let silence_till = required_integer(&object, "silenceTill", 0, MAX_FRAME)? as usize;
    let temperature = match object.get("temperature") {
        // The page sends `valueAsNumber`, which JSON writes as null for an empty field.
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|t| (0.0..=3.0).contains(t))
            .ok_or_else(|| field_error("temperature", format!("{n} is outside 0–3")))?
            as f32,
        Some(other) => {
            return Err(field_error(
                "temperature",
                format!("expected a number, got {}", kind(other)),
            ))
        }
        None => return Err(field_error("temperature", "missing")),
    };
    let intro_set = match object.get("introSet") {
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(field_error(
                "introSet",
                format!("expected true or false, got {}", kind(other)),
            ))
        }
        None => return Err(field_error("introSet", "missing")),
    };
    let model = match object.get("model") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(field_error(
                "model",
                format!("expected a model name, got {}", kind(other)),
            ))
        }
        None => return Err(field_error("model", "missing")),
    };
    Ok(PlayRequest {
        model,
        melody: parse_melody(&object, frame)?,
        chords: parse_chords(&object, vocab, frame + 2 * lookahead)?,
        frame,
        lookahead,
        commitahead,
        temperature,
        silence_till,
        intro_set,
    })
}

fn field_error(field: &str, problem: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        problem: problem.into(),
    }
}

fn required_integer(
    object: &Map<String, Value>,
    key: &str,
    min: u64,
    max: u64,
) -> Result<u64, FieldError> {
    comper_generate::melody_json::required_integer(object, key, key, min, max)
}

/// ReaLJam's note events (`{pitch, frame, on}`) as melody frames `0 .. frame`: a note sounds
/// from its on to its matching off, one still held runs to `frame`; overlaps keep the newest.
fn parse_melody(object: &Map<String, Value>, frame: usize) -> Result<Vec<MelodyFrame>, FieldError> {
    let events = match object.get("notes") {
        Some(Value::Array(events)) => events,
        Some(other) => {
            return Err(field_error(
                "notes",
                format!("expected a list of note events, got {}", kind(other)),
            ))
        }
        None => return Err(field_error("notes", "missing")),
    };
    if events.len() > MAX_NOTE_EVENTS {
        return Err(field_error(
            "notes",
            format!("{} events; at most {MAX_NOTE_EVENTS}", events.len()),
        ));
    }
    let beat = |f: u64| f as f64 / FRAMES_PER_BEAT as f64;
    let mut sounding: [Option<u64>; 128] = [None; 128];
    let mut notes = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let path = |name: &str| format!("notes[{i}].{name}");
        let Value::Object(event) = event else {
            return Err(field_error(
                &format!("notes[{i}]"),
                format!("expected an object, got {}", kind(event)),
            ));
        };
        let pitch =
            comper_generate::melody_json::required_integer(event, "pitch", &path("pitch"), 0, 127)?
                as usize;
        let at = comper_generate::melody_json::required_integer(
            event,
            "frame",
            &path("frame"),
            0,
            MAX_FRAME,
        )?;
        let on = match event.get("on") {
            Some(Value::Bool(on)) => *on,
            Some(other) => {
                return Err(field_error(
                    &path("on"),
                    format!("expected true or false, got {}", kind(other)),
                ))
            }
            None => return Err(field_error(&path("on"), "missing")),
        };
        if on {
            sounding[pitch] = Some(at);
        } else if let Some(start) = sounding[pitch].take() {
            let end = at.min(frame as u64);
            if end > start {
                notes.push(Note {
                    pitch: pitch as u8,
                    onset_beat: beat(start),
                    offset_beat: beat(end),
                });
            }
        }
    }
    for (pitch, start) in sounding.iter().enumerate() {
        if let Some(start) = *start {
            if (start as usize) < frame {
                notes.push(Note {
                    pitch: pitch as u8,
                    onset_beat: beat(start),
                    offset_beat: beat(frame as u64),
                });
            }
        }
    }
    notes.sort_by(|a, b| a.onset_beat.total_cmp(&b.onset_beat));
    let notes: Vec<Note> = notes
        .into_iter()
        .filter(|n| n.onset_beat < beat(frame as u64))
        .collect();
    melody_to_frames(&notes, frame).map_err(|e| field_error("notes", e.to_string()))
}

/// The client's chord track: our chord tokens, `-1` for a frame it has no chord for (silence).
fn parse_chords(
    object: &Map<String, Value>,
    vocab: &Vocabulary,
    max_len: usize,
) -> Result<Vec<ChordFrame>, FieldError> {
    let tokens = match object.get("chordTokens") {
        Some(Value::Array(tokens)) => tokens,
        Some(other) => {
            return Err(field_error(
                "chordTokens",
                format!("expected a list of chord tokens, got {}", kind(other)),
            ))
        }
        None => return Err(field_error("chordTokens", "missing")),
    };
    if tokens.len() > max_len {
        return Err(field_error(
            "chordTokens",
            format!(
                "{} tokens run past the frames planned so far (at most {max_len})",
                tokens.len()
            ),
        ));
    }
    tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            let path = format!("chordTokens[{i}]");
            if token.as_i64() == Some(-1) || token.is_null() {
                return Ok(ChordFrame::Silence);
            }
            let id = integer(token, &path, 0, u64::from(u32::MAX))?;
            let bad = || field_error(&path, format!("{id} is not a chord token of this model"));
            let id = TokenId::try_from(id).map_err(|_| bad())?;
            vocab.chord_frame(id).map_err(|_| bad())
        })
        .collect()
}

/// ReaLJam's `ChordInfo`: the symbol (empty for silence), the pitches (chord tones from C4 and
/// the bass from C3, as ReaLJam voices them; none for silence), and whether the frame starts
/// the chord.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChordInfo(pub String, pub Vec<u8>, pub bool);

/// The `/play` reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayReply {
    pub new_chords: Vec<ChordInfo>,
    pub new_chord_tokens: Vec<TokenId>,
    pub intro_chord_tokens: Option<Vec<TokenId>>,
    pub frame: usize,
}

impl PlayReply {
    /// The reply to a request for `frame` that was too early to plan for.
    pub fn waiting(frame: usize) -> Self {
        Self {
            new_chords: Vec::new(),
            new_chord_tokens: Vec::new(),
            intro_chord_tokens: None,
            frame,
        }
    }

    /// The reply carrying `plan`.
    pub fn planned(
        plan: &ClientPlan,
        frame: usize,
        vocab: &Vocabulary,
        table: &ChordTable,
    ) -> Result<Self, comper_music::tokens::TokenError> {
        let tokens = |chords: &[ChordFrame]| -> Result<Vec<TokenId>, _> {
            chords.iter().map(|&c| vocab.chord_id(c)).collect()
        };
        Ok(Self {
            new_chords: plan
                .chords
                .iter()
                .map(|&chord| chord_info(chord, vocab, table))
                .collect(),
            new_chord_tokens: tokens(&plan.chords)?,
            intro_chord_tokens: plan.intro.as_deref().map(tokens).transpose()?,
            frame,
        })
    }
}

fn chord_info(chord: ChordFrame, vocab: &Vocabulary, table: &ChordTable) -> ChordInfo {
    let named = chord
        .chord()
        .and_then(|index| Some((vocab.name(index)?, table.tones(index)?)));
    match named {
        Some((name, tones)) => ChordInfo(
            name.to_string(),
            plain_voicing(tones),
            matches!(chord, ChordFrame::Onset(_)),
        ),
        None => ChordInfo(String::new(), Vec::new(), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        Vocabulary::new(vec!["C".into(), "G".into(), "Am".into(), "F".into()]).unwrap()
    }

    fn body(extra: &str) -> String {
        format!(
            r#"{{"model": "m", "notes": [{{"pitch": 60, "frame": 0, "on": true}},
                {{"pitch": 60, "frame": 4, "on": false}}, {{"pitch": 67, "frame": 6, "on": true}}],
                "chordTokens": [], "frame": 8, "lookahead": 16, "commitahead": 16,
                "temperature": 0.8, "silenceTill": 32, "introSet": false{extra}}}"#
        )
    }

    #[test]
    fn events_become_frames_up_to_the_request_frame() {
        let request = parse_play(body("").as_bytes(), &vocab()).unwrap();
        assert_eq!(request.melody.len(), 8);
        assert_eq!(request.melody[0], MelodyFrame::Onset(60));
        assert_eq!(request.melody[3], MelodyFrame::Hold(60));
        assert_eq!(request.melody[4], MelodyFrame::Silence);
        assert_eq!(
            request.melody[6],
            MelodyFrame::Onset(67),
            "a held note runs on"
        );
        assert_eq!(request.melody[7], MelodyFrame::Hold(67));
    }

    #[test]
    fn names_the_bad_field() {
        let v = vocab();
        let on = |s: &str| parse_play(s.as_bytes(), &v).unwrap_err().field;
        assert_eq!(on("nope"), "body");
        assert_eq!(
            on(&body("").replace("\"frame\": 8", "\"frame\": -3")),
            "frame"
        );
        assert_eq!(
            on(&body("").replace("\"pitch\": 67", "\"pitch\": 128")),
            "notes[2].pitch"
        );
        assert_eq!(
            on(&body("").replace("\"on\": true", "\"on\": 1")),
            "notes[0].on"
        );
        assert_eq!(
            on(&body("").replace("\"commitahead\": 16", "\"commitahead\": 17")),
            "commitahead"
        );
        assert_eq!(
            on(&body("").replace("\"chordTokens\": []", "\"chordTokens\": [5]")),
            "chordTokens[0]"
        );
        assert_eq!(
            on(&body("").replace("\"introSet\": false", "\"introSet\": \"no\"")),
            "introSet"
        );
        assert_eq!(
            on(&body("").replace("\"model\": \"m\"", "\"model\": null")),
            "model"
        );
    }

    #[test]
    fn gaps_in_the_chord_track_are_silence() {
        let v = vocab();
        let on = v.id(comper_music::tokens::Token::ChordOn(1)).unwrap();
        let json = body("").replace(
            "\"chordTokens\": []",
            &format!("\"chordTokens\": [-1, {on}]"),
        );
        let request = parse_play(json.as_bytes(), &v).unwrap();
        assert_eq!(
            request.chords,
            vec![ChordFrame::Silence, ChordFrame::Onset(1)]
        );
    }
}
