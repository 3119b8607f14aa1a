from collections import Counter

import pytest

from comper_data import nottingham, openewld, pop909
from comper_data.chords import DIMINISHED, DOMINANT7, MAJOR, MINOR, Chord
from comper_data.song import song_frames
from fixtures import ABC_TUNEBOOK, write_nottingham, write_openewld_song, write_pop909_song


def test_beat_map_interpolates_and_extrapolates():
    beats = pop909.BeatMap([1.0, 1.5, 2.5])
    assert beats.beat(1.0) == 0.0
    assert beats.beat(1.25) == pytest.approx(0.5)
    assert beats.beat(2.0) == pytest.approx(1.5)
    assert beats.beat(3.5) == pytest.approx(3.0)
    assert beats.beat(0.5) == pytest.approx(-1.0)


def test_pop909_song_is_cut_at_the_bar_of_the_first_note(tmp_path):
    skipped = Counter()
    song = pop909.load_song(write_pop909_song(tmp_path), skipped)
    assert [(n.pitch, round(n.onset, 3), round(n.offset, 3)) for n in song.notes] == [
        (72, 0.0, 0.5), (74, 0.6, 2.0), (76, 4.0, 6.0)]
    # A:min ends exactly at the cut and is dropped; C:maj/3 -> C; F:weird is skipped
    assert [(c.chord, round(c.onset, 3), round(c.offset, 3)) for c in song.chords] == [
        (Chord(0, MAJOR), 0.0, 4.0), (Chord(7, DOMINANT7), 4.0, 8.0)]
    assert song.bar_starts[:3] == [0.0, 4.0, 8.0]
    assert skipped == Counter({"pop909: unparsed chord label 'weird'": 1})
    melody, chords = song_frames(song)
    assert melody[:4] == [("on", 72), ("hold", 72), ("on", 74), ("hold", 74)]
    assert chords[16] == ("on", Chord(7, DOMINANT7))


def test_pop909_without_melody_is_skipped(tmp_path):
    skipped = Counter()
    assert pop909.song_from_parts("x", [0.0, 0.5, 1.0], [0], [], [(0, 1, "C:maj")], skipped) is None
    assert skipped["pop909: song without MELODY notes"] == 1


def test_nottingham_chord_text_normalisation():
    assert nottingham.normalise_chord_text("Gd") == "Gdim"
    assert nottingham.normalise_chord_text("D/f+") == "D"
    assert nottingham.normalise_chord_text("Bbm") == "Bbm"
    assert nottingham.normalise_chord_text("Fa7") == "Faug7"
    skipped = Counter()
    assert nottingham.normalise_abc_chords('"G"A "X?"B', skipped) == '"G"A B'
    assert skipped == Counter({"nottingham: unreadable chord 'X?'": 1})


def test_nottingham_tune_with_pickup_and_repeat():
    skipped = Counter()
    tunes = nottingham.split_tunes(ABC_TUNEBOOK)
    assert [nottingham.tune_title(t) for t in tunes] == ["Pickup Waltz", "Second Tune"]
    song = nottingham.load_tune(tunes[0], "tiny#1", skipped)
    assert not skipped
    # pickup quarter note D padded to a full 3/4 bar: it starts on beat 2
    assert (song.notes[0].pitch, song.notes[0].onset) == (62, 2.0)
    assert song.bar_starts[:3] == [0.0, 3.0, 6.0]
    first = [(c.chord, c.onset, c.offset) for c in song.chords[:5]]
    assert first == [
        (Chord(7, MAJOR), 3.0, 6.0),
        (Chord(2, MAJOR), 6.0, 9.0),
        (Chord(7, DIMINISHED), 9.0, 12.0),
        (Chord(2, DOMINANT7), 12.0, 15.0),
        (Chord(5, (4, 4, 2)), 15.0, 18.0),
    ]
    # the repeat is expanded: the tune's chord list appears twice
    assert len(song.chords) == 12


def test_nottingham_load_all(tmp_path):
    songs = nottingham.load_all(write_nottingham(tmp_path), Counter())
    assert [s.song_id for s in songs] == ["tiny#1", "tiny#2"]
    assert [c.chord for c in songs[1].chords] == [
        Chord(2, MAJOR), Chord(11, MINOR), Chord(4, MINOR), Chord(9, DOMINANT7), Chord(2, MAJOR)]


def test_openewld_musicxml(tmp_path):
    path = write_openewld_song(tmp_path)
    songs = openewld.load_all(tmp_path / "dataset", Counter())
    assert [s.song_id for s in songs] == ["Someone/Tune/Tune.mxl"]
    song = songs[0]
    assert [(n.pitch, n.onset, n.offset) for n in song.notes] == [
        (64, 0.0, 2.0), (67, 2.0, 4.0), (69, 4.0, 5.0), (72, 6.0, 8.0)]
    # Am/C keeps its root-position quality; N.C. ends it and leaves silence
    assert [(c.chord, c.onset, c.offset) for c in song.chords] == [
        (Chord(0, MAJOR), 0.0, 4.0), (Chord(9, MINOR), 4.0, 6.0)]
    assert song.bar_starts == [0.0, 4.0]
    assert path.exists()
