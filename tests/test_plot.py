"""Tests of rdet.plot: where lines land (matplotlib and the OpenCV fallback), gaps at NaN, legend, files, bad input."""

from __future__ import annotations

import importlib
import sys

import cv2
import numpy as np
import pytest

import rdet.plot as P


def _mask(img: np.ndarray, color, tol: int = 12) -> np.ndarray:
    return np.all(np.abs(img.astype(int) - np.array(color)) <= tol, axis=2)


def _row(img: np.ndarray, color) -> float:
    rows = np.flatnonzero(_mask(img, color).sum(axis=1) > img.shape[1] // 4)  # rows the horizontal line fills
    assert rows.size > 0, f"no line of colour {color}"
    return float(rows.mean())


@pytest.fixture(params=["matplotlib", "opencv"])
def backend(request, monkeypatch):
    """Run a test with each renderer (the fallback: as if matplotlib were not installed)."""
    if request.param == "matplotlib":
        pytest.importorskip("matplotlib")
    monkeypatch.setattr(P, "HAVE_MATPLOTLIB", request.param == "matplotlib")
    return request.param


def test_lines_land_linearly_and_on_a_log_axis(backend):
    levels = {"a": 0.2, "b": 0.6, "c": 1.0}  # evenly spaced values: evenly spaced rows, top = larger
    img = P.render_line_plot({k: ([0, 1], [v, v]) for k, v in levels.items()}, ylim=(0, 1.2), legend="none")
    assert img.shape == (500, 800, 3) and img.dtype == np.uint8
    rows = [_row(img, P.PALETTE[i]) for i in range(3)]
    assert rows[0] > rows[1] > rows[2]
    assert abs((rows[0] - rows[1]) - (rows[1] - rows[2])) <= 2
    log = P.render_line_plot(
        {k: ([0, 1], [v, v]) for k, v in {"a": 1e-2, "b": 1.0, "c": 1e2}.items()}, logy=True, ylim=(1e-3, 1e3)
    )
    rows = [_row(log, P.PALETTE[i]) for i in range(3)]
    assert rows[0] > rows[1] > rows[2] and abs((rows[0] - rows[1]) - (rows[1] - rows[2])) <= 2  # decades alike


def test_fallback_geometry_known_answer(monkeypatch):
    monkeypatch.setattr(P, "HAVE_MATPLOTLIB", False)
    img = P.render_line_plot({"half": ([0.0, 1.0], [0.5, 0.5])}, size=(400, 300), ylim=(0, 1), legend="none")
    top, bottom = 36, 300 - 44  # the fallback's plot area (its docstring)
    assert abs(_row(img, P.PALETTE[0]) - (top + bottom) / 2) <= 1.5


def test_nan_breaks_the_line(backend):
    xs = np.linspace(0, 1, 101)
    ys = np.full(101, 0.5)
    ys[40:60] = np.nan
    img = P.render_line_plot({"gappy": (xs, ys)}, xlim=(0, 1), ylim=(0, 1), legend="none")
    cols = np.flatnonzero(_mask(img, P.PALETTE[0]).any(axis=0))
    first, last = cols.min(), cols.max()
    at = lambda x: int(round(first + x * (last - first)))  # noqa: E731
    drawn = set(cols.tolist())
    assert at(0.2) in drawn and at(0.8) in drawn
    assert not drawn & set(range(at(0.43), at(0.57)))  # the gap where ys is NaN


def test_series_colours_and_legend(backend):
    two = {"a": ([0, 1], [0, 1]), "b": ([0, 1], [1, 0])}
    img = P.render_line_plot(two, title="t", xlabel="x", ylabel="y")
    assert _mask(img, P.PALETTE[0], 4).sum() > 100 and _mask(img, P.PALETTE[1], 4).sum() > 100
    assert (img != P.render_line_plot(two, title="t", xlabel="x", ylabel="y", legend="none")).any()


def test_bad_input():
    with pytest.raises(ValueError, match="'short'"):
        P.render_line_plot({"short": ([0, 1, 2], [0, 1])})
    with pytest.raises(ValueError, match="non-empty"):
        P.render_line_plot({})
    with pytest.raises(ValueError, match="xlim"):
        P.render_line_plot({"a": ([0, 1], [0, 1])}, xlim=(1, 1))
    with pytest.raises(ValueError, match="legend"):
        P.render_line_plot({"a": ([0, 1], [0, 1])}, legend="middle")
    with pytest.raises(ValueError, match="'neg'"):
        P.render_line_plot({"neg": ([0, 1], [1.0, -1.0])}, logy=True)


def test_line_plot_writes_png(backend, tmp_path):
    path = tmp_path / "sub" / "curve.png"
    P.line_plot({"loss": (list(range(10)), [1 / (i + 1) for i in range(10)])}, path, title="loss", size=(320, 200))
    img = cv2.imread(str(path))
    assert img is not None and img.shape == (200, 320, 3)
    with pytest.raises(OSError, match="PNG"):
        P.line_plot({"loss": ([0, 1], [0, 1])}, tmp_path / "curve.not-an-image")


def test_without_matplotlib_installed_the_fallback_is_chosen(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    try:
        fallback = importlib.reload(P)
        assert not fallback.HAVE_MATPLOTLIB
        fallback.line_plot({"loss": ([0, 1, 2], [3.0, 2.0, 1.0])}, tmp_path / "loss.png", logy=True)
        assert cv2.imread(str(tmp_path / "loss.png")).shape == (500, 800, 3)
    finally:
        monkeypatch.undo()
        importlib.reload(P)
