"""training/melodies/tunes.py: the hand-typed public-domain tunes and their committed case folder."""

import dataclasses
import importlib.util
import json
import re
import sys
from fractions import Fraction
from pathlib import Path

import mido
import pytest

MELODIES = Path(__file__).resolve().parents[1] / "melodies"
SCRIPT = MELODIES / "tunes.py"
FOLDER = MELODIES / "tunes"
SAFE_CHORD = re.compile(r"^[A-G][#b]?(m|7|m7|maj7|dim|dim7|m7b5|aug|sus4|6|m6)?(/[A-G][#b]?)?$")
JSON_KEYS = {"title", "source", "key", "time_signature", "pickup_beats", "bpm", "chords"}


@pytest.fixture(scope="module")
def tunes():
    spec = importlib.util.spec_from_file_location("melody_tunes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def built(tunes):
    return [tunes.build(t) for t in tunes.TUNES]


def test_enough_tunes_with_unique_stems(tunes):
    stems = [t.stem for t in tunes.TUNES]
    assert len(stems) >= 20
    assert len(set(stems)) == len(stems)
    assert all(re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", s) for s in stems)


def test_every_bar_fits_the_meter(tunes, built):
    for b in built:
        t = b.tune
        full = tunes.bar_length(t.meter)
        lengths = b.bar_lengths
        inner = lengths[1:-1]
        if t.pickup:
            assert lengths[0] == t.pickup, t.stem
        else:
            inner = lengths[:-1]
        assert all(length == full for length in inner), t.stem
        assert 0 < lengths[-1] <= full, t.stem
        start = full - t.pickup if t.pickup else 0
        assert b.end == start + sum(lengths), t.stem


def test_bar_and_chord_checks_catch_mistakes(tunes):
    twinkle = next(t for t in tunes.TUNES if t.stem == "twinkle_twinkle")
    short_bar = twinkle.melody.replace("A4 A4 G4:2", "A4 A4 G4:1", 1)
    with pytest.raises(ValueError, match="bar 1 lasts 3"):
        tunes.build(dataclasses.replace(twinkle, melody=short_bar))
    long_chords = twinkle.chords.replace("F C", "F:3 C:2", 1)
    with pytest.raises(ValueError, match="chord bar 1"):
        tunes.build(dataclasses.replace(twinkle, chords=long_chords))
    with pytest.raises(ValueError, match="chord bars"):
        tunes.build(dataclasses.replace(twinkle, chords=twinkle.chords + " | C"))
    with pytest.raises(ValueError, match="outside the allowed forms"):
        tunes.build(dataclasses.replace(twinkle, chords=twinkle.chords.replace("G7", "G13", 1)))
    grace = next(t for t in tunes.TUNES if t.stem == "amazing_grace")
    with pytest.raises(ValueError, match="pickup bar"):
        tunes.build(dataclasses.replace(grace, pickup=Fraction(2)))


def test_variety(built):
    tunes_ = [b.tune for b in built]
    meters = [t.meter for t in tunes_]
    assert meters.count((4, 4)) >= 4
    assert meters.count((3, 4)) >= 4
    assert meters.count((6, 8)) >= 3
    assert sum(1 for t in tunes_ if t.pickup) >= 5
    minor = [t for t in tunes_ if t.key.endswith("m")]
    assert len(minor) >= 5
    major_keys = {t.key for t in tunes_ if not t.key.endswith("m")}
    assert {"C", "G", "D", "F", "Bb", "Eb", "A", "E"} <= major_keys


def test_chord_symbols_are_in_the_safe_set(built):
    for b in built:
        for _, _, symbol in b.chords:
            assert SAFE_CHORD.match(symbol), (b.tune.stem, symbol)


def test_chords_cover_the_tune_without_gaps(tunes, built):
    for b in built:
        t = b.tune
        first_full_bar = tunes.bar_length(t.meter) if t.pickup else 0
        assert b.chords[0][0] == first_full_bar, t.stem
        assert b.chords[-1][1] == b.end, t.stem
        for (_, end, symbol), (start, _, next_symbol) in zip(b.chords, b.chords[1:]):
            assert end == start, t.stem
            assert symbol != next_symbol, t.stem  # repeats are merged
        assert b.end < tunes.MAX_BEATS, t.stem
        if t.pickup:
            assert b.notes[0][0] == first_full_bar - t.pickup, t.stem


def test_melodies_sit_in_their_chords(tunes, built):
    # A typical lead sheet puts 60-85% of the melody in the chord; far less means a
    # transcription slip (wrong key, shifted bars, a mistaken pickup).
    for b in built:
        assert tunes.chord_fit(b) >= 0.6, b.tune.stem


def test_committed_folder_matches_the_source(tunes, tmp_path):
    names = tunes.write_all(tmp_path)
    committed = sorted(p.name for p in FOLDER.iterdir() if p.suffix in (".mid", ".json"))
    assert committed == names
    for name in names:
        assert (FOLDER / name).read_bytes() == (tmp_path / name).read_bytes(), name
    # and a rerun is byte-identical
    again = tmp_path / "again"
    tunes.write_all(again)
    for name in names:
        assert (again / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_case_files_follow_the_readme(tunes, built):
    for b in built:
        t = b.tune
        meta = json.loads((FOLDER / f"{t.stem}.json").read_text(encoding="utf-8"))
        assert set(meta) == JSON_KEYS, t.stem
        assert meta["key"] == t.key and re.fullmatch(r"[A-G][#b]?m?", meta["key"])
        assert meta["time_signature"] == list(t.meter)
        assert meta["pickup_beats"] == float(t.pickup)
        spans = [(c["start_beat"], c["end_beat"], c["symbol"]) for c in meta["chords"]]
        assert spans == [(float(s), float(e), c) for s, e, c in b.chords], t.stem

        mid = mido.MidiFile(FOLDER / f"{t.stem}.mid")
        ppq = mid.ticks_per_beat
        metas = {}
        notes = []
        for track in mid.tracks:
            tick = 0
            sounding = {}
            for msg in track:
                tick += msg.time
                if msg.is_meta and msg.type in ("set_tempo", "time_signature"):
                    assert tick == 0, t.stem
                    metas[msg.type] = msg
                elif msg.type == "note_on" and msg.velocity > 0:
                    assert msg.velocity == 90
                    sounding[msg.note] = tick
                elif msg.type in ("note_off", "note_on"):
                    notes.append((sounding.pop(msg.note), tick, msg.note))
        assert round(mido.tempo2bpm(metas["set_tempo"].tempo)) == meta["bpm"], t.stem
        ts = metas["time_signature"]
        assert [ts.numerator, ts.denominator] == meta["time_signature"], t.stem
        notes.sort()
        assert notes == [(int(s * ppq), int(e * ppq), p) for s, e, p in b.notes], t.stem
        for (_, end, _), (start, _, _) in zip(notes, notes[1:]):
            assert end <= start, t.stem  # one voice
        first_bar = tunes.bar_length(t.meter)
        assert notes[0][0] == int((first_bar - t.pickup) * ppq if t.pickup else 0), t.stem
