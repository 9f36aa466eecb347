"""Small line plots drawn with OpenCV (no matplotlib): loss curves, PR curves, figures in ``docs/``.

``line_plot(series, path)`` writes a PNG with axes, ticks, grid, labelled lines and a legend;
``render_line_plot`` returns the same picture as a BGR ``uint8`` array. ``series`` maps a legend label
to ``(xs, ys)``; non-finite points break a line (a NaN loss shows as a gap, never as a wrong value).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

# Tableau-10 colours, BGR
PALETTE = (
    (180, 119, 31),
    (14, 127, 255),
    (44, 160, 44),
    (40, 39, 214),
    (189, 103, 148),
    (75, 86, 140),
    (194, 119, 227),
    (127, 127, 127),
    (34, 189, 188),
    (207, 190, 23),
)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_INK, _GRID, _WHITE = (30, 30, 30), (225, 225, 225), (255, 255, 255)
LEGEND_POSITIONS = ("upper right", "upper left", "lower right", "lower left", "none")


def nice_ticks(lo: float, hi: float, max_ticks: int = 8) -> list[float]:
    """Round tick positions (steps of 1, 2 or 5 times a power of ten) covering ``[lo, hi]``.

    Returns:
        list[float]: increasing ticks; the first is <= ``lo`` and the last >= ``hi``.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        raise ValueError(f"need finite lo <= hi, got lo={lo}, hi={hi}")
    if hi == lo:
        pad = abs(lo) * 0.1 or 0.5
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(max_ticks - 1, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{v:.6g}"


def _check_series(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], logy: bool):
    if not isinstance(series, Mapping) or not series:
        raise ValueError("series must be a non-empty dict {label: (xs, ys)}")
    out = {}
    for label, pair in series.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"series[{label!r}] must be a pair (xs, ys)")
        xs = np.asarray(pair[0], dtype=np.float64).reshape(-1)
        ys = np.asarray(pair[1], dtype=np.float64).reshape(-1)
        if xs.shape != ys.shape:
            raise ValueError(f"series[{label!r}] has {xs.size} x values but {ys.size} y values")
        if logy and np.any(ys[np.isfinite(ys)] <= 0):
            raise ValueError(f"series[{label!r}] has values <= 0, which a log y axis cannot show (use logy=False)")
        out[str(label)] = (xs, np.log10(ys) if logy else ys)
    return out


def _limits(values: list[np.ndarray], given: tuple[float, float] | None, name: str) -> tuple[float, float]:
    if given is not None:
        lo, hi = float(given[0]), float(given[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"{name} must be (lo, hi) with finite lo < hi, got {given}")
        return lo, hi
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.empty(0)
    if finite.size == 0:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


def _text(
    img: np.ndarray,
    s: str,
    org: tuple[int, int],
    scale: float = 0.45,
    anchor: str = "left",
    color=_INK,
    thickness: int = 1,
) -> None:
    (w, h), _ = cv2.getTextSize(s, _FONT, scale, thickness)
    x, y = org
    if anchor == "center":
        x -= w // 2
    elif anchor == "right":
        x -= w
    cv2.putText(img, s, (int(x), int(y + h // 2)), _FONT, scale, color, thickness, cv2.LINE_AA)


def render_line_plot(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    logy: bool = False,
    size: tuple[int, int] = (800, 500),
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    legend: str = "upper right",
) -> np.ndarray:
    """Draw a line plot and return it.

    Args:
        series: ``{label: (xs, ys)}``, drawn in order with the Tableau-10 colours.
        title, xlabel, ylabel: texts (ASCII; OpenCV's Hershey font has no other glyphs).
        logy: logarithmic y axis (every finite y must be > 0).
        size: ``(width, height)`` in pixels.
        xlim, ylim: fixed axis ranges (e.g. ``(0, 1)`` for PR curves); default: the data, rounded out
            to ticks. Lines are clipped to the axes.
        legend: corner of the axes for the legend (``LEGEND_POSITIONS``), or ``'none'``.

    Returns:
        np.ndarray[H, W, 3]: BGR ``uint8`` image.
    """
    data = _check_series(series, logy)
    if legend not in LEGEND_POSITIONS:
        raise ValueError(f"legend must be one of {', '.join(repr(p) for p in LEGEND_POSITIONS)}; got {legend!r}")
    width, height = int(size[0]), int(size[1])
    if width < 200 or height < 150:
        raise ValueError(f"size must be at least (200, 150), got {size}")
    xs_all = [x for x, _ in data.values()]
    ys_all = [y for _, y in data.values()]
    x_lo, x_hi = _limits(xs_all, xlim, "xlim")
    y_lo, y_hi = _limits(ys_all, None if ylim is None else tuple(math.log10(v) for v in ylim) if logy else ylim, "ylim")
    if logy:
        y_ticks = [float(t) for t in range(math.floor(y_lo), math.ceil(y_hi) + 1)]
        if len(y_ticks) < 2:
            y_ticks = [y_ticks[0], y_ticks[0] + 1]
        if len(y_ticks) > 10:  # at most ~10 decade labels
            stride = math.ceil(len(y_ticks) / 10)
            y_ticks = y_ticks[::stride]
    else:
        y_ticks = nice_ticks(y_lo, y_hi)
    x_ticks = nice_ticks(x_lo, x_hi)
    if xlim is None:
        x_lo, x_hi = x_ticks[0], x_ticks[-1]
    if ylim is None:
        y_lo, y_hi = y_ticks[0], y_ticks[-1]
    x_ticks = [t for t in x_ticks if x_lo - 1e-9 <= t <= x_hi + 1e-9]
    y_ticks = [t for t in y_ticks if y_lo - 1e-9 <= t <= y_hi + 1e-9]

    img = np.full((height, width, 3), 255, np.uint8)
    left, right = 78 + (18 if ylabel else 0), 20
    top, bottom = 40 if title else 16, 50 if xlabel else 32
    pw, ph = width - left - right, height - top - bottom

    def px(x):
        return (np.asarray(x) - x_lo) / (x_hi - x_lo) * pw

    def py(y):
        return (1.0 - (np.asarray(y) - y_lo) / (y_hi - y_lo)) * ph

    # grid and ticks
    for t in x_ticks:
        x = left + int(round(float(px(t))))
        cv2.line(img, (x, top), (x, top + ph), _GRID, 1)
        cv2.line(img, (x, top + ph), (x, top + ph + 4), _INK, 1)
        _text(img, _fmt(t), (x, top + ph + 14), anchor="center")
    for t in y_ticks:
        y = top + int(round(float(py(t))))
        cv2.line(img, (left, y), (left + pw, y), _GRID, 1)
        cv2.line(img, (left - 4, y), (left, y), _INK, 1)
        _text(img, f"1e{int(t)}" if logy else _fmt(t), (left - 7, y), anchor="right")

    # lines, drawn on a canvas of the plot area so that they are clipped to it
    canvas = np.full((ph + 1, pw + 1, 3), 255, np.uint8)
    canvas[:] = img[top : top + ph + 1, left : left + pw + 1]
    for i, (xs, ys) in enumerate(data.values()):
        color = PALETTE[i % len(PALETTE)]
        ok = np.isfinite(xs) & np.isfinite(ys)
        pts = np.stack([px(xs), py(ys)], axis=1).clip(-1e5, 1e5) if xs.size else np.empty((0, 2))
        breaks = np.flatnonzero(~ok)
        for run in np.split(np.arange(xs.size), breaks):
            run = run[ok[run]]
            if run.size == 1:
                cv2.circle(canvas, tuple(int(v) for v in pts[run[0]].round()), 2, color, -1, cv2.LINE_AA)
            elif run.size > 1:
                poly = (pts[run] * 16).round().astype(np.int32).reshape(-1, 1, 2)
                cv2.polylines(canvas, [poly], False, color, 2, cv2.LINE_AA, shift=4)
    img[top : top + ph + 1, left : left + pw + 1] = canvas
    cv2.rectangle(img, (left, top), (left + pw, top + ph), _INK, 1)

    # texts
    if title:
        _text(img, title, (left + pw // 2, 18), scale=0.55, anchor="center")
    if xlabel:
        _text(img, xlabel, (left + pw // 2, height - 14), scale=0.5, anchor="center")
    if ylabel:
        (tw, th), _ = cv2.getTextSize(ylabel, _FONT, 0.5, 1)
        strip = np.full((th + 10, tw + 4, 3), 255, np.uint8)
        cv2.putText(strip, ylabel, (2, th + 3), _FONT, 0.5, _INK, 1, cv2.LINE_AA)
        strip = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)
        sh, sw = strip.shape[:2]
        y0 = max(0, top + ph // 2 - sh // 2)
        sh = min(sh, height - y0)
        img[y0 : y0 + sh, 4 : 4 + sw] = strip[:sh]

    if legend == "none":
        return img
    labels = list(data)
    sizes = [cv2.getTextSize(s, _FONT, 0.45, 1)[0] for s in labels]
    box_w = max(w for w, _ in sizes) + 44
    row = 20
    box_h = row * len(labels) + 6
    x0 = left + pw - box_w - 8 if legend.endswith("right") else left + 8
    y0 = top + 8 if legend.startswith("upper") else top + ph - box_h - 8
    cv2.rectangle(img, (x0, y0), (x0 + box_w, y0 + box_h), _WHITE, -1)
    cv2.rectangle(img, (x0, y0), (x0 + box_w, y0 + box_h), (160, 160, 160), 1)
    for i, s in enumerate(labels):
        y = y0 + 13 + i * row
        cv2.line(img, (x0 + 8, y), (x0 + 30, y), PALETTE[i % len(PALETTE)], 2, cv2.LINE_AA)
        _text(img, s, (x0 + 36, y))
    return img


def line_plot(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    logy: bool = False,
    size: tuple[int, int] = (800, 500),
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    legend: str = "upper right",
) -> None:
    """Draw a line plot (see :func:`render_line_plot`) and write it to ``path`` (PNG; folders are created)."""
    img = render_line_plot(
        series, title=title, xlabel=xlabel, ylabel=ylabel, logy=logy, size=size, xlim=xlim, ylim=ylim, legend=legend
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ok = cv2.imwrite(str(path), img)
    except cv2.error as exc:  # e.g. an extension OpenCV has no writer for
        raise OSError(f"could not write {path}: {exc}") from exc
    if not ok:
        raise OSError(f"could not write {path} (OpenCV imwrite returned False)")
