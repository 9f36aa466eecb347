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
    four points joins two of them, so trying the directions of all 6 point pairs finds it exactly
    (other directions give larger enclosing rectangles). We do not use ``cv2.minAreaRect``: its angle
    range changed between OpenCV 4 and 5.

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
    i, j = torch.tensor([0, 0, 0, 1, 1, 2]), torch.tensor([1, 2, 3, 2, 3, 3])
    d = pts[..., j, :] - pts[..., i, :]  # [..., 6, 2] candidate side directions
    theta = torch.atan2(d[..., 1], d[..., 0])
    u = torch.stack([torch.cos(theta), torch.sin(theta)], -1)  # [..., 6, 2]
    v = torch.stack([-u[..., 1], u[..., 0]], -1)
    pu = torch.einsum("...pk,...dk->...dp", pts, u)  # [..., 6, 4] projections on u
    pv = torch.einsum("...pk,...dk->...dp", pts, v)
    wu = pu.amax(-1) - pu.amin(-1)
    hv = pv.amax(-1) - pv.amin(-1)
    best = (wu * hv).argmin(-1, keepdim=True)  # [..., 1]
    pick = lambda x: x.gather(-1, best).squeeze(-1)  # noqa: E731
    w, h, t = pick(wu), pick(hv), pick(theta)
    mu = (pick(pu.amax(-1)) + pick(pu.amin(-1))) / 2
    mv = (pick(pv.amax(-1)) + pick(pv.amin(-1))) / 2
    ub = u.gather(-2, best[..., None].expand(*best.shape, 2)).squeeze(-2)
    vb = v.gather(-2, best[..., None].expand(*best.shape, 2)).squeeze(-2)
    c = centre.squeeze(-2) + mu[..., None] * ub + mv[..., None] * vb
    out = torch.stack([c[..., 0], c[..., 1], w, h, t], -1)
    return regularize(out, version).to(dtype)


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
