"""Pieces of the policy-gradient fine-tuning (`training/rl.py`) that need no model: which chord
tokens may be sampled, the note-in-chord reward per frame, and its advantages.

The masks are the ones Comper's Rust sampler applies (`crates/generate/src/sample/filter.rs::valid_tokens`),
so the policy is trained on exactly the choices it will be asked to make.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .chords import _load_chord_symbols_lib
from .tokens import CHORD_BASE, NOTE_HOLD_BASE, NOTE_ON_BASE, SILENCE


def chord_pitch_classes(names_path: Path) -> torch.Tensor:
    """`[C, 12]` bool: the pitch classes of every chord in a chord_names.json, read with
    note_seq's chord-symbol parser (the names are note_seq's own)."""
    lib = _load_chord_symbols_lib()
    names = json.loads(Path(names_path).read_text())
    table = torch.zeros(len(names), 12, dtype=torch.bool)
    for i, name in enumerate(names):
        for pitch in lib.chord_symbol_pitches(name):
            table[i, pitch % 12] = True
    return table


def valid_chord_mask(prev: torch.Tensor | None, may_change: bool, num_chords: int, num_tokens: int,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """`[batch, num_tokens]` bool: the chord tokens a row may sample after its previous chord
    token `prev` (`None` at the first frame). Off the chord-change grid (`may_change` false)
    only the continuation is allowed (silence stays silence, a chord holds); on it, silence,
    every onset, and a hold that continues the current chord (after silence any hold, as a hold
    there starts a chord). Built from elementwise comparisons on `prev`'s device (`device` at
    the first frame), so sampling on a GPU never waits for the host."""
    on_base = CHORD_BASE + num_chords
    tokens = torch.arange(num_tokens, device=device if prev is None else prev.device)[None]
    starts = (tokens == SILENCE) | ((tokens >= on_base) & (tokens < on_base + num_chords))
    if prev is None:
        return starts
    prev = prev[:, None]
    is_silence = prev == SILENCE
    is_hold = (prev >= CHORD_BASE) & (prev < on_base)
    is_on = (prev >= on_base) & (prev < on_base + num_chords)
    continues = tokens == torch.where(is_on, prev - num_chords, prev)
    has_continuation = is_silence | is_hold | is_on
    if not may_change:
        return (has_continuation & continues) | (~has_continuation & starts)
    holds = (tokens >= CHORD_BASE) & (tokens < on_base)
    return starts | ((is_hold | is_on) & continues) | (is_silence & holds)


def sounding_chord(chords: torch.Tensor, num_chords: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per chord token: whether a chord sounds (onset or hold), and its vocabulary index (0
    where none sounds)."""
    has_chord = (chords >= CHORD_BASE) & (chords < CHORD_BASE + 2 * num_chords)
    index = torch.where(has_chord, (chords - CHORD_BASE) % num_chords, torch.zeros_like(chords))
    return has_chord, index


def frame_fit(melody: torch.Tensor, chords: torch.Tensor, pitch_classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per frame (`[batch, frames]` token ids of each part): whether the melody sounds, and
    whether its pitch class is in the sounding chord (a silent chord never fits), as the
    note-in-chord metric of `comper eval` counts them."""
    num_chords = pitch_classes.shape[0]
    sounding = (melody >= NOTE_HOLD_BASE) & (melody < CHORD_BASE)
    pitch = torch.where(melody >= NOTE_ON_BASE, melody - NOTE_ON_BASE, melody - NOTE_HOLD_BASE)
    pitch_class = torch.where(sounding, pitch, torch.zeros_like(pitch)) % 12
    has_chord, index = sounding_chord(chords, num_chords)
    fits = pitch_classes[index, pitch_class] & has_chord & sounding
    return sounding, fits


def fit_rewards(sounding: torch.Tensor, fits: torch.Tensor, chords: torch.Tensor, pitch_classes: torch.Tensor,
                size_cost: float) -> torch.Tensor:
    """Per frame: 1 for a melody note inside the chord, less `size_cost` per chord pitch class
    beyond three on frames with a melody note, so an extra chord tone pays only when it meets
    the melody more often than a triad tone would."""
    has_chord, index = sounding_chord(chords, pitch_classes.shape[0])
    sizes = torch.where(has_chord, pitch_classes.sum(-1)[index], torch.zeros_like(chords))
    excess = (sizes - 3).clamp_min(0).float()
    return fits.float() - size_cost * excess * sounding.float()


def offbeat_onsets(chords: torch.Tensor, num_chords: int, frames_per_beat: int = 4) -> torch.Tensor:
    """`[batch, frames]` bool: a chord starts on a frame between beats (windows start on a bar
    line, so frame 0 is a beat)."""
    frame = torch.arange(chords.shape[-1], device=chords.device)
    return (chords >= CHORD_BASE + num_chords) & (chords < CHORD_BASE + 2 * num_chords) & (frame % frames_per_beat != 0)


def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """`G_t = r_t + gamma·G_{t+1}` along the last axis: a chord is credited with the fit of the
    frames it sounds over, fading with distance."""
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = rewards[..., t] + gamma * running
        out[..., t] = running
    return out


def leave_one_out_advantages(returns: torch.Tensor, samples_per_melody: int) -> torch.Tensor:
    """Advantage of each sample's return over the mean of the other samples of the same
    melody at the same frame (rows are grouped melody-major: K consecutive rows per melody),
    so what the melody alone makes easy or hard cancels out."""
    k = samples_per_melody
    if k < 2:
        raise ValueError("leave-one-out needs at least two samples per melody")
    grouped = returns.reshape(-1, k, *returns.shape[1:])
    others = (grouped.sum(dim=1, keepdim=True) - grouped) / (k - 1)
    return (grouped - others).reshape(returns.shape)
