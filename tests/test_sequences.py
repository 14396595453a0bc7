"""LazySequence: items are made only when read, with list indexing rules."""

from __future__ import annotations

import pytest

from bot.sequences import LazySequence


class Squares(LazySequence[int]):
    def __init__(self, n: int) -> None:
        self.n, self.made = n, []

    def __len__(self) -> int:
        return self.n

    def _item(self, i: int) -> int:
        self.made.append(i)
        return i * i


def test_an_item_is_made_only_when_read() -> None:
    squares = Squares(1000)
    assert squares[7] == 49
    assert squares.made == [7]


def test_negative_indices_and_slices_follow_list_rules() -> None:
    squares, plain = Squares(6), [i * i for i in range(6)]
    assert squares[-1] == plain[-1]
    assert squares[1:5:2] == plain[1:5:2]
    assert list(squares) == plain
    assert 16 in squares


@pytest.mark.parametrize("index", [6, -7])
def test_an_index_out_of_range_raises_index_error(index: int) -> None:
    with pytest.raises(IndexError):
        Squares(6)[index]
