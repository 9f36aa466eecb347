"""Augmentations that keep rotated boxes exact.

Transforms act on a :class:`Sample`: an image (numpy ``[H, W, C]``, RGB) and the object *polygons*
(``[N, 8]``). Every geometric transform maps the polygon corners with the same map it applies to the
pixels, and boxes are fitted afterwards (``rdet.boxes.poly2obb``), so for the similarity transforms here
(flips, 90-degree turns, rotations, uniform resizing) the fitted box equals the transformed box exactly.
Only a resize with different x/y factors turns rectangles into parallelograms; the fit then returns the
minimum-area rectangle around them (MMRotate's ``RResize`` instead scales w and h by ``sqrt(sx*sy)``).

Coordinates are continuous: pixel ``(i, j)`` (column, row) covers ``[i, i+1) x [j, j+1)``, so the image
spans ``[0, W] x [0, H]``, a horizontal flip maps ``x -> W - x`` (MMRotate 1.x; 0.x used ``W - 1 - x``),
and a resize maps ``x -> x * W'/W`` (OpenCV's half-pixel-centre resize agrees).

Randomness comes only from the ``np.random.Generator`` passed to each call: same generator state, same
result (the dataset seeds one per item and epoch).

Objects leaving the image (``RandomRotate`` only; the other transforms keep the whole image): an object
is kept iff the centre of its fitted box lies strictly inside the output image, and its box is not
clipped: the rule of MMRotate 1.x's ``Rotate`` (``RotatedBoxes.is_inside``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch

from rdet.boxes import poly2obb


@dataclass
class Sample:
    """One training example flowing through the transforms.

    Attributes:
        image (np.ndarray[H, W, C]): RGB, uint8 (normalisation belongs to the model).
        polygons (np.ndarray[N, 8] float64): object corners in pixels.
        labels (np.ndarray[N] int64), difficult (np.ndarray[N] bool): per object.
        meta: what was applied (``flip``, ``rot90``, ``rotate``, ``scale_factor``), for inverting predictions.
    """

    image: np.ndarray
    polygons: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    meta: dict = field(default_factory=dict)

    def select(self, keep: np.ndarray) -> Sample:
        return replace(self, polygons=self.polygons[keep], labels=self.labels[keep], difficult=self.difficult[keep])


# ---------------------------------------------------------------- polygon and box maps (pure functions)
def flip_polygons(polys: np.ndarray, width: float, height: float, direction: str) -> np.ndarray:
    """Mirror polygons ``[N, 8]``: ``'horizontal'`` (x -> W - x), ``'vertical'`` (y -> H - y) or
    ``'diagonal'`` (both, i.e. MMRotate's diagonal flip = a 180-degree turn)."""
    out = np.array(polys, dtype=np.float64, copy=True)
    if direction not in ("horizontal", "vertical", "diagonal"):
        raise ValueError(f"direction must be 'horizontal', 'vertical' or 'diagonal', got {direction!r}")
    if direction in ("horizontal", "diagonal"):
        out[:, 0::2] = width - out[:, 0::2]
    if direction in ("vertical", "diagonal"):
        out[:, 1::2] = height - out[:, 1::2]
    return out


def flip_boxes(boxes: torch.Tensor, width: float, height: float, direction: str) -> torch.Tensor:
    """``flip_polygons`` for rotated boxes ``[N, 5]`` (angle not regularised)."""
    out = boxes.clone()
    if direction in ("horizontal", "diagonal"):
        out[:, 0] = width - boxes[:, 0]
    if direction in ("vertical", "diagonal"):
        out[:, 1] = height - boxes[:, 1]
    if direction in ("horizontal", "vertical"):
        out[:, 4] = -boxes[:, 4]  # a mirror reverses the angle; a rectangle is symmetric about its axes
    elif direction != "diagonal":
        raise ValueError(f"direction must be 'horizontal', 'vertical' or 'diagonal', got {direction!r}")
    return out


def rot90_polygons(polys: np.ndarray, width: float, height: float, k: int) -> np.ndarray:
    """Turn polygons with the image by ``k`` quarter turns clockwise on screen (``np.rot90(img, -k)``);
    ``(x, y) -> (H - y, x)`` for one turn. The output image is ``H x W`` for odd ``k``."""
    out = np.array(polys, dtype=np.float64, copy=True)
    for _ in range(k % 4):
        x, y = out[:, 0::2].copy(), out[:, 1::2].copy()
        out[:, 0::2], out[:, 1::2] = height - y, x
        width, height = height, width
    return out


def rot90_boxes(boxes: torch.Tensor, width: float, height: float, k: int) -> torch.Tensor:
    """``rot90_polygons`` for rotated boxes ``[N, 5]``: the centre moves, the angle grows by ``k * pi/2``."""
    out = boxes.clone()
    for _ in range(k % 4):
        out = torch.stack([height - out[:, 1], out[:, 0], out[:, 2], out[:, 3], out[:, 4] + math.pi / 2], -1)
        width, height = height, width
    return out


def rotation_matrix(angle_deg: float, cx: float, cy: float) -> np.ndarray:
    """``[2, 3]`` affine map turning points by ``angle_deg`` clockwise on screen about ``(cx, cy)``
    (y axis down, so it is the usual counter-clockwise matrix of y-up maths)."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, cx - c * cx + s * cy], [s, c, cy - s * cx - c * cy]], dtype=np.float64)


def rotate_polygons(polys: np.ndarray, angle_deg: float, cx: float, cy: float) -> np.ndarray:
    """Turn polygons ``[N, 8]`` by ``angle_deg`` clockwise on screen about ``(cx, cy)``."""
    m = rotation_matrix(angle_deg, cx, cy)
    pts = np.asarray(polys, dtype=np.float64).reshape(-1, 4, 2)
    return (pts @ m[:, :2].T + m[:, 2]).reshape(-1, 8)


def rotate_boxes(boxes: torch.Tensor, angle_deg: float, cx: float, cy: float) -> torch.Tensor:
    """``rotate_polygons`` for rotated boxes ``[N, 5]``: centre turned, angle + ``radians(angle_deg)``."""
    m = torch.from_numpy(rotation_matrix(angle_deg, cx, cy)).to(boxes.dtype)
    ctr = boxes[:, :2] @ m[:, :2].T + m[:, 2]
    return torch.cat([ctr, boxes[:, 2:4], boxes[:, 4:5] + math.radians(angle_deg)], -1)


def resize_polygons(polys: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Scale polygons ``[N, 8]``: ``x * sx``, ``y * sy``."""
    return np.asarray(polys, dtype=np.float64) * np.array([sx, sy] * 4)


def resize_boxes(boxes: torch.Tensor, scale: float) -> torch.Tensor:
    """Uniformly scale rotated boxes ``[N, 5]`` (centre and sides times ``scale``)."""
    return torch.cat([boxes[:, :4] * scale, boxes[:, 4:]], -1)


def _fit(polys: np.ndarray) -> np.ndarray:
    return poly2obb(torch.from_numpy(np.asarray(polys, np.float64)).reshape(-1, 8), "le90").numpy()


# ---------------------------------------------------------------- transforms
class Compose:
    """Apply transforms in order: ``Compose([Resize(...), RandomFlip(...)])(sample, rng)``."""

    def __init__(self, transforms: list):
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for t in self.transforms:
            sample = t(sample, rng)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


@dataclass
class Resize:
    """Resize to ``size = (width, height)``; with ``keep_ratio`` (MMRotate's ``RResize``) the image is scaled
    by ``min(W'/W, H'/H)`` to fit inside ``size``. Bilinear for the image; polygons scaled exactly by the
    realised per-axis factors (``new_w / W``, ``new_h / H``)."""

    size: tuple[int, int] = (1024, 1024)
    keep_ratio: bool = True

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h, w = sample.image.shape[:2]
        if self.keep_ratio:
            s = min(self.size[0] / w, self.size[1] / h)
            nw, nh = max(1, int(w * s + 0.5)), max(1, int(h * s + 0.5))
        else:
            nw, nh = self.size
        img = sample.image if (nw, nh) == (w, h) else cv2.resize(sample.image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        img = img.reshape(nh, nw, -1)
        sx, sy = nw / w, nh / h
        meta = {**sample.meta, "scale_factor": (sx, sy)}
        return replace(sample, image=img, polygons=resize_polygons(sample.polygons, sx, sy), meta=meta)


@dataclass
class RandomFlip:
    """Flip with probability ``horizontal``/``vertical``/``diagonal`` each (at most one flip per call; the
    seed configs use 0.25 each, leaving 0.25 for no flip), like MMDet's ``RandomFlip`` with a ratio list."""

    horizontal: float = 0.25
    vertical: float = 0.25
    diagonal: float = 0.25

    def __post_init__(self) -> None:
        p = (self.horizontal, self.vertical, self.diagonal)
        if min(p) < 0 or sum(p) > 1 + 1e-9:
            raise ValueError(f"flip probabilities must be >= 0 and sum to <= 1, got {p}")

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        p = [self.horizontal, self.vertical, self.diagonal]
        choice = rng.choice(4, p=p + [max(0.0, 1 - sum(p))])
        if choice == 3:
            return sample
        direction = ("horizontal", "vertical", "diagonal")[choice]
        h, w = sample.image.shape[:2]
        flip_code = {"horizontal": 1, "vertical": 0, "diagonal": -1}[direction]
        img = cv2.flip(sample.image, flip_code).reshape(sample.image.shape)
        return replace(
            sample,
            image=img,
            polygons=flip_polygons(sample.polygons, w, h, direction),
            meta={**sample.meta, "flip": direction},
        )


@dataclass
class RandomRot90:
    """With probability ``prob``, turn by ``k`` quarter turns clockwise, ``k`` drawn from ``ks``. Exact
    pixel permutation; the output is ``H x W`` for odd ``k``."""

    prob: float = 0.5
    ks: tuple[int, ...] = (1, 2, 3)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.prob:
            return sample
        k = int(self.ks[rng.integers(len(self.ks))])
        h, w = sample.image.shape[:2]
        img = np.ascontiguousarray(np.rot90(sample.image, -k))
        return replace(
            sample, image=img, polygons=rot90_polygons(sample.polygons, w, h, k), meta={**sample.meta, "rot90": k}
        )


@dataclass
class RandomRotate:
    """MMRotate's ``RandomRotate`` ("RR" in the HRSC/DOTA configs): with probability ``prob`` turn the image
    by an angle uniform in ``[-angle_range, angle_range)`` degrees (clockwise positive) about its centre, on
    a canvas of the same size filled with ``border_value``. If any object's label is in ``rect_classes``
    (MMRotate's ``rect_obj_labels``, e.g. storage tanks and roundabouts in DOTA) the angle is drawn from
    {90, 180, -90, -180} instead. Objects: the centre rule of the module docstring."""

    prob: float = 0.5
    angle_range: float = 180.0
    rect_classes: tuple[int, ...] = ()
    border_value: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        if not 0 < self.angle_range <= 180:
            raise ValueError(f"angle_range must lie in (0, 180], got {self.angle_range}")

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.prob:
            return sample
        angle = self.angle_range * (2 * rng.random() - 1)
        if self.rect_classes and np.isin(sample.labels, self.rect_classes).any():
            angle = float((90, 180, -90, -180)[rng.integers(4)])
        return rotate(sample, angle, self.border_value)


def rotate(sample: Sample, angle_deg: float, border_value=(0, 0, 0)) -> Sample:
    """Turn a sample by ``angle_deg`` clockwise about the image centre (same canvas size), then keep the
    objects whose fitted box centre is strictly inside the image (module docstring)."""
    h, w = sample.image.shape[:2]
    m = rotation_matrix(angle_deg, w / 2, h / 2)
    # cv2 indexes pixel centres at integers: shift by half a pixel around the continuous-coordinate map.
    m_px = m.copy()
    m_px[:, 2] += m[:, :2].sum(1) * 0.5 - 0.5
    channels = sample.image.shape[2] if sample.image.ndim == 3 else 1
    border = tuple(float(v) for v in border_value)[:channels] if channels > 1 else float(border_value[0])
    img = cv2.warpAffine(
        sample.image, m_px, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border
    ).reshape(sample.image.shape)
    polys = rotate_polygons(sample.polygons, angle_deg, w / 2, h / 2)
    ctr = _fit(polys)[:, :2]
    keep = (ctr[:, 0] > 0) & (ctr[:, 0] < w) & (ctr[:, 1] > 0) & (ctr[:, 1] < h)
    out = replace(sample, image=img, polygons=polys, meta={**sample.meta, "rotate": angle_deg})
    return out.select(keep)


@dataclass
class PhotometricJitter:
    """Random brightness (add ``U(-brightness, brightness)``), contrast (times ``U(*contrast)``), saturation
    (HSV S times ``U(*saturation)``) and hue (shift ``U(-hue, hue)`` degrees), each applied with probability
    ``prob``, contrast before or after the colour changes at random (MMDet's ``PhotoMetricDistortion``,
    without its channel swap). Input and output uint8 RGB."""

    brightness: float = 32.0
    contrast: tuple[float, float] = (0.5, 1.5)
    saturation: tuple[float, float] = (0.5, 1.5)
    hue: float = 18.0
    prob: float = 0.5

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        img = sample.image
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"PhotometricJitter needs a uint8 RGB image [H, W, 3], got {img.dtype} {img.shape}")
        x = img.astype(np.float32)
        if rng.random() < self.prob:
            x += rng.uniform(-self.brightness, self.brightness)
        contrast_first = rng.random() < 0.5
        c = rng.uniform(*self.contrast) if rng.random() < self.prob else None
        if contrast_first and c is not None:
            x *= c
        s = rng.uniform(*self.saturation) if rng.random() < self.prob else None
        dh = rng.uniform(-self.hue, self.hue) if rng.random() < self.prob else None
        if s is not None or dh is not None:
            hsv = cv2.cvtColor(np.clip(x, 0, 255) / 255.0, cv2.COLOR_RGB2HSV)  # float: H in [0, 360)
            if s is not None:
                hsv[..., 1] = np.clip(hsv[..., 1] * s, 0, 1)
            if dh is not None:
                hsv[..., 0] = (hsv[..., 0] + dh) % 360
            x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0
        if not contrast_first and c is not None:
            x *= c
        return replace(sample, image=np.clip(np.rint(x), 0, 255).astype(np.uint8))
