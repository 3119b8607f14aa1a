#!/usr/bin/env python3
"""Five chord progressions for a melody from `comper serve`, with nothing but the standard library.

A DAW or any host application does the same: POST the melody's notes (beats from the phrase
start) to /suggest and read the options back. Start the server first:

    cargo run --release -- serve            # listens on http://127.0.0.1:8080
    python3 examples/suggest_client.py      # Twinkle Twinkle's first phrase
    python3 examples/suggest_client.py --url http://127.0.0.1:8080 --seed 3 --options 3
"""

import argparse
import json
import urllib.error
import urllib.request

# (MIDI pitch, start beat, end beat): "Twinkle, twinkle, little star, how I wonder what you are".
TWINKLE = [
    (60, 0, 1), (60, 1, 2), (67, 2, 3), (67, 3, 4), (69, 4, 5), (69, 5, 6), (67, 6, 8),
    (65, 8, 9), (65, 9, 10), (64, 10, 11), (64, 11, 12), (62, 12, 13), (62, 13, 14), (60, 14, 16),
]


def suggest(url, notes, bpm=100, beats_per_bar=4, options=5, seed=None, temperature=None):
    """POSTs a melody to /suggest and returns the parsed reply (raises with the server's error)."""
    request = {
        "notes": [{"pitch": p, "start_beat": s, "end_beat": e} for p, s, e in notes],
        "bpm": bpm,
        "beats_per_bar": beats_per_bar,
        "options": options,
    }
    if seed is not None:
        request["seed"] = seed
    if temperature is not None:
        request["temperature"] = temperature
    body = json.dumps(request).encode()
    http = urllib.request.Request(
        f"{url}/suggest", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(http, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise SystemExit(f"comper serve refused the melody: {json.load(error)['error']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--options", type=int, default=5)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--temperature", type=float)
    args = parser.parse_args()
    reply = suggest(args.url, TWINKLE, options=args.options, seed=args.seed,
                    temperature=args.temperature)
    for i, option in enumerate(reply["options"], 1):
        chart = "  ".join(
            f"{c['symbol']}@{c['start_beat']:g}" for c in option["chords"]
        )
        print(f"Option {i}: {option['description']} "
              f"(melody in chord {100 * option['melody_fit']:.0f}%)\n  {chart}")


if __name__ == "__main__":
    main()
