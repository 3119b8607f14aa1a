"""Frames -> ReaLchords token ids (online layout: BOS, c0, m0, c1, m1, ..., EOS)."""

from __future__ import annotations

from .song import Frame

PAD, BOS, EOS, SILENCE = 0, 1, 2, 3
NOTE_HOLD_BASE, NOTE_ON_BASE, CHORD_BASE = 4, 132, 260


def num_tokens(num_chords: int) -> int:
    """Vocabulary size 260 + 2C."""
    return CHORD_BASE + 2 * num_chords


def melody_token(frame: Frame) -> int:
    """Id of one melody frame."""
    if frame is None:
        return SILENCE
    kind, pitch = frame
    return (NOTE_ON_BASE if kind == "on" else NOTE_HOLD_BASE) + int(pitch)


def chord_token(frame: Frame, index_of: dict[str, int], name_of) -> int:
    """Id of one chord frame; `name_of` maps the frame's chord to its vocabulary name."""
    if frame is None:
        return SILENCE
    kind, chord = frame
    i = index_of[name_of(chord)]
    return CHORD_BASE + (len(index_of) if kind == "on" else 0) + i


def online_sequence(melody: list[Frame], chords: list[Frame], index_of: dict[str, int], name_of, eos: bool = True) -> list[int]:
    """[BOS, c0, m0, c1, m1, ..., (EOS)] for equally long melody and chord frames."""
    if len(melody) != len(chords):
        raise ValueError(f"melody has {len(melody)} frames but chords have {len(chords)}")
    ids = [BOS]
    for m, c in zip(melody, chords):
        ids.append(chord_token(c, index_of, name_of))
        ids.append(melody_token(m))
    if eos:
        ids.append(EOS)
    return ids
