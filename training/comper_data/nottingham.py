"""Nottingham loader: cleaned ABC tunebooks with chord symbols in quotes.

music21 reads the ABC (notes, repeats, pickups) but misreads this dataset's chord
shorthand ('Gd' = G dim, 'Ea' = E aug, 'D/f+' = D over F#), so every quoted chord is
first parsed with `parse_nottingham` and written back in a spelling music21 keeps
verbatim; the harmony objects are then read with the same parser.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from .chords import NOTTINGHAM_QUALITIES, ChordParseError, parse_nottingham
from .score import song_from_score
from .song import Song

QUOTED = re.compile(r'"([^"]*)"')
_SPELLED = {"d": "dim", "a": "aug", "a7": "aug7"}


def normalise_chord_text(label: str) -> str:
    """Rewrite one Nottingham chord symbol in a form music21 accepts (bass dropped)."""
    parse_nottingham(label)  # validates; raises ChordParseError with the label
    text = label.strip().strip("()").split("/", 1)[0]
    root_len = 2 if len(text) > 1 and text[1] in "#b" and text[1:] not in NOTTINGHAM_QUALITIES else 1
    root, quality = text[:root_len], text[root_len:]
    return root + _SPELLED.get(quality, quality)


def normalise_abc_chords(abc: str, skipped: Counter) -> str:
    """Replace every quoted chord by its normalised spelling; unreadable ones are removed."""

    def repl(match: re.Match) -> str:
        try:
            return '"' + normalise_chord_text(match.group(1)) + '"'
        except ChordParseError:
            skipped[f"nottingham: unreadable chord {match.group(1)!r}"] += 1
            return ""

    return QUOTED.sub(repl, abc)


def split_tunes(text: str) -> list[str]:
    """Split a tunebook into tunes, each starting at its 'X:' line."""
    starts = [m.start() for m in re.finditer(r"(?m)^X:", text)]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def tune_title(tune: str) -> str:
    """The first T: field of a tune (empty if none)."""
    m = re.search(r"(?m)^T:\s*(.*)$", tune)
    return m.group(1).strip() if m else ""


def harmony_chord(el):
    """Chord of a music21 harmony object created from a normalised symbol (music21 spells
    flats with '-': 'B-m')."""
    return parse_nottingham(str(el.figure).replace("-", "b"))


def load_tune(tune: str, song_id: str, skipped: Counter) -> Song | None:
    """Parse one ABC tune into a `Song`."""
    from music21 import converter

    text = normalise_abc_chords(tune, skipped)
    try:
        score = converter.parse(text, format="abc")
    except Exception:
        skipped["nottingham: music21 could not parse the tune"] += 1
        return None
    return song_from_score(score, song_id, "nottingham", harmony_chord, skipped)


def load_all(root: Path, skipped: Counter) -> list[Song]:
    """Every tune of every .abc file under `root` (ABC_cleaned/ is used when present)."""
    if (root / "ABC_cleaned").is_dir():
        root = root / "ABC_cleaned"
    songs = []
    for path in sorted(root.glob("*.abc")):
        for tune in split_tunes(path.read_text(encoding="utf-8", errors="replace")):
            x = re.search(r"(?m)^X:\s*(\S+)", tune)
            song_id = f"{path.stem}#{x.group(1) if x else len(songs)}"
            song = load_tune(tune, song_id, skipped)
            if song is not None:
                songs.append(song)
    return songs
