//! Any bytes fed to the MIDI-file reader must give a song or an error, never a panic; a song that
//! reads must also survive melody picking.
#![no_main]

use comper_music::midi_file::{parse_midi, MelodyChoice};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(song) = parse_midi(data) {
        let _ = song.melody(MelodyChoice::Auto);
    }
});
