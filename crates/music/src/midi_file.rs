//! Standard MIDI files in and out: a melody comes in from a `.mid`, a chord progression goes out
//! as one.
//!
//! Reading accepts format 0 and 1 files with beat-based timing (any PPQ). Notes are grouped into
//! *parts*, one per (track, channel) pair, because format 0 files keep every instrument in a
//! single track. Positions are converted to beats (quarter notes) from the file start; the tempo
//! map only matters for seconds, so it is reported, not applied. Garbage or truncated input is an
//! error, never a panic.
//!
//! Writing produces format 1, 480 PPQ: a conductor track (tempo, time signature), a chord track
//! (one note group per chord) and an optional melody track.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use midly::num::{u15, u24, u28, u4, u7};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};

use crate::progression::VoicedChord;
use comper_realtime::frames::Note;
use comper_realtime::frames::TimeSignature;

/// Ticks per quarter note of the files Comper writes.
pub const WRITE_PPQ: u16 = 480;
/// Tempo assumed when a file has no tempo event (the MIDI standard's default).
pub const DEFAULT_TEMPO_BPM: f64 = 120.0;
/// The General MIDI percussion channel (channel 10, zero-based 9): never a melody candidate.
pub const DRUM_CHANNEL: u8 = 9;
/// Notes ending later than this (about 14 hours at 120 BPM) mark a corrupt file; refusing them
/// keeps later per-frame work bounded.
pub const MAX_SONG_BEATS: f64 = 100_000.0;
/// Track-name fragments (lowercase) that mark a melody part.
const MELODY_NAME_HINTS: [&str; 4] = ["melody", "lead", "vocal", "voice"];
/// Two notes overlapping by less than this many beats still count as monophonic (legato slop).
const MONOPHONY_SLACK_BEATS: f64 = 1.0 / 32.0;
/// Parts whose monophony is this close to the best one compete on pitch height.
const MONOPHONY_TIE_MARGIN: f64 = 0.05;

/// Everything that can go wrong reading or writing a MIDI file.
#[derive(Debug, thiserror::Error)]
pub enum MidiFileError {
    #[error("not a readable MIDI file: {0}")]
    Parse(String),
    #[error(
        "the file uses SMPTE timecode timing ({fps} fps, {subframes} ticks per frame); only \
         beat-based (PPQ) timing is supported, re-export it from a sequencer with PPQ timing"
    )]
    SmpteTiming { fps: u8, subframes: u8 },
    #[error("the file declares 0 ticks per quarter note")]
    ZeroPpq,
    #[error("format 2 (sequential songs) MIDI files are not supported; use format 0 or 1")]
    SequentialFormat,
    #[error("a note ends at beat {beat}, beyond the {MAX_SONG_BEATS}-beat limit; the file is likely corrupt")]
    TooLong { beat: f64 },
    #[error("the file has no pitched notes outside the drum channel to use as a melody")]
    NoMelody,
    #[error("part {index} does not exist; the file has {count} parts")]
    PartOutOfRange { index: usize, count: usize },
    #[error("invalid {what}: {value}")]
    InvalidInput { what: &'static str, value: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A tempo change, for callers that need seconds (e.g. rendering audio).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TempoPoint {
    pub beat: f64,
    pub bpm: f64,
}

/// The notes of one channel of one track: the unit a melody is picked from.
#[derive(Debug, Clone, PartialEq)]
pub struct MidiPart {
    /// Track index in the file.
    pub track: usize,
    /// Zero-based MIDI channel (9 is drums).
    pub channel: u8,
    /// The track's name meta event, if any.
    pub name: Option<String>,
    /// Notes sorted by onset, in beats from the file start.
    pub notes: Vec<Note>,
}

impl MidiPart {
    /// Whether this part plays on the General MIDI drum channel.
    pub fn is_drums(&self) -> bool {
        self.channel == DRUM_CHANNEL
    }

    /// Fraction of notes (0–1) that start while no other note of the part sounds; 1.0 is a
    /// strictly monophonic line, chords pull it down. Legato overlaps under 1/32 beat are
    /// forgiven. An empty part scores 0.
    pub fn monophony(&self) -> f64 {
        if self.notes.is_empty() {
            return 0.0;
        }
        let mut sounding_until = f64::NEG_INFINITY;
        let mut overlapping = 0_usize;
        for note in &self.notes {
            if note.onset_beat < sounding_until - MONOPHONY_SLACK_BEATS {
                overlapping += 1;
            }
            sounding_until = sounding_until.max(note.offset_beat);
        }
        1.0 - overlapping as f64 / self.notes.len() as f64
    }

    /// Average MIDI pitch; melodies usually sit above the bass and the accompaniment.
    pub fn mean_pitch(&self) -> f64 {
        let sum: f64 = self.notes.iter().map(|n| n.pitch as f64).sum();
        sum / self.notes.len().max(1) as f64
    }

    fn name_suggests_melody(&self) -> bool {
        self.name.as_deref().is_some_and(|name| {
            let name = name.to_lowercase();
            MELODY_NAME_HINTS.iter().any(|hint| name.contains(hint))
        })
    }
}

/// A parsed MIDI file: its parts and the timing facts Comper needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MidiSong {
    /// Ticks per quarter note.
    pub ppq: u16,
    /// The first tempo in the file, or [`DEFAULT_TEMPO_BPM`].
    pub tempo_bpm: f64,
    /// Every tempo change in beat order (empty when the file has none). Tempos are rounded to
    /// 0.001 BPM.
    pub tempo_map: Vec<TempoPoint>,
    /// The first time signature in the file, or 4/4.
    pub time_signature: TimeSignature,
    /// Parts ordered by track, then channel; only parts with at least one note.
    pub parts: Vec<MidiPart>,
}

/// Which part holds the melody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MelodyChoice {
    /// Guess: a part whose track name says melody/lead/vocal/voice, else the most monophonic
    /// pitched part (ties within 0.05 go to the higher one). Drums are never guessed.
    #[default]
    Auto,
    /// The part at this index of [`MidiSong::parts`].
    Part(usize),
}

/// A melody read from a file, ready for [`comper_realtime::quantize::quantize_notes`].
#[derive(Debug, Clone, PartialEq)]
pub struct Melody {
    /// Notes sorted by onset, in beats from the file start.
    pub notes: Vec<Note>,
    /// Index of the chosen part in [`MidiSong::parts`].
    pub part: usize,
    pub tempo_bpm: f64,
    pub time_signature: TimeSignature,
}

impl MidiSong {
    /// Index of the melody part under `choice`.
    pub fn melody_part(&self, choice: MelodyChoice) -> Result<usize, MidiFileError> {
        match choice {
            MelodyChoice::Part(index) if index < self.parts.len() => Ok(index),
            MelodyChoice::Part(index) => Err(MidiFileError::PartOutOfRange {
                index,
                count: self.parts.len(),
            }),
            MelodyChoice::Auto => self.guess_melody_part().ok_or(MidiFileError::NoMelody),
        }
    }

    /// The melody under `choice`, with the song's tempo and time signature.
    pub fn melody(&self, choice: MelodyChoice) -> Result<Melody, MidiFileError> {
        let part = self.melody_part(choice)?;
        let notes = self
            .parts
            .get(part)
            .map(|p| p.notes.clone())
            .unwrap_or_default();
        Ok(Melody {
            notes,
            part,
            tempo_bpm: self.tempo_bpm,
            time_signature: self.time_signature,
        })
    }

    fn guess_melody_part(&self) -> Option<usize> {
        let pitched: Vec<usize> = (0..self.parts.len())
            .filter(|&i| {
                self.parts
                    .get(i)
                    .is_some_and(|p| !p.is_drums() && !p.notes.is_empty())
            })
            .collect();
        let named: Vec<usize> = pitched
            .iter()
            .copied()
            .filter(|&i| {
                self.parts
                    .get(i)
                    .is_some_and(MidiPart::name_suggests_melody)
            })
            .collect();
        let candidates = if named.is_empty() { pitched } else { named };
        let best_monophony = candidates
            .iter()
            .filter_map(|&i| self.parts.get(i))
            .map(MidiPart::monophony)
            .fold(0.0_f64, f64::max);
        candidates
            .into_iter()
            .filter_map(|i| self.parts.get(i).map(|p| (i, p)))
            .filter(|(_, p)| p.monophony() >= best_monophony - MONOPHONY_TIE_MARGIN)
            .max_by(|(_, a), (_, b)| {
                a.mean_pitch()
                    .total_cmp(&b.mean_pitch())
                    .then(a.notes.len().cmp(&b.notes.len()))
            })
            .map(|(i, _)| i)
    }
}

/// midly 0.5.3 negates the SMPTE frame-rate byte as an `i8`, which overflows (and panics in
/// builds with overflow checks) when that byte is 0x80. Such a header is refused before midly sees
/// it. Every `MThd` chunk is checked because midly also reads files wrapped in a RIFF container.
fn has_unrepresentable_smpte_rate(bytes: &[u8]) -> bool {
    bytes
        .windows(13)
        .any(|w| &w[..4] == b"MThd" && w[12] == 0x80)
}

/// Parses a MIDI file from memory.
pub fn parse_midi(bytes: &[u8]) -> Result<MidiSong, MidiFileError> {
    if has_unrepresentable_smpte_rate(bytes) {
        return Err(MidiFileError::Parse(
            "the header's SMPTE frame rate byte is -128, which is not a frame rate".into(),
        ));
    }
    let smf = Smf::parse(bytes).map_err(|e| MidiFileError::Parse(e.to_string()))?;
    let ppq = match smf.header.timing {
        Timing::Metrical(ppq) if ppq.as_int() == 0 => return Err(MidiFileError::ZeroPpq),
        Timing::Metrical(ppq) => ppq.as_int(),
        Timing::Timecode(fps, subframes) => {
            return Err(MidiFileError::SmpteTiming {
                fps: fps.as_int(),
                subframes,
            })
        }
    };
    if smf.header.format == Format::Sequential {
        return Err(MidiFileError::SequentialFormat);
    }
    let ticks_per_beat = ppq as f64;
    let mut tempo_ticks: Vec<(u64, u32)> = Vec::new();
    let mut time_signatures: Vec<(u64, TimeSignature)> = Vec::new();
    let mut parts = Vec::new();
    for (track_index, track) in smf.tracks.iter().enumerate() {
        let mut builder = TrackNotes::default();
        let mut tick = 0_u64;
        for event in track {
            tick += event.delta.as_int() as u64;
            match event.kind {
                TrackEventKind::Midi { channel, message } => {
                    builder.message(tick, channel.as_int(), message);
                }
                TrackEventKind::Meta(MetaMessage::TrackName(name)) if builder.name.is_none() => {
                    builder.name = Some(String::from_utf8_lossy(name).trim().to_string());
                }
                TrackEventKind::Meta(MetaMessage::Tempo(micros)) if micros.as_int() > 0 => {
                    tempo_ticks.push((tick, micros.as_int()));
                }
                TrackEventKind::Meta(MetaMessage::TimeSignature(numerator, power, _, _)) => {
                    if let Some(signature) = time_signature_from_meta(numerator, power) {
                        time_signatures.push((tick, signature));
                    }
                }
                _ => {}
            }
        }
        parts.extend(builder.finish(track_index, tick, ticks_per_beat));
    }
    let last_beat = parts
        .iter()
        .flat_map(|p: &MidiPart| &p.notes)
        .map(|n| n.offset_beat)
        .fold(0.0, f64::max);
    if last_beat > MAX_SONG_BEATS {
        return Err(MidiFileError::TooLong { beat: last_beat });
    }
    tempo_ticks.sort_by_key(|&(tick, _)| tick);
    time_signatures.sort_by_key(|&(tick, _)| tick);
    let tempo_map: Vec<TempoPoint> = tempo_ticks
        .iter()
        .map(|&(tick, micros)| TempoPoint {
            beat: tick as f64 / ticks_per_beat,
            bpm: round_bpm(60_000_000.0 / micros as f64),
        })
        .collect();
    Ok(MidiSong {
        ppq,
        tempo_bpm: tempo_map.first().map_or(DEFAULT_TEMPO_BPM, |t| t.bpm),
        tempo_map,
        time_signature: time_signatures
            .first()
            .map(|&(_, ts)| ts)
            .unwrap_or_default(),
        parts,
    })
}

/// Reads and parses a MIDI file from disk.
pub fn read_midi(path: &Path) -> Result<MidiSong, MidiFileError> {
    let bytes = std::fs::read(path).map_err(|source| MidiFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_midi(&bytes)
}

/// Reads the melody of a file on disk: the one-call path for the CLI.
pub fn read_melody(path: &Path, choice: MelodyChoice) -> Result<Melody, MidiFileError> {
    read_midi(path)?.melody(choice)
}

/// Microsecond tempo events cannot hold most BPM values exactly (110 BPM reads as 109.9999);
/// a thousandth of a BPM is far below what anyone hears and gives back the intended number.
fn round_bpm(bpm: f64) -> f64 {
    (bpm * 1000.0).round() / 1000.0
}

fn time_signature_from_meta(numerator: u8, power: u8) -> Option<TimeSignature> {
    let denominator = 1_u8.checked_shl(power.into()).filter(|_| power <= 7)?;
    (numerator > 0).then_some(TimeSignature {
        numerator,
        denominator,
    })
}

/// Note on/off pairing for one track, split by channel.
#[derive(Default)]
struct TrackNotes {
    name: Option<String>,
    /// Per channel: notes in onset order, with `None` offsets while sounding.
    channels: [Vec<(u8, u64, Option<u64>)>; 16],
    /// Indices into `channels` of the notes still sounding, per (channel, pitch), oldest first.
    sounding: HashMap<(u8, u8), VecDeque<usize>>,
}

impl TrackNotes {
    fn message(&mut self, tick: u64, channel: u8, message: MidiMessage) {
        let Some(notes) = self.channels.get_mut(channel as usize) else {
            return;
        };
        match message {
            MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                let pitch = key.as_int();
                self.sounding
                    .entry((channel, pitch))
                    .or_default()
                    .push_back(notes.len());
                notes.push((pitch, tick, None));
            }
            MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                // The earliest still-sounding note of this pitch ends (first in, first out).
                let oldest = self
                    .sounding
                    .get_mut(&(channel, key.as_int()))
                    .and_then(VecDeque::pop_front);
                if let Some(note) = oldest.and_then(|i| notes.get_mut(i)) {
                    note.2 = Some(tick);
                }
            }
            _ => {}
        }
    }

    /// Parts with notes; notes never released end at the track's last tick.
    fn finish(self, track: usize, end_tick: u64, ticks_per_beat: f64) -> Vec<MidiPart> {
        let name = self.name;
        self.channels
            .into_iter()
            .zip(0_u8..)
            .filter(|(notes, _)| !notes.is_empty())
            .map(|(notes, channel)| {
                let mut notes: Vec<Note> = notes
                    .into_iter()
                    .map(|(pitch, on, off)| Note {
                        pitch,
                        onset_beat: on as f64 / ticks_per_beat,
                        offset_beat: off.unwrap_or(end_tick) as f64 / ticks_per_beat,
                    })
                    .collect();
                notes.sort_by(|a, b| a.onset_beat.total_cmp(&b.onset_beat));
                MidiPart {
                    track,
                    channel,
                    name: name.clone(),
                    notes,
                }
            })
            .collect()
    }
}

/// What goes into a written progression file. Channels are zero-based (0–15).
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressionExport {
    /// Chords in any order; an empty list writes no chord track.
    pub chords: Vec<VoicedChord>,
    /// Melody notes to include on their own track, if any.
    pub melody: Option<Vec<Note>>,
    pub tempo_bpm: f64,
    pub time_signature: TimeSignature,
    pub chord_track_name: String,
    pub chord_channel: u8,
    pub melody_track_name: String,
    pub melody_channel: u8,
    /// Velocity of every melody note (1–127).
    pub melody_velocity: u8,
}

impl Default for ProgressionExport {
    fn default() -> Self {
        Self {
            chords: Vec::new(),
            melody: None,
            tempo_bpm: DEFAULT_TEMPO_BPM,
            time_signature: TimeSignature::default(),
            chord_track_name: "Chords".to_string(),
            chord_channel: 0,
            melody_track_name: "Melody".to_string(),
            melody_channel: 1,
            melody_velocity: 96,
        }
    }
}

/// Encodes a progression (and optional melody) as a format 1, 480 PPQ MIDI file.
pub fn write_progression(export: &ProgressionExport) -> Result<Vec<u8>, MidiFileError> {
    let tempo = tempo_micros(export.tempo_bpm)?;
    let (numerator, power) = time_signature_meta(export.time_signature)?;
    let header = Header::new(Format::Parallel, Timing::Metrical(u15::new(WRITE_PPQ)));
    let mut smf = Smf::new(header);
    smf.tracks.push(vec![
        meta(0, MetaMessage::Tempo(tempo)),
        meta(0, MetaMessage::TimeSignature(numerator, power, 24, 8)),
        meta(0, MetaMessage::EndOfTrack),
    ]);
    if !export.chords.is_empty() {
        let channel = midi_channel(export.chord_channel)?;
        let mut notes = Vec::new();
        for chord in &export.chords {
            let velocity = midi_velocity(chord.velocity)?;
            let (start, end) = tick_span(chord.start_beat, chord.end_beat)?;
            let mut pitches = chord.pitches.clone();
            pitches.sort_unstable();
            pitches.dedup();
            for pitch in pitches {
                notes.push(TimedNote {
                    pitch: midi_pitch(pitch)?,
                    start,
                    end,
                    velocity,
                });
            }
        }
        smf.tracks
            .push(note_track(&export.chord_track_name, channel, &notes)?);
    }
    if let Some(melody) = &export.melody {
        let channel = midi_channel(export.melody_channel)?;
        let velocity = midi_velocity(export.melody_velocity)?;
        let notes = melody
            .iter()
            .map(|note| {
                let (start, end) = tick_span(note.onset_beat, note.offset_beat)?;
                Ok(TimedNote {
                    pitch: midi_pitch(note.pitch)?,
                    start,
                    end,
                    velocity,
                })
            })
            .collect::<Result<Vec<_>, MidiFileError>>()?;
        smf.tracks
            .push(note_track(&export.melody_track_name, channel, &notes)?);
    }
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes)
        .map_err(|e| MidiFileError::InvalidInput {
            what: "MIDI data",
            value: e.to_string(),
        })?;
    Ok(bytes)
}

/// [`write_progression`] straight to a file.
pub fn write_progression_to_path(
    export: &ProgressionExport,
    path: &Path,
) -> Result<(), MidiFileError> {
    let bytes = write_progression(export)?;
    std::fs::write(path, bytes).map_err(|source| MidiFileError::Write {
        path: path.to_path_buf(),
        source,
    })
}

struct TimedNote {
    pitch: u7,
    start: u64,
    end: u64,
    velocity: u7,
}

fn meta(delta: u32, message: MetaMessage<'_>) -> TrackEvent<'_> {
    TrackEvent {
        delta: u28::new(delta),
        kind: TrackEventKind::Meta(message),
    }
}

/// A named track of note events; releases sort before presses at the same tick so a repeated
/// pitch is re-struck rather than cut.
fn note_track<'a>(
    name: &'a str,
    channel: u4,
    notes: &[TimedNote],
) -> Result<Vec<TrackEvent<'a>>, MidiFileError> {
    let mut events: Vec<(u64, bool, MidiMessage)> = Vec::with_capacity(notes.len() * 2);
    for note in notes {
        events.push((
            note.start,
            true,
            MidiMessage::NoteOn {
                key: note.pitch,
                vel: note.velocity,
            },
        ));
        events.push((
            note.end,
            false,
            MidiMessage::NoteOff {
                key: note.pitch,
                vel: u7::new(0),
            },
        ));
    }
    events.sort_by_key(|&(tick, is_on, _)| (tick, is_on));
    let mut track = Vec::with_capacity(events.len() + 2);
    track.push(meta(0, MetaMessage::TrackName(name.as_bytes())));
    let mut previous = 0_u64;
    for (tick, _, message) in events {
        let delta =
            u28::try_from(u32::try_from(tick - previous).unwrap_or(u32::MAX)).ok_or_else(|| {
                MidiFileError::InvalidInput {
                    what: "gap between events",
                    value: format!("{} ticks", tick - previous),
                }
            })?;
        previous = tick;
        track.push(TrackEvent {
            delta,
            kind: TrackEventKind::Midi { channel, message },
        });
    }
    track.push(meta(0, MetaMessage::EndOfTrack));
    Ok(track)
}

/// Start and end ticks of a span in beats; a span shorter than a tick still lasts one tick.
fn tick_span(start_beat: f64, end_beat: f64) -> Result<(u64, u64), MidiFileError> {
    let valid = start_beat.is_finite()
        && end_beat.is_finite()
        && start_beat >= 0.0
        && end_beat >= start_beat;
    if !valid {
        return Err(MidiFileError::InvalidInput {
            what: "note span",
            value: format!("{start_beat}..{end_beat} beats (need 0 <= start <= end)"),
        });
    }
    let ticks = |beat: f64| (beat * WRITE_PPQ as f64).round() as u64;
    let start = ticks(start_beat);
    Ok((start, ticks(end_beat).max(start + 1)))
}

fn tempo_micros(bpm: f64) -> Result<u24, MidiFileError> {
    let micros = 60_000_000.0 / bpm;
    if bpm.is_finite() && bpm > 0.0 && micros >= 1.0 && micros <= u24::max_value().as_int() as f64 {
        Ok(u24::new(micros.round() as u32))
    } else {
        Err(MidiFileError::InvalidInput {
            what: "tempo",
            value: format!("{bpm} BPM"),
        })
    }
}

fn time_signature_meta(signature: TimeSignature) -> Result<(u8, u8), MidiFileError> {
    let TimeSignature {
        numerator,
        denominator,
    } = signature;
    if numerator == 0 || !denominator.is_power_of_two() {
        return Err(MidiFileError::InvalidInput {
            what: "time signature",
            value: format!("{numerator}/{denominator}"),
        });
    }
    Ok((numerator, denominator.trailing_zeros() as u8))
}

fn midi_channel(channel: u8) -> Result<u4, MidiFileError> {
    u4::try_from(channel).ok_or_else(|| MidiFileError::InvalidInput {
        what: "channel (0-15)",
        value: channel.to_string(),
    })
}

fn midi_pitch(pitch: u8) -> Result<u7, MidiFileError> {
    u7::try_from(pitch).ok_or_else(|| MidiFileError::InvalidInput {
        what: "pitch (0-127)",
        value: pitch.to_string(),
    })
}

fn midi_velocity(velocity: u8) -> Result<u7, MidiFileError> {
    u7::try_from(velocity)
        .filter(|v| v.as_int() > 0)
        .ok_or_else(|| MidiFileError::InvalidInput {
            what: "velocity (1-127)",
            value: velocity.to_string(),
        })
}
