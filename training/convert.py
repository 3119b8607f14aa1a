"""Convert POP909, Nottingham and OpenEWLD into ReaLchords-style online training data.

    python training/convert.py --datasets /work/shared/datasets --out training/data

Writes to --out: {train,valid,test}.npz (token ids of the interleaved online sequence
[BOS, c0, m0, ..., EOS] for examples of at most 256 frames, with bar-line frames for
cropping), {split}_meta.jsonl, chord_names.json and report.json. The song-level split is
read from --split-file when it exists (so every experiment shares it) and created there
otherwise. Only the training split is transposition-augmented (-6..+6 semitones).
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comper_data import nottingham, openewld, pop909  # noqa: E402
from comper_data.chords import Chord, chord_name, simplify  # noqa: E402
from comper_data.song import (  # noqa: E402
    MAX_FRAMES,
    ChordEvent,
    Song,
    chunk_bounds,
    restart_frames,
    song_frames,
    to_frame,
)
from comper_data.tokens import num_tokens, online_sequence  # noqa: E402

LOADERS = {"pop909": pop909.load_all, "nottingham": nottingham.load_all, "openewld": openewld.load_all}
SPLITS = ("train", "valid", "test")
TRANSPOSITIONS = range(-6, 7)


def load_songs(datasets_root: Path, names: list[str], cache_dir: Path, skipped: Counter) -> dict[str, list[Song]]:
    """Load each dataset (cached as a pickle in `cache_dir`, parsing is slow)."""
    out = {}
    for name in names:
        cache = cache_dir / f"songs_{name}.pkl"
        if cache.exists():
            songs, sk = pickle.loads(cache.read_bytes())
        else:
            start = time.time()
            sk = Counter()
            songs = LOADERS[name](datasets_root / name, sk)
            cache.write_bytes(pickle.dumps((songs, sk)))
            print(f"loaded {name}: {len(songs)} songs in {time.time() - start:.0f}s", flush=True)
        skipped.update(sk)
        out[name] = songs
    return out


def make_split(songs: dict[str, list[Song]], seed: int, fractions=(0.8, 0.1)) -> dict:
    """Song-level split per dataset: shuffle the sorted ids with `seed`, cut 80/10/10."""
    split = {}
    for name, items in songs.items():
        ids = sorted(s.song_id for s in items)
        random.Random(f"{seed}:{name}").shuffle(ids)
        n_train = int(round(len(ids) * fractions[0]))
        n_valid = int(round(len(ids) * fractions[1]))
        split[name] = {
            "train": sorted(ids[:n_train]),
            "valid": sorted(ids[n_train : n_train + n_valid]),
            "test": sorted(ids[n_train + n_valid :]),
        }
    return split


def quality_name(intervals: tuple[int, ...]) -> str:
    """The name of a quality on root C (several interval stacks can share one name)."""
    return chord_name(Chord(0, intervals))


def quality_map(songs: list[Song], min_count: int) -> tuple[dict, Counter]:
    """Map every interval stack to itself or, if its name (on C) has fewer than `min_count`
    chord onsets over all untransposed songs, to its seventh-chord simplification, or to
    its triad when that is rare too. Returns the map and the onset count per name."""
    stacks = Counter(c.chord.intervals for s in songs for c in s.chords)
    counts = Counter()
    for q, n in stacks.items():
        counts[quality_name(q)] += n
    mapping = {}
    for q in stacks:
        if counts[quality_name(q)] >= min_count:
            mapping[q] = q
            continue
        seventh = simplify(q, allow_seventh=True)
        mapping[q] = seventh if counts.get(quality_name(seventh), 0) >= min_count else simplify(q, allow_seventh=False)
    return mapping, counts


def apply_quality_map(song: Song, mapping: dict) -> Song:
    """The song with every chord quality replaced through `mapping`."""
    chords = [ChordEvent(Chord(c.chord.root, mapping[c.chord.intervals]), c.onset, c.offset) for c in song.chords]
    return Song(song.song_id, song.dataset, song.notes, chords, song.bar_starts)


def song_examples(song: Song, index_of: dict[str, int], stats: Counter) -> list[tuple[list[int], list[int], int]]:
    """(token ids, bar-line frames inside the example, first frame) per chunk of a song."""
    melody, chords = song_frames(song)
    bars = sorted({to_frame(b) for b in song.bar_starts})
    examples = []
    for start, end in chunk_bounds(len(melody), bars, MAX_FRAMES):
        m = restart_frames(melody[start:end])
        c = restart_frames(chords[start:end])
        if not any(f is not None and f[0] == "on" for f in m):
            stats["chunks dropped: no melody onset"] += 1
            continue
        if not any(f is not None for f in c):
            stats["chunks dropped: no chord"] += 1
            continue
        ids = online_sequence(m, c, index_of, chord_name)
        examples.append((ids, [b - start for b in bars if start <= b < end], start))
        stats["frames"] += end - start
        stats["chord onsets"] += sum(1 for f in c if f is not None and f[0] == "on")
        stats["note onsets"] += sum(1 for f in m if f is not None and f[0] == "on")
    return examples


def save_split(path: Path, examples: list) -> None:
    """Flat int16 tokens + offsets, bar frames + offsets, in one .npz."""
    lengths = [len(e[0]) for e in examples]
    bar_lengths = [len(e[1]) for e in examples]
    np.savez(
        path,
        tokens=np.array([t for e in examples for t in e[0]], dtype=np.int16),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        bars=np.array([b for e in examples for b in e[1]], dtype=np.int16),
        bar_offsets=np.concatenate([[0], np.cumsum(bar_lengths)]).astype(np.int64),
    )


def markdown_report(report: dict) -> str:
    """Human-readable summary of report.json (committed as training/DATA_REPORT.md)."""
    lines = ["# Training data report", "", "Generated by `training/convert.py`; full numbers in `data/report.json`.", ""]
    lines += ["## Songs and examples (untransposed)", "", "| dataset | songs train/valid/test | examples train/valid/test | frames |", "|---|---|---|---|"]
    for d, c in report["datasets"].items():
        songs = "/".join(str(c.get(f"songs {p}", 0)) for p in SPLITS)
        examples = "/".join(str(c.get(f"examples {p}", 0)) for p in SPLITS)
        lines.append(f"| {d} | {songs} | {examples} | {c.get('frames', 0)} |")
    lines += ["", f"## Splits ({report['augmentation']})", "", "| split | examples | tokens | frames | chord onsets | note onsets | dropped chunks |", "|---|---|---|---|---|---|---|"]
    for p, c in report["splits"].items():
        dropped = sum(v for k, v in c.items() if k.startswith("chunks dropped"))
        lines.append(f"| {p} | {c['examples']} | {c['tokens']} | {c.get('frames', 0)} | {c.get('chord onsets', 0)} | {c.get('note onsets', 0)} | {dropped} |")
    lines += ["", "## Chord vocabulary", "",
              f"{report['vocabulary_size']} chord names (num_tokens = {report['num_tokens']}): every kept quality on all 12 roots.",
              f"Qualities with fewer than {report['min_chord_count']} chord onsets (all songs, untransposed) are mapped to their",
              "seventh-chord simplification if that is common enough, else to their triad:", ""]
    lines += [f"- `{q}` ({v['count']}x) -> `{v['to']}`" for q, v in report["simplified_qualities (as on C)"].items()] or ["- none"]
    lines += ["", "Chord onsets per quality (shown on C):", ""]
    lines += [", ".join(f"`{q}` {n}" for q, n in report["chord_qualities"].items())]
    lines += ["", "## Skipped", ""]
    lines += [f"- {k}: {v}" for k, v in report["skipped"].items()] or ["- nothing"]
    for p, c in report["splits"].items():
        lines += [f"- {p}: {k}: {v}" for k, v in c.items() if k.startswith("chunks dropped")]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, required=True, help="folder holding pop909/, nottingham/, openewld/")
    ap.add_argument("--only", nargs="+", choices=sorted(LOADERS), default=sorted(LOADERS))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "data")
    ap.add_argument("--split-file", type=Path, default=Path(__file__).resolve().parent / "splits.json")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--min-chord-count", type=int, default=20, help="rarer qualities are simplified")
    args = ap.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    skipped: Counter = Counter()
    songs = load_songs(args.datasets, args.only, args.out, skipped)

    if args.split_file.exists():
        split = json.loads(args.split_file.read_text())
    else:
        split = make_split(songs, args.seed)
        args.split_file.write_text(json.dumps(split, indent=1) + "\n")
    part_of = {(d, i): part for d, parts in split.items() for part, ids in parts.items() for i in ids}

    all_songs = [s for items in songs.values() for s in items]
    mapping, quality_counts = quality_map(all_songs, args.min_chord_count)
    kept = sorted(set(mapping.values()))
    names = sorted({chord_name(Chord(root, q)) for q in kept for root in range(12)})
    index_of = {n: i for i, n in enumerate(names)}
    (args.out / "chord_names.json").write_text(json.dumps(names, indent=1) + "\n")

    per_split: dict[str, list] = {p: [] for p in SPLITS}
    metas: dict[str, list] = {p: [] for p in SPLITS}
    stats = {p: Counter() for p in SPLITS}
    dataset_stats = {d: Counter() for d in songs}
    for dataset, items in songs.items():
        for song in items:
            part = part_of.get((dataset, song.song_id))
            if part is None:
                skipped[f"{dataset}: song not in split file"] += 1
                continue
            song = apply_quality_map(song, mapping)
            dataset_stats[dataset][f"songs {part}"] += 1
            for shift in TRANSPOSITIONS if part == "train" else (0,):
                for ids, bars, start in song_examples(song.transposed(shift), index_of, stats[part]):
                    per_split[part].append((ids, bars))
                    metas[part].append({"dataset": dataset, "song": song.song_id, "transpose": shift, "start_frame": start})
                    if shift == 0:
                        dataset_stats[dataset][f"examples {part}"] += 1
                        dataset_stats[dataset]["frames"] += (len(ids) - 2) // 2

    for part in SPLITS:
        save_split(args.out / f"{part}.npz", per_split[part])
        with open(args.out / f"{part}_meta.jsonl", "w") as f:
            for m in metas[part]:
                f.write(json.dumps(m) + "\n")

    simplified = {
        quality_name(q): {"count": quality_counts[quality_name(q)], "to": quality_name(t)}
        for q, t in sorted(mapping.items(), key=lambda kv: -quality_counts[quality_name(kv[0])])
        if q != t
    }
    report = {
        "datasets": {d: dict(sorted(c.items())) for d, c in dataset_stats.items()},
        "splits": {
            p: {"examples": len(per_split[p]), "tokens": int(sum(len(e[0]) for e in per_split[p])), **dict(stats[p])}
            for p in SPLITS
        },
        "augmentation": "train only, transpositions -6..+6 semitones (13 versions per song)",
        "max_frames_per_example": MAX_FRAMES,
        "chord_qualities": dict(quality_counts.most_common()),
        "min_chord_count": args.min_chord_count,
        "simplified_qualities (as on C)": simplified,
        "vocabulary_size": len(names),
        "num_tokens": num_tokens(len(names)),
        "skipped": dict(skipped.most_common()),
        "seed": args.seed,
        "split_file": str(args.split_file),
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "DATA_REPORT.md").write_text(markdown_report(report))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
