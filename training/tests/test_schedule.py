import argparse

import pytest

from train import lr_at

ARGS = argparse.Namespace(lr=1e-3, warmup=100)


def test_warmup_then_cosine_over_steps():
    assert lr_at(0, ARGS, 1000, 0.0) == pytest.approx(1e-5)
    assert lr_at(99, ARGS, 1000, 0.0) == pytest.approx(1e-3)
    assert lr_at(1000, ARGS, 1000, 0.0) == pytest.approx(1e-4)
    # a short schedule shortens the warmup to a tenth of it
    assert lr_at(9, ARGS, 100, 0.0) == pytest.approx(1e-3)


def test_cosine_over_time_budget_when_no_step_count():
    assert lr_at(500, ARGS, 0, 0.0) == pytest.approx(1e-3)
    assert lr_at(500, ARGS, 0, 0.5) == pytest.approx(1e-4 + 0.9e-3 * 0.5)
    assert lr_at(500, ARGS, 0, 1.5) == pytest.approx(1e-4)
