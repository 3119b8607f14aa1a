//! The ReaLchords token vocabulary (`HooktheoryTokenizer`), id for id.
//!
//! Layout for a chord-name list of length `C`: PAD 0, BOS 1, EOS 2, SILENCE 3, note hold
//! `4 + pitch`, note onset `132 + pitch`, chord hold `260 + i`, chord onset `260 + C + i`;
//! `num_tokens = 260 + 2C`. Sharing this layout is what makes the official checkpoints loadable.
//!
//! Also here: placing timed notes and chords on the frame grid exactly as ReaLchords'
//! `melody_to_frames` / `chord_to_frames` do, reading frames back as notes and chord spans, and
//! the token sequences the models consume (online interleaved, offline encoder/decoder).

use comper_realtime::frames::{
    ChordFrame, ChordIndex, ChordSpan, MelodyFrame, Note, FRAMES_PER_BEAT,
};

/// Token id as the model sees it.
pub type TokenId = u32;

pub const PAD: TokenId = 0;
pub const BOS: TokenId = 1;
pub const EOS: TokenId = 2;
pub const SILENCE: TokenId = 3;
/// First note-hold id (pitch 0).
pub const NOTE_HOLD_BASE: TokenId = 4;
/// First note-onset id (pitch 0).
pub const NOTE_ON_BASE: TokenId = 132;
/// First chord id (hold of chord 0).
pub const CHORD_BASE: TokenId = 260;

/// What a token id means, independent of the vocabulary's chord names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Pad,
    Bos,
    Eos,
    Silence,
    NoteHold(u8),
    NoteOn(u8),
    ChordHold(ChordIndex),
    ChordOn(ChordIndex),
}

/// Errors from turning ids or names into tokens.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token id {id} is outside the vocabulary of {num_tokens} tokens")]
    OutOfRange { id: TokenId, num_tokens: u32 },
    #[error("token id {id} ({token:?}) is not a {expected} token")]
    WrongPart {
        id: TokenId,
        token: Token,
        expected: &'static str,
    },
    #[error("the chord vocabulary is empty")]
    EmptyVocabulary,
    #[error("the chord vocabulary has {0} names; at most 32767 fit the id space")]
    VocabularyTooLarge(usize),
    #[error("chord name {0:?} appears twice in the vocabulary")]
    DuplicateName(String),
    #[error("{chords} chord frames and {melody} melody frames cannot be interleaved")]
    LengthMismatch { chords: usize, melody: usize },
    #[error("a token sequence must start with BOS, found {found:?}")]
    MissingBos { found: Option<TokenId> },
    #[error("token {id} at position {position} follows EOS")]
    TokenAfterEos { id: TokenId, position: usize },
}

/// Errors from placing timed events on the frame grid.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    /// Onset or offset is NaN, infinite, or falls on a frame before the phrase start.
    #[error(
        "event {index} (onset {onset_beat} beats, offset {offset_beat} beats) lies before \
         the phrase start or is not a finite time"
    )]
    InvalidTime {
        index: usize,
        onset_beat: f64,
        offset_beat: f64,
    },
    /// The event starts on or after the last frame; ReaLchords raises here too.
    #[error(
        "event {index} starts at beat {onset_beat}, at or past the end of the \
         {num_frames}-frame phrase"
    )]
    OnsetPastEnd {
        index: usize,
        onset_beat: f64,
        num_frames: usize,
    },
}

/// The chord-name list that fixes the id layout of one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    names: Vec<String>,
}

impl Vocabulary {
    /// Builds the vocabulary from chord names in file order (as in `chord_names.json`).
    pub fn new(names: Vec<String>) -> Result<Self, TokenError> {
        if names.is_empty() {
            return Err(TokenError::EmptyVocabulary);
        }
        if names.len() > i16::MAX as usize {
            return Err(TokenError::VocabularyTooLarge(names.len()));
        }
        let mut seen = std::collections::HashSet::with_capacity(names.len());
        for name in &names {
            if !seen.insert(name.as_str()) {
                return Err(TokenError::DuplicateName(name.clone()));
            }
        }
        Ok(Self { names })
    }

    /// Number of chord names `C`.
    pub fn num_chords(&self) -> usize {
        self.names.len()
    }

    /// Total token count `260 + 2C`, the model's `num_tokens`.
    pub fn num_tokens(&self) -> u32 {
        CHORD_BASE + 2 * self.names.len() as u32
    }

    /// The chord names in id order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The name of chord `index`.
    pub fn name(&self, index: ChordIndex) -> Option<&str> {
        self.names.get(index as usize).map(String::as_str)
    }

    /// Looks a chord name up (exact match).
    pub fn index_of(&self, name: &str) -> Option<ChordIndex> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| i as ChordIndex)
    }

    /// First chord-onset id, `260 + C`.
    pub fn chord_on_base(&self) -> TokenId {
        CHORD_BASE + self.names.len() as TokenId
    }

    /// Decodes an id.
    pub fn token(&self, id: TokenId) -> Result<Token, TokenError> {
        let c = self.names.len() as TokenId;
        Ok(match id {
            PAD => Token::Pad,
            BOS => Token::Bos,
            EOS => Token::Eos,
            SILENCE => Token::Silence,
            4..=131 => Token::NoteHold((id - NOTE_HOLD_BASE) as u8),
            132..=259 => Token::NoteOn((id - NOTE_ON_BASE) as u8),
            _ if id < CHORD_BASE + c => Token::ChordHold((id - CHORD_BASE) as ChordIndex),
            _ if id < CHORD_BASE + 2 * c => Token::ChordOn((id - CHORD_BASE - c) as ChordIndex),
            _ => {
                return Err(TokenError::OutOfRange {
                    id,
                    num_tokens: self.num_tokens(),
                })
            }
        })
    }

    /// Encodes a token. Pitches above 127 and chord indices outside the vocabulary are
    /// rejected.
    pub fn id(&self, token: Token) -> Result<TokenId, TokenError> {
        let c = self.names.len() as TokenId;
        let id = match token {
            Token::Pad => PAD,
            Token::Bos => BOS,
            Token::Eos => EOS,
            Token::Silence => SILENCE,
            Token::NoteHold(p) => NOTE_HOLD_BASE + p as TokenId,
            Token::NoteOn(p) => NOTE_ON_BASE + p as TokenId,
            Token::ChordHold(i) => CHORD_BASE + i as TokenId,
            Token::ChordOn(i) => CHORD_BASE + c + i as TokenId,
        };
        let valid = match token {
            Token::NoteHold(p) | Token::NoteOn(p) => p < 128,
            Token::ChordHold(i) | Token::ChordOn(i) => (i as TokenId) < c,
            _ => true,
        };
        if valid {
            Ok(id)
        } else {
            Err(TokenError::OutOfRange {
                id,
                num_tokens: self.num_tokens(),
            })
        }
    }

    /// Token id of a melody frame.
    pub fn melody_id(&self, frame: MelodyFrame) -> Result<TokenId, TokenError> {
        self.id(match frame {
            MelodyFrame::Silence => Token::Silence,
            MelodyFrame::Onset(p) => Token::NoteOn(p),
            MelodyFrame::Hold(p) => Token::NoteHold(p),
        })
    }

    /// Token id of a chord frame.
    pub fn chord_id(&self, frame: ChordFrame) -> Result<TokenId, TokenError> {
        self.id(match frame {
            ChordFrame::Silence => Token::Silence,
            ChordFrame::Onset(i) => Token::ChordOn(i),
            ChordFrame::Hold(i) => Token::ChordHold(i),
        })
    }

    /// Melody frame of a token id; chord and special ids (other than SILENCE) are errors.
    pub fn melody_frame(&self, id: TokenId) -> Result<MelodyFrame, TokenError> {
        match self.token(id)? {
            Token::Silence => Ok(MelodyFrame::Silence),
            Token::NoteOn(p) => Ok(MelodyFrame::Onset(p)),
            Token::NoteHold(p) => Ok(MelodyFrame::Hold(p)),
            token => Err(TokenError::WrongPart {
                id,
                token,
                expected: "melody",
            }),
        }
    }

    /// Chord frame of a token id; note and special ids (other than SILENCE) are errors.
    pub fn chord_frame(&self, id: TokenId) -> Result<ChordFrame, TokenError> {
        match self.token(id)? {
            Token::Silence => Ok(ChordFrame::Silence),
            Token::ChordOn(i) => Ok(ChordFrame::Onset(i)),
            Token::ChordHold(i) => Ok(ChordFrame::Hold(i)),
            token => Err(TokenError::WrongPart {
                id,
                token,
                expected: "chord",
            }),
        }
    }
}

/// Token sequences for the models (see the module docs for the layouts).
impl Vocabulary {
    /// Online prompt `[BOS, c0, m0, c1, m1, …]` without EOS: what the live loop feeds the
    /// decoder-only model before asking for the next chord. Chord comes first in each pair
    /// because the model predicts chord `t` before it hears melody `t`.
    pub fn online_prompt(
        &self,
        chords: &[ChordFrame],
        melody: &[MelodyFrame],
    ) -> Result<Vec<TokenId>, TokenError> {
        if chords.len() != melody.len() {
            return Err(TokenError::LengthMismatch {
                chords: chords.len(),
                melody: melody.len(),
            });
        }
        let mut ids = Vec::with_capacity(2 * chords.len() + 2);
        ids.push(BOS);
        for (&chord, &note) in chords.iter().zip(melody) {
            ids.push(self.chord_id(chord)?);
            ids.push(self.melody_id(note)?);
        }
        Ok(ids)
    }

    /// Complete online sequence `[BOS, c0, m0, …, c_{T-1}, m_{T-1}, EOS]` (training layout).
    pub fn online_sequence(
        &self,
        chords: &[ChordFrame],
        melody: &[MelodyFrame],
    ) -> Result<Vec<TokenId>, TokenError> {
        let mut ids = self.online_prompt(chords, melody)?;
        ids.push(EOS);
        Ok(ids)
    }

    /// Offline encoder input `[BOS, m0 … m_{T−1}, EOS]`: the whole melody the offline model
    /// harmonizes.
    pub fn offline_melody(&self, melody: &[MelodyFrame]) -> Result<Vec<TokenId>, TokenError> {
        let mut ids = Vec::with_capacity(melody.len() + 2);
        ids.push(BOS);
        for &note in melody {
            ids.push(self.melody_id(note)?);
        }
        ids.push(EOS);
        Ok(ids)
    }

    /// Both sides of an offline training example: the encoder input ([`Self::offline_melody`]) and
    /// the decoder sequence `[BOS, c0 … c_{T−1}, EOS]`.
    pub fn offline_sequences(
        &self,
        chords: &[ChordFrame],
        melody: &[MelodyFrame],
    ) -> Result<(Vec<TokenId>, Vec<TokenId>), TokenError> {
        if chords.len() != melody.len() {
            return Err(TokenError::LengthMismatch {
                chords: chords.len(),
                melody: melody.len(),
            });
        }
        let mut chord_ids = Vec::with_capacity(chords.len() + 2);
        chord_ids.push(BOS);
        for &chord in chords {
            chord_ids.push(self.chord_id(chord)?);
        }
        chord_ids.push(EOS);
        Ok((self.offline_melody(melody)?, chord_ids))
    }

    /// Splits an online sequence back into chord and melody frames.
    ///
    /// The sequence must start with BOS; an EOS may only come last. A trailing chord without
    /// its melody token (as left by generation that stops after a chord) is kept, so the
    /// chord track can be one frame longer than the melody.
    pub fn split_online_sequence(
        &self,
        ids: &[TokenId],
    ) -> Result<(Vec<ChordFrame>, Vec<MelodyFrame>), TokenError> {
        let body = strip_bos_eos(ids)?;
        let mut chords = Vec::with_capacity(body.len().div_ceil(2));
        let mut melody = Vec::with_capacity(body.len() / 2);
        for pair in body.chunks(2) {
            if let Some(&chord) = pair.first() {
                chords.push(self.chord_frame(chord)?);
            }
            if let Some(&note) = pair.get(1) {
                melody.push(self.melody_frame(note)?);
            }
        }
        Ok((chords, melody))
    }

    /// Offline encoder input `[BOS, m0, …, m_{T-1}, EOS]`.
    pub fn encoder_sequence(&self, melody: &[MelodyFrame]) -> Result<Vec<TokenId>, TokenError> {
        let body = melody.iter().map(|&m| self.melody_id(m));
        std::iter::once(Ok(BOS))
            .chain(body)
            .chain(std::iter::once(Ok(EOS)))
            .collect()
    }

    /// Offline decoder sequence `[BOS, c0, …, c_{T-1}, EOS]`.
    pub fn decoder_sequence(&self, chords: &[ChordFrame]) -> Result<Vec<TokenId>, TokenError> {
        let body = chords.iter().map(|&c| self.chord_id(c));
        std::iter::once(Ok(BOS))
            .chain(body)
            .chain(std::iter::once(Ok(EOS)))
            .collect()
    }
}

/// The ids between a leading BOS and an optional final EOS.
fn strip_bos_eos(ids: &[TokenId]) -> Result<&[TokenId], TokenError> {
    let body = match ids.split_first() {
        Some((&BOS, rest)) => rest,
        other => {
            return Err(TokenError::MissingBos {
                found: other.map(|(&id, _)| id),
            })
        }
    };
    match body.iter().position(|&id| id == EOS) {
        None => Ok(body),
        Some(eos) => match body.get(eos + 1) {
            None => Ok(&body[..eos]),
            Some(&id) => Err(TokenError::TokenAfterEos {
                id,
                position: eos + 2,
            }),
        },
    }
}

/// Melody notes on a grid of `num_frames` frames, exactly like ReaLchords' `melody_to_frames`.
///
/// Every frame starts silent; then, in list order, a note covers frames
/// `[trunc(onset·4), trunc(offset·4))` (one frame if that is empty because both truncate to
/// the same frame), clipped at the end, with an onset on its first frame. Later notes overwrite
/// earlier ones, so overlapping input can leave a hold right after another pitch. An onset at
/// or past the end, or before the start, is an error.
pub fn melody_to_frames(notes: &[Note], num_frames: usize) -> Result<Vec<MelodyFrame>, FrameError> {
    place_on_grid(
        notes.iter().map(|n| {
            (
                n.onset_beat,
                n.offset_beat,
                MelodyFrame::Onset(n.pitch),
                MelodyFrame::Hold(n.pitch),
            )
        }),
        num_frames,
        MelodyFrame::Silence,
    )
}

/// Chord spans on a grid of `num_frames` frames, exactly like ReaLchords' `chord_to_frames`
/// (same rules as [`melody_to_frames`]).
pub fn chords_to_frames(
    spans: &[ChordSpan],
    num_frames: usize,
) -> Result<Vec<ChordFrame>, FrameError> {
    place_on_grid(
        spans.iter().map(|c| {
            (
                c.onset_beat,
                c.offset_beat,
                ChordFrame::Onset(c.chord),
                ChordFrame::Hold(c.chord),
            )
        }),
        num_frames,
        ChordFrame::Silence,
    )
}

/// Reads melody frames back as notes (onset and offset on frame boundaries, in beats).
///
/// An onset starts a note, holds of the same pitch extend it, anything else ends it. A hold
/// that does not continue a note of its pitch (after silence or another pitch) starts a new
/// note, as if it were an onset; ReaLchords only tolerates this after silence. Hence
/// `melody_to_frames(&frames_to_notes(f), f.len()) == f` whenever `f` has no such stray hold.
pub fn frames_to_notes(frames: &[MelodyFrame]) -> Vec<Note> {
    runs(frames, |frame| match frame {
        MelodyFrame::Silence => None,
        MelodyFrame::Onset(p) => Some((p, true)),
        MelodyFrame::Hold(p) => Some((p, false)),
    })
    .map(|(pitch, onset_beat, offset_beat)| Note {
        pitch,
        onset_beat,
        offset_beat,
    })
    .collect()
}

/// Reads chord frames back as chord spans (same rules as [`frames_to_notes`]).
pub fn frames_to_chord_spans(frames: &[ChordFrame]) -> Vec<ChordSpan> {
    runs(frames, |frame| match frame {
        ChordFrame::Silence => None,
        ChordFrame::Onset(c) => Some((c, true)),
        ChordFrame::Hold(c) => Some((c, false)),
    })
    .map(|(chord, onset_beat, offset_beat)| ChordSpan {
        chord,
        onset_beat,
        offset_beat,
    })
    .collect()
}

/// Shared body of the two `*_to_frames` functions; events are `(onset, offset, onset frame,
/// hold frame)`.
fn place_on_grid<F: Copy>(
    events: impl Iterator<Item = (f64, f64, F, F)>,
    num_frames: usize,
    silence: F,
) -> Result<Vec<F>, FrameError> {
    let per_beat = f64::from(FRAMES_PER_BEAT);
    let mut frames = vec![silence; num_frames];
    for (index, (onset_beat, offset_beat, onset, hold)) in events.enumerate() {
        // Python's int() truncates toward zero, so onsets in (-1/4, 0) still land on frame 0.
        let start = (onset_beat * per_beat).trunc();
        let end = (offset_beat * per_beat).trunc();
        if !(start.is_finite() && end.is_finite() && start >= 0.0 && end >= 0.0) {
            return Err(FrameError::InvalidTime {
                index,
                onset_beat,
                offset_beat,
            });
        }
        if start >= num_frames as f64 {
            return Err(FrameError::OnsetPastEnd {
                index,
                onset_beat,
                num_frames,
            });
        }
        let end = if end == start { end + 1.0 } else { end };
        // `start` is a whole number in [0, num_frames); `end` saturates when cast.
        let start = start as usize;
        let end = (end as usize).min(num_frames);
        for frame in frames.iter_mut().take(end).skip(start) {
            *frame = hold;
        }
        if let Some(first) = frames.get_mut(start) {
            *first = onset;
        }
    }
    Ok(frames)
}

/// Runs of one sounding thing in a frame track, as `(thing, onset beat, offset beat)`.
/// `classify` says what sounds in a frame and whether the frame is an onset.
fn runs<'a, F: Copy, T: Copy + PartialEq + 'a>(
    frames: &'a [F],
    classify: impl Fn(F) -> Option<(T, bool)> + 'a,
) -> impl Iterator<Item = (T, f64, f64)> + 'a {
    let per_beat = f64::from(FRAMES_PER_BEAT);
    let beat = move |frame: usize| frame as f64 / per_beat;
    let mut current: Option<(T, usize)> = None;
    let mut position = 0;
    std::iter::from_fn(move || {
        while position < frames.len() {
            let index = position;
            position += 1;
            let sounding = frames.get(index).and_then(|&f| classify(f));
            let continues = matches!(
                (current, sounding),
                (Some((now, _)), Some((next, false))) if now == next
            );
            if continues {
                continue;
            }
            let finished = current.take();
            current = sounding.map(|(thing, _)| (thing, index));
            if let Some((thing, start)) = finished {
                return Some((thing, beat(start), beat(index)));
            }
        }
        current
            .take()
            .map(|(thing, start)| (thing, beat(start), beat(frames.len())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        Vocabulary::new(vec!["A".into(), "Am".into(), "C".into()]).unwrap()
    }

    #[test]
    fn layout_matches_realchords() {
        let v = vocab();
        assert_eq!(v.num_tokens(), 266);
        assert_eq!(v.id(Token::NoteHold(60)).unwrap(), 64);
        assert_eq!(v.id(Token::NoteOn(60)).unwrap(), 192);
        assert_eq!(v.id(Token::ChordHold(2)).unwrap(), 262);
        assert_eq!(v.id(Token::ChordOn(0)).unwrap(), 263);
        assert!(v.id(Token::ChordOn(3)).is_err());
        assert!(v.token(266).is_err());
    }

    #[test]
    fn every_id_round_trips() {
        let v = vocab();
        for id in 0..v.num_tokens() {
            assert_eq!(v.id(v.token(id).unwrap()).unwrap(), id);
        }
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let err = Vocabulary::new(vec!["C".into(), "C".into()]).unwrap_err();
        assert_eq!(err, TokenError::DuplicateName("C".into()));
    }

    fn note(pitch: u8, onset_beat: f64, offset_beat: f64) -> Note {
        Note {
            pitch,
            onset_beat,
            offset_beat,
        }
    }

    #[test]
    fn notes_land_on_frames_with_later_notes_winning() {
        use MelodyFrame::{Hold as H, Onset as O, Silence as S};
        let notes = [note(60, 0.0, 1.0), note(62, 0.5, 0.75), note(64, 1.5, 1.5)];
        let frames = melody_to_frames(&notes, 8).unwrap();
        assert_eq!(frames, vec![O(60), H(60), O(62), H(60), S, S, O(64), S]);
    }

    #[test]
    fn notes_are_clipped_at_the_end_and_late_onsets_are_errors() {
        use MelodyFrame::{Hold as H, Onset as O, Silence as S};
        assert_eq!(
            melody_to_frames(&[note(1, 0.5, 99.0)], 4).unwrap(),
            vec![S, S, O(1), H(1)]
        );
        // Offset before onset: only the onset frame, as in the reference.
        assert_eq!(
            melody_to_frames(&[note(1, 0.5, 0.25)], 4).unwrap(),
            vec![S, S, O(1), S]
        );
        let err = melody_to_frames(&[note(1, 0.0, 1.0), note(2, 1.0, 2.0)], 4).unwrap_err();
        assert_eq!(
            err,
            FrameError::OnsetPastEnd {
                index: 1,
                onset_beat: 1.0,
                num_frames: 4
            }
        );
        assert!(matches!(
            melody_to_frames(&[note(1, -0.25, 1.0)], 4),
            Err(FrameError::InvalidTime { index: 0, .. })
        ));
        assert!(melody_to_frames(&[note(1, f64::NAN, 1.0)], 4).is_err());
        assert!(melody_to_frames(&[note(1, 0.0, f64::INFINITY)], 4).is_err());
        // Python's int() truncates toward zero: a tiny negative onset is frame 0.
        assert_eq!(
            melody_to_frames(&[note(1, -0.1, 0.3)], 2).unwrap(),
            vec![O(1), S]
        );
    }

    #[test]
    fn chord_spans_round_trip_through_frames() {
        let spans = [
            ChordSpan {
                chord: 2,
                onset_beat: 0.0,
                offset_beat: 1.0,
            },
            ChordSpan {
                chord: 2,
                onset_beat: 1.0,
                offset_beat: 1.25,
            },
            ChordSpan {
                chord: 0,
                onset_beat: 2.0,
                offset_beat: 3.0,
            },
        ];
        let frames = chords_to_frames(&spans, 12).unwrap();
        assert_eq!(frames_to_chord_spans(&frames), spans.to_vec());
    }

    #[test]
    fn a_stray_hold_starts_a_note() {
        use MelodyFrame::{Hold as H, Onset as O, Silence as S};
        let frames = [H(60), H(60), O(62), H(64), S, H(65)];
        let notes = frames_to_notes(&frames);
        let expected = vec![
            note(60, 0.0, 0.5),
            note(62, 0.5, 0.75),
            note(64, 0.75, 1.0),
            note(65, 1.25, 1.5),
        ];
        assert_eq!(notes, expected);
        let again = melody_to_frames(&notes, frames.len()).unwrap();
        assert_eq!(again, vec![O(60), H(60), O(62), O(64), S, O(65)]);
    }

    #[test]
    fn online_sequence_interleaves_chord_first_and_splits_back() {
        let v = vocab();
        let chords = [
            ChordFrame::Onset(1),
            ChordFrame::Hold(1),
            ChordFrame::Silence,
        ];
        let melody = [
            MelodyFrame::Silence,
            MelodyFrame::Onset(60),
            MelodyFrame::Hold(60),
        ];
        let ids = v.online_sequence(&chords, &melody).unwrap();
        assert_eq!(ids, vec![BOS, 264, SILENCE, 261, 192, SILENCE, 64, EOS]);
        assert_eq!(
            v.split_online_sequence(&ids).unwrap(),
            (chords.to_vec(), melody.to_vec())
        );
        let prompt = v.online_prompt(&chords, &melody).unwrap();
        assert_eq!(prompt, ids[..ids.len() - 1].to_vec());
        // A trailing chord without its melody token is kept.
        let (c, m) = v.split_online_sequence(&ids[..4]).unwrap();
        assert_eq!((c.len(), m.len()), (2, 1));
    }

    #[test]
    fn malformed_online_sequences_are_rejected() {
        let v = vocab();
        assert_eq!(
            v.online_prompt(&[ChordFrame::Silence], &[]).unwrap_err(),
            TokenError::LengthMismatch {
                chords: 1,
                melody: 0
            }
        );
        assert_eq!(
            v.split_online_sequence(&[SILENCE]).unwrap_err(),
            TokenError::MissingBos {
                found: Some(SILENCE)
            }
        );
        assert_eq!(
            v.split_online_sequence(&[]).unwrap_err(),
            TokenError::MissingBos { found: None }
        );
        assert_eq!(
            v.split_online_sequence(&[BOS, EOS, SILENCE]).unwrap_err(),
            TokenError::TokenAfterEos {
                id: SILENCE,
                position: 2
            }
        );
        // A note where a chord belongs.
        assert!(matches!(
            v.split_online_sequence(&[BOS, 192, SILENCE]),
            Err(TokenError::WrongPart { id: 192, .. })
        ));
    }

    #[test]
    fn offline_sequences_wrap_one_part_in_bos_and_eos() {
        let v = vocab();
        assert_eq!(
            v.encoder_sequence(&[MelodyFrame::Onset(0)]).unwrap(),
            vec![BOS, 132, EOS]
        );
        assert_eq!(
            v.decoder_sequence(&[ChordFrame::Hold(0)]).unwrap(),
            vec![BOS, 260, EOS]
        );
        assert!(v.decoder_sequence(&[ChordFrame::Hold(3)]).is_err());
    }

    mod round_trip {
        use super::*;
        use proptest::prelude::*;

        /// Frame tracks without stray holds: every hold continues the pitch before it.
        fn valid_melody() -> impl Strategy<Value = Vec<MelodyFrame>> {
            proptest::collection::vec((0u8..3, 0u8..128), 0..64).prop_map(|steps| {
                let mut frames: Vec<MelodyFrame> = Vec::with_capacity(steps.len());
                for (kind, pitch) in steps {
                    let frame = match (kind, frames.last().and_then(|f| f.pitch())) {
                        (0, _) => MelodyFrame::Silence,
                        (1, Some(previous)) => MelodyFrame::Hold(previous),
                        _ => MelodyFrame::Onset(pitch),
                    };
                    frames.push(frame);
                }
                frames
            })
        }

        proptest! {
            #[test]
            fn frames_to_notes_to_frames_is_identity(frames in valid_melody()) {
                let notes = frames_to_notes(&frames);
                prop_assert_eq!(melody_to_frames(&notes, frames.len()).unwrap(), frames);
            }

            #[test]
            fn any_frames_normalise_in_one_round(
                frames in proptest::collection::vec(
                    prop_oneof![
                        Just(MelodyFrame::Silence),
                        (60u8..63).prop_map(MelodyFrame::Onset),
                        (60u8..63).prop_map(MelodyFrame::Hold),
                    ],
                    0..40,
                )
            ) {
                let once = melody_to_frames(&frames_to_notes(&frames), frames.len()).unwrap();
                let twice = melody_to_frames(&frames_to_notes(&once), once.len()).unwrap();
                prop_assert_eq!(&once, &twice);
                // Only stray holds change, and they become onsets of the same pitch.
                for (before, after) in frames.iter().zip(&once) {
                    prop_assert_eq!(before.pitch(), after.pitch());
                }
            }
        }
    }
}
