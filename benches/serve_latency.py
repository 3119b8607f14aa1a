#!/usr/bin/env python3
"""Latency of a chord server as a client sees it: /suggest for an 8-bar melody and ReaLJam's /play
as its page calls it during a session, p50 and p99 over N calls each (standard library only).

    cargo run --release -- serve --port 8080 &
    python3 benches/serve_latency.py --url http://127.0.0.1:8080

Pointed at ReaLJam's own server (`realjam-start-server`), which has no /suggest, it times /play
only (`--play-only`). The /play calls replay one session: a melody played one note per beat, a
request per frame, the chord tokens of each reply fed back as the page does.
"""

import argparse
import json
import statistics
import time
import urllib.request


def post(url, body):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        reply = json.load(response)
    return reply, (time.perf_counter() - started) * 1e3


def percentiles(ms):
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
    return f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms over {len(ms)} calls"


def eight_bars():
    scale = [60, 62, 64, 65, 67, 65, 64, 62, 64, 67, 72, 67, 65, 64, 62, 60]
    notes = [{"pitch": scale[i % 16], "start_beat": i, "end_beat": i + 0.9} for i in range(32)]
    return {"notes": notes, "bpm": 100, "beats_per_bar": 4}


def play_session(url, model, calls, listen=32, lookahead=16, commitahead=16):
    notes, tokens, times = [], [], []
    pitches = [60, 64, 67, 64, 65, 69, 72, 69]
    intro_set = False
    for now in range(listen - 5, listen - 5 + calls):
        beat, offset = divmod(now, 4)
        if offset == 0:
            notes.append({"pitch": pitches[beat % 8], "frame": now, "on": True})
        if offset == 3:
            notes.append({"pitch": pitches[beat % 8], "frame": now, "on": False})
        # As the page does: chords are asked for from the next frame on.
        frame = now + 1
        body = {
            "model": model, "notes": notes, "chordTokens": tokens, "frame": frame,
            "lookahead": lookahead, "commitahead": commitahead, "silenceTill": listen,
            "temperature": 0.8, "introSet": intro_set,
        }
        reply, ms = post(f"{url}/play", body)
        times.append(ms)
        new = reply["newChordTokens"]
        tokens = (tokens + [-1] * frame)[:frame] + new
        if reply["introChordTokens"]:
            intro_set = True
            tokens[: len(reply["introChordTokens"])] = reply["introChordTokens"]
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--play-only", action="store_true")
    args = parser.parse_args()
    with urllib.request.urlopen(f"{args.url}/models") as response:
        model = json.load(response)[0]
    if not args.play_only:
        melody = eight_bars()
        post(f"{args.url}/suggest", melody)  # warm-up
        times = [post(f"{args.url}/suggest", dict(melody, seed=i))[1] for i in range(args.calls)]
        print(f"/suggest, 8 bars, 5 options: {percentiles(times)}")
    play_session(args.url, model, 8)  # warm-up
    print(f"/play ({model}): {percentiles(play_session(args.url, model, args.calls))}")


if __name__ == "__main__":
    main()
