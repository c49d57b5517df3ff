"""Identifiers: shape, alphabet, and no character favoured."""

from __future__ import annotations

import collections
import re

from minigate.domain import ids


def test_shapes() -> None:
    assert re.fullmatch(r"ord_[0-9A-Za-z]{20}", ids.new_id("ord"))
    assert re.fullmatch(r"x_[0-9A-Za-z]{5}", ids.new_id("x", 5))
    assert re.fullmatch(r"MG[0-9A-Za-z]{26}", ids.provider_number())
    assert len({ids.new_id("evt") for _ in range(10_000)}) == 10_000


def test_every_position_uses_the_whole_alphabet_evenly() -> None:
    # 62 symbols × 20 positions; 12,400 ids give 200 expected per symbol and position.
    # A bias such as a fixed leading digit, or a modulo bias towards low symbols, shows as
    # a position whose counts are far from uniform (chi-square, 61 degrees of freedom;
    # 140 is beyond p = 1e-7).
    n = 12_400
    counts = [collections.Counter() for _ in range(20)]
    for _ in range(n):
        for position, char in enumerate(ids.new_id("t")[2:]):
            counts[position][char] += 1
    expected = n / 62
    for position, counter in enumerate(counts):
        assert set(counter) == set(ids._ALPHABET), position
        chi2 = sum((counter[c] - expected) ** 2 / expected for c in ids._ALPHABET)
        assert chi2 < 140, (position, chi2)
