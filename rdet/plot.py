"""Line plots for loss curves, PR curves and the figures in ``docs/``: matplotlib, with an OpenCV fallback.

``line_plot(series, path)`` writes a PNG; ``render_line_plot`` returns the picture as an RGB ``uint8``
array. ``series`` maps a legend label to ``(xs, ys)``; non-finite points break a line (a NaN loss shows as
a gap, never as a wrong value).

matplotlib is an optional extra (``pip install rdet[plots]``). Without it the same call draws a plainer
picture with OpenCV (lines, frame, axis ranges, title, legend; no tick marks), so training and evaluation
never fail for want of a plotting library; ``HAVE_MATPLOTLIB`` says which one is in use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

try:
    import matplotlib  # noqa: F401

    HAVE_MATPLOTLIB = True
except ImportError:  # the OpenCV fallback below
    HAVE_MATPLOTLIB = False

# Tableau-10 colours (matplotlib's default cycle), RGB
PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
LEGEND_POSITIONS = ("upper right", "upper left", "lower right", "lower left", "none")
Series = Mapping[str, tuple[Sequence[float], Sequence[float]]]


def _check(series: Series, logy: bool, legend: str, size: tuple[int, int], xlim, ylim) -> dict:
    """Validated ``{label: (xs, ys)}`` as float64 arrays; ``ValueError`` naming the bad argument."""
    if not isinstance(series, Mapping) or not series:
        raise ValueError("series must be a non-empty dict {label: (xs, ys)}")
    if legend not in LEGEND_POSITIONS:
        raise ValueError(f"legend must be one of {', '.join(repr(p) for p in LEGEND_POSITIONS)}; got {legend!r}")
    if int(size[0]) < 200 or int(size[1]) < 150:
        raise ValueError(f"size must be at least (200, 150), got {size}")
    for name, lim in (("xlim", xlim), ("ylim", ylim)):
        if lim is not None and not (math.isfinite(lim[0]) and math.isfinite(lim[1]) and lim[1] > lim[0]):
            raise ValueError(f"{name} must be (lo, hi) with finite lo < hi, got {lim}")
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
        out[str(label)] = (xs, np.where(np.isfinite(xs) & np.isfinite(ys), ys, np.nan))
    return out


def render_line_plot(
    series: Series,
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
        series: ``{label: (xs, ys)}``, drawn in order in the Tableau-10 colours (:data:`PALETTE`).
        title, xlabel, ylabel: texts.
        logy: logarithmic y axis (every finite y must be > 0).
        size: ``(width, height)`` in pixels.
        xlim, ylim: fixed axis ranges (e.g. ``(0, 1)`` for PR curves); default: the data's.
        legend: corner of the axes for the legend (:data:`LEGEND_POSITIONS`), or ``'none'``.

    Returns:
        np.ndarray[H, W, 3]: RGB ``uint8`` image of exactly ``size``.
    """
    data = _check(series, logy, legend, size, xlim, ylim)
    draw = _render_matplotlib if HAVE_MATPLOTLIB else _render_opencv
    return draw(data, title, xlabel, ylabel, logy, (int(size[0]), int(size[1])), xlim, ylim, legend)


def line_plot(series: Series, path: str | Path, **kwargs) -> None:
    """Draw a line plot (keyword arguments of :func:`render_line_plot`) and write it to ``path`` as a PNG
    (folders are created). ``OSError`` if the file cannot be written."""
    import cv2

    img = render_line_plot(series, **kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() != ".png":
        raise OSError(f"could not write {path}: line plots are PNG files (name it *.png)")
    if not cv2.imwrite(str(path), np.ascontiguousarray(img[..., ::-1])):
        raise OSError(f"could not write {path} (OpenCV imwrite returned False)")


def _render_matplotlib(data, title, xlabel, ylabel, logy, size, xlim, ylim, legend) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi, layout="constrained")
    canvas = FigureCanvasAgg(fig)  # no pyplot: no global state, no GUI backend
    ax = fig.add_subplot()
    for i, (label, (xs, ys)) in enumerate(data.items()):
        ax.plot(
            xs,
            ys,
            color=np.array(PALETTE[i % len(PALETTE)]) / 255,
            lw=1.6,
            label=label,
            marker="." if xs.size == 1 else None,
        )
    if logy:
        ax.set_yscale("log")
    if xlim is not None:
        ax.set_xlim(xlim)
    if ylim is not None:
        ax.set_ylim(ylim)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, color="0.88", lw=0.8)
    if legend != "none":
        ax.legend(loc=legend, fontsize="small")
    canvas.draw()
    img = np.asarray(canvas.buffer_rgba())[..., :3]
    if img.shape[:2] != (size[1], size[0]):  # figsize * dpi may round a pixel off
        import cv2

        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


def _render_opencv(data, title, xlabel, ylabel, logy, size, xlim, ylim, legend) -> np.ndarray:
    """The fallback: lines in a frame, the axis ranges at its corners, title, axis names and legend.

    The plot area spans x in [70, width - 16] and y in [36, height - 44] (pixels; a test relies on it).
    """
    import cv2

    font, ink = cv2.FONT_HERSHEY_SIMPLEX, (30, 30, 30)
    width, height = size
    img = np.full((height, width, 3), 255, np.uint8)
    to_y = np.log10 if logy else (lambda v: v)
    x_lo, x_hi = _range(np.concatenate([x[np.isfinite(y)] for x, y in data.values()]), xlim)
    y_lo, y_hi = _range(np.concatenate([to_y(y[np.isfinite(y)]) for _, y in data.values()]), ylim and to_y(ylim))
    left, top, right, bottom = 70, 36, width - 16, height - 44
    cv2.rectangle(img, (left, top), (right, bottom), ink, 1)
    for i, (label, (xs, ys)) in enumerate(data.items()):
        color = PALETTE[i % len(PALETTE)]
        u = left + (xs - x_lo) / (x_hi - x_lo) * (right - left)
        v = bottom - (to_y(ys) - y_lo) / (y_hi - y_lo) * (bottom - top)
        pts = np.stack([u, v], 1)
        for run in np.split(pts, np.flatnonzero(~np.isfinite(v))):  # NaN breaks the line
            run = run[np.isfinite(run).all(1)].clip([left, top], [right, bottom]).round().astype(np.int32)
            if len(run) == 1:
                cv2.circle(img, (int(run[0, 0]), int(run[0, 1])), 2, color, -1, cv2.LINE_AA)
            cv2.polylines(img, [run.reshape(-1, 1, 2)], False, color, 2, cv2.LINE_AA)
        if legend != "none":
            cv2.putText(img, label, (left + 8, top + 18 + 18 * i), font, 0.45, color, 1, cv2.LINE_AA)
    fmt = (lambda v: f"{10**v:.3g}") if logy else (lambda v: f"{v:.4g}")
    for text, org in (
        (title, (left, 22)),
        (fmt(y_hi), (4, top + 5)),
        (ylabel, (4, (top + bottom) // 2)),
        (fmt(y_lo), (4, bottom)),
        (f"{x_lo:.4g}", (left, bottom + 18)),
        (f"{x_hi:.4g}", (right - 40, bottom + 18)),
        (xlabel, ((left + right) // 2 - 4 * len(xlabel), bottom + 34)),
    ):
        cv2.putText(img, text, org, font, 0.45, ink, 1, cv2.LINE_AA)
    return img


def _range(values: np.ndarray, given) -> tuple[float, float]:
    """The axis range: ``given``, else the data's (a constant or empty series gets a unit range)."""
    lo, hi = (float(given[0]), float(given[1])) if given is not None else (0.0, 1.0)
    if given is None and values.size:
        lo, hi = float(values.min()), float(values.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)
