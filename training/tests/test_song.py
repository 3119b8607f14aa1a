from comper_data.chords import MAJOR, MINOR, Chord
from comper_data.song import (
    ChordEvent,
    NoteEvent,
    Song,
    chunk_bounds,
    restart_frames,
    song_frames,
    to_frame,
)

C, AM = Chord(0, MAJOR), Chord(9, MINOR)


def test_to_frame_rounds_to_nearest_sixteenth():
    assert to_frame(0.0) == 0
    assert to_frame(1.0) == 4
    assert to_frame(0.12) == 0
    assert to_frame(0.13) == 1
    assert to_frame(1 / 3) == 1


def test_melody_frames_onset_hold_silence():
    song = Song("s", "t", [NoteEvent(60, 0, 1), NoteEvent(62, 1.5, 2)], [ChordEvent(C, 0, 2)])
    melody, chords = song_frames(song)
    assert melody == [("on", 60), ("hold", 60), ("hold", 60), ("hold", 60), None, None, ("on", 62), ("hold", 62)]
    assert chords == [("on", C)] + [("hold", C)] * 7


def test_first_onset_in_a_frame_wins_and_later_note_truncates():
    notes = [NoteEvent(60, 0.0, 1.0), NoteEvent(64, 0.05, 1.0), NoteEvent(67, 0.5, 1.0)]
    melody, _ = song_frames(Song("s", "t", notes, [ChordEvent(C, 0, 1)]))
    assert melody == [("on", 60), ("hold", 60), ("on", 67), ("hold", 67)]


def test_very_short_note_gets_one_frame():
    melody, _ = song_frames(Song("s", "t", [NoteEvent(60, 0.0, 0.05)], [ChordEvent(C, 0, 0.5)]))
    assert melody == [("on", 60), None]


def test_chord_change_is_an_onset():
    _, chords = song_frames(Song("s", "t", [], [ChordEvent(C, 0, 0.5), ChordEvent(AM, 0.5, 1)]))
    assert chords == [("on", C), ("hold", C), ("on", AM), ("hold", AM)]


def test_chunks_cut_at_bar_lines():
    bars = list(range(0, 1000, 48))  # bars of 48 frames
    bounds = chunk_bounds(600, bars, 256)
    assert bounds[0] == (0, 240)
    assert all(b - a <= 256 for a, b in bounds)
    assert all(a % 48 == 0 for a, _ in bounds)
    assert bounds[-1][1] == 600


def test_chunks_without_bars_cut_every_max_frames():
    assert chunk_bounds(600, [], 256) == [(0, 256), (256, 512), (512, 600)]


def test_restart_turns_leading_hold_into_onset():
    assert restart_frames([("hold", 60), ("hold", 60), None]) == [("on", 60), ("hold", 60), None]
    assert restart_frames([None, ("hold", 60)]) == [None, ("hold", 60)]


def test_transposition_moves_notes_and_chords_and_drops_out_of_range():
    song = Song("s", "t", [NoteEvent(60, 0, 1), NoteEvent(127, 1, 2)], [ChordEvent(C, 0, 2)], [0.0])
    up = song.transposed(2)
    assert [n.pitch for n in up.notes] == [62]
    assert up.chords[0].chord == Chord(2, MAJOR)
