//! A melody file played into Comper's MIDI input, looped, while the host's transport runs:
//! `COMPER_PLAY=tune.mid comper-standalone …` jams with Comper without a keyboard (and gives the
//! Live screenshot its player). The file is read once, when the plugin is made; `process()` only
//! walks the loaded notes.

use comper_music::midi_file::{read_melody, MelodyChoice};
use comper_realtime::quantize::{Block, NoteEvent};

/// Environment variable naming the `.mid` file to play.
pub const PLAY_ENV: &str = "COMPER_PLAY";

/// One key press or release, in beats from the loop start.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Key {
    beat: f64,
    pitch: u8,
    on: bool,
}

/// A looped melody; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoPlayer {
    /// Sorted by beat, releases before presses at the same beat.
    keys: Vec<Key>,
    /// Loop length in beats: the melody rounded up to whole bars.
    loop_beats: f64,
}

impl DemoPlayer {
    /// The player [`PLAY_ENV`] asks for, if any; a file that cannot be read is reported on stderr
    /// and ignored.
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os(PLAY_ENV)?;
        match read_melody(std::path::Path::new(&path), MelodyChoice::Auto) {
            Ok(melody) => {
                let bar = melody.time_signature.beats_per_bar().max(1.0);
                let end = melody
                    .notes
                    .iter()
                    .map(|n| n.offset_beat)
                    .fold(0.0, f64::max);
                Self::new(
                    melody
                        .notes
                        .iter()
                        .map(|n| (n.pitch, n.onset_beat, n.offset_beat)),
                    (end / bar).ceil().max(1.0) * bar,
                )
            }
            Err(e) => {
                eprintln!("Comper: {PLAY_ENV}: {e}");
                None
            }
        }
    }

    /// A player of `(pitch, onset, offset)` notes looped every `loop_beats`; `None` without notes.
    pub fn new(notes: impl Iterator<Item = (u8, f64, f64)>, loop_beats: f64) -> Option<Self> {
        let mut keys: Vec<Key> = notes
            .filter(|&(pitch, on, off)| pitch < 128 && on >= 0.0 && off > on && on < loop_beats)
            .flat_map(|(pitch, on, off)| {
                [
                    Key {
                        beat: on,
                        pitch,
                        on: true,
                    },
                    Key {
                        beat: off.min(loop_beats),
                        pitch,
                        on: false,
                    },
                ]
            })
            .collect();
        keys.sort_by(|a, b| a.beat.total_cmp(&b.beat).then(a.on.cmp(&b.on)));
        (!keys.is_empty() && loop_beats > 0.0).then_some(Self { keys, loop_beats })
    }

    /// Hands the key events of `block` (while its transport plays) to `hear` as if the host had
    /// sent them, in time order. No allocation.
    pub fn play(&self, block: &Block, hear: &mut impl FnMut(NoteEvent)) {
        let Some(transport) = block.transport.filter(|t| t.playing) else {
            return;
        };
        if !(block.sample_rate > 0.0 && transport.tempo_bpm > 0.0) {
            return;
        }
        let beats_per_sample = transport.tempo_bpm / 60.0 / block.sample_rate;
        let start = transport.beat_position;
        let end = start + f64::from(block.len_samples) * beats_per_sample;
        if !(start.is_finite() && end.is_finite()) || start < 0.0 {
            return;
        }
        // Loop passes the block touches (one, or two across the wrap).
        let first_pass = (start / self.loop_beats).floor();
        let mut pass = first_pass;
        while pass * self.loop_beats < end && pass <= first_pass + 1.0 {
            let origin = pass * self.loop_beats;
            let from = self.keys.partition_point(|k| origin + k.beat < start);
            for key in &self.keys[from..] {
                let beat = origin + key.beat;
                if beat >= end {
                    break;
                }
                let offset =
                    (((beat - start) / beats_per_sample) as u32).min(block.len_samples - 1);
                hear(if key.on {
                    NoteEvent::on(offset, key.pitch)
                } else {
                    NoteEvent::off(offset, key.pitch)
                });
            }
            pass += 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comper_realtime::frames::TimeSignature;
    use comper_realtime::quantize::{NoteEventKind, Transport};

    fn block(beat: f64, len: u32) -> Block {
        Block {
            transport: Some(Transport {
                tempo_bpm: 120.0,
                beat_position: beat,
                playing: true,
                loop_range: None,
                time_signature: TimeSignature::default(),
            }),
            len_samples: len,
            sample_rate: 48_000.0,
        }
    }

    #[test]
    fn plays_the_notes_inside_each_block_and_loops() {
        // C for a beat, E for a beat, looped every bar (4 beats).
        let player = DemoPlayer::new([(60, 0.0, 1.0), (64, 1.0, 2.0)].into_iter(), 4.0).unwrap();
        let mut events = Vec::with_capacity(16);
        // Half a beat is 12 000 samples at 120 BPM / 48 kHz: the block [0.75, 1.25) beats.
        player.play(&block(0.75, 12_000), &mut |e| events.push(e));
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].pitch, events[0].kind), (60, NoteEventKind::Off));
        assert_eq!((events[1].pitch, events[1].kind), (64, NoteEventKind::On));
        assert_eq!(events[0].offset, 6_000);
        events.clear();
        // Across the loop end: E's release is at beat 2 only; at 4 the loop starts again with C.
        player.play(&block(3.75, 12_000), &mut |e| events.push(e));
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].pitch, events[0].kind, events[0].offset),
            (60, NoteEventKind::On, 6_000)
        );
    }

    #[test]
    fn a_stopped_transport_plays_nothing() {
        let player = DemoPlayer::new([(60, 0.0, 1.0), (64, 1.0, 2.0)].into_iter(), 4.0).unwrap();
        let mut stopped = block(0.0, 96_000);
        if let Some(t) = stopped.transport.as_mut() {
            t.playing = false;
        }
        let mut events = Vec::new();
        player.play(&stopped, &mut |e| events.push(e));
        assert!(events.is_empty());
        player.play(&block(0.0, 96_000), &mut |e| events.push(e));
        assert_eq!(events.len(), 4, "two notes in the bar: {events:?}");
    }
}
