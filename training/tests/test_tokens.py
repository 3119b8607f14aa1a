import pytest

from comper_data.chords import MAJOR, Chord
from comper_data.tokens import BOS, EOS, SILENCE, num_tokens, online_sequence

C, G = Chord(0, MAJOR), Chord(7, MAJOR)
INDEX = {"C": 0, "G": 1, "Am": 2}
NAME = {C: "C", G: "G"}.__getitem__


def test_online_layout_is_chord_first_interleaved():
    melody = [("on", 60), ("hold", 60), None]
    chords = [("on", C), ("hold", C), ("on", G)]
    ids = online_sequence(melody, chords, INDEX, NAME)
    c = len(INDEX)
    assert ids == [BOS, 260 + c + 0, 132 + 60, 260 + 0, 4 + 60, 260 + c + 1, SILENCE, EOS]
    assert max(ids) < num_tokens(c)


def test_silence_and_length_mismatch():
    assert online_sequence([None], [None], INDEX, NAME, eos=False) == [BOS, SILENCE, SILENCE]
    with pytest.raises(ValueError, match="2 frames"):
        online_sequence([None, None], [None], INDEX, NAME)
