"""POP909 loader: MELODY track + chord_midi.txt, timed in seconds, mapped to beats.

beat_midi.txt lists one line per beat: time in seconds, a downbeat flag and a bar-start
flag (third column). Seconds become beats by linear interpolation between the listed beat
times (extrapolated with the first/last beat length outside them). The song is cut to
start at the bar line at or before the first melody note.
"""

from __future__ import annotations

import bisect
from collections import Counter
from pathlib import Path

from .chords import ChordParseError, parse_harte
from .song import ChordEvent, NoteEvent, Song


class BeatMap:
    """Seconds -> beats by piecewise-linear interpolation over annotated beat times."""

    def __init__(self, beat_times: list[float]):
        if len(beat_times) < 2:
            raise ValueError(f"need at least two beat times, got {beat_times!r}")
        if any(b <= a for a, b in zip(beat_times, beat_times[1:])):
            raise ValueError("beat times must be strictly increasing")
        self.times = beat_times

    def beat(self, seconds: float) -> float:
        """Fractional beat index of a time in seconds."""
        t = self.times
        i = bisect.bisect_right(t, seconds) - 1
        i = min(max(i, 0), len(t) - 2)
        return i + (seconds - t[i]) / (t[i + 1] - t[i])


def read_beats(path: Path) -> tuple[list[float], list[int]]:
    """(beat times, indices of bar-start beats) from a beat_midi.txt file."""
    times, bars = [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        if float(parts[2]) > 0.5:
            bars.append(len(times))
        times.append(float(parts[0]))
    return times, bars


def read_chord_spans(path: Path) -> list[tuple[float, float, str]]:
    """(start s, end s, Harte label) lines of a chord_midi.txt file."""
    spans = []
    for line in path.read_text().splitlines():
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) >= 3:
            spans.append((float(parts[0]), float(parts[1]), parts[2].strip()))
    return spans


def read_melody(path: Path) -> list[tuple[float, float, int]]:
    """(start s, end s, pitch) of the notes on the MIDI track named MELODY."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(str(path))
    for inst in midi.instruments:
        if inst.name.strip().upper() == "MELODY":
            return [(n.start, n.end, n.pitch) for n in inst.notes]
    return []


def song_from_parts(
    song_id: str,
    beat_times: list[float],
    bar_beats: list[int],
    melody: list[tuple[float, float, int]],
    chord_spans: list[tuple[float, float, str]],
    skipped: Counter,
) -> Song | None:
    """Assemble a beat-timed `Song` from POP909's second-timed parts (None if unusable)."""
    if not melody:
        skipped["pop909: song without MELODY notes"] += 1
        return None
    beats = BeatMap(beat_times)
    first_note_beat = beats.beat(min(n[0] for n in melody))
    earlier_bars = [b for b in bar_beats if b <= first_note_beat + 1e-6]
    origin = earlier_bars[-1] if earlier_bars else max(0, int(first_note_beat))

    notes = []
    for start, end, pitch in melody:
        on, off = beats.beat(start) - origin, beats.beat(end) - origin
        if off > 0:
            notes.append(NoteEvent(pitch, max(on, 0.0), off))
    chords = []
    for start, end, label in chord_spans:
        try:
            chord = parse_harte(label)
        except ChordParseError:
            skipped[f"pop909: unparsed chord label {label.split(':')[-1]!r}"] += 1
            continue
        if chord is None or end <= start:
            continue
        on, off = beats.beat(start) - origin, beats.beat(end) - origin
        if off > 0:
            chords.append(ChordEvent(chord, max(on, 0.0), off))
    if not chords:
        skipped["pop909: song without chords"] += 1
        return None
    bars = [float(b - origin) for b in bar_beats if b >= origin]
    return Song(song_id, "pop909", notes, chords, bars)


def load_song(song_dir: Path, skipped: Counter) -> Song | None:
    """Load one POP909 folder (NNN/NNN.mid, beat_midi.txt, chord_midi.txt)."""
    name = song_dir.name
    midi, beat_file, chord_file = song_dir / f"{name}.mid", song_dir / "beat_midi.txt", song_dir / "chord_midi.txt"
    if not (midi.exists() and beat_file.exists() and chord_file.exists()):
        skipped["pop909: folder missing .mid/beat_midi.txt/chord_midi.txt"] += 1
        return None
    beat_times, bar_beats = read_beats(beat_file)
    try:
        return song_from_parts(name, beat_times, bar_beats, read_melody(midi), read_chord_spans(chord_file), skipped)
    except ValueError:
        skipped["pop909: bad beat_midi.txt"] += 1
        return None


def load_all(root: Path, skipped: Counter) -> list[Song]:
    """Every song folder under `root` (the folder holding 001/, 002/, ... or POP909/)."""
    if (root / "POP909").is_dir():
        root = root / "POP909"
    songs = []
    for song_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
        song = load_song(song_dir, skipped)
        if song is not None:
            songs.append(song)
    return songs
