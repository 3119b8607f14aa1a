//! The ReaLchords token vocabulary (`HooktheoryTokenizer`), id for id.
//!
//! Layout for a chord-name list of length `C`: PAD 0, BOS 1, EOS 2, SILENCE 3, note hold
//! `4 + pitch`, note onset `132 + pitch`, chord hold `260 + i`, chord onset `260 + C + i`;
//! `num_tokens = 260 + 2C`. Sharing this layout is what makes the official checkpoints loadable.

use crate::frames::{ChordFrame, ChordIndex, MelodyFrame};

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
    WrongPart { id: TokenId, token: Token, expected: &'static str },
    #[error("the chord vocabulary is empty")]
    EmptyVocabulary,
    #[error("the chord vocabulary has {0} names; at most 32767 fit the id space")]
    VocabularyTooLarge(usize),
    #[error("chord name {0:?} appears twice in the vocabulary")]
    DuplicateName(String),
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
        self.names.iter().position(|n| n == name).map(|i| i as ChordIndex)
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
            _ => return Err(TokenError::OutOfRange { id, num_tokens: self.num_tokens() }),
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
            Err(TokenError::OutOfRange { id, num_tokens: self.num_tokens() })
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
            token => Err(TokenError::WrongPart { id, token, expected: "melody" }),
        }
    }

    /// Chord frame of a token id; note and special ids (other than SILENCE) are errors.
    pub fn chord_frame(&self, id: TokenId) -> Result<ChordFrame, TokenError> {
        match self.token(id)? {
            Token::Silence => Ok(ChordFrame::Silence),
            Token::ChordOn(i) => Ok(ChordFrame::Onset(i)),
            Token::ChordHold(i) => Ok(ChordFrame::Hold(i)),
            token => Err(TokenError::WrongPart { id, token, expected: "chord" }),
        }
    }
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
}
