"""The one rotated-box convention of rdet.

Every rotated box crossing a function boundary in rdet is a ``Tensor[..., 5]``::

    (cx, cy, w, h, angle)

* ``cx, cy``: centre, in pixels of the image the box lives in;
* ``w, h``: side lengths in pixels (``w`` is the side along the angle direction);
* ``angle``: radians, measured from the +x axis towards the +y axis. Image y points **down**, so a
  positive angle turns the box **clockwise on screen**. This is MMRotate's sign, so its checkpoints,
  coders and loss formulas carry over unchanged.

::

        +x ------------------>
     +y |        . u = (w/2)(cos a, sin a)
        |      .  ) a
        |    c----------->            a > 0: clockwise on screen
        |     \\
        |      \\ v = (h/2)(-sin a, cos a)
        v       v

Corners (``obb2poly``) are ``c-u-v, c+u-v, c+u+v, c-u+v``; for ``a = 0`` that is top-left, top-right,
bottom-right, bottom-left (clockwise on screen, like DOTA's labels).

Angle versions
--------------
A rectangle has four equivalent ``(w, h, angle)`` descriptions. A *version* picks one, exactly as
MMRotate 1.x's ``regularize_boxes`` does. Versions are a target-encoding choice of a model (the coder)
and of file formats, never a second box type:

========= ============================== ==========================
version   angle range                    side order
========= ============================== ==========================
``oc``    ``[-pi/2, 0)``                 none (w, h as they fall)
``le90``  ``[-pi/2, pi/2)``              ``w > h`` (ties: swapped)
``le135`` ``[-pi/4, 3*pi/4)``            ``w > h`` (ties: swapped)
========= ============================== ==========================

Interop: ``to_cxcywhr_deg``/``from_cxcywhr_deg`` for detectron2 and torchvision, whose angle is in
degrees, counter-clockwise on screen (the negative of ours); ``yolo_obb_to_poly``/``poly_to_yolo_obb``
for YOLO-OBB's polygons normalised to [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

ANGLE_VERSIONS = ("oc", "le90", "le135")

# (width_longer, start angle) per version, as in MMRotate 1.x's RotatedBoxes.regularize_boxes.
_VERSION_RULES = {"oc": (False, -math.pi / 2), "le90": (True, -math.pi / 2), "le135": (True, -math.pi / 4)}


def check_version(version: str) -> str:
    """Return ``version`` if it is a known angle version, else raise ``ValueError`` listing them."""
    if version not in _VERSION_RULES:
        raise ValueError(f"unknown angle version {version!r}; valid versions: {', '.join(ANGLE_VERSIONS)}")
    return version


def _check_last_dim(x: Tensor, n: int, name: str) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 0 or x.shape[-1] != n:
        raise ValueError(f"{name} must have shape [..., {n}], got {list(x.shape)}")


def regularize(boxes: Tensor, version: str = "le90") -> Tensor:
    """Rewrite rotated boxes into the unique form of an angle version.

    Args:
        boxes (Tensor[..., 5]): rotated boxes, any angle.
        version: ``'oc'``, ``'le90'`` or ``'le135'`` (ranges in the module docstring).

    Returns:
        Tensor[..., 5]: the same rectangles, angle in the version's half-open range.
    """
    _check_last_dim(boxes, 5, "boxes")
    width_longer, start = _VERSION_RULES[check_version(version)]
    x, y, w, h, t = boxes.unbind(-1)
    if width_longer:
        longer = w > h
        w_, h_ = torch.where(longer, w, h), torch.where(longer, h, w)
        t = torch.where(longer, t, t + math.pi / 2)
        t = torch.remainder(t - start, math.pi) + start
    else:
        t = torch.remainder(t - start, math.pi)
        keep = t < math.pi / 2
        w_, h_ = torch.where(keep, w, h), torch.where(keep, h, w)
        t = torch.where(keep, t, t - math.pi / 2) + start
    return torch.stack([x, y, w_, h_, t], dim=-1)


def obb2poly(boxes: Tensor) -> Tensor:
    """Corners of rotated boxes.

    Args:
        boxes (Tensor[..., 5]): rotated boxes.

    Returns:
        Tensor[..., 8]: ``(x1, y1, ..., x4, y4)`` in the order ``c-u-v, c+u-v, c+u+v, c-u+v``.
    """
    _check_last_dim(boxes, 5, "boxes")
    cx, cy, w, h, t = boxes.unbind(-1)
    cos, sin = torch.cos(t), torch.sin(t)
    ux, uy = w / 2 * cos, w / 2 * sin
    vx, vy = -h / 2 * sin, h / 2 * cos
    return torch.stack(
        [
            cx - ux - vx,
            cy - uy - vy,
            cx + ux - vx,
            cy + uy - vy,
            cx + ux + vx,
            cy + uy + vy,
            cx - ux + vx,
            cy - uy + vy,
        ],
        dim=-1,
    )


def poly2obb(polys: Tensor, version: str = "le90") -> Tensor:
    """Minimum-area rotated rectangle around 4-point polygons, regularised to ``version``.

    The rectangle of minimum area has a side along an edge of the convex hull, and every hull edge of
    four points joins two of them, so one of the 6 point-pair directions gives it; the rectangle is then
    computed exactly (float64) from that direction. When two different rectangles have the same minimum
    area (common for integer-labelled parallelograms), the choice is MMRotate's: see
    :func:`_opencv_min_area_pair`.

    Args:
        polys (Tensor[..., 8]): ``(x1, y1, ..., x4, y4)`` in pixels, any vertex order.
        version: angle version of the result.

    Returns:
        Tensor[..., 5]: rotated boxes. A degenerate polygon (all points on a line) gives ``h = 0``.
    """
    _check_last_dim(polys, 8, "polys")
    check_version(version)
    dtype = polys.dtype
    pts = polys.reshape(*polys.shape[:-1], 4, 2).double()
    centre = pts.mean(-2, keepdim=True)
    pts = pts - centre  # small coordinates keep the projections exact in float
    i, j = torch.tensor([p[0] for p in _PAIRS]), torch.tensor([p[1] for p in _PAIRS])
    d = pts[..., j, :] - pts[..., i, :]  # [..., 6, 2] candidate side directions
    theta = torch.atan2(d[..., 1], d[..., 0])
    u = torch.stack([torch.cos(theta), torch.sin(theta)], -1)  # [..., 6, 2]
    v = torch.stack([-u[..., 1], u[..., 0]], -1)
    pu = torch.einsum("...pk,...dk->...dp", pts, u)  # [..., 6, 4] projections on u
    pv = torch.einsum("...pk,...dk->...dp", pts, v)
    wu = pu.amax(-1) - pu.amin(-1)
    hv = pv.amax(-1) - pv.amin(-1)
    area = wu * hv
    best = area.argmin(-1, keepdim=True)  # [..., 1]
    # A near tie: another direction (not parallel or perpendicular to the best one, which would give the
    # same rectangle) within 1e-3 of the minimum area. Only there can OpenCV's float32 pick differ.
    turn = torch.remainder(theta - theta.gather(-1, best) + _TURN_TOL, math.pi / 2)
    rival = (turn > 2 * _TURN_TOL) & (area <= area.gather(-1, best) * (1 + _TIE_RTOL))
    tied = rival.any(-1)
    if tied.any():
        pair = torch.from_numpy(_opencv_min_area_pair(polys.detach()[tied].reshape(-1, 8).cpu().numpy())).to(
            best.device
        )
        best[tied] = torch.where(pair >= 0, pair, best[tied].squeeze(-1)).unsqueeze(-1)
    pick = lambda x: x.gather(-1, best).squeeze(-1)  # noqa: E731
    w, h, t = pick(wu), pick(hv), pick(theta)
    mu = (pick(pu.amax(-1)) + pick(pu.amin(-1))) / 2
    mv = (pick(pv.amax(-1)) + pick(pv.amin(-1))) / 2
    ub = u.gather(-2, best[..., None].expand(*best.shape, 2)).squeeze(-2)
    vb = v.gather(-2, best[..., None].expand(*best.shape, 2)).squeeze(-2)
    c = centre.squeeze(-2) + mu[..., None] * ub + mv[..., None] * vb
    out = torch.stack([c[..., 0], c[..., 1], w, h, t], -1)
    return regularize(out, version).to(dtype)


# ------------------------------------------------------------------ ties: OpenCV's choice
# MMRotate builds its training targets with cv2.minAreaRect (1.x ``qbox2rbox``, 0.x ``poly2obb_np_*``), so
# where two different rectangles of equal area enclose a label, the published models learnt OpenCV's pick.
# OpenCV's rotating calipers (imgproc/src/rotcalipers.cpp) decide it in float32: which caliper moves next
# (the sign of a cross product; exact ties keep the earlier caliper) and ``area <= minarea`` (the last of
# equal areas wins), visiting the hull that ``convexHull(points, clockwise=False)`` returns, from its first
# vertex. The pick is a property of that arithmetic, not of the geometry, so we reproduce it operation by
# operation (numpy float32 ufuncs round each result, as OpenCV's SSE build does) rather than call cv2:
# (1) rdet.boxes stays at the bottom of the layers (torch, numpy at the edges; DESIGN.md), (2) it is
# vectorised where cv2 needs a Python call per polygon, (3) the rectangle itself stays exact (float64; cv2
# returns float32), (4) cv2's angle convention differs between releases (4.10 and 5.1 here), its choice does
# not (OpenCV 4.6, 4.10 and 5.1 pick the same rectangle for all of 141,917 test polygons). tests/test_boxes.py
# compares with cv2.minAreaRect on real DOTA labels, random quads, and MMRotate's stored qbox2rbox output.
# Known residual: with a repeated vertex (a triangle), OpenCV may start its hull at the other copy of that
# point, which can change a tie (1 polygon in 600,000 random small-integer quads; no real label).

_TIE_RTOL = 1e-3  # relative area difference below which float32 rounding (and OpenCV) may decide
_TURN_TOL = 1e-9  # radians: directions this close (mod pi/2) give the same rectangle
_PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
_PAIR_LUT = np.full((4, 4), -1)  # [i, j] -> index of the pair {i, j} in _PAIRS
for _k, (_i, _j) in enumerate(_PAIRS):
    _PAIR_LUT[_i, _j] = _PAIR_LUT[_j, _i] = _k


def _hull_order(p: list[tuple[float, float]]) -> list[int]:
    """Vertex indices of the convex hull of 4 points in ``cv2.convexHull(clockwise=False)`` order.

    Positive orientation (``sum x_i y_(i+1) - x_(i+1) y_i > 0``), collinear and repeated points dropped,
    started where OpenCV starts: at the smallest index if the indices run cyclically ascending, at the
    largest if descending, else at the largest point in (x, y) order. Fewer than 3 indices: degenerate.
    """

    def cross(o: int, a: int, b: int) -> float:
        return (p[a][0] - p[o][0]) * (p[b][1] - p[o][1]) - (p[a][1] - p[o][1]) * (p[b][0] - p[o][0])

    order = sorted(range(4), key=lambda k: (p[k][0], p[k][1], k))
    order = [k for n, k in enumerate(order) if n == 0 or p[k] != p[order[n - 1]]]
    lower: list[int] = []
    upper: list[int] = []
    for chain, seq in ((lower, order), (upper, order[::-1])):  # Andrew's monotone chain, strict turns
        for k in seq:
            while len(chain) >= 2 and cross(chain[-2], chain[-1], k) <= 0:
                chain.pop()
            chain.append(k)
    hull = lower[:-1] + upper[:-1]
    if len(hull) < 3:
        return hull
    for start, before in ((min(hull), lambda a, b: a < b), (max(hull), lambda a, b: a > b)):
        s = hull.index(start)
        rolled = hull[s:] + hull[:s]
        if all(before(a, b) for a, b in zip(rolled, rolled[1:])):
            return rolled
    s = hull.index(order[-1])
    return hull[s:] + hull[:s]


def _hulls(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hull order of each polygon (see :func:`_hull_order`).

    Args:
        pts (ndarray[N, 4, 2]): float32 points.

    Returns:
        (ndarray[N, 4] int, ndarray[N] int): hull vertex indices (unused slots repeat the first one) and
        the hull size (< 3: degenerate).
    """
    idx = np.tile(np.arange(4), (len(pts), 1))
    size = np.full(len(pts), 4)
    e = np.roll(pts, -1, 1).astype(np.float64) - pts
    turn = e[..., 0] * np.roll(e, -1, 1)[..., 1] - e[..., 1] * np.roll(e, -1, 1)[..., 0]  # [N, 4]
    ccw, cw = (turn > 0).all(1), (turn < 0).all(1)  # convex, vertices in order: the common case
    idx[cw] = [3, 2, 1, 0]
    for r in np.flatnonzero(~(ccw | cw)):  # the rest (rare in labels): the general rule
        h = _hull_order([(float(x), float(y)) for x, y in pts[r]])
        size[r] = len(h)
        idx[r] = (h + [h[0] if h else 0] * 4)[:4]
    return idx, size


def _opencv_min_area_pair(polys: np.ndarray) -> np.ndarray:
    """The point pair (index into ``_PAIRS``) along which ``cv2.minAreaRect`` lays its rectangle.

    OpenCV's rotating calipers (imgproc/src/rotcalipers.cpp), float32 operation by operation (numpy
    float32 ufuncs round each result, like OpenCV's x86 build), on the points rounded to float32 as
    MMRotate passes them; -1 where the hull has fewer than 3 points.

    Args:
        polys (ndarray[N, 8]): polygons.

    Returns:
        ndarray[N] int.
    """
    out = np.full(len(polys), -1)
    pts = polys.reshape(-1, 4, 2).astype(np.float32)
    idx, n = _hulls(pts)
    ok = (n >= 3) & np.isfinite(pts).all((1, 2))
    if not ok.any():
        return out
    idx, n = idx[ok], n[ok]
    rows = np.arange(len(n))[:, None]
    hull = pts[ok][rows, idx]  # [M, 4, 2] float32
    slot = np.arange(4)
    used = slot < n[:, None]
    vect = hull[rows, np.where(slot + 1 < n[:, None], slot + 1, 0)] - hull  # float32 - float32, as OpenCV
    v64 = vect.astype(np.float64)
    with np.errstate(divide="ignore"):  # unused slots of 3-point hulls have zero length
        inv = (1.0 / np.sqrt(v64[..., 0] * v64[..., 0] + v64[..., 1] * v64[..., 1])).astype(np.float32)
    x, y = hull[..., 0], hull[..., 1]
    seq = np.stack(  # bottom, right, top, left: the first extreme point in hull order (OpenCV's strict < / >)
        [
            np.where(used, y, np.inf).argmin(1),
            np.where(used, x, -np.inf).argmax(1),
            np.where(used, y, -np.inf).argmax(1),
            np.where(used, x, np.inf).argmin(1),
        ],
        1,
    )
    prev = v64[rows, (slot - 1) % n[:, None]]
    convexity = prev[..., 0] * v64[..., 1] - prev[..., 1] * v64[..., 0]  # the first non-zero gives the sense
    first = np.where(used & (convexity != 0), slot, 3).argmin(1)
    r1 = rows[:, 0]
    a = np.where(convexity[r1, first] > 0, 1, -1).astype(np.float32)
    b = np.zeros_like(a)
    minarea = np.full_like(a, np.finfo(np.float32).max)
    best = np.zeros_like(n)
    for step in range(4):
        vs = vect[rows, seq]  # [M, 4, 2]: the edge at each caliper
        # The caliper whose edge turns least: edge vectors brought into caliper 0's frame, each compared
        # with the current choice by the sign of a float32 cross product (exact ties keep the earlier one).
        rot = np.stack(
            [vs[:, 0], np.stack([vs[:, 1, 1], -vs[:, 1, 0]], 1), -vs[:, 2], np.stack([-vs[:, 3, 1], vs[:, 3, 0]], 1)], 1
        )
        main = np.zeros_like(n)
        for c in (1, 2, 3):
            cur = rot[r1, main]
            right = rot[:, c, 1] * cur[:, 0] + -rot[:, c, 0] * cur[:, 1] < 0
            main = np.where(right, c, main)
        lead = seq[r1, main]
        lx, ly = vect[r1, lead, 0] * inv[r1, lead], vect[r1, lead, 1] * inv[r1, lead]
        a, b = (
            np.choose(main, [lx, ly, -lx, -ly]),
            np.choose(main, [ly, -lx, -ly, lx]),
        )
        seq[r1, main] = (lead + 1) % n
        d13 = hull[r1, seq[:, 1]] - hull[r1, seq[:, 3]]
        d02 = hull[r1, seq[:, 2]] - hull[r1, seq[:, 0]]
        area = (d13[:, 0] * a + d13[:, 1] * b) * (-d02[:, 0] * b + d02[:, 1] * a)
        take = (step < n) & (area <= minarea)  # '<=': the last of equal areas wins, as in OpenCV
        minarea = np.where(take, area, minarea)
        best = np.where(take, lead, best)
    p = idx[r1, best]
    q = idx[r1, np.where(best + 1 < n, best + 1, 0)]
    out[ok] = _PAIR_LUT[p, q]
    return out


def hbox2obb(hboxes: Tensor) -> Tensor:
    """Axis-aligned boxes to rotated boxes with angle 0.

    Args:
        hboxes (Tensor[..., 4]): ``(x1, y1, x2, y2)``.

    Returns:
        Tensor[..., 5]: ``(cx, cy, x2 - x1, y2 - y1, 0)``.
    """
    _check_last_dim(hboxes, 4, "hboxes")
    x1, y1, x2, y2 = hboxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, torch.zeros_like(x1)], -1)


def obb2hbox(boxes: Tensor) -> Tensor:
    """Smallest axis-aligned box enclosing each rotated box.

    Args:
        boxes (Tensor[..., 5]): rotated boxes.

    Returns:
        Tensor[..., 4]: ``(x1, y1, x2, y2)``.
    """
    _check_last_dim(boxes, 5, "boxes")
    cx, cy, w, h, t = boxes.unbind(-1)
    cos, sin = torch.cos(t).abs(), torch.sin(t).abs()
    hx = (w * cos + h * sin) / 2
    hy = (w * sin + h * cos) / 2
    return torch.stack([cx - hx, cy - hy, cx + hx, cy + hy], -1)


obb2xyxy = obb2hbox


def to_cxcywhr_deg(boxes: Tensor) -> Tensor:
    """rdet boxes to detectron2 / torchvision ``cxcywhr`` (angle in degrees, counter-clockwise on screen).

    Args:
        boxes (Tensor[..., 5]): rdet boxes.

    Returns:
        Tensor[..., 5]: ``(cx, cy, w, h, -degrees(angle))``.
    """
    _check_last_dim(boxes, 5, "boxes")
    return torch.cat([boxes[..., :4], torch.rad2deg(-boxes[..., 4:5])], -1)


def from_cxcywhr_deg(boxes: Tensor) -> Tensor:
    """detectron2 / torchvision ``cxcywhr`` (degrees, counter-clockwise) to rdet boxes (radians, clockwise).

    Args:
        boxes (Tensor[..., 5]): ``(cx, cy, w, h, angle_deg_ccw)``.

    Returns:
        Tensor[..., 5]: rdet boxes, angle not regularised (call ``regularize`` for a version).
    """
    _check_last_dim(boxes, 5, "boxes")
    return torch.cat([boxes[..., :4], torch.deg2rad(-boxes[..., 4:5])], -1)


def yolo_obb_to_poly(polys: Tensor, width: float, height: float) -> Tensor:
    """YOLO-OBB polygons normalised to [0, 1] to pixel polygons.

    Args:
        polys (Tensor[..., 8]): ``(x1, y1, ..., x4, y4)`` divided by image width/height.
        width, height: image size in pixels.

    Returns:
        Tensor[..., 8]: pixel polygons.
    """
    _check_last_dim(polys, 8, "polys")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got width={width}, height={height}")
    scale = polys.new_tensor([width, height] * 4)
    return polys * scale


def poly_to_yolo_obb(polys: Tensor, width: float, height: float) -> Tensor:
    """Pixel polygons to YOLO-OBB's normalised polygons (inverse of ``yolo_obb_to_poly``).

    Args:
        polys (Tensor[..., 8]): pixel polygons.
        width, height: image size in pixels.

    Returns:
        Tensor[..., 8]: polygons divided by image width/height.
    """
    _check_last_dim(polys, 8, "polys")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got width={width}, height={height}")
    return polys / polys.new_tensor([width, height] * 4)
