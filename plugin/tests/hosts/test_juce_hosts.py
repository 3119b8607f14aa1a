"""Comper's release VST3 in two real JUCE-based hosts from PyPI: DawDreamer (offline renders with
a rolling transport, as a bounce or freeze does) and pedalboard (offline, its transport never
rolls). Each test plays a melody, renders, and checks that chords sound where they are due and
that the sound is the chords the plugin says it played (``COMPER_CHORD_LOG``, one JSON plan a
line): the share of each beat's spectral energy in the reported chord's pitch classes.

Run: ``COMPER_VST3=target/bundled/Comper.vst3 python -m pytest plugin/tests/hosts``.
"""

import gc
import json
import os
from pathlib import Path

import numpy as np
import pytest

VST3 = os.environ.get("COMPER_VST3", "target/bundled/Comper.vst3")

# Ode to Joy, one quarter note a beat, repeated to fill the render.
ODE = [64, 64, 65, 67, 67, 65, 64, 62, 60, 60, 62, 64, 64, 62, 62, 62]
BARS = 16
BEATS = BARS * 4
# A beat passes when this share of its energy lies in the reported chord's pitch classes (the
# synth's overtones put the rest elsewhere), and a render passes when this share of the beats
# where chords are due pass, and of the bars sound.
CHORD_ENERGY = 0.6
DUE_SHARE = 0.8


def melody(beats=BEATS):
    """(pitch, start beat, length in beats) of the melody."""
    return [(ODE[b % len(ODE)], float(b), 0.9) for b in range(beats)]


def read_log(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def played_chords(log):
    """Absolute frame -> sounding pitches, as the plugin reported them. A loop plan repeats over
    the timeline; live plans count only their committed frames (the ones that sound) of the last
    phrase the log mentions."""
    loops = [p for p in log if p["plan"] == "loop"]
    lives = [p for p in log if p["plan"] == "live"]
    if loops and not lives:
        plan = loops[-1]
        frames = plan["frames"]

        def at(frame):
            return frames[(frame - plan["first_frame"]) % len(frames)]["pitches"]

        return at
    phrase = lives[-1]["phrase"]
    chords = {}
    for plan in lives:
        if plan["phrase"] != phrase:
            continue
        for k, entry in enumerate(plan["frames"]):
            if entry["committed"]:
                chords.setdefault(plan["first_frame"] + k, entry["pitches"])
    return lambda frame: chords.get(frame, [])


def chord_share(segment, sample_rate, pitch_classes):
    """Share of the segment's energy (60 Hz to 2.5 kHz) in `pitch_classes`."""
    mono = segment.mean(axis=0) * np.hanning(segment.shape[1])
    power = np.abs(np.fft.rfft(mono)) ** 2
    freqs = np.fft.rfftfreq(len(mono), 1.0 / sample_rate)
    band = (freqs > 60) & (freqs < 2500)
    classes = np.rint(12 * np.log2(freqs[band] / 440.0) + 69).astype(int) % 12
    total = power[band].sum()
    if total <= 0:
        return 0.0
    inside = np.isin(classes, sorted(pitch_classes))
    return float(power[band][inside].sum() / total)


def check_render(audio, sample_rate, beat_time, log, first_due_beat, last_beat=BEATS):
    """Asserts chords sound in the bars where they are due and match the reported chords."""
    chord_at = played_chords(log)
    sounding_bars, due_bars = 0, 0
    good_beats, due_beats = 0, 0
    for bar in range(first_due_beat // 4, last_beat // 4):
        start, end = (int(beat_time(b) * sample_rate) for b in (bar * 4, bar * 4 + 4))
        due_bars += 1
        sounding_bars += np.sqrt(np.mean(audio[:, start:end] ** 2)) > 1e-3
    for beat in range(first_due_beat, last_beat):
        pitches = {p for frame in range(beat * 4, beat * 4 + 4) for p in chord_at(frame)}
        t0, t1 = beat_time(beat), beat_time(beat + 1)
        start = int((t0 + 0.1 * (t1 - t0)) * sample_rate)
        end = int((t1 - 0.05 * (t1 - t0)) * sample_rate)
        due_beats += 1
        if pitches and chord_share(audio[:, start:end], sample_rate, {p % 12 for p in pitches}) >= CHORD_ENERGY:
            good_beats += 1
    assert due_bars and sounding_bars >= DUE_SHARE * due_bars, (
        f"chords sound in {sounding_bars} of {due_bars} bars where they are due")
    assert good_beats >= DUE_SHARE * due_beats, (
        f"the output matches the reported chords on {good_beats} of {due_beats} beats")
    return good_beats / due_beats


# -- DawDreamer -----------------------------------------------------------------------------------

def dawdreamer_render(tmp_path, name, mode, sample_rate, block, tempo=None):
    """Renders the melody through Comper in DawDreamer; returns (audio, log, seconds per beat
    function). `tempo` is a list of BPM per beat (a tempo map), or None for 120 BPM."""
    import dawdreamer as daw

    log = tmp_path / f"{name}.jsonl"
    os.environ["COMPER_CHORD_LOG"] = str(log)
    engine = daw.RenderEngine(sample_rate, block)
    bpm = tempo or [120.0] * (BEATS + 8)
    if tempo:
        engine.set_bpm(np.array(bpm, dtype=np.float32), 1)
    else:
        engine.set_bpm(120.0)
    plugin = engine.make_plugin_processor(name, VST3)
    plugin.set_parameter(0, 1.0 if mode == "Live" else 0.0)
    for pitch, beat, length in melody():
        plugin.add_midi_note(pitch, 100, beat, length, beats=True)
    engine.load_graph([(plugin, [])])
    starts = np.concatenate([[0.0], np.cumsum([60.0 / b for b in bpm])])
    engine.render(float(starts[BEATS]))
    del os.environ["COMPER_CHORD_LOG"]
    audio = engine.get_audio()
    # Destroying the plugin ends its inference thread after it has planned the render's last
    # frames: only then is the log complete.
    del engine, plugin
    gc.collect()
    return audio, read_log(log), lambda beat: float(starts[beat])


@pytest.mark.parametrize("sample_rate,block", [(44100, 8192), (48000, 512), (96000, 64)])
def test_dawdreamer_suggest_loops_a_captured_option(tmp_path, sample_rate, block):
    audio, log, beat_time = dawdreamer_render(tmp_path, "suggest", "Suggest", sample_rate, block)
    assert any(p["plan"] == "loop" for p in log), "no option was offered"
    # Four bars are captured; the chosen option loops from bar 5.
    check_render(audio, sample_rate, beat_time, log, first_due_beat=16)


@pytest.mark.parametrize("sample_rate,block", [(48000, 1024), (96000, 4096)])
def test_dawdreamer_live_accompanies_after_listening(tmp_path, sample_rate, block):
    audio, log, beat_time = dawdreamer_render(tmp_path, "live", "Live", sample_rate, block)
    # Eight beats of listening, then chords.
    check_render(audio, sample_rate, beat_time, log, first_due_beat=8)


def test_dawdreamer_live_follows_a_tempo_change(tmp_path):
    tempo = [120.0] * 32 + [84.0] * (BEATS - 32 + 8)
    audio, log, beat_time = dawdreamer_render(tmp_path, "tempo", "Live", 48000, 512, tempo)
    check_render(audio, 48000, beat_time, log, first_due_beat=8)
    # After the change the chords still sit on the slower beats.
    check_render(audio, 48000, beat_time, log, first_due_beat=36)


def test_an_offline_render_does_not_depend_on_the_block_size(tmp_path):
    big, big_log, _ = dawdreamer_render(tmp_path, "big", "Live", 48000, 8192)
    small, small_log, _ = dawdreamer_render(tmp_path, "small", "Live", 48000, 64)
    frames = range(0, BEATS * 4)
    big_at, small_at = played_chords(big_log), played_chords(small_log)
    assert [big_at(f) for f in frames] == [small_at(f) for f in frames]
    assert any(big_at(f) for f in frames)
    # Sample-accurate chords: the two renders sound the same.
    assert np.max(np.abs(big - small)) < 1e-3


# -- pedalboard -----------------------------------------------------------------------------------

def pedalboard_render(tmp_path, name, mode, sample_rate, block):
    import mido
    from pedalboard import load_plugin

    log = tmp_path / f"{name}.jsonl"
    os.environ["COMPER_CHORD_LOG"] = str(log)
    # pedalboard instantiates the plugin again for a render: the variable stays set until then.
    plugin = load_plugin(VST3)
    plugin.mode = mode
    seconds_per_beat = 0.5  # pedalboard reports 120 BPM and never rolls
    messages = []
    for pitch, beat, length in melody():
        messages.append(mido.Message("note_on", note=pitch, velocity=100, time=beat * seconds_per_beat))
        messages.append(mido.Message("note_off", note=pitch, velocity=0,
                                     time=(beat + length) * seconds_per_beat))
    audio = plugin(messages, duration=BEATS * seconds_per_beat, sample_rate=sample_rate,
                   num_channels=2, buffer_size=block)
    del os.environ["COMPER_CHORD_LOG"]
    del plugin  # completes the log, as above
    gc.collect()
    # The warm-up note pedalboard plays while loading is no phrase: only the render's plans count.
    return audio, read_log(log), lambda beat: beat * seconds_per_beat


@pytest.mark.parametrize("mode,first_due_beat", [("Suggest", 16), ("Live", 8)])
def test_pedalboard_plays_without_a_rolling_transport(tmp_path, mode, first_due_beat):
    audio, log, beat_time = pedalboard_render(tmp_path, mode.lower(), mode, 44100, 2048)
    check_render(audio, 44100, beat_time, log, first_due_beat)
