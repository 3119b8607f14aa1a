"""Checks a clip dropped by the drag-out test against what Comper played: the chords of the
dropped .mid (its "Chords" track) must be the selected option's chords, at the same beats, as the
last loop plan in the standalone's chord log (COMPER_CHORD_LOG) has them.

    python3 check_dropped_clip.py DROPPED.mid CHORD_LOG
"""

import json
import sys

import mido


def clip_chords(path):
    """(beat, pitch classes) of each chord onset in the clip's chord track."""
    midi = mido.MidiFile(path)
    track = next(t for t in midi.tracks if t.name == "Chords")
    onsets, tick = {}, 0
    for message in track:
        tick += message.time
        if message.type == "note_on" and message.velocity > 0:
            onsets.setdefault(tick, set()).add(message.note % 12)
    return [(tick / midi.ticks_per_beat, frozenset(pcs)) for tick, pcs in sorted(onsets.items())]


def played_chords(log):
    """(beat, pitch classes) of each chord onset of the last loop plan sent to the audio thread."""
    plans = [json.loads(line) for line in open(log) if line.strip()]
    loop = [p for p in plans if p["plan"] == "loop"][-1]
    return [
        (k / 4, frozenset(p % 12 for p in frame["pitches"]))
        for k, frame in enumerate(loop["frames"])
        if frame["onset"] and frame["pitches"]
    ]


def main():
    dropped, log = sys.argv[1], sys.argv[2]
    clip, played = clip_chords(dropped), played_chords(log)
    print(f"dropped clip: {len(clip)} chords; played: {len(played)} chords")
    assert clip, "the dropped clip has no chords"
    assert clip == played, f"clip {clip} != played {played}"
    print("the dropped clip holds the selected option's chords")


if __name__ == "__main__":
    main()
