"""Identifiers: shape, time order, alphabet, and no random character favoured."""

from __future__ import annotations

import collections
import re
import time

import pytest

from minigate.domain import ids


def test_shapes() -> None:
    assert re.fullmatch(r"ord_[0-9a-z]{7}[0-9A-Za-z]{13}", ids.new_id("ord"))
    assert re.fullmatch(r"x_[0-9a-z]{7}[0-9A-Za-z]{8}", ids.new_id("x", 15))
    assert re.fullmatch(r"MG[0-9a-z]{7}[0-9A-Za-z]{19}", ids.provider_number())
    assert re.fullmatch(r"RF[0-9A-Za-z]{26}", ids.provider_number("RF"))
    assert len({ids.new_id("evt") for _ in range(10_000)}) == 10_000
    with pytest.raises(ValueError):
        ids.new_id("x", 14)  # fewer than 8 random characters


def test_the_time_part_is_the_second_it_was_made() -> None:
    before = int(time.time())
    made = ids.new_id("ord")
    number = ids.provider_number()
    after = int(time.time())
    assert before <= int(made[4:11], 36) <= after
    assert before <= int(number[2:9], 36) <= after
    assert ids._time_chars(0) == "0000000"
    assert ids._time_chars(36 ** 7 - 1) == "zzzzzzz"
    # Later seconds sort later, as text, across every digit boundary: a digit rolls over
    # from 9 to a and from z to the next place's 0, never into upper case.
    seconds = [1_796_000_000 + step for step in range(0, 5_000_000, 997)]
    assert [ids._time_chars(s) for s in seconds] == sorted(ids._time_chars(s) for s in seconds)


def test_ids_made_later_sort_later(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_796_000_000.0]
    monkeypatch.setattr(ids.time, "time", lambda: now[0])
    made = []
    for _ in range(50):
        made.append((ids.new_id("ord"), ids.provider_number()))
        now[0] += 1
    assert [m[0] for m in made] == sorted(m[0] for m in made)
    assert [m[1] for m in made] == sorted(m[1] for m in made)


def test_every_random_position_uses_the_whole_alphabet_evenly() -> None:
    # 62 symbols × 13 random positions; 12,400 ids give 200 expected per symbol and
    # position. A bias such as a fixed leading digit, or a modulo bias towards low
    # symbols, shows as a position whose counts are far from uniform (chi-square, 61
    # degrees of freedom; 140 is beyond p = 1e-7).
    n = 12_400
    counts = [collections.Counter() for _ in range(13)]
    for _ in range(n):
        for position, char in enumerate(ids.new_id("t")[2 + ids.TIME_CHARS:]):
            counts[position][char] += 1
    expected = n / 62
    for position, counter in enumerate(counts):
        assert set(counter) == set(ids._ALPHABET), position
        chi2 = sum((counter[c] - expected) ** 2 / expected for c in ids._ALPHABET)
        assert chi2 < 140, (position, chi2)


def test_rejected_bytes_are_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # Bytes 248-255 stand for no character (248 = 4 × 62 keeps the rest uniform): a draw
    # that leaves too few characters draws again for what is missing, and the characters
    # are the surviving bytes' own, in order.
    draws = [bytes([255] * 10 + [0, 61, 62, 247]), bytes([1, 250, 2, 3, 4, 5, 6, 7, 8, 9])]
    asked: list[int] = []

    def token_bytes(n: int) -> bytes:
        asked.append(n)
        return draws.pop(0)[:n]

    monkeypatch.setattr(ids.secrets, "token_bytes", token_bytes)
    assert ids._random_chars(6) == "0z0z12"
    assert asked == [6 + ids._SPARE, 2 + ids._SPARE]


def test_the_time_part_follows_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_796_000_000.9]
    monkeypatch.setattr(ids.time, "time", lambda: now[0])
    first = ids._time_chars()
    now[0] = 1_796_000_001.0
    assert ids._time_chars() != first
    assert ids._time_chars() == ids._time_chars(1_796_000_001)
    now[0] = 1_796_000_000.5  # a clock stepped back is followed too
    assert ids._time_chars() == first
