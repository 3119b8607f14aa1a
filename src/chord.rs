//! Chord symbols (note_seq grammar) and voicings. Filled in by the music-core work.
