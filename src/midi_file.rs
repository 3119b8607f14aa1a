//! Standard MIDI files in and out. Filled in by the music-core work.
