"""Tests of rdet.plot: tick choice, where lines land, gaps at NaN, legend, files and bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rdet.plot import PALETTE, line_plot, nice_ticks, render_line_plot


def test_nice_ticks_known_answers():
    assert nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]  # raw step 10/7 -> 2
    assert nice_ticks(0.13, 0.87) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]  # raw step 0.106 -> 0.2
    assert nice_ticks(-1, 1) == [-1.0, -0.5, 0.0, 0.5, 1.0]  # raw step 0.286 -> 0.5
    assert nice_ticks(3, 3) == [2.7, 2.8, 2.9, 3.0, 3.1, 3.2, 3.3]  # a constant is padded by 10 %, step 0.6/7 -> 0.1
    with pytest.raises(ValueError):
        nice_ticks(1, 0)


def _mask(img: np.ndarray, color) -> np.ndarray:
    return np.all(img == np.array(color, np.uint8), axis=2)


def test_horizontal_line_lands_on_the_right_row():
    # y = 0.5 in ylim (0, 1): the middle of the plot area; with no title/labels the area is rows 16..height-32
    img = render_line_plot({"half": ([0.0, 1.0], [0.5, 0.5])}, size=(400, 300), xlim=(0, 1), ylim=(0, 1), legend="none")
    assert img.shape == (300, 400, 3) and img.dtype == np.uint8
    rows = np.flatnonzero(_mask(img, PALETTE[0]).any(axis=1))
    top, bottom = 16, 300 - 32
    assert rows.size > 0
    assert abs(rows.mean() - (top + bottom) / 2) <= 1.5


def test_nan_breaks_the_line():
    xs = np.linspace(0, 1, 101)
    ys = np.full(101, 0.5)
    ys[40:60] = np.nan
    img = render_line_plot({"gappy": (xs, ys)}, size=(400, 300), xlim=(0, 1), ylim=(0, 1), legend="none")
    cols = _mask(img, PALETTE[0]).any(axis=0)
    left, width = 78, 400 - 78 - 20
    at = lambda x: left + int(round(x * width))  # noqa: E731
    assert cols[at(0.2)] and cols[at(0.8)]
    assert not cols[at(0.45) : at(0.55)].any()  # the gap where ys is NaN


def test_series_colours_and_legend():
    img = render_line_plot({"a": ([0, 1], [0, 1]), "b": ([0, 1], [1, 0])}, title="t", xlabel="x", ylabel="y")
    assert _mask(img, PALETTE[0]).sum() > 100 and _mask(img, PALETTE[1]).sum() > 100
    no_legend = render_line_plot(
        {"a": ([0, 1], [0, 1]), "b": ([0, 1], [1, 0])}, title="t", xlabel="x", ylabel="y", legend="none"
    )
    assert (img != no_legend).any()


def test_logy_and_its_input_check():
    img = render_line_plot(
        {"exp": ([0, 1, 2, 3], [1e-3, 1e-1, 1e1, 1e3])}, logy=True, legend="none", size=(400, 300), xlim=(0, 3)
    )
    # straight line in log space: the pixel at x = 1.5 (y = 1e0) is at mid-height of the decade ticks 1e-3..1e3
    col = 78 + int(round(0.5 * (400 - 78 - 20)))
    rows = np.flatnonzero(_mask(img, PALETTE[0])[:, col - 1 : col + 2].any(axis=1))
    assert abs(rows.mean() - (16 + 300 - 32) / 2) <= 2
    with pytest.raises(ValueError, match="'neg'"):
        render_line_plot({"neg": ([0, 1], [1.0, -1.0])}, logy=True)


def test_bad_input():
    with pytest.raises(ValueError, match="'short'"):
        render_line_plot({"short": ([0, 1, 2], [0, 1])})
    with pytest.raises(ValueError, match="non-empty"):
        render_line_plot({})
    with pytest.raises(ValueError, match="xlim"):
        render_line_plot({"a": ([0, 1], [0, 1])}, xlim=(1, 1))
    with pytest.raises(ValueError, match="legend"):
        render_line_plot({"a": ([0, 1], [0, 1])}, legend="middle")


def test_line_plot_writes_png(tmp_path):
    path = tmp_path / "sub" / "curve.png"
    line_plot({"loss": (list(range(10)), [1 / (i + 1) for i in range(10)])}, path, title="loss", size=(320, 200))
    img = cv2.imread(str(path))
    assert img is not None and img.shape == (200, 320, 3)
    with pytest.raises(OSError):
        line_plot({"loss": ([0, 1], [0, 1])}, tmp_path / "curve.not-an-image")
