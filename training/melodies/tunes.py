#!/usr/bin/env python3
"""Public-domain tunes with their standard lead-sheet chords, typed in by hand.

Writes one melody case per tune (see README.md in this folder): ``NAME.mid`` (the melody, beat 0
is a bar line, pickups start late in bar 0) and ``NAME.json`` (the reference chords).

    python training/melodies/tunes.py --out training/melodies/tunes

Notation of each tune below:

- ``melody``: bars separated by ``|``. A token is ``PITCH[:BEATS][~]``: ``PITCH`` is a note name
  with octave (``C4`` = MIDI 60, ``F#4``, ``Bb3``) or ``r`` for a rest; ``BEATS`` is the length in
  quarter-note beats (``1.5`` = dotted quarter); when omitted it repeats the previous token's
  length. A trailing ``~`` ties the note to the next one (same pitch). With a pickup, the first
  bar holds only the pickup; the last bar may be incomplete (it completes the pickup).
- ``chords``: one entry per melody bar, separated by ``|``. A bar is ``SYMBOL[:BEATS] ...``;
  symbols without a length share the rest of the bar evenly (two chords in a 6/8 bar get a
  dotted quarter each). ``N`` is no chord (the pickup bar). Consecutive equal symbols are merged.

Every bar is checked against the meter, and the chords must cover the melody from the first full
bar to the end. The output is deterministic (no timestamps), so rerunning reproduces the folder
byte for byte (tests/test_melody_tunes.py checks that the committed folder matches).

Notes on overlap with the training data (checked against training/splits.json): "What Child Is
This?" and "Jingle Bells" are in the OpenEWLD train split (Greensleeves shares What Child's
melody) and "Drunken Sailor" is in the Nottingham train split; "Auld Lang Syne" is in the
OpenEWLD valid split and "God Rest You Merry Gentlemen" in the Nottingham test split.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import mido

TICKS_PER_BEAT = 480
VELOCITY = 90
MAX_BEATS = 60

# The chord forms allowed in the reference (a subset of Comper's chord grammar).
CHORD_RE = re.compile(
    r"^([A-G][#b]?)(m|7|m7|maj7|dim|dim7|m7b5|aug|sus4|6|m6)?(?:/([A-G][#b]?))?$"
)
QUALITY_INTERVALS = {
    "": (0, 4, 7),
    "m": (0, 3, 7),
    "7": (0, 4, 7, 10),
    "m7": (0, 3, 7, 10),
    "maj7": (0, 4, 7, 11),
    "dim": (0, 3, 6),
    "dim7": (0, 3, 6, 9),
    "m7b5": (0, 3, 6, 10),
    "aug": (0, 4, 8),
    "sus4": (0, 5, 7),
    "6": (0, 4, 7, 9),
    "m6": (0, 3, 7, 9),
}
LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
NOTE_RE = re.compile(r"^([A-G])([#b]?)(\d)$")
KEY_RE = re.compile(r"^[A-G][#b]?m?$")


@dataclass(frozen=True)
class Tune:
    stem: str
    title: str
    source: str
    key: str
    meter: tuple[int, int]
    bpm: int
    pickup: Fraction
    melody: str
    chords: str


def tune(stem, title, source, key, meter, bpm, pickup, melody, chords) -> Tune:
    return Tune(stem, title, source, key, meter, bpm, Fraction(str(pickup)), melody, chords)


LEAD_SHEET = "chords: common lead-sheet harmonization"

TUNES: list[Tune] = [
    # ----------------------------------------------------------------- 4/4
    tune(
        "twinkle_twinkle", "Twinkle, Twinkle, Little Star",
        f"traditional (French, 'Ah! vous dirai-je, maman', 1761); {LEAD_SHEET}",
        "C", (4, 4), 100, 0,
        """
        C4:1 C4 G4 G4 | A4 A4 G4:2 | F4:1 F4 E4 E4 | D4 D4 C4:2 |
        G4:1 G4 F4 F4 | E4 E4 D4:2 | G4:1 G4 F4 F4 | E4 E4 D4:2 |
        C4:1 C4 G4 G4 | A4 A4 G4:2 | F4:1 F4 E4 E4 | D4 D4 C4:2
        """,
        """
        C | F C | F C | G7 C |
        C F | C G | C F | C G |
        C | F C | F C | G7 C
        """,
    ),
    tune(
        "ode_to_joy", "Ode to Joy",
        f"Ludwig van Beethoven, Symphony No. 9 (1824), finale theme, first eight bars; {LEAD_SHEET}",
        "D", (4, 4), 112, 0,
        """
        F#4:1 F#4 G4 A4 | A4 G4 F#4 E4 | D4 D4 E4 F#4 | F#4:1.5 E4:0.5 E4:2 |
        F#4:1 F#4 G4 A4 | A4 G4 F#4 E4 | D4 D4 E4 F#4 | E4:1.5 D4:0.5 D4:2
        """,
        """
        D | A | D | D A |
        D | A | D | A D
        """,
    ),
    tune(
        "mary_had_a_little_lamb", "Mary Had a Little Lamb",
        f"traditional (American, 19th century); {LEAD_SHEET}",
        "F", (4, 4), 112, 0,
        """
        A4:1 G4 F4 G4 | A4 A4 A4:2 | G4:1 G4 G4:2 | A4:1 C5 C5:2 |
        A4:1 G4 F4 G4 | A4 A4 A4 A4 | G4 G4 A4 G4 | F4:4
        """,
        """
        F | F | C | F |
        F | F | C7 | F
        """,
    ),
    tune(
        "london_bridge", "London Bridge Is Falling Down",
        f"traditional (English nursery song); {LEAD_SHEET}",
        "Bb", (4, 4), 112, 0,
        """
        F4:1.5 G4:0.5 F4:1 Eb4 | D4 Eb4 F4:2 | C4:1 D4 Eb4:2 | D4:1 Eb4 F4:2 |
        F4:1.5 G4:0.5 F4:1 Eb4 | D4 Eb4 F4:2 | C4:2 F4 | D4 Bb3
        """,
        """
        Bb | Bb | F7 | Bb |
        Bb | Bb | F7 | Bb
        """,
    ),
    tune(
        "old_macdonald", "Old MacDonald Had a Farm",
        f"traditional (American); {LEAD_SHEET}",
        "G", (4, 4), 120, 0,
        """
        G4:1 G4 G4 D4 | E4 E4 D4:2 | B4:1 B4 A4 A4 | G4:3 D4:1 |
        G4:1 G4 G4 D4 | E4 E4 D4:2 | B4:1 B4 A4 A4 | G4:4
        """,
        """
        G | C G | G D7 | G |
        G | C G | G D7 | G
        """,
    ),
    tune(
        "yankee_doodle", "Yankee Doodle",
        f"traditional (American, 18th century), verse; {LEAD_SHEET}",
        "A", (4, 4), 132, 0,
        """
        A4:1 A4 B4 C#5 | A4 C#5 B4 E4 | A4 A4 B4 C#5 | A4:2 G#4 |
        A4:1 A4 B4 C#5 | D5 C#5 B4 A4 | G#4 E4 F#4 G#4 | A4:2 A4
        """,
        """
        A | A E7 | A | A E7 |
        A | D | E7 | A
        """,
    ),
    tune(
        "auld_lang_syne", "Auld Lang Syne",
        f"traditional Scottish melody, words Robert Burns (1788), verse; {LEAD_SHEET}",
        "Eb", (4, 4), 80, 1,
        """
        Bb3:1 |
        Eb4:1.5 Eb4:0.5 Eb4:1 G4 | F4:1.5 Eb4:0.5 F4:1 G4 | Eb4:1.5 Eb4:0.5 G4:1 Bb4 | C5:3 C5:1 |
        Bb4:1.5 G4:0.5 G4:1 Eb4 | F4:1.5 Eb4:0.5 F4:1 G4 | Eb4:1.5 C4:0.5 C4:1 Bb3 | Eb4:3
        """,
        """
        N |
        Eb | Bb7 | Eb | Ab |
        Eb | Bb7 | Eb:2 Ab:1 Bb7:1 | Eb
        """,
    ),
    tune(
        "aura_lee", "Aura Lee",
        f"George R. Poulton (1861), verse; {LEAD_SHEET}",
        "E", (4, 4), 76, 0,
        """
        B3:1 E4 D#4 E4 | F#4 C#4 F#4:2 | E4:1 D#4 C#4 D#4 | E4:4 |
        B3:1 E4 D#4 E4 | F#4 C#4 F#4:2 | E4:1 D#4 C#4 D#4 | E4:4
        """,
        """
        E | F#7 | B7 | E |
        E | F#7 | B7 | E
        """,
    ),
    tune(
        "frere_jacques", "Frère Jacques",
        f"traditional (French round, 18th century); {LEAD_SHEET}",
        "C", (4, 4), 100, 0,
        """
        C4:1 D4 E4 C4 | C4 D4 E4 C4 | E4 F4 G4:2 | E4:1 F4 G4:2 |
        G4:0.5 A4 G4 F4 E4:1 C4 | G4:0.5 A4 G4 F4 E4:1 C4 | C4 G3 C4:2 | C4:1 G3 C4:2
        """,
        """
        C | C | C | C |
        C | C | C:1 G:1 C:2 | C:1 G:1 C:2
        """,
    ),
    tune(
        "alle_meine_entchen", "Alle meine Entchen",
        f"traditional (German children's song, 19th century); {LEAD_SHEET}",
        "D", (4, 4), 108, 0,
        """
        D4:1 E4 F#4 G4 | A4:2 A4 | B4:1 B4 B4 B4 | A4:4 | B4:1 B4 B4 B4 | A4:4 |
        G4:1 G4 G4 G4 | F#4:2 F#4 | E4:1 E4 E4 E4 | D4:4
        """,
        """
        D | D | G | D | G | D |
        A7 | D | A7 | D
        """,
    ),
    tune(
        "haenschen_klein", "Hänschen klein (Lightly Row)",
        f"traditional (German, 19th century), first half; {LEAD_SHEET}",
        "A", (4, 4), 112, 0,
        """
        E5:1 C#5 C#5:2 | D5:1 B4 B4:2 | A4:1 B4 C#5 D5 | E5 E5 E5:2 |
        E5:1 C#5 C#5:2 | D5:1 B4 B4:2 | A4:1 C#5 E5 E5 | A4:4
        """,
        """
        A | E7 | A | A |
        A | E7 | A | A
        """,
    ),
    tune(
        "au_clair_de_la_lune", "Au clair de la lune",
        f"traditional (French, 18th century), first half; {LEAD_SHEET}",
        "G", (4, 4), 96, 0,
        """
        G4:1 G4 G4 A4 | B4:2 A4 | G4:1 B4 A4 A4 | G4:4 |
        G4:1 G4 G4 A4 | B4:2 A4 | G4:1 B4 A4 A4 | G4:4
        """,
        """
        G | G D7 | G D7 | G |
        G | G D7 | G D7 | G
        """,
    ),
    tune(
        "jingle_bells", "Jingle Bells",
        f"James Lord Pierpont (1857), chorus; {LEAD_SHEET}",
        "G", (4, 4), 104, 0,
        """
        B4:0.5 B4 B4:1 B4:0.5 B4 B4:1 | B4:0.5 D5 G4:0.75 A4:0.25 B4:2 |
        C5:0.5 C5 C5:0.75 C5:0.25 C5:0.5 B4 B4 B4:0.25 B4 | B4:0.5 A4 A4 B4 A4:1 D5 |
        B4:0.5 B4 B4:1 B4:0.5 B4 B4:1 | B4:0.5 D5 G4:0.75 A4:0.25 B4:2 |
        C5:0.5 C5 C5:0.75 C5:0.25 C5:0.5 B4 B4 B4:0.25 B4 | D5:0.5 D5 C5 A4 G4:2
        """,
        """
        G | G | C G | A7 D7 |
        G | G | C G | D7 G
        """,
    ),
    tune(
        "drunken_sailor", "What Shall We Do with a Drunken Sailor?",
        f"traditional (sea shanty, 19th century), verse; {LEAD_SHEET}",
        "Dm", (4, 4), 120, 0,
        """
        A4:1 A4:0.5 A4 A4:1 A4:0.5 A4 | A4:1 D4 F4 A4 |
        G4:1 G4:0.5 G4 G4:1 G4:0.5 G4 | G4:1 C4 E4 G4 |
        A4:1 A4:0.5 A4 A4:1 A4:0.5 A4 | A4:1 B4 C5 D5 |
        C5:1 A4 G4 E4 | D4:2 D4
        """,
        """
        Dm | Dm | C | C |
        Dm | Dm | C | Dm
        """,
    ),
    tune(
        "korobeiniki", "Korobeiniki (The Peddlers)",
        f"traditional (Russian folk song, 19th century); {LEAD_SHEET}",
        "Am", (4, 4), 120, 0,
        """
        E5:1 B4:0.5 C5 D5:1 C5:0.5 B4 | A4:1 A4:0.5 C5 E5:1 D5:0.5 C5 |
        B4:1.5 C5:0.5 D5:1 E5 | C5 A4 A4:2 |
        r:0.5 D5:1 F5:0.5 A5:1 G5:0.5 F5 | E5:1.5 C5:0.5 E5:1 D5:0.5 C5 |
        B4:1 B4:0.5 C5 D5:1 E5 | C5 A4 A4 r
        """,
        """
        E7 | Am | E7 | Am |
        Dm | C | E7 | Am
        """,
    ),
    tune(
        "god_rest_ye_merry_gentlemen", "God Rest You Merry, Gentlemen",
        f"traditional English carol (18th century), first two lines; {LEAD_SHEET}",
        "Em", (4, 4), 104, 1,
        """
        E4:1 |
        E4:1 B4 B4 A4 | G4 F#4 E4 D4 | E4 F#4 G4 A4 | B4:3 E4:1 |
        E4:1 B4 B4 A4 | G4 F#4 E4 D4 | E4 F#4 G4 A4 | B4:3
        """,
        """
        N |
        Em | Em | C | B7 |
        Em | Em | C | B7
        """,
    ),
    # ----------------------------------------------------------------- 3/4
    tune(
        "amazing_grace", "Amazing Grace",
        "tune 'New Britain' (American, 1829), words John Newton (1779); " + LEAD_SHEET,
        "G", (3, 4), 80, 1,
        """
        D4:1 |
        G4:2 B4:0.5 G4 | B4:2 A4:1 | G4:2 E4:1 | D4:2 D4:1 |
        G4:2 B4:0.5 G4 | B4:2 A4:1 | D5:3~ | D5:2 B4:1 |
        D5:2 B4:0.5 G4 | B4:2 A4:1 | G4:2 E4:1 | D4:2 D4:1 |
        G4:2 B4:0.5 G4 | B4:2 A4:1 | G4:3~ | G4:2
        """,
        """
        N |
        G | G7 | C | G |
        G | Em | D | D7 |
        G | G7 | C | G |
        Em | D7 | G | G
        """,
    ),
    tune(
        "clementine", "Oh My Darling, Clementine",
        f"traditional (American, 1880s), chorus; {LEAD_SHEET}",
        "F", (3, 4), 96, 1,
        """
        F4:0.75 F4:0.25 |
        F4:1 C4 A4:0.75 A4:0.25 | A4:1 F4 F4:0.75 A4:0.25 |
        C5:1 C5 Bb4:0.75 A4:0.25 | G4:2 G4:0.75 A4:0.25 |
        Bb4:1 Bb4 A4:0.75 G4:0.25 | A4:1 F4 F4:0.75 A4:0.25 |
        G4:1 C4 E4:0.75 G4:0.25 | F4:2
        """,
        """
        N |
        F | F | F | C7 |
        C7 | F | C7 | F
        """,
    ),
    tune(
        "minuet_in_g", "Minuet in G",
        "Christian Petzold, Minuet in G major (BWV Anh. 114, Notebook for Anna Magdalena Bach, "
        f"1725), first section; {LEAD_SHEET}",
        "G", (3, 4), 112, 0,
        """
        D5:1 G4:0.5 A4 B4 C5 | D5:1 G4 G4 | E5:1 C5:0.5 D5 E5 F#5 | G5:1 G4 G4 |
        C5:1 D5:0.5 C5 B4 A4 | B4:1 C5:0.5 B4 A4 G4 | F#4:1 G4:0.5 A4 B4 G4 | A4:3 |
        D5:1 G4:0.5 A4 B4 C5 | D5:1 G4 G4 | E5:1 C5:0.5 D5 E5 F#5 | G5:1 G4 G4 |
        C5:1 D5:0.5 C5 B4 A4 | B4:1 C5:0.5 B4 A4 G4 | A4:1 B4:0.5 A4 G4 F#4 | G4:3
        """,
        """
        G | G | C | G | Am | G | D | D |
        G | G | C | G | Am | G | D7 | G
        """,
    ),
    tune(
        "my_bonnie", "My Bonnie Lies Over the Ocean",
        f"traditional (Scottish, 19th century); {LEAD_SHEET}",
        "D", (3, 4), 100, 1,
        """
        A4:1 |
        F#5:1.5 E5:0.5 D5:1 | E5 D5 B4 | A4:1 F#4:2~ | F#4:2 A4:1 |
        F#5:1.5 E5:0.5 D5:1 | D5 C#5 D5 | E5:3~ | E5:2 A4:1 |
        F#5:1.5 E5:0.5 D5:1 | E5 D5 B4 | A4:1 F#4:2~ | F#4:2 A4:1 |
        B4:1 E5 D5 | C#5 B4 C#5 | D5:3~ | D5:2
        """,
        """
        N |
        D | G | D | D |
        D | E7 | A | A7 |
        D | G | D | D |
        E7 | A7 | D | D
        """,
    ),
    tune(
        "what_child_is_this", "What Child Is This?",
        "tune 'Greensleeves' (English, 16th century), words William Chatterton Dix (1865), verse; "
        + LEAD_SHEET,
        "Em", (3, 4), 96, 1,
        """
        E4:1 |
        G4:2 A4:1 | B4:1.5 C#5:0.5 B4:1 | A4:2 F#4:1 | D4:1.5 E4:0.5 F#4:1 |
        G4:2 E4:1 | E4:1.5 D#4:0.5 E4:1 | F#4:2 D#4:1 | B3:2 E4:1 |
        G4:2 A4:1 | B4:1.5 C#5:0.5 B4:1 | A4:2 F#4:1 | D4:1.5 E4:0.5 F#4:1 |
        G4:1.5 F#4:0.5 E4:1 | D#4:1.5 C#4:0.5 D#4:1 | E4:3~ | E4:2
        """,
        """
        N |
        Em | Em | D | D |
        Em | Em | B7 | B7 |
        Em | Em | D | D |
        Em | B7 | Em | Em
        """,
    ),
    # ----------------------------------------------------------------- 6/8
    tune(
        "silent_night", "Silent Night",
        f"Franz Xaver Gruber (1818), first sixteen bars; {LEAD_SHEET}",
        "Bb", (6, 8), 84, 0,
        """
        F4:1.5 G4:0.5 F4:1 | D4:3 | F4:1.5 G4:0.5 F4:1 | D4:3 |
        C5:2 C5:1 | A4:3 | Bb4:2 Bb4:1 | F4:3 |
        G4:2 G4:1 | Bb4:1.5 A4:0.5 G4:1 | F4:1.5 G4:0.5 F4:1 | D4:3 |
        G4:2 G4:1 | Bb4:1.5 A4:0.5 G4:1 | F4:1.5 G4:0.5 F4:1 | D4:3
        """,
        """
        Bb | Bb | Bb | Bb |
        F7 | F7 | Bb | Bb |
        Eb | Eb | Bb | Bb |
        Eb | Eb | Bb | Bb
        """,
    ),
    tune(
        "row_row_row_your_boat", "Row, Row, Row Your Boat",
        f"traditional round (American, 1852); {LEAD_SHEET}",
        "C", (6, 8), 100, 0,
        """
        C4:1.5 C4 | C4:1 D4:0.5 E4:1.5 | E4:1 D4:0.5 E4:1 F4:0.5 | G4:3 |
        C5:0.5 C5 C5 G4 G4 G4 | E4 E4 E4 C4 C4 C4 | G4:1 F4:0.5 E4:1 D4:0.5 | C4:3
        """,
        """
        C | C | C | C |
        C | C | G7 | C
        """,
    ),
    tune(
        "greensleeves", "Greensleeves",
        f"traditional English (16th century), verse and refrain; {LEAD_SHEET}",
        "Am", (6, 8), 90, 0.5,
        """
        A4:0.5 |
        C5:1 D5:0.5 E5:0.75 F#5:0.25 E5:0.5 | D5:1 B4:0.5 G4:0.75 A4:0.25 B4:0.5 |
        C5:1 A4:0.5 A4:0.75 G#4:0.25 A4:0.5 | B4:1 G#4:0.5 E4:1 A4:0.5 |
        C5:1 D5:0.5 E5:0.75 F#5:0.25 E5:0.5 | D5:1 B4:0.5 G4:0.75 A4:0.25 B4:0.5 |
        C5:0.75 B4:0.25 A4:0.5 G#4:0.75 F#4:0.25 G#4:0.5 | A4:3 |
        G5:1.5 G5:0.75 F#5:0.25 E5:0.5 | D5:1 B4:0.5 G4:0.75 A4:0.25 B4:0.5 |
        C5:1 A4:0.5 A4:0.75 G#4:0.25 A4:0.5 | B4:1 G#4:0.5 E4:1.5 |
        G5:1.5 G5:0.75 F#5:0.25 E5:0.5 | D5:1 B4:0.5 G4:0.75 A4:0.25 B4:0.5 |
        C5:0.75 B4:0.25 A4:0.5 G#4:0.75 F#4:0.25 G#4:0.5 | A4:3
        """,
        """
        N |
        Am | G | Am | E |
        Am | G | Am E | Am |
        C | G | Am | E |
        C | G | Am E | Am
        """,
    ),
    tune(
        "three_blind_mice", "Three Blind Mice",
        f"traditional round (Thomas Ravenscroft, 1609); {LEAD_SHEET}",
        "E", (6, 8), 120, 0,
        """
        G#4:1.5 F#4 | E4:3 | G#4:1.5 F#4 | E4:3 |
        B4:1.5 A4:1 A4:0.5 | G#4:3 | B4:1.5 A4:1 A4:0.5 | G#4:2.5 B4:0.5 |
        E5:1 E5:0.5 D#5 C#5 D#5 | E5:1 B4:0.5 B4:1 B4:0.5 |
        E5:1 E5:0.5 D#5 C#5 D#5 | E5:1 B4:0.5 B4:1 B4:0.5 |
        E5:1 E5:0.5 D#5 C#5 D#5 | E5:1 B4:0.5 B4:1 A4:0.5 | G#4:1.5 F#4 | E4:3
        """,
        """
        E B7 | E | E B7 | E |
        B7 | E | B7 | E |
        E B7 | E | E B7 | E |
        E B7 | E B7 | E B7 | E
        """,
    ),
]


# --------------------------------------------------------------------------- parsing


def note_number(name: str) -> int:
    m = NOTE_RE.match(name)
    if not m:
        raise ValueError(f"bad note name {name!r}")
    letter, accidental, octave = m.groups()
    return 12 * (int(octave) + 1) + LETTER_PC[letter] + {"": 0, "#": 1, "b": -1}[accidental]


def chord_pitch_classes(symbol: str) -> frozenset[int]:
    m = CHORD_RE.match(symbol)
    if not m:
        raise ValueError(f"chord symbol {symbol!r} is outside the allowed forms")
    root, quality, bass = m.groups()
    root_pc = pc_of(root)
    pcs = {(root_pc + i) % 12 for i in QUALITY_INTERVALS[quality or ""]}
    if bass:
        pcs.add(pc_of(bass))
    return frozenset(pcs)


def pc_of(name: str) -> int:
    return (LETTER_PC[name[0]] + (1 if name[1:] == "#" else -1 if name[1:] == "b" else 0)) % 12


def split_bars(text: str) -> list[str]:
    bars = [b.strip() for b in text.split("|")]
    return [b for b in bars if b]


def bar_length(meter: tuple[int, int]) -> Fraction:
    num, den = meter
    return Fraction(num * 4, den)


@dataclass(frozen=True)
class Built:
    """A tune laid out in beats from the file start (beat 0 = the bar line before any pickup)."""

    tune: Tune
    notes: list[tuple[Fraction, Fraction, int]]  # (start, end, pitch), rests left out
    chords: list[tuple[Fraction, Fraction, str]]  # (start, end, symbol), N.C. left out
    bar_lengths: list[Fraction]  # the written length of each melody bar
    end: Fraction  # end of the last melody bar


def parse_melody(t: Tune) -> list[list[tuple[int | None, Fraction, bool]]]:
    """Bars of (pitch or None for a rest, beats, tied-to-next)."""
    bars = []
    duration = None
    for bar_text in split_bars(t.melody):
        bar = []
        for token in bar_text.split():
            tie = token.endswith("~")
            token = token.rstrip("~")
            name, _, beats = token.partition(":")
            if beats:
                duration = Fraction(beats)
            if duration is None or duration <= 0:
                raise ValueError(f"{t.stem}: token {token!r} has no length")
            pitch = None if name == "r" else note_number(name)
            if pitch is None and tie:
                raise ValueError(f"{t.stem}: a rest cannot be tied")
            bar.append((pitch, duration, tie))
        bars.append(bar)
    return bars


def check_bars(t: Tune, lengths: list[Fraction]) -> None:
    """Bar lengths against the meter: pickup bar = pickup, inner bars full, last bar <= full."""
    full = bar_length(t.meter)
    if not 0 <= t.pickup < full:
        raise ValueError(f"{t.stem}: pickup {t.pickup} must be shorter than a bar ({full})")
    if len(lengths) < 2:
        raise ValueError(f"{t.stem}: too few bars")
    for i, length in enumerate(lengths):
        if i == 0 and t.pickup:
            expected_ok = length == t.pickup
            what = f"the pickup bar lasts {length} beats, pickup is {t.pickup}"
        elif i == len(lengths) - 1:
            expected_ok = 0 < length <= full
            what = f"the last bar lasts {length} beats (at most {full})"
        else:
            expected_ok = length == full
            what = f"bar {i} lasts {length} beats, the meter wants {full}"
        if not expected_ok:
            raise ValueError(f"{t.stem}: {what}")


def build(t: Tune) -> Built:
    if not KEY_RE.match(t.key):
        raise ValueError(f"{t.stem}: bad key {t.key!r}")
    full = bar_length(t.meter)
    bars = parse_melody(t)
    lengths = [sum((d for _, d, _ in bar), Fraction(0)) for bar in bars]
    check_bars(t, lengths)

    # Melody: absolute positions, ties merged.
    start = full - t.pickup if t.pickup else Fraction(0)
    notes: list[tuple[Fraction, Fraction, int]] = []
    pending = None  # a tied note waiting for its continuation: [start, end, pitch]
    position = start
    for bar in bars:
        for pitch, duration, tie in bar:
            if pending is not None:
                if pitch != pending[2]:
                    raise ValueError(f"{t.stem}: a tie joins different pitches at beat {position}")
                pending[1] = position + duration
            elif pitch is not None:
                pending = [position, position + duration, pitch]
            if pending is not None and not tie:
                notes.append(tuple(pending))
                pending = None
            position += duration
    if pending is not None:
        raise ValueError(f"{t.stem}: the last note is tied to nothing")
    end = position

    # Chords: one entry per melody bar.
    chord_bars = split_bars(t.chords)
    if len(chord_bars) != len(bars):
        raise ValueError(f"{t.stem}: {len(chord_bars)} chord bars for {len(bars)} melody bars")
    spans: list[tuple[Fraction, Fraction, str]] = []
    position = start if not t.pickup else Fraction(full - t.pickup)
    for index, (bar_text, length) in enumerate(zip(chord_bars, lengths)):
        items = []
        for token in bar_text.split():
            symbol, _, beats = token.partition(":")
            items.append((symbol, Fraction(beats) if beats else None))
        given = sum((b for _, b in items if b is not None), Fraction(0))
        open_items = [s for s, b in items if b is None]
        if open_items:
            share = (length - given) / len(open_items)
            if share <= 0:
                raise ValueError(f"{t.stem}: chord bar {index} leaves no room for {open_items}")
        elif given != length:
            raise ValueError(f"{t.stem}: chord bar {index} lasts {given}, the melody bar {length}")
        for symbol, beats in items:
            beats = beats if beats is not None else share
            if symbol != "N":
                chord_pitch_classes(symbol)  # validates the symbol
                if spans and spans[-1][2] == symbol and spans[-1][1] == position:
                    spans[-1] = (spans[-1][0], position + beats, symbol)
                else:
                    spans.append((position, position + beats, symbol))
            position += beats
    if position != end:
        raise ValueError(f"{t.stem}: chords end at {position}, the melody at {end}")

    # The chords cover the tune from the first full bar to the end, without gaps.
    covered_from = full if t.pickup else Fraction(0)
    if not spans or spans[0][0] != covered_from or spans[-1][1] != end:
        raise ValueError(f"{t.stem}: chords must cover beats {covered_from}..{end}")
    for (_, a_end, _), (b_start, _, _) in zip(spans, spans[1:]):
        if a_end != b_start:
            raise ValueError(f"{t.stem}: a gap in the chords at beat {a_end}")
    if end >= MAX_BEATS:
        raise ValueError(f"{t.stem}: {end} beats, keep tunes under {MAX_BEATS}")
    return Built(t, notes, spans, lengths, end)


def chord_fit(b: Built) -> float:
    """Duration-weighted share of melody notes (under a chord) whose pitch class is in it."""
    inside = total = Fraction(0)
    for n_start, n_end, pitch in b.notes:
        for c_start, c_end, symbol in b.chords:
            overlap = min(n_end, c_end) - max(n_start, c_start)
            if overlap > 0:
                total += overlap
                if pitch % 12 in chord_pitch_classes(symbol):
                    inside += overlap
    return float(inside / total) if total else 0.0


# --------------------------------------------------------------------------- writing


def ascii_text(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def midi_bytes(b: Built) -> bytes:
    t = b.tune
    num, den = t.meter
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("track_name", name=ascii_text(t.title), time=0))
    conductor.append(mido.MetaMessage("set_tempo", tempo=round(60_000_000 / t.bpm), time=0))
    conductor.append(
        mido.MetaMessage(
            "time_signature",
            numerator=num,
            denominator=den,
            clocks_per_click=36 if den == 8 and num % 3 == 0 else 24,
            notated_32nd_notes_per_beat=8,
            time=0,
        )
    )
    conductor.append(mido.MetaMessage("key_signature", key=t.key, time=0))
    conductor.append(mido.MetaMessage("end_of_track", time=0))
    mid.tracks.append(conductor)

    melody = mido.MidiTrack()
    melody.append(mido.MetaMessage("track_name", name="Melody", time=0))
    melody.append(mido.Message("program_change", program=0, channel=0, time=0))
    events = []  # (tick, order, message); note-offs before note-ons at the same tick
    for start, end, pitch in b.notes:
        on, off = start * TICKS_PER_BEAT, end * TICKS_PER_BEAT
        assert on.denominator == 1 and off.denominator == 1, "note off the tick grid"
        events.append((int(off), 0, mido.Message("note_off", note=pitch, velocity=0, channel=0)))
        events.append((int(on), 1, mido.Message("note_on", note=pitch, velocity=VELOCITY, channel=0)))
    events.sort(key=lambda e: (e[0], e[1], e[2].note))
    now = 0
    for tick, _, message in events:
        melody.append(message.copy(time=tick - now))
        now = tick
    melody.append(mido.MetaMessage("end_of_track", time=0))
    mid.tracks.append(melody)

    import io

    buffer = io.BytesIO()
    mid.save(file=buffer)
    return buffer.getvalue()


def number(x: Fraction) -> int | float:
    return int(x) if x.denominator == 1 else float(x)


def json_text(b: Built) -> str:
    t = b.tune
    head = {
        "title": t.title,
        "source": t.source,
        "key": t.key,
        "time_signature": list(t.meter),
        "pickup_beats": number(t.pickup),
        "bpm": t.bpm,
    }
    lines = ["{"]
    for name, value in head.items():
        lines.append(f"  {json.dumps(name)}: {json.dumps(value, ensure_ascii=False)},")
    lines.append('  "chords": [')
    chord_lines = [
        "    "
        + json.dumps(
            {"symbol": symbol, "start_beat": number(start), "end_beat": number(end)},
            ensure_ascii=False,
        )
        for start, end, symbol in b.chords
    ]
    lines.append(",\n".join(chord_lines))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def case_files(t: Tune) -> dict[str, bytes]:
    """The files of one case: {file name: contents}."""
    b = build(t)
    return {f"{t.stem}.mid": midi_bytes(b), f"{t.stem}.json": json_text(b).encode("utf-8")}


def write_all(out: Path, tunes: list[Tune] = TUNES) -> list[str]:
    """Writes every case into `out` and removes stale .mid/.json files there; returns the names."""
    stems = [t.stem for t in tunes]
    if len(set(stems)) != len(stems):
        raise ValueError("duplicate stems")
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for t in tunes:
        written.update(case_files(t))
    for path in sorted(out.iterdir()):
        if path.suffix in (".mid", ".json") and path.name not in written:
            path.unlink()
    for name, data in written.items():
        (out / name).write_bytes(data)
    return sorted(written)


def meter_text(meter: tuple[int, int]) -> str:
    return f"{meter[0]}/{meter[1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "tunes",
        help="case folder to (re)write (default: tunes/ next to this script)",
    )
    args = parser.parse_args(argv)
    names = write_all(args.out)
    print(f"{len(names) // 2} cases written to {args.out}")
    print(f"{'case':32} {'key':4} {'meter':5} {'pickup':6} {'bars':4} {'beats':5}  fit")
    for t in TUNES:
        b = build(t)
        bars = len(b.bar_lengths) - (1 if t.pickup else 0)
        print(
            f"{t.stem:32} {t.key:4} {meter_text(t.meter):5} {str(number(t.pickup)):6} "
            f"{bars:4} {str(number(b.end)):5}  {chord_fit(b):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
