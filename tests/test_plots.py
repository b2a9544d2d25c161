"""Sample grids: captions keep their word spaces, wrap at word boundaries and stay inside their row."""

import numpy as np
import torch

from lab.plots import caption_grid, label_font, wrap_words

SIZE, LABEL = 64, 260  # the training grids' tile size and label column


def label_ink(grid, row: int) -> np.ndarray:
    """Dark pixels of the label column of one row, [height, width] bools."""
    pixels = np.asarray(grid.convert("L"))[row * SIZE : (row + 1) * SIZE, :LABEL]
    return pixels < 128


def test_gap_between_words_is_wider_than_between_letters():
    grid = caption_grid(torch.zeros(1, 3, SIZE, SIZE), ["this flower"], per_caption=1)
    columns = np.flatnonzero(label_ink(grid, 0).any(axis=0))
    gaps = sorted(int(g) for g in np.diff(columns) - 1 if g > 0)  # blank columns between strokes of ink
    assert len(gaps) >= 5, "the letters are drawn apart"
    assert gaps[-1] > gaps[-2], f"the space is no wider than the gap between two letters: {gaps}"


def test_captions_wrap_at_word_boundaries_within_the_width():
    font = label_font(11)
    caption = "this flower has seven round blue petals and a yellow center with long thin leaves around it"
    lines = wrap_words(caption, font, 120, max_lines=10)
    assert len(lines) > 2 and " ".join(lines) == caption, "whole words, in order, none lost"
    assert all(font.getlength(line) <= 120 for line in lines)
    assert wrap_words("a mightilyoverlongunbreakableword here", font, 40, 10)[0] == "a", (
        "a too-long word gets its own line"
    )


def test_a_caption_too_long_for_its_row_is_cut_and_never_reaches_the_next_row():
    long_caption = " ".join(["this flower has seven round blue petals"] * 8)
    lines = wrap_words(long_caption, label_font(11), LABEL - 10, max_lines=4)
    assert len(lines) == 4 and lines[-1].endswith(" …") and long_caption.startswith(" ".join(lines)[: -len(" …")])
    grid = caption_grid(torch.zeros(2, 3, SIZE, SIZE), [long_caption, ""], per_caption=1)
    assert label_ink(grid, 0).any() and not label_ink(grid, 1).any()
