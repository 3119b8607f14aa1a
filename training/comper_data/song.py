"""The dataset-independent song model and its 16th-note frame grid.

Every loader produces a `Song` whose times are in beats (quarter notes) from the first bar
line. `song_frames` turns it into ReaLchords frames: per 16th note, the melody is silence,
a note onset or a note hold, and the chord track is silence, a chord onset or a chord hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .chords import Chord

FRAMES_PER_BEAT = 4
MAX_FRAMES = 256  # ReaLchords: [BOS] + 2*256 + [EOS] = 514 = max_seq_len


@dataclass(frozen=True)
class NoteEvent:
    """A melody note: MIDI pitch, onset and offset in beats."""

    pitch: int
    onset: float
    offset: float


@dataclass(frozen=True)
class ChordEvent:
    """A chord span: the chord, onset and offset in beats."""

    chord: Chord
    onset: float
    offset: float


@dataclass
class Song:
    """One tune: melody notes, chord spans and bar-line positions, all in beats."""

    song_id: str
    dataset: str
    notes: list[NoteEvent]
    chords: list[ChordEvent]
    bar_starts: list[float] = field(default_factory=list)

    def transposed(self, semitones: int) -> "Song":
        """The song moved by `semitones`; notes leaving MIDI 0..127 are dropped."""
        notes = [
            NoteEvent(n.pitch + semitones, n.onset, n.offset)
            for n in self.notes
            if 0 <= n.pitch + semitones <= 127
        ]
        chords = [ChordEvent(c.chord.transposed(semitones), c.onset, c.offset) for c in self.chords]
        return Song(self.song_id, self.dataset, notes, chords, list(self.bar_starts))


# Frame values. Melody: ("on", pitch) / ("hold", pitch) / None. Chord: ("on", Chord) / ...
Frame = tuple[str, object] | None


def to_frame(beat: float) -> int:
    """Nearest 16th-note frame index (halves round up)."""
    return math.floor(beat * FRAMES_PER_BEAT + 0.5)


def _fill(events: list[tuple[int, int, object]], length: int) -> list[Frame]:
    """Write (start, end, value) events onto `length` frames, monophonically.

    Events are taken in onset order. An event whose onset frame already holds another onset
    is dropped (the first onset in a frame wins); otherwise it overwrites frames
    [start, end), which truncates whatever earlier event was still sounding.
    """
    frames: list[Frame] = [None] * length
    for start, end, value in sorted(events, key=lambda e: e[0]):
        if start < 0 or start >= length:
            continue
        current = frames[start]
        if current is not None and current[0] == "on":
            continue
        end = max(end, start + 1)
        frames[start] = ("on", value)
        for t in range(start + 1, min(end, length)):
            frames[t] = ("hold", value)
    return frames


def song_frames(song: Song) -> tuple[list[Frame], list[Frame]]:
    """(melody frames, chord frames) of the whole song on the 16th-note grid."""
    notes = [(to_frame(n.onset), to_frame(n.offset), n.pitch) for n in song.notes]
    chords = [(to_frame(c.onset), to_frame(c.offset), c.chord) for c in song.chords]
    length = max([e for _, e, _ in notes + chords] + [0])
    return _fill(notes, length), _fill(chords, length)


def chunk_bounds(length: int, bar_frames: list[int], max_frames: int = MAX_FRAMES) -> list[tuple[int, int]]:
    """Split [0, length) into pieces of at most `max_frames`, cutting at bar lines.

    Each piece takes as many whole bars as fit; a bar longer than `max_frames` (or a song
    without bar information) is cut every `max_frames` frames.
    """
    cuts = sorted({b for b in bar_frames if 0 < b < length})
    bounds = []
    start = 0
    while start < length:
        limit = start + max_frames
        if limit >= length:
            bounds.append((start, length))
            break
        inside = [b for b in cuts if start < b <= limit]
        end = inside[-1] if inside else limit
        bounds.append((start, end))
        start = end
    return bounds


def restart_frames(frames: list[Frame]) -> list[Frame]:
    """A chunk must not start mid-event: turn a leading hold into an onset."""
    if frames and frames[0] is not None and frames[0][0] == "hold":
        frames = [("on", frames[0][1])] + frames[1:]
    return frames
