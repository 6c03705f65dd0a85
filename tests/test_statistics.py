"""Bootstrap intervals over scenes, paired differences and verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from nerfvae.errors import NerfVAEError
from nerfvae.statistics import bootstrap_interval, paired_difference, verdict


def test_bootstrap_interval_covers_the_true_mean_at_about_the_stated_rate():
    """Seeded simulation: 300 samples of 20 'scenes' from a skewed distribution with known
    mean; the 95% interval must cover it in roughly 95% of them (the percentile bootstrap is a
    little narrow at n = 20, hence the 0.88 floor)."""
    generator = np.random.default_rng(0)
    true_mean = 2.0  # of a gamma(shape 2, scale 1) variable
    covered = 0
    trials = 300
    for trial in range(trials):
        values = generator.gamma(2.0, 1.0, size=20)
        interval = bootstrap_interval(values, resamples=1000, seed=trial)
        covered += interval.low <= true_mean <= interval.high
        assert interval.low <= interval.mean <= interval.high
    assert 0.88 <= covered / trials <= 0.99


def test_bootstrap_is_seeded():
    values = np.arange(10.0)
    assert bootstrap_interval(values, seed=3) == bootstrap_interval(values, seed=3)
    assert bootstrap_interval(values, seed=3) != bootstrap_interval(values, seed=4)


def test_paired_interval_is_narrower_than_the_unpaired_one_and_says_so():
    """Scenes vary a lot (spread 3 dB) while model B is steadily 0.3 dB above model A: the
    paired difference excludes zero, the two rows' own intervals overlap widely."""
    generator = np.random.default_rng(1)
    scene_difficulty = generator.normal(20.0, 3.0, size=20)
    model_a = scene_difficulty + generator.normal(0.0, 0.05, size=20)
    model_b = scene_difficulty + 0.3 + generator.normal(0.0, 0.05, size=20)
    row_a, row_b = bootstrap_interval(model_a), bootstrap_interval(model_b)
    assert row_a.high > row_b.low  # the unpaired rows overlap
    paired = paired_difference(model_b, model_a)
    assert paired.low > 0.2 and paired.high < 0.4
    assert verdict(paired, "greater") == "holds"
    assert verdict(paired, "less") == "not shown"
    # unpaired, the same data shows nothing: the interval of the difference of means straddles 0
    unpaired_low = row_b.low - row_a.high
    assert unpaired_low < 0


def test_verdict_is_not_shown_when_the_interval_straddles_zero():
    values = np.array([-1.0, 1.0, -0.5, 0.5, 0.2, -0.2])
    interval = bootstrap_interval(values)
    assert interval.low < 0 < interval.high
    assert verdict(interval, "greater") == "not shown"
    assert verdict(interval, "less") == "not shown"


def test_bad_input_is_a_clear_error():
    with pytest.raises(NerfVAEError, match="no values"):
        bootstrap_interval([])
    with pytest.raises(NerfVAEError, match="non-finite"):
        bootstrap_interval([1.0, float("nan")])
    with pytest.raises(NerfVAEError, match="1,000"):
        bootstrap_interval([1.0, 2.0], resamples=10)
    with pytest.raises(NerfVAEError, match="same scenes"):
        paired_difference([1.0, 2.0], [1.0])
