"""Write reference test vectors for Comper's tokenizer and chord-symbol parser.

Runs the Python reference implementations (realjam 1.0.1's HooktheoryTokenizer and
note_seq 0.0.5's chord_symbols_lib) on a deterministic set of inputs and stores what they
return, so the Rust tests can check Comper against them id for id:

    tests/fixtures/tokenizer_vectors.json   vocabulary, token ids, frame and sequence cases
    tests/fixtures/chord_vectors.json       pitches and bass of every vocabulary name + extras

Usage (from the repository root):

    /work/venv/bin/python training/make_tokenizer_vectors.py

realjam and note_seq are installed without their dependencies, and both packages' __init__
import modules we do not have (flask, absl, ...). We therefore register bare package objects
for them so that only the submodules we need are imported.
"""

import importlib.util
import json
import random
import sys
import types
from pathlib import Path

import numpy as np

SEED = 20240501
RANDOM_CHORD_DRAWS = 700
REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


def import_without_package_init(package: str) -> None:
    """Make `package.sub` importable without running `package/__init__.py`."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.submodule_search_locations is None:
        raise SystemExit(f"{package} is not installed in this Python environment")
    module = types.ModuleType(package)
    module.__path__ = list(spec.submodule_search_locations)
    sys.modules[package] = module


import_without_package_init("note_seq")
import_without_package_init("realjam")

from note_seq import chord_symbols_lib as csl  # noqa: E402
from realjam.core.tokenizer import HooktheoryTokenizer  # noqa: E402

# Semitones above the root of each scale-degree number when a chord is stacked in root position.
DEGREE_SEMITONES = {1: 0, 2: 2, 3: 4, 4: 5, 5: 7, 6: 9, 7: 11, 9: 14, 11: 17, 13: 21}


def degree_semitones(degree: str) -> int:
    digits = degree.lstrip("#b")
    accidentals = degree[: len(degree) - len(digits)]
    alter = accidentals.count("#") - accidentals.count("b")
    return DEGREE_SEMITONES[int(digits)] + alter


class KindProbe:
    """Records which chord kind `pitches_to_chord_symbol` settled on for each name."""

    def __init__(self):
        self.last_kind = None
        original = csl._degrees_to_modifications

        def probe(chord_degrees, target_degrees):
            self.last_kind = tuple(chord_degrees)
            return original(chord_degrees, target_degrees)

        csl._degrees_to_modifications = probe


def build_vocabulary(rng: random.Random):
    """Chord names as ReaLchords builds them: named root-position pitch sets, sorted(set(...))."""
    probe = KindProbe()
    names = []
    kinds_seen = set()

    def name_of(pitches):
        try:
            name = csl.pitches_to_chord_symbol(pitches)
        except csl.ChordSymbolError:
            return
        names.append(name)
        kinds_seen.add(probe.last_kind)

    # Every kind of the table on every root, stacked in root position.
    for _, degrees in csl._CHORD_KINDS:
        for root in range(12):
            name_of([root + degree_semitones(d) for d in degrees])

    # Random root-position pitch sets: these give slash chords and added/altered degrees.
    for _ in range(RANDOM_CHORD_DRAWS):
        root = rng.randrange(12)
        size = rng.choice([2, 3, 3, 4, 4, 5, 5, 6])
        intervals = sorted(rng.sample(range(1, 12), size - 1))
        name_of([root] + [root + i for i in intervals])

    vocabulary = sorted(set(names))
    all_kinds = {tuple(degrees) for _, degrees in csl._CHORD_KINDS}
    assert kinds_seen == all_kinds, "some chord kinds never occurred"
    assert len(vocabulary) >= 300
    assert any("/" in n and "6/9" not in n for n in vocabulary), "no slash chords"
    assert any("(b" in n or "(#" in n for n in vocabulary), "no altered degrees"
    assert any("(add" in n for n in vocabulary), "no added degrees"
    return vocabulary


def note_dict(pitch, onset, offset):
    return {"octave": pitch // 12 - 5, "pitch_class": pitch % 12, "onset": onset, "offset": offset}


def reference_frames(encode, events, num_frames):
    """Frame ids from the reference encoder, or None when it raises."""
    try:
        return [int(x) for x in encode(events, num_frames)]
    except (IndexError, ValueError):
        return None


def reference_decoded_melody(tokenizer, frames):
    try:
        notes = tokenizer.decode_melody_frames(np.array(frames))
    except ValueError:
        return None
    return [[(n["octave"] + 5) * 12 + n["pitch_class"], n["onset"], n["offset"]] for n in notes]


def reference_decoded_chords(tokenizer, frames):
    try:
        chords = tokenizer.decode_chord_frames(np.array(frames))
    except ValueError:
        return None
    return [[c["chord_name"], c["onset"], c["offset"]] for c in chords]


def frame_cases(vocabulary, rng: random.Random):
    """Hand-made corner cases plus a few random phrases; each has a melody and a chord track."""
    v = vocabulary
    cases = [
        {
            "comment": "plain phrase, all events inside",
            "num_frames": 16,
            "melody": [[60, 0.0, 1.0], [62, 1.0, 1.5], [64, 2.0, 4.0]],
            "chords": [[v[0], 0.0, 2.0], [v[1], 2.0, 4.0]],
        },
        {
            "comment": "overlapping and overwriting events: later events win",
            "num_frames": 16,
            "melody": [[60, 0.0, 2.0], [67, 0.5, 1.0], [72, 1.75, 3.0], [48, 3.0, 3.25]],
            "chords": [[v[2], 0.0, 4.0], [v[3], 1.0, 2.0], [v[4], 0.0, 0.5]],
        },
        {
            "comment": "zero-length and sub-frame events get one frame",
            "num_frames": 12,
            "melody": [[70, 0.5, 0.5], [71, 1.1, 1.2], [0, 2.0, 2.0], [127, 2.6, 2.7]],
            "chords": [[v[5], 0.25, 0.25], [v[6], 1.0, 1.1]],
        },
        {
            "comment": "events running past the end are clipped",
            "num_frames": 10,
            "melody": [[55, 1.0, 9.0], [57, 2.0, 100.0]],
            "chords": [[v[7], 0.0, 50.0], [v[8], 2.25, 3.0]],
        },
        {
            "comment": "offset before onset keeps just the onset frame; onset just before the end",
            "num_frames": 8,
            "melody": [[65, 1.0, 0.5], [66, 1.75, 1.8]],
            "chords": [[v[9], 1.5, 1.0], [v[10], 1.75, 2.0]],
        },
        {
            "comment": "melody onset exactly at the end is an error",
            "num_frames": 8,
            "melody": [[60, 0.0, 1.0], [62, 2.0, 3.0]],
            "chords": [[v[11], 0.0, 1.0]],
        },
        {
            "comment": "chord onset past the end is an error",
            "num_frames": 8,
            "melody": [[60, 0.0, 1.0]],
            "chords": [[v[12], 0.0, 1.0], [v[13], 5.0, 6.0]],
        },
        {
            "comment": "empty tracks are all silence",
            "num_frames": 5,
            "melody": [],
            "chords": [],
        },
        {
            "comment": "repeated notes and chords of the same pitch and name",
            "num_frames": 16,
            "melody": [[60, 0.0, 1.0], [60, 1.0, 2.0], [60, 2.5, 3.0]],
            "chords": [[v[14], 0.0, 2.0], [v[14], 2.0, 4.0]],
        },
    ]
    for index in range(6):
        num_frames = rng.randrange(8, 64)
        beats = num_frames / 4
        melody = []
        for _ in range(rng.randrange(1, 12)):
            onset = round(rng.uniform(0, beats * 0.98), 3)
            offset = round(onset + rng.choice([0.0, 0.1, 0.25, 0.5, 1.0, 2.5, 8.0]), 3)
            melody.append([rng.randrange(36, 96), onset, offset])
        chords = []
        for _ in range(rng.randrange(1, 6)):
            onset = rng.randrange(0, num_frames) / 4
            offset = onset + rng.choice([0.25, 1.0, 2.0, 4.0, 16.0])
            chords.append([rng.choice(vocabulary), onset, offset])
        cases.append(
            {"comment": f"random phrase {index}", "num_frames": num_frames,
             "melody": melody, "chords": chords}
        )
    return cases


def tokenizer_vectors(vocabulary, rng: random.Random):
    tokenizer = HooktheoryTokenizer(chord_names=vocabulary)
    token_names = ["PAD", "BOS", "EOS", "SILENCE", "NOTE_0", "NOTE_60", "NOTE_127",
                   "NOTE_ON_0", "NOTE_ON_60", "NOTE_ON_127"]
    for name in [vocabulary[0], vocabulary[-1]] + rng.sample(vocabulary, 20):
        token_names += [f"CHORD_{name}", f"CHORD_ON_{name}"]
    token_ids = [[n, tokenizer.name_to_id[n]] for n in dict.fromkeys(token_names)]

    cases = []
    for case in frame_cases(vocabulary, rng):
        n = case["num_frames"]
        melody = reference_frames(
            tokenizer.melody_to_frames, [note_dict(*note) for note in case["melody"]], n)
        chords = reference_frames(
            tokenizer.chord_names_to_frames,
            [{"chord_name": c, "onset": on, "offset": off} for c, on, off in case["chords"]], n)
        case["melody_frames"] = melody
        case["chord_frames"] = chords
        if melody is not None:
            case["decoded_melody"] = reference_decoded_melody(tokenizer, melody)
        if chords is not None:
            case["decoded_chords"] = reference_decoded_chords(tokenizer, chords)
        if melody is not None and chords is not None:
            bos, eos = tokenizer.bos_token, tokenizer.eos_token
            interleaved = [bos]
            for c, m in zip(chords, melody):
                interleaved += [c, m]
            case["online"] = interleaved + [eos]
            case["encoder"] = [bos] + melody + [eos]
            case["decoder"] = [bos] + chords + [eos]
        cases.append(case)

    return {
        "generator": "training/make_tokenizer_vectors.py (realjam 1.0.1, note_seq 0.0.5)",
        "seed": SEED,
        "chord_names": vocabulary,
        "num_tokens": tokenizer.num_tokens,
        "token_ids": token_ids,
        "cases": cases,
    }


# Names beyond the vocabulary: the specification's examples, other spellings the grammar
# accepts, and names the reference rejects (wholly, or only when computing pitches).
EXTRA_CHORD_NAMES = [
    "C", "Cm7b5", "Co7", "C9", "C13", "C7(b9)(#11)", "Gb7(b13)", "C(add2)", "Cped(add3)",
    "Cped(add7)", "Cped(addb7)", "Dbmaj7/C", "Ab/Eb", "D5(add6)(addb7)/C", "F6/9/C",
    "C6/9", "Csus4", "Csus", "C7sus", "Csus7", "C/o", "C/o7", "C-7b5", "Cmin", "CM", "Cmaj",
    "C-", "Caug", "C+7", "Caug9", "Cdim", "Cdim7", "CmM7", "CminM7", "Cm(maj7)", "C-(M7)",
    "Cmin(M7)", "C-maj7", "CM13", "Cmin11", "C##", "Cbbb7", "B#", "Fb/E#", "E/G#",
    "C#9", "C7#9", "Cmaj7#11", "Cb5", "C(b9", "Cadd2)", "C(b5(#9)", "Cno5)(b9", "C(add09)",
    "Cno3", "C7no5", "C(add0)", "C(add14)", "Cadd#5", "Caddb9", "C#5#5", "C(b5)(b5)", "C5no1",
    "Cpedno1", "C\n", "Cmaj7\n",
    # rejected when computing pitches (degree already present / missing), bass still known
    "C(add3)", "C(no9)", "Cm(add5)", "C7(addb7)",
    # rejected outright
    "N.C.", "", "C#b", "Cb#", "H", "c", " C", "C ", "Cmaj7/H", "C/", "C//E", "Cadd", "C7add",
    "C(add)", "Cx", "C\u266f", "C\u00e9", "Cmaj7/C\n\n", "C\n\n", "C/E/G", "C(b9))", "C((b9)",
]


# Pieces of the grammar (and a few foreign ones) for random, mostly odd, names: these check
# the parser's backtracking against Python's regular expression engine.
FUZZ_PIECES = [
    "C", "D", "E", "F", "G", "A", "B", "#", "b", "bb", "m", "maj", "min", "M", "-", "+", "o",
    "dim", "aug", "7", "9", "11", "13", "5", "6", "2", "4", "0", "/", "/o", "6/9", "sus", "ped",
    "(", ")", "add", "no", "x", ".",
]
FUZZ_NAMES = 600


def fuzz_names(rng: random.Random):
    names = []
    for _ in range(FUZZ_NAMES):
        pieces = [rng.choice("ABCDEFG")] + rng.choices(FUZZ_PIECES, k=rng.randrange(0, 7))
        names.append("".join(pieces))
    return names


def chord_vectors(vocabulary, rng: random.Random):
    entries = []
    for name in list(dict.fromkeys(vocabulary + EXTRA_CHORD_NAMES + fuzz_names(rng))):
        entry = {"name": name}
        try:
            entry["pitches"] = csl.chord_symbol_pitches(name)
        except csl.ChordSymbolError as error:
            entry["pitches_error"] = str(error).split(":")[0]
        try:
            entry["bass"] = csl.chord_symbol_bass(name)
        except csl.ChordSymbolError as error:
            entry["bass_error"] = str(error).split(":")[0]
        entry["in_vocabulary"] = name in vocabulary
        entries.append(entry)
    return {
        "generator": "training/make_tokenizer_vectors.py (note_seq 0.0.5)",
        "entries": entries,
    }


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
    path.write_text(text + "\n")
    print(f"wrote {path} ({len(text) // 1024} KiB)")


def main() -> None:
    rng = random.Random(SEED)
    vocabulary = build_vocabulary(rng)
    print(f"vocabulary: {len(vocabulary)} chord names")
    write_json(FIXTURES / "tokenizer_vectors.json", tokenizer_vectors(vocabulary, rng))
    write_json(FIXTURES / "chord_vectors.json", chord_vectors(vocabulary, rng))


if __name__ == "__main__":
    main()
