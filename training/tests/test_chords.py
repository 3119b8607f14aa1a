import pytest

from comper_data.chords import (
    DIMINISHED,
    DOMINANT7,
    MAJOR,
    MINOR,
    MINOR7,
    Chord,
    ChordParseError,
    chord_from_offsets,
    chord_name,
    parse_harte,
    parse_nottingham,
    simplify,
)


def test_harte_labels_drop_the_inversion():
    assert parse_harte("Bb:min7/b3") == Chord(10, MINOR7)
    assert parse_harte("C#:maj") == Chord(1, MAJOR)
    assert parse_harte("A:sus4(b7)") == Chord(9, (5, 2, 3))


def test_harte_no_chord_and_unknown_quality():
    assert parse_harte("N") is None
    with pytest.raises(ChordParseError, match="G:weird"):
        parse_harte("G:weird")


def test_nottingham_shorthand():
    assert parse_nottingham("D/f+") == Chord(2, MAJOR)
    assert parse_nottingham("Gd") == Chord(7, DIMINISHED)
    assert parse_nottingham("Fa7") == Chord(5, (4, 4, 2))
    assert parse_nottingham("(E7)") == Chord(4, DOMINANT7)
    assert parse_nottingham("Bbm") == Chord(10, MINOR)
    assert parse_nottingham("F#m") == Chord(6, MINOR)
    with pytest.raises(ChordParseError, match="Cxyz"):
        parse_nottingham("Cxyz")


def test_names_follow_note_seq():
    assert chord_name(Chord(0, MAJOR)) == "C"
    assert chord_name(Chord(10, MINOR7)) == "Bbm7"
    assert chord_name(Chord(1, MAJOR)) == "Db"  # flats only
    assert chord_name(Chord(11, (3, 3, 4))) == "Bm7b5"
    assert chord_name(Chord(7, (5, 2, 3))) == "Gsus7"
    assert chord_name(Chord(0, (4, 3, 3, 4))) == "C9"


def test_offsets_fold_inversions_and_keep_extensions():
    # Am/C voiced C3 E3 A3: offsets from A3 are -9, -5, 0
    assert chord_from_offsets(9, [-9, -5, 0]) == Chord(9, MINOR)
    # C9 voiced C3 E3 G3 Bb3 D4
    assert chord_from_offsets(0, [0, 4, 7, 10, 14]) == Chord(0, (4, 3, 3, 4))
    # a seventh voiced two octaves up is still a seventh, not an extension
    assert chord_from_offsets(0, [0, 5, 7, 22]) == Chord(0, (5, 2, 3))
    with pytest.raises(ChordParseError):
        chord_from_offsets(0, [0, 12])


def test_simplify_keeps_triad_and_seventh():
    ninth = (4, 3, 3, 4)
    assert simplify(ninth, allow_seventh=True) == DOMINANT7
    assert simplify(ninth, allow_seventh=False) == MAJOR
    assert simplify((3, 3, 3), allow_seventh=True) == (3, 3, 3)
    assert simplify((3, 4, 3, 4), allow_seventh=False) == MINOR


def test_transpose_wraps_root():
    assert Chord(10, MAJOR).transposed(4) == Chord(2, MAJOR)
    assert Chord(1, MAJOR).transposed(-6) == Chord(7, MAJOR)
