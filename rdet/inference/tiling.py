"""Sliding windows over a scene of any size, and merging window detections back into one scene.

Grid (as MMRotate's ``get_sliding_window`` and the DOTA splitter): along each axis windows of ``tile``
pixels start every ``tile - overlap`` pixels; when the last regular window stops short of the border, one
more window is placed flush with the border, so every pixel of the scene is covered and every window lies
inside the scene (no padding, except that an axis shorter than ``tile`` gets one window of the scene's length,
which the backend pads at the bottom/right to its input size). Example: a 2500 x 1800 scene with tile 1024
and overlap 200 (stride 824) gets x starts ``0, 824, 1476`` and y starts ``0, 776``: 6 windows.

Coordinates are continuous (pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``, as :mod:`rdet.data.transforms`),
so a box found in a window at offset ``(x0, y0)`` maps back by adding ``(x0, y0)`` to its centre, exactly.

Merging (:func:`merge_detections`): class-wise exact rotated NMS over all windows (``rdet.ops``), then a
border rule for what NMS cannot see: an object cut by a window border is seen whole by a neighbouring
window (objects smaller than the overlap always are), but the cut part's box may overlap the whole box by
less than the NMS threshold (a sliver). A box that touches an *inner* window border (one that is not the
scene border) is dropped when it lies mostly (IoF >= ``border_iof``) inside a larger box of the same class
found by another window.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from rdet.boxes import obb2hbox
from rdet.ops import batched_nms_rotated, box_iou_rotated


@dataclass(frozen=True)
class Window:
    """A window of the scene, in scene pixels: ``[x, x + w) x [y, y + h)``, read at ``scale``.

    ``out_w x out_h`` is the size of the window after resizing by ``scale`` (the network sees that, padded).
    """

    x: int
    y: int
    w: int
    h: int
    scale: float = 1.0
    out_w: int = 0
    out_h: int = 0

    @property
    def sx(self) -> float:
        """Resize factor along x (output pixels per scene pixel)."""
        return self.out_w / self.w

    @property
    def sy(self) -> float:
        return self.out_h / self.h


def check_tiling(tile: int, overlap: int) -> None:
    """Raise ``ValueError`` naming the argument unless ``tile > overlap >= 0`` and ``tile >= 32``."""
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 32:
        raise ValueError(f"tile must be an integer >= 32 pixels, got {tile!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise ValueError(f"overlap must be an integer >= 0 pixels, got {overlap!r}")
    if tile <= overlap:
        raise ValueError(f"tile ({tile}) must be larger than overlap ({overlap}): windows would not advance")


def window_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis of ``length`` pixels (see the module docstring).

    Examples: ``window_starts(2500, 1024, 200) == [0, 824, 1476]``; ``window_starts(900, 1024, 200) == [0]``.
    """
    check_tiling(tile, overlap)
    if length <= 0:
        raise ValueError(f"scene length must be positive, got {length}")
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def tile_windows(width: int, height: int, tile: int = 1024, overlap: int = 200, scale: float = 1.0) -> list[Window]:
    """All windows of a ``width x height`` scene, row by row (y outer, x inner).

    With ``scale != 1`` the grid is laid on the scene resized by ``scale`` (what the network sees has the
    ``tile``/``overlap`` sizes), so windows measure about ``tile / scale`` scene pixels.
    """
    check_tiling(tile, overlap)
    if width <= 0 or height <= 0:
        raise ValueError(f"scene size must be positive, got {width} x {height}")
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scales must be positive numbers, got {scale!r}")
    if scale == 1.0:
        return [
            Window(x, y, min(tile, width), min(tile, height), 1.0, min(tile, width), min(tile, height))
            for y in window_starts(height, tile, overlap)
            for x in window_starts(width, tile, overlap)
        ]
    t, o = round(tile / scale), round(overlap / scale)
    if t < 32 or t <= o:
        raise ValueError(
            f"scale {scale}: tile {tile} / overlap {overlap} become {t} / {o} scene pixels; "
            f"a window needs >= 32 pixels and more than the overlap"
        )
    wins = []
    for y in window_starts(height, t, o):
        for x in window_starts(width, t, o):
            w, h = min(t, width), min(t, height)
            wins.append(Window(x, y, w, h, scale, max(round(w * scale), 1), max(round(h * scale), 1)))
    return wins


def _axis_count(length: int, tile: int, overlap: int) -> int:
    """``len(window_starts(length, tile, overlap))`` without building the list."""
    return 1 if length <= tile else -(-(length - tile) // (tile - overlap)) + 1


def count_windows(
    width: int, height: int, tile: int = 1024, overlap: int = 200, scales: Sequence[float] = (1.0,)
) -> int:
    """Number of windows :func:`tile_windows` gives over all ``scales``, by arithmetic alone (for budgets: how
    much work a scene is before any pixel is read). Example: 2500 x 1800, tile 1024, overlap 200 -> 6."""
    check_tiling(tile, overlap)
    if width <= 0 or height <= 0:
        raise ValueError(f"scene size must be positive, got {width} x {height}")
    total = 0
    for scale in scales:
        if not (isinstance(scale, (int, float)) and scale > 0 and math.isfinite(scale)):
            raise ValueError(f"scales must be positive numbers, got {scale!r}")
        t, o = (tile, overlap) if scale == 1.0 else (round(tile / scale), round(overlap / scale))
        if t < 32 or t <= o:
            raise ValueError(f"scale {scale}: tile {tile} / overlap {overlap} become {t} / {o} scene pixels")
        total += _axis_count(width, t, o) * _axis_count(height, t, o)
    return total


def batched(items: Sequence, size: int) -> Iterator[list]:
    """Consecutive chunks of ``size`` items (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"batch must be >= 1, got {size}")
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def resize_window(pixels: np.ndarray, window: Window) -> np.ndarray:
    """Resize a window's pixels ``[h, w, 3]`` to ``[out_h, out_w, 3]`` (no-op at scale 1)."""
    if pixels.shape[:2] == (window.out_h, window.out_w):
        return pixels
    interp = cv2.INTER_AREA if window.scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(pixels, (window.out_w, window.out_h), interpolation=interp)


def pad_image(image: np.ndarray, height: int, width: int, value: Sequence[float] = (0, 0, 0)) -> np.ndarray:
    """Pad ``image [h, w, C]`` at the bottom/right to ``[height, width, C]`` (coordinates are unchanged)."""
    h, w = image.shape[:2]
    if h > height or w > width:
        raise ValueError(f"cannot pad a {w}x{h} image to {width}x{height}")
    if (h, w) == (height, width):
        return image
    out = np.empty((height, width) + image.shape[2:], image.dtype)
    out[...] = np.asarray(value, image.dtype)
    out[:h, :w] = image
    return out


def window_to_scene(boxes: Tensor, window: Window) -> Tensor:
    """Map boxes ``[N, 5]`` from window input pixels to scene pixels.

    At scale 1 this adds the offset to the centre (exact). With resizing, centres are divided by the per-axis
    factors and sizes by their geometric mean (the factors differ by rounding only, below half a pixel).
    """
    if window.out_w == window.w and window.out_h == window.h:
        shift = boxes.new_tensor([window.x, window.y])
        return torch.cat([boxes[:, :2] + shift, boxes[:, 2:]], 1)
    sx, sy = window.sx, window.sy
    s = math.sqrt(sx * sy)
    cx = boxes[:, 0:1] / sx + window.x
    cy = boxes[:, 1:2] / sy + window.y
    return torch.cat([cx, cy, boxes[:, 2:4] / s, boxes[:, 4:]], 1)


def touches_inner_border(boxes: Tensor, window: Window, width: int, height: int, margin: float = 2.0) -> Tensor:
    """Bool ``[N]``: the box (scene pixels) reaches within ``margin`` of a border of ``window`` that is not a
    border of the ``width x height`` scene, i.e. the object may be cut by the window."""
    x1, y1, x2, y2 = obb2hbox(boxes).unbind(1)
    out = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    if window.x > 0:
        out |= x1 <= window.x + margin
    if window.y > 0:
        out |= y1 <= window.y + margin
    if window.x + window.w < width:
        out |= x2 >= window.x + window.w - margin
    if window.y + window.h < height:
        out |= y2 >= window.y + window.h - margin
    return out


def merge_detections(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    iou_thr: float,
    cut: Tensor | None = None,
    window_ids: Tensor | None = None,
    border_iof: float = 0.7,
) -> Tensor:
    """Indices of the detections kept when merging windows (see the module docstring).

    Args:
        boxes (Tensor[N, 5]): scene pixels. scores (Tensor[N]), labels (Tensor[N] int64).
        iou_thr: class-wise NMS threshold (a box is dropped when IoU > thr with a better one of its class).
        cut (Tensor[N] bool): boxes touching an inner border of their window (:func:`touches_inner_border`);
            ``None`` skips the border rule.
        window_ids (Tensor[N] int64): the window each box came from (needed with ``cut``).
        border_iof: a cut box is dropped when ``area(cut & other) / area(cut) >= border_iof`` for a larger
            kept box of the same class from another window.

    Returns:
        Tensor[K] int64: kept indices, by decreasing score.
    """
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    keep = batched_nms_rotated(boxes, scores, labels, iou_thr)
    if cut is None or window_ids is None:
        return keep
    kept_cut = cut[keep]
    if not kept_cut.any():
        return keep
    cand = keep[kept_cut]  # [K_cut] kept boxes that may be cut
    iof = box_iou_rotated(boxes[cand], boxes[keep], mode="iof")  # [K_cut, K]
    area = boxes[:, 2] * boxes[:, 3]
    covered = (
        (iof >= border_iof)
        & (labels[cand][:, None] == labels[keep][None])
        & (window_ids[cand][:, None] != window_ids[keep][None])
        & (area[keep][None] > area[cand][:, None])
    )
    drop = set(cand[covered.any(1)].tolist())
    if not drop:
        return keep
    return keep[torch.tensor([int(k) not in drop for k in keep], dtype=torch.bool, device=keep.device)]


__all__ = [
    "Window",
    "check_tiling",
    "window_starts",
    "tile_windows",
    "count_windows",
    "batched",
    "resize_window",
    "pad_image",
    "window_to_scene",
    "touches_inner_border",
    "merge_detections",
]
