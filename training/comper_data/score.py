"""Shared music21 path for symbolic scores (Nottingham ABC, OpenEWLD MusicXML).

Repeats are expanded when music21 can, ties are merged, a pickup bar is padded with
silence to a full bar so that frame 0 is a bar line, the melody is the top voice of the
first part, and each harmony symbol lasts until the next one (or the end of the piece).
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

from .chords import Chord, ChordParseError
from .song import ChordEvent, NoteEvent, Song


def _expanded_part(score):
    """First part of the score with repeats expanded (as written when expansion fails)."""
    try:
        score = score.expandRepeats()
    except Exception:  # music21 raises many types on irregular repeat marks
        pass
    parts = getattr(score, "parts", None)
    part = parts[0] if parts else score
    try:
        part = part.stripTies()
    except Exception:
        pass
    return part


def _pickup_padding(measures) -> float:
    """Silence (in beats) to put before a short first bar so that it ends on a bar line."""
    if not measures:
        return 0.0
    first = measures[0]
    padding = float(getattr(first, "paddingLeft", 0.0) or 0.0)
    if padding > 0:
        return padding
    try:
        shortfall = float(first.barDuration.quarterLength) - float(first.duration.quarterLength)
    except Exception:
        return 0.0
    return shortfall if shortfall > 1e-6 and len(measures) > 1 else 0.0


def song_from_score(
    score,
    song_id: str,
    dataset: str,
    chord_of: Callable[[object], Chord | None],
    skipped: Counter,
) -> Song | None:
    """Build a `Song` from a parsed music21 score; `chord_of` reads one harmony object
    (returning None for an explicit no-chord, raising ChordParseError when unreadable)."""
    from music21 import chord as m21chord
    from music21 import harmony, note

    part = _expanded_part(score)
    measures = list(part.getElementsByClass("Measure"))
    pad = _pickup_padding(measures)
    bars = sorted({0.0} | {float(m.offset) + pad for m in measures[1:]})

    notes: list[NoteEvent] = []
    harmonies: list[tuple[float, Chord | None]] = []
    for el in part.flatten().notes:
        onset = float(el.offset) + pad
        if isinstance(el, harmony.Harmony):
            try:
                harmonies.append((onset, chord_of(el)))
            except ChordParseError:
                skipped[f"{dataset}: unreadable harmony {getattr(el, 'figure', el)!r}"] += 1
                harmonies.append((onset, None))
            continue
        length = float(el.duration.quarterLength)
        if length <= 0:
            continue  # grace notes
        if isinstance(el, note.Note):
            pitch = el.pitch.midi
        elif isinstance(el, m21chord.Chord) and el.pitches:
            pitch = max(p.midi for p in el.pitches)
        else:
            continue
        notes.append(NoteEvent(int(pitch), onset, onset + length))

    end = max([float(part.highestTime) + pad] + [n.offset for n in notes])
    harmonies.sort(key=lambda h: h[0])
    chords = []
    for i, (onset, chord) in enumerate(harmonies):
        offset = harmonies[i + 1][0] if i + 1 < len(harmonies) else end
        if chord is not None and offset > onset:
            chords.append(ChordEvent(chord, onset, offset))
    if not notes:
        skipped[f"{dataset}: piece without melody notes"] += 1
        return None
    if not chords:
        skipped[f"{dataset}: piece without chord symbols"] += 1
        return None
    return Song(song_id, dataset, notes, chords, bars)
