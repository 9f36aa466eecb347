"""The DOTA devkit's treatment of objects cut by a window (``rdet split --style devkit``), kept bit for bit:
clip to the window (Sutherland-Hodgman), a 5-corner cut merged to 4 corners, the corner order that best fits the
original, integer truncation and clamping (see :mod:`rdet.data.split`)."""

from __future__ import annotations

import numpy as np


def _shoelace(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def clip_polygon(pts: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Intersection of a polygon ``[P, 2]`` with the rectangle ``[x0, x1] x [y0, y1]`` (Sutherland-Hodgman),
    repeated points removed. Exact for convex polygons (all DOTA boxes in practice)."""

    def cut(points, inside, cross):
        res = []
        for i in range(len(points)):
            a, b = points[i - 1], points[i]
            if inside(b):
                if not inside(a):
                    res.append(cross(a, b))
                res.append(b)
            elif inside(a):
                res.append(cross(a, b))
        return res

    def at_x(x):
        return lambda a, b: (x, a[1] + (b[1] - a[1]) * (x - a[0]) / (b[0] - a[0]))

    def at_y(y):
        return lambda a, b: (a[0] + (b[0] - a[0]) * (y - a[1]) / (b[1] - a[1]), y)

    points = [tuple(p) for p in np.asarray(pts, np.float64)]
    for inside, cross in (
        (lambda p: p[0] >= x0, at_x(x0)),
        (lambda p: p[0] <= x1, at_x(x1)),
        (lambda p: p[1] >= y0, at_y(y0)),
        (lambda p: p[1] <= y1, at_y(y1)),
    ):
        points = cut(points, inside, cross) if points else points
    out = [p for i, p in enumerate(points) if p != points[i - 1]] if len(points) > 1 else points
    return np.array(out, np.float64).reshape(-1, 2)


def _five_to_four(p: np.ndarray) -> np.ndarray:
    """Devkit's ``GetPoly4FromPoly5``: merge the shortest edge of a pentagon into its midpoint."""
    d = np.hypot(*(np.roll(p, -1, 0) - p).T)
    k = int(np.argsort(d, kind="stable")[0])
    mid = (p[k] + p[(k + 1) % 5]) / 2
    return np.array([mid if i == k else p[i] for i in range(5) if i != (k + 1) % 5])


def _best_start(p: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Devkit's ``choose_best_pointorder_fit_another``: the cyclic shift closest to ``ref`` (first on ties)."""
    shifts = [np.roll(p, -s, 0) for s in range(4)]
    d = [np.sum((s.reshape(-1) - ref) ** 2) for s in shifts]
    return shifts[int(np.argsort(d, kind="stable")[0])]


def devkit_cut(
    poly: np.ndarray, left: int, up: int, right: int, down: int, size: int, iof_thr: float
) -> tuple[np.ndarray, bool] | None:
    """The DOTA devkit's treatment of one object in one window.

    Returns:
        ``(poly_in_patch [8], low_iof)`` or ``None`` when the object is dropped (no overlap, or a cut with
        fewer than 4 or more than 5 corners). ``low_iof`` is True when IoF <= ``iof_thr`` (difficulty 2).
    """
    pts = np.asarray(poly, np.float64).reshape(4, 2)
    area = abs(_shoelace(pts))
    if area <= 0:
        return None
    cut = clip_polygon(pts, left, up, right, down)
    inter = abs(_shoelace(cut)) if len(cut) >= 3 else 0.0
    iof = inter / area
    if iof == 1:
        return np.trunc(pts.reshape(-1) - [left, up] * 4) + 0.0, False
    if iof <= 0 or len(cut) < 4 or len(cut) > 5:
        return None
    if _shoelace(cut) < 0:
        cut = cut[::-1]  # shapely's orient(sign=1): positive signed area
    if len(cut) == 5:
        cut = _five_to_four(cut)
    out = np.trunc(_best_start(cut, pts.reshape(-1)).reshape(-1) - [left, up] * 4) + 0.0  # no '-0.0'
    return np.clip(np.where(out <= 1, 1, out), None, size), bool(iof <= iof_thr)
