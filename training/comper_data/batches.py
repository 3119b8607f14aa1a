"""Training examples from the converter's .npz files: bar-aligned crops and padded batches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .tokens import BOS, CHORD_BASE, EOS, NOTE_HOLD_BASE, NOTE_ON_BASE, PAD


class TokenSet:
    """The examples of one split: token sequences [BOS, c0, m0, ..., EOS] and bar frames."""

    def __init__(self, *paths: Path):
        """Reads one split, or several (e.g. rounds of `comper best-of` output) as one set."""
        tokens, offsets, bars, bar_offsets = [], [np.zeros(1, np.int64)], [], [np.zeros(1, np.int64)]
        for path in paths:
            data = np.load(path)
            tokens.append(data["tokens"].astype(np.int64))
            offsets.append(data["offsets"][1:].astype(np.int64) + offsets[-1][-1])
            bars.append(data["bars"].astype(np.int64))
            bar_offsets.append(data["bar_offsets"][1:].astype(np.int64) + bar_offsets[-1][-1])
        self.tokens = np.concatenate(tokens) if tokens else np.zeros(0, np.int64)
        self.offsets = np.concatenate(offsets)
        self.bars = np.concatenate(bars) if bars else np.zeros(0, np.int64)
        self.bar_offsets = np.concatenate(bar_offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def sequence(self, i: int) -> np.ndarray:
        """Full token sequence of example `i` (with BOS and EOS)."""
        return self.tokens[self.offsets[i] : self.offsets[i + 1]].astype(np.int64)

    def bar_frames(self, i: int) -> np.ndarray:
        """Frames of example `i` where a bar starts."""
        return self.bars[self.bar_offsets[i] : self.bar_offsets[i + 1]]


def num_chords_from(names_path: Path) -> int:
    """Chord vocabulary size C from a chord_names.json."""
    return len(json.loads(Path(names_path).read_text()))


def crop(seq: np.ndarray, bars: np.ndarray, crop_frames: int, num_chords: int, rng: np.random.Generator) -> np.ndarray:
    """A window of at most `crop_frames` frames starting on a random bar line.

    The window is re-framed as a fresh sequence: BOS first, a leading chord or note hold
    becomes an onset, and EOS is kept only if the window reaches the end of the example.
    """
    frames = (len(seq) - 2) // 2
    if frames <= crop_frames:
        return seq
    starts = [int(b) for b in bars if b < frames - crop_frames // 2] or [0]
    start = starts[rng.integers(len(starts))]
    end = min(start + crop_frames, frames)
    body = seq[1 + 2 * start : 1 + 2 * end].copy()
    if CHORD_BASE <= body[0] < CHORD_BASE + num_chords:
        body[0] += num_chords
    if NOTE_HOLD_BASE <= body[1] < NOTE_ON_BASE:
        body[1] += NOTE_ON_BASE - NOTE_HOLD_BASE
    tail = [EOS] if end == frames else []
    return np.concatenate([[BOS], body, tail]).astype(np.int64)


def pad_batch(seqs: list[np.ndarray]) -> np.ndarray:
    """Right-pad sequences with PAD into one [batch, max_len] array."""
    width = max(len(s) for s in seqs)
    out = np.full((len(seqs), width), PAD, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


def offline_pair(seq: np.ndarray, rng: np.random.Generator | None = None, truncate_prob: float = 0.0,
                 min_frames: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """An online sequence `[BOS, c0, m0, …, (EOS)]` as the offline model's two sides:
    encoder `[BOS, m0 … m_{T-1}, EOS]` and decoder `[BOS, c0 … c_{T-1}, EOS]`.

    With probability `truncate_prob` both sides are cut to a random length of at least
    `min_frames` frames first, as ReaLchords' `random_truncate` does so that the model also
    harmonizes the short melody heard at the start of a live session."""
    body = seq[1:-1] if seq[-1] == EOS else seq[1:]
    chords, melody = body[0::2], body[1::2]
    frames = min(len(chords), len(melody))
    if rng is not None and frames > min_frames and rng.random() < truncate_prob:
        frames = int(rng.integers(min_frames, frames + 1))
    def wrap(part: np.ndarray) -> np.ndarray:
        return np.concatenate([[BOS], part[:frames], [EOS]]).astype(np.int64)

    return wrap(melody), wrap(chords)
