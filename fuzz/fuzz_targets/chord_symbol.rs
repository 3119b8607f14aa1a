//! Any byte string fed to the chord-symbol parser must give a chord or an error, never a panic;
//! a parsed chord must print back to a name that parses to the same chord.
#![no_main]

use comper_music::chord::ChordSymbol;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(chord) = ChordSymbol::parse(text) {
        let _ = chord.pitch_classes();
        let printed = chord.to_string();
        let reparsed = ChordSymbol::parse(&printed).expect("a printed chord parses again");
        assert_eq!(reparsed, chord, "{text:?} printed as {printed:?}");
    }
});
