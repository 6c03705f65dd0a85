"""Number formatting of the markdown reports."""

from __future__ import annotations

import math

import pytest

from nerfvae.evaluation.markdown import format_percent


@pytest.mark.parametrize(
    ("fraction", "text"),
    [
        (0.25, "25%"),
        (0.0, "0%"),
        (1.0, "100%"),
        (0.054, "5%"),
        # rare but present: never shown as none (or as all)
        (0.003, "0.3%"),
        (0.0049, "0.5%"),
        (0.0004, "<0.1%"),
        (0.997, "99.7%"),
        (0.99996, ">99.9%"),
        (None, "–"),
        (math.nan, "–"),
    ],
)
def test_format_percent(fraction, text):
    assert format_percent(fraction) == text
