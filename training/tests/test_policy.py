import json

import pytest
import torch

from comper_data.policy import (
    chord_pitch_classes,
    discounted_returns,
    fit_rewards,
    frame_fit,
    leave_one_out_advantages,
    offbeat_onsets,
    valid_chord_mask,
)
from comper_data.tokens import CHORD_BASE, NOTE_HOLD_BASE, NOTE_ON_BASE, SILENCE, num_tokens

NAMES = ["C", "G", "Am"]
C_COUNT = len(NAMES)
V = num_tokens(C_COUNT)
HOLD = {name: CHORD_BASE + i for i, name in enumerate(NAMES)}
ON = {name: CHORD_BASE + C_COUNT + i for i, name in enumerate(NAMES)}


def allowed(mask_row):
    return set(torch.nonzero(mask_row).flatten().tolist())


def test_first_frame_allows_silence_and_onsets_only():
    mask = valid_chord_mask(None, True, C_COUNT, V)
    assert allowed(mask[0]) == {SILENCE, *ON.values()}


def test_on_the_grid_a_chord_may_hold_restart_change_or_stop():
    prev = torch.tensor([ON["G"], HOLD["G"], SILENCE])
    mask = valid_chord_mask(prev, True, C_COUNT, V)
    assert allowed(mask[0]) == {SILENCE, HOLD["G"], *ON.values()}
    assert allowed(mask[1]) == {SILENCE, HOLD["G"], *ON.values()}
    # after silence a hold starts a chord, as in Comper's sampler
    assert allowed(mask[2]) == {SILENCE, *HOLD.values(), *ON.values()}


def test_off_the_grid_only_the_continuation_is_allowed():
    prev = torch.tensor([ON["Am"], HOLD["C"], SILENCE])
    mask = valid_chord_mask(prev, False, C_COUNT, V)
    assert [allowed(row) for row in mask] == [{HOLD["Am"]}, {HOLD["C"]}, {SILENCE}]


def test_fit_counts_sounding_notes_inside_the_chord(tmp_path):
    names = tmp_path / "chord_names.json"
    names.write_text(json.dumps(NAMES))
    pcs = chord_pitch_classes(names)
    assert allowed(pcs[NAMES.index("Am")]) == {9, 0, 4}
    melody = torch.tensor([[NOTE_ON_BASE + 64, NOTE_HOLD_BASE + 64, NOTE_ON_BASE + 62, SILENCE, NOTE_ON_BASE + 71]])
    chords = torch.tensor([[ON["C"], HOLD["C"], HOLD["C"], ON["G"], SILENCE]])
    sounding, fits = frame_fit(melody, chords, pcs)
    assert sounding.tolist() == [[True, True, True, False, True]]
    # E in C, E in C, D not in C, no note, B under a silent chord
    assert fits.tolist() == [[True, True, False, False, False]]


def test_returns_discount_later_fit():
    returns = discounted_returns(torch.tensor([[1.0, 0.0, 1.0]]), 0.5)
    assert returns.tolist() == [[1.25, 0.5, 1.0]]


def test_advantage_is_relative_to_the_other_samples_of_the_melody():
    returns = torch.tensor([[3.0], [1.0], [2.0], [5.0], [5.0], [5.0]])
    advantages = leave_one_out_advantages(returns, 3)
    assert advantages.flatten().tolist() == [1.5, -1.5, 0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        leave_one_out_advantages(returns, 1)


def test_chord_tones_beyond_three_cost_reward_on_sounding_frames(tmp_path):
    names = tmp_path / "chord_names.json"
    names.write_text(json.dumps(["C", "C7"]))
    pcs = chord_pitch_classes(names)
    c, c7 = CHORD_BASE + 2 + 0, CHORD_BASE + 2 + 1
    melody = torch.tensor([[NOTE_ON_BASE + 64, NOTE_ON_BASE + 64, SILENCE, NOTE_ON_BASE + 61]])
    chords = torch.tensor([[c, c7, c7, c7]])
    sounding, fits = frame_fit(melody, chords, pcs)
    rewards = fit_rewards(sounding, fits, chords, pcs, 0.25)
    # E fits both; the seventh chord pays its extra tone only where a note sounds
    assert rewards.tolist() == [[1.0, 0.75, 0.0, -0.25]]


def test_offbeat_onsets_are_chord_starts_between_beats():
    chords = torch.tensor([[ON["C"], HOLD["C"], ON["G"], HOLD["G"], ON["Am"], SILENCE, ON["C"], HOLD["C"]]])
    assert offbeat_onsets(chords, C_COUNT).tolist() == [[False, False, True, False, False, False, True, False]]
