"""Tiny synthetic dataset files written into a temporary folder."""

from __future__ import annotations

from pathlib import Path

ABC_TUNEBOOK = """\
X: 1
T:Pickup Waltz
M:3/4
L:1/4
K:G
D|"G"G2B|"D/f+"A2F|"Gd"G3|"(D7)"A2D|"Fa7"c2A|"G"G2:|

X: 2
T:Second Tune
M:4/4
L:1/8
K:D
"D"d2f2 a2f2|"Bm"b4 "Em"e4|"A7"c2e2 "D"d4|]
"""


def write_pop909_song(root: Path, name: str = "001") -> Path:
    """A POP909-style folder: 4/4 at 120 bpm starting at 1 s, one bar of intro.

    Beats at 1.0, 1.5, 2.0, ...; bars every 4 beats; the melody starts in bar 2
    (beat 4 = 3.0 s), so the song is cut there.
    """
    import pretty_midi

    folder = root / name
    folder.mkdir(parents=True)
    beats = [1.0 + 0.5 * i for i in range(16)]
    (folder / "beat_midi.txt").write_text(
        "".join(f"{t} {1.0 if i % 2 == 0 else 0.0} {1.0 if i % 4 == 0 else 0.0}\n" for i, t in enumerate(beats))
    )
    (folder / "chord_midi.txt").write_text(
        "0.0\t1.0\tN\n1.0\t3.0\tA:min\n3.0\t5.0\tC:maj/3\n5.0\t7.0\tG:7\n7.0\t8.5\tF:weird\n"
    )
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    melody = pretty_midi.Instrument(0, name="MELODY")
    piano = pretty_midi.Instrument(0, name="PIANO")
    # 3.0 s = beat 4 -> frame 0 after the cut; 3.25 s = beat 4.5; 3.3 s ~ beat 4.6 -> frame 2
    melody.notes.append(pretty_midi.Note(100, 72, 3.0, 3.25))
    melody.notes.append(pretty_midi.Note(100, 74, 3.3, 4.0))
    melody.notes.append(pretty_midi.Note(100, 76, 5.0, 6.0))
    piano.notes.append(pretty_midi.Note(100, 48, 1.0, 8.0))
    midi.instruments += [melody, piano]
    midi.write(str(folder / f"{name}.mid"))
    return folder


def write_nottingham(root: Path) -> Path:
    folder = root / "ABC_cleaned"
    folder.mkdir(parents=True)
    (folder / "tiny.abc").write_text(ABC_TUNEBOOK)
    return root


def write_openewld_song(root: Path) -> Path:
    """A two-bar 4/4 lead sheet with C, Am/C and N.C. harmony, saved as MusicXML."""
    from music21 import harmony, meter, note, stream

    part = stream.Part()
    m1, m2 = stream.Measure(number=1), stream.Measure(number=2)
    m1.append(meter.TimeSignature("4/4"))
    m1.insert(0, harmony.ChordSymbol("C"))
    m1.insert(0, note.Note("E4", quarterLength=2))
    m1.insert(2, note.Note("G4", quarterLength=2))
    m2.insert(0, harmony.ChordSymbol("Am/C"))
    m2.insert(2, harmony.NoChord())
    m2.insert(0, note.Note("A4", quarterLength=1))
    m2.insert(1, note.Rest(quarterLength=1))
    m2.insert(2, note.Note("C5", quarterLength=2))
    part.append([m1, m2])
    score = stream.Score([part])
    folder = root / "dataset" / "Someone" / "Tune"
    folder.mkdir(parents=True)
    path = folder / "Tune.mxl"
    score.write("mxl", fp=str(path))
    return path
