//! The host's note events in the audio engine's terms and back: the only place that knows
//! nice-plug's MIDI types, so [`crate::audio`] stays free of the plugin API.

use nice_plug::midi::{Channel, Key, NoteEvent, VoiceID};

use crate::audio::MidiNote;

/// A note-on or note-off from the host (a note-on at velocity 0 is a release); `None` for
/// everything else, which Comper neither hears nor passes on.
pub fn note_from_host<S>(event: &NoteEvent<S>) -> Option<MidiNote> {
    let (offset, channel, key, on, velocity) = match *event {
        NoteEvent::NoteOn {
            timing,
            channel,
            key,
            velocity,
            ..
        } => (timing, channel, key, velocity > 0.0, velocity),
        NoteEvent::NoteOff {
            timing,
            channel,
            key,
            velocity,
            ..
        } => (timing, channel, key, false, velocity),
        _ => return None,
    };
    let Key::Number(pitch) = key else {
        return None;
    };
    Some(MidiNote {
        offset,
        channel: channel.number(),
        pitch,
        on,
        velocity,
    })
}

/// The event the host receives for `note`.
pub fn note_to_host<S>(note: MidiNote) -> NoteEvent<S> {
    let channel = note.channel.map_or(Channel::Wildcard, Channel::Number);
    let key = Key::Number(note.pitch);
    if note.on {
        NoteEvent::NoteOn {
            timing: note.offset,
            voice_id: VoiceID::Wildcard,
            channel,
            key,
            velocity: note.velocity,
        }
    } else {
        NoteEvent::NoteOff {
            timing: note.offset,
            voice_id: VoiceID::Wildcard,
            channel,
            key,
            velocity: note.velocity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_notes_round_trip_and_a_silent_note_on_is_a_release() {
        let on = MidiNote {
            offset: 7,
            channel: Some(3),
            pitch: 61,
            on: true,
            velocity: 0.5,
        };
        let off = MidiNote {
            on: false,
            channel: None,
            ..on
        };
        for note in [on, off] {
            assert_eq!(note_from_host(&note_to_host::<()>(note)), Some(note));
        }
        let silent = NoteEvent::<()>::NoteOn {
            timing: 7,
            voice_id: VoiceID::Wildcard,
            channel: Channel::Number(3),
            key: Key::Number(61),
            velocity: 0.0,
        };
        assert_eq!(
            note_from_host(&silent),
            Some(MidiNote {
                on: false,
                velocity: 0.0,
                ..on
            })
        );
    }
}
