"""OpenEWLD loader: compressed MusicXML lead sheets (.mxl) with harmony elements."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .chords import Chord, ChordParseError, chord_from_offsets
from .score import song_from_score
from .song import Song


def harmony_chord(el) -> Chord | None:
    """Chord of a music21 ChordSymbol from its root and realised pitches; None for N.C."""
    from music21 import harmony

    if isinstance(el, harmony.NoChord):
        return None
    root = el.root() if el.pitches else None
    if root is None:
        raise ChordParseError(f"harmony {getattr(el, 'figure', el)!r} has no pitches")
    return chord_from_offsets(root.pitchClass, [p.midi - root.midi for p in el.pitches])


def load_file(path: Path, song_id: str, skipped: Counter) -> Song | None:
    """Parse one .mxl/.xml file into a `Song`."""
    from music21 import converter

    try:
        score = converter.parse(str(path))
    except Exception:
        skipped["openewld: music21 could not parse the file"] += 1
        return None
    return song_from_score(score, song_id, "openewld", harmony_chord, skipped)


def load_all(root: Path, skipped: Counter) -> list[Song]:
    """Every .mxl file below `root`; the id is the path relative to `root`."""
    songs = []
    for path in sorted(root.rglob("*.mxl")):
        song = load_file(path, str(path.relative_to(root)), skipped)
        if song is not None:
            songs.append(song)
    return songs
