//! Suggest mode's phrase capture, on the inference thread: from the quantizer's frames, record
//! `bars` whole bars starting at the bar line before the first note played after arming.
//!
//! Bars are counted from host beat 0 (frame 0 of the free-running clock when there is no
//! transport). The capture completes when a frame past the region arrives, or when the phrase
//! ends early (stop, jump, loop wrap) after at least one note: then the bars heard so far are
//! kept, which makes a host loop around the phrase work naturally.
//!
//! A phrase needs at least two different pitches: one key held or struck over and over is not a
//! melody to harmonize, and it is what hosts send on their own (pedalboard strikes middle C every
//! block while it checks that a plugin is an instrument). Such a phrase is dropped and the
//! capture waits for the next one.

use crate::suggest::frames_per_bar;
use comper_realtime::frames::MelodyFrame;
use comper_realtime::frames::TimeSignature;
use comper_realtime::quantize::{PhraseId, QuantizerOutput};

/// A finished capture.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedPhrase {
    /// Whole bars of frames.
    pub melody: Vec<MelodyFrame>,
    /// Absolute frame of the region's first frame.
    pub first_frame: i64,
    pub time_signature: TimeSignature,
}

/// Where a capture stands, for the panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureProgress {
    Off,
    /// Waiting for the first note.
    Armed,
    /// Recording bar `bar` (1-based) of `of`.
    Recording {
        bar: usize,
        of: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Off,
    Armed,
    Recording {
        first_frame: i64,
        frames: Vec<MelodyFrame>,
        /// Frames received so far (relative index of the last one + 1).
        heard: usize,
    },
}

/// The capture state machine; see the module docs.
#[derive(Debug, Clone)]
pub struct Capture {
    bars: usize,
    state: State,
    phrase: Option<(PhraseId, TimeSignature)>,
}

impl Capture {
    /// A capture that is off until [`Capture::arm`].
    pub fn new() -> Self {
        Self {
            bars: 4,
            state: State::Off,
            phrase: None,
        }
    }

    /// Waits for the next phrase of `bars` bars (any running recording is dropped).
    pub fn arm(&mut self, bars: usize) {
        self.bars = bars.max(1);
        self.state = State::Armed;
    }

    /// Stops capturing.
    pub fn disarm(&mut self) {
        self.state = State::Off;
    }

    /// Where the capture stands.
    pub fn progress(&self) -> CaptureProgress {
        match &self.state {
            State::Off => CaptureProgress::Off,
            State::Armed => CaptureProgress::Armed,
            State::Recording { heard, .. } => {
                let bar = self.bar_len();
                CaptureProgress::Recording {
                    bar: (heard / bar + 1).min(self.bars),
                    of: self.bars,
                }
            }
        }
    }

    fn bar_len(&self) -> usize {
        frames_per_bar(self.phrase.map(|(_, ts)| ts).unwrap_or_default())
    }

    /// Takes one quantizer output; returns the phrase when the capture completes.
    pub fn push(&mut self, output: &QuantizerOutput) -> Option<CapturedPhrase> {
        match *output {
            QuantizerOutput::PhraseStart {
                phrase,
                time_signature,
                ..
            } => {
                let finished = self.finish();
                self.phrase = Some((phrase, time_signature));
                finished
            }
            QuantizerOutput::PhraseEnd { phrase, .. } => {
                if self.phrase.is_some_and(|(id, _)| id == phrase) {
                    self.phrase = None;
                    return self.finish();
                }
                None
            }
            QuantizerOutput::Frame {
                phrase,
                index,
                frame,
            } => {
                if self.phrase.is_none_or(|(id, _)| id != phrase) {
                    return None;
                }
                self.frame(index, frame)
            }
        }
    }

    fn frame(&mut self, index: i64, frame: MelodyFrame) -> Option<CapturedPhrase> {
        let bar = self.bar_len() as i64;
        if self.state == State::Armed {
            if !matches!(frame, MelodyFrame::Onset(_)) {
                return None;
            }
            self.state = State::Recording {
                first_frame: index.div_euclid(bar) * bar,
                frames: vec![MelodyFrame::Silence; self.bars * bar as usize],
                heard: 0,
            };
        }
        let State::Recording {
            first_frame,
            frames,
            heard,
        } = &mut self.state
        else {
            return None;
        };
        let Ok(offset) = usize::try_from(index - *first_frame) else {
            return None;
        };
        match frames.get_mut(offset) {
            Some(slot) => {
                *slot = frame;
                *heard = (*heard).max(offset + 1);
                None
            }
            None => self.finish(),
        }
    }

    /// Ends a recording: the bars heard so far, if any note was played in them.
    fn finish(&mut self) -> Option<CapturedPhrase> {
        let bar = self.bar_len();
        let time_signature = self.phrase.map(|(_, ts)| ts).unwrap_or_default();
        let (first_frame, mut frames, heard) = match std::mem::replace(&mut self.state, State::Off)
        {
            State::Recording {
                first_frame,
                frames,
                heard,
            } => (first_frame, frames, heard),
            other => {
                self.state = other;
                return None;
            }
        };
        frames.truncate(heard.div_ceil(bar) * bar);
        let mut onsets = frames.iter().filter_map(|f| match f {
            MelodyFrame::Onset(pitch) => Some(*pitch),
            _ => None,
        });
        let first = onsets.next();
        if !onsets.any(|pitch| Some(pitch) != first) {
            self.state = State::Armed;
            return None;
        }
        Some(CapturedPhrase {
            melody: frames,
            first_frame,
            time_signature,
        })
    }
}

impl Default for Capture {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comper_realtime::quantize::{ClockSource, PhraseEndReason};

    fn start(phrase: PhraseId) -> QuantizerOutput {
        QuantizerOutput::PhraseStart {
            phrase,
            first_frame: 0,
            time_signature: TimeSignature::default(),
            clock: ClockSource::Host,
        }
    }

    fn frame(index: i64, frame: MelodyFrame) -> QuantizerOutput {
        QuantizerOutput::Frame {
            phrase: 1,
            index,
            frame,
        }
    }

    #[test]
    fn records_whole_bars_from_the_bar_of_the_first_note() {
        let mut c = Capture::new();
        c.arm(2);
        assert!(c.push(&start(1)).is_none());
        for i in 0..20 {
            assert!(c.push(&frame(i, MelodyFrame::Silence)).is_none());
        }
        assert_eq!(c.progress(), CaptureProgress::Armed);
        assert!(c.push(&frame(21, MelodyFrame::Onset(60))).is_none());
        assert_eq!(c.progress(), CaptureProgress::Recording { bar: 1, of: 2 });
        for i in 22..48 {
            let pitch = if i < 40 { 60 } else { 62 };
            let held = if i == 40 {
                MelodyFrame::Onset(pitch)
            } else {
                MelodyFrame::Hold(pitch)
            };
            assert!(c.push(&frame(i, held)).is_none());
        }
        let done = c.push(&frame(48, MelodyFrame::Silence)).unwrap();
        assert_eq!(done.first_frame, 16);
        assert_eq!(done.melody.len(), 32);
        assert_eq!(done.melody[5], MelodyFrame::Onset(60));
        assert_eq!(done.melody[4], MelodyFrame::Silence);
        assert_eq!(c.progress(), CaptureProgress::Off);
    }

    #[test]
    fn an_early_stop_keeps_the_bars_heard() {
        let mut c = Capture::new();
        c.arm(4);
        c.push(&start(1));
        c.push(&frame(0, MelodyFrame::Onset(62)));
        c.push(&frame(17, MelodyFrame::Onset(64)));
        let end = QuantizerOutput::PhraseEnd {
            phrase: 1,
            reason: PhraseEndReason::LoopWrap,
        };
        let done = c.push(&end).unwrap();
        assert_eq!(done.melody.len(), 32);
        assert_eq!(done.melody[17], MelodyFrame::Onset(64));
    }

    #[test]
    fn one_pitch_struck_over_and_over_is_not_a_phrase() {
        let mut c = Capture::new();
        c.arm(1);
        c.push(&start(1));
        for i in 0..16 {
            assert!(c.push(&frame(i, MelodyFrame::Onset(60))).is_none());
        }
        assert!(c.push(&frame(16, MelodyFrame::Onset(60))).is_none());
        assert_eq!(c.progress(), CaptureProgress::Armed);
    }

    #[test]
    fn frames_of_other_phrases_and_silence_are_ignored() {
        let mut c = Capture::new();
        c.arm(1);
        c.push(&start(2));
        assert!(c.push(&frame(3, MelodyFrame::Onset(60))).is_none());
        assert_eq!(c.progress(), CaptureProgress::Armed);
        let mut off = Capture::new();
        off.push(&start(1));
        assert!(off.push(&frame(0, MelodyFrame::Onset(60))).is_none());
        assert_eq!(off.progress(), CaptureProgress::Off);
    }
}
