"""Chords as (root pitch class, root-position intervals) and their ReaLchords names.

ReaLchords names a chord by stacking its root-position intervals on the root and handing
the pitch list to note_seq 0.0.5's ``pitches_to_chord_symbol``; the inversion (slash bass)
is ignored. We do the same, so our vocabulary uses exactly the grammar of the official
``chord_names_augmented.json``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
import sys
import types
from dataclasses import dataclass

PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

# Interval stacks (semitones between consecutive chord tones, root position).
MAJOR = (4, 3)
MINOR = (3, 4)
DIMINISHED = (3, 3)
AUGMENTED = (4, 4)
DOMINANT7 = (4, 3, 3)
MAJOR7 = (4, 3, 4)
MINOR7 = (3, 4, 3)
HALF_DIMINISHED7 = (3, 3, 4)
DIMINISHED7 = (3, 3, 3)
MINOR_MAJOR7 = (3, 4, 4)
AUGMENTED7 = (4, 4, 2)
MAJOR6 = (4, 3, 2)
MINOR6 = (3, 4, 2)
SUS2 = (2, 5)
SUS4 = (5, 2)
SUS4_7 = (5, 2, 3)


@dataclass(frozen=True)
class Chord:
    """A chord in root position: root pitch class and the interval stack above it."""

    root: int
    intervals: tuple[int, ...]

    def transposed(self, semitones: int) -> "Chord":
        """The same quality on a root moved by `semitones` (mod 12)."""
        return Chord((self.root + semitones) % 12, self.intervals)

    def offsets(self) -> tuple[int, ...]:
        """Semitone offsets of every chord tone above the root, root (0) first."""
        out = [0]
        for step in self.intervals:
            out.append(out[-1] + step)
        return tuple(out)


class ChordParseError(ValueError):
    """A chord label we cannot interpret; the message quotes it."""


def parse_root(text: str) -> tuple[int, str]:
    """Parse a leading note letter plus accidentals ('#', 'b'); return (pc, rest)."""
    if not text or text[0].upper() not in PITCH_CLASS:
        raise ChordParseError(f"no root note in chord label {text!r}")
    pc = PITCH_CLASS[text[0].upper()]
    i = 1
    while i < len(text) and text[i] in "#b":
        pc += 1 if text[i] == "#" else -1
        i += 1
    return pc % 12, text[i:]


# --- POP909 (Harte syntax, e.g. "Bb:min7/b3", "N") ---------------------------------------

HARTE_QUALITIES = {
    "maj": MAJOR,
    "min": MINOR,
    "dim": DIMINISHED,
    "aug": AUGMENTED,
    "7": DOMINANT7,
    "maj7": MAJOR7,
    "min7": MINOR7,
    "hdim7": HALF_DIMINISHED7,
    "dim7": DIMINISHED7,
    "minmaj7": MINOR_MAJOR7,
    "maj6": MAJOR6,
    "min6": MINOR6,
    "sus2": SUS2,
    "sus4": SUS4,
    "sus4(b7)": SUS4_7,
}


def parse_harte(label: str) -> Chord | None:
    """Parse a POP909 Harte label; ``None`` for no-chord ('N', 'X'). The bass is dropped."""
    label = label.strip()
    if label in ("N", "X", ""):
        return None
    root_text, _, quality = label.partition(":")
    root, rest = parse_root(root_text)
    if rest:
        raise ChordParseError(f"bad root in Harte label {label!r}")
    quality = quality.split("/", 1)[0] or "maj"
    if quality not in HARTE_QUALITIES:
        raise ChordParseError(f"unknown Harte quality in {label!r}")
    return Chord(root, HARTE_QUALITIES[quality])


# --- Nottingham ABC chord symbols (e.g. "Em", "A7/c+", "Gd", "Fa7", "(D7)") -------------

NOTTINGHAM_QUALITIES = {
    "": MAJOR,
    "m": MINOR,
    "7": DOMINANT7,
    "m7": MINOR7,
    "maj7": MAJOR7,
    "6": MAJOR6,
    "m6": MINOR6,
    "d": DIMINISHED,
    "a": AUGMENTED,
    "a7": AUGMENTED7,
    "7b9": (4, 3, 3, 3),
    # spelled-out aliases, as written back by `nottingham.normalise_abc_chords`
    "dim": DIMINISHED,
    "aug": AUGMENTED,
    "aug7": AUGMENTED7,
}


def parse_nottingham(label: str) -> Chord:
    """Parse a cleaned-Nottingham chord symbol ('d' = dim, 'a' = aug, '/x' bass dropped)."""
    text = label.strip().strip("()")
    text = text.split("/", 1)[0]
    if not text or text[0] not in PITCH_CLASS:
        raise ChordParseError(f"no root note in Nottingham chord {label!r}")
    pc = PITCH_CLASS[text[0]]
    rest = text[1:]
    if rest[:1] == "#":
        pc, rest = pc + 1, rest[1:]
    elif rest[:1] == "b":
        pc, rest = pc - 1, rest[1:]
    if rest not in NOTTINGHAM_QUALITIES:
        raise ChordParseError(f"unknown quality {rest!r} in Nottingham chord {label!r}")
    return Chord(pc % 12, NOTTINGHAM_QUALITIES[rest])


# --- MusicXML harmony via music21 --------------------------------------------------------


# Pitch classes that above the octave can only be a misplaced 3rd, 5th or 7th, never a
# 9th/11th/13th extension.
_NEVER_EXTENSIONS = {4, 7, 10, 11}


def _fold(offset: int) -> int:
    """Register of one tone relative to the root: 0..11, or 12..23 for an extension."""
    if offset < 12 or offset % 12 in _NEVER_EXTENSIONS:
        return offset % 12
    return 12 + offset % 12


def chord_from_offsets(root: int, offsets: list[int]) -> Chord:
    """Build a chord from semitone offsets of its tones relative to the root.

    Tones voiced below the root (inversions, slash basses) are folded into the octave above
    it; extensions above the octave (9ths, 11ths, 13ths) keep their register, like in a
    stacked root-position voicing, while a 3rd, 5th or 7th voiced high comes down. Pitch
    classes already present are dropped.
    """
    seen_pcs = {0}
    stacked = [0]
    folded = [_fold(o) for o in offsets]
    for off in sorted(folded):
        if off % 12 in seen_pcs:
            continue
        seen_pcs.add(off % 12)
        stacked.append(off)
    intervals = tuple(b - a for a, b in zip(stacked, stacked[1:]))
    if not intervals:
        raise ChordParseError(f"chord on root {root} has no tones besides the root: {offsets!r}")
    return Chord(root % 12, intervals)


# --- naming ------------------------------------------------------------------------------


def _load_chord_symbols_lib():
    """Import note_seq's chord_symbols_lib without running note_seq/__init__.

    note_seq is installed with --no-deps (its __init__ pulls in absl, protobuf, ...), but
    chord_symbols_lib itself only needs the dependency-free ``note_seq.constants``.
    """
    try:
        return importlib.import_module("note_seq.chord_symbols_lib")
    except ImportError:
        pass
    for name in [n for n in sys.modules if n == "note_seq" or n.startswith("note_seq.")]:
        del sys.modules[name]
    spec = importlib.util.find_spec("note_seq")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("note_seq (0.0.5) is not installed")
    package = types.ModuleType("note_seq")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["note_seq"] = package
    return importlib.import_module("note_seq.chord_symbols_lib")


@functools.lru_cache(maxsize=None)
def chord_name(chord: Chord) -> str:
    """The note_seq-style name ReaLchords would give this chord, e.g. 'Dbm7', 'F6/9/C'."""
    lib = _load_chord_symbols_lib()
    pitches = [chord.root + off for off in chord.offsets()]
    return lib.pitches_to_chord_symbol(pitches)


# --- simplification of rare qualities ----------------------------------------------------

_TRIAD_BY_THIRD_FIFTH = {
    (4, 7): MAJOR,
    (3, 7): MINOR,
    (3, 6): DIMINISHED,
    (4, 8): AUGMENTED,
    (2, 7): SUS2,
    (5, 7): SUS4,
}


def simplify(intervals: tuple[int, ...], allow_seventh: bool) -> tuple[int, ...]:
    """Reduce a quality to its triad (plus its seventh when `allow_seventh`).

    Tones within the first octave are kept if they are the third, fifth or (optionally) a
    sixth/seventh above a recognised triad; extensions above the octave are dropped.
    """
    offsets = [0]
    for step in intervals:
        offsets.append(offsets[-1] + step)
    low = sorted(set(o for o in offsets[1:] if o < 12))
    third = next((o for o in (4, 3, 5, 2) if o in low), None)
    fifth = next((o for o in (7, 6, 8) if o in low), None)
    if third is None or fifth is None or (third, fifth) not in _TRIAD_BY_THIRD_FIFTH:
        return MAJOR if third != 3 else MINOR
    triad = _TRIAD_BY_THIRD_FIFTH[(third, fifth)]
    if not allow_seventh:
        return triad
    seventh = next((o for o in (10, 11, 9) if o in low and o > fifth), None)
    if seventh is None:
        return triad
    return (third, fifth - third, seventh - fifth)
