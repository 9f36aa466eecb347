"""Anchors as MMDetection's AnchorGenerator lays them out (MMRotate wraps them as rotated boxes).

Per level of stride ``s``: anchors centred on ``(x * s, y * s)`` (centre offset 0), sizes
``s * octave_base_scale * 2**(k / scales_per_octave)`` for each ratio ``r = h / w`` (``w = size / sqrt(r)``,
``h = size * sqrt(r)``), ratio-major then scale: the order fixes the head's channel layout, so it must match
published weights.

Two conventions (``model.anchors.mmrotate_version``), and a checkpoint only decodes right with its own:

* ``'0.x'`` -- MMRotate 0.x (``RotatedAnchorGenerator(angles=[0.0])``), and dev-1.x with
  ``FakeRotatedAnchorGenerator(angle_version=None)``: every anchor is ``(cx, cy, w, h, 0)``. rdet computes
  these sizes exactly (float64, then float32), so anchors of one shape have identical sizes; MMDetection's
  go through ``x2 - x1`` in float32 and differ by up to 6e-5 px (only assignment ties notice, see
  docs/architecture.md "Assignment ties").
* ``'1.x'`` -- MMRotate dev-1.x's published configs, ``FakeRotatedAnchorGenerator(angle_version=...)``: the
  angle-0 boxes regularised to the coder's angle version (``RotatedBoxes.regularize_boxes``). ``le90`` /
  ``le135``: an anchor that is not strictly wider than tall becomes ``(cx, cy, h, w, -pi/2)`` (le135:
  ``+pi/2``): the tall ones *and the square ones*; ``oc``: every anchor becomes ``(cx, cy, h, w, -pi/2)``.
  "Square" is decided on MMDetection's float32 ``x2 - x1`` vs ``y2 - y1``, whose rounding makes about one
  square anchor in eight strictly wider, so it keeps angle 0 (which square anchors do depends on the location).
  Same rectangles, but the deltas are relative to the rotated frame, so this convention reproduces MMDetection's
  float32 arithmetic exactly (:func:`mmdet_grid_anchors`, bit-identical to MMRotate's anchors).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def base_anchors(stride: int, octave_base_scale: float, scales_per_octave: int, ratios) -> Tensor:
    """Anchors of one level centred at (0, 0).

    Returns:
        Tensor[A, 4]: ``(w, h)`` pairs repeated as ``(-w/2, -h/2, w/2, h/2)`` in xyxy.
    """
    scales = torch.tensor(
        [octave_base_scale * 2 ** (k / scales_per_octave) for k in range(scales_per_octave)], dtype=torch.float64
    )
    ratios = torch.tensor(list(ratios), dtype=torch.float64)
    h_ratios = ratios.sqrt()
    w_ratios = 1 / h_ratios
    ws = (stride * w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (stride * h_ratios[:, None] * scales[None, :]).reshape(-1)
    return torch.stack([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs], -1).float()


def grid_anchors(
    featmap_sizes: list[tuple[int, int]],
    strides,
    octave_base_scale: float,
    scales_per_octave: int,
    ratios,
    device=None,
    mmrotate_version: str = "0.x",
    angle_version: str = "le90",
) -> list[Tensor]:
    """Rotated anchors for every level, in the convention of ``mmrotate_version`` (module docstring).

    Args:
        featmap_sizes: ``[(H_l, W_l)]`` per level.
        mmrotate_version: ``'0.x'`` (angle 0, exact sizes) or ``'1.x'`` (regularised to ``angle_version``).
        angle_version: the coder's angle version (``'oc'``, ``'le90'``, ``'le135'``); read only for ``'1.x'``.

    Returns:
        list of Tensor[H_l * W_l * A, 5]: ``(cx, cy, w, h, angle)``, location-major then anchor, matching the
        head's ``[B, A*K, H, W] -> [B, H*W*A, K]`` flattening.
    """
    if mmrotate_version == "1.x":
        return [
            regularize_anchors(a, angle_version)
            for a in mmdet_grid_anchors(featmap_sizes, strides, octave_base_scale, scales_per_octave, ratios, device)
        ]
    if mmrotate_version != "0.x":
        raise ValueError(f"mmrotate_version must be '0.x' or '1.x', got {mmrotate_version!r}")
    out = []
    for (h, w), s in zip(featmap_sizes, strides):
        base = base_anchors(s, octave_base_scale, scales_per_octave, ratios).to(device)  # [A, 4]
        ys, xs = torch.meshgrid(
            torch.arange(h, device=device, dtype=torch.float32) * s,
            torch.arange(w, device=device, dtype=torch.float32) * s,
            indexing="ij",
        )
        centres = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)  # [HW, 2]
        a = base.shape[0]
        wh = base[:, 2:] - base[:, :2]  # [A, 2]
        c = centres[:, None, :].expand(-1, a, 2)
        boxes = torch.cat([c, wh[None].expand(c.shape[0], a, 2), torch.zeros(c.shape[0], a, 1, device=device)], -1)
        out.append(boxes.reshape(-1, 5))
    return out


def mmdet_grid_anchors(
    featmap_sizes: list[tuple[int, int]], strides, octave_base_scale: float, scales_per_octave: int, ratios, device=None
) -> list[Tensor]:
    """Angle-0 anchors computed as MMDetection's ``AnchorGenerator`` + ``hbox2rbox`` do, in float32: base corners
    ``(-w/2, -h/2, w/2, h/2)``, plus the shifts, then ``((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0)``.

    The rounding of ``x2 - x1`` is what decides which square anchors dev-1.x turns (module docstring).

    Returns:
        list of Tensor[H_l * W_l * A, 5] float32, bit-identical to MMRotate's.
    """
    scales = torch.tensor([octave_base_scale * 2 ** (k / scales_per_octave) for k in range(scales_per_octave)])
    h_ratios = torch.tensor(list(ratios), dtype=torch.float32).sqrt()
    w_ratios = 1 / h_ratios
    out = []
    for (h, w), s in zip(featmap_sizes, strides):
        ws = (s * w_ratios[:, None] * scales[None, :]).reshape(-1)
        hs = (s * h_ratios[:, None] * scales[None, :]).reshape(-1)
        base = torch.stack([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs], -1).to(device)  # [A, 4]
        ys, xs = torch.meshgrid(
            torch.arange(h, device=device) * s, torch.arange(w, device=device) * s, indexing="ij"
        )  # int64, as mmdet's arange(0, W) * stride
        xs, ys = xs.reshape(-1).float(), ys.reshape(-1).float()
        corners = (base[None] + torch.stack([xs, ys, xs, ys], -1)[:, None]).reshape(-1, 4)
        x1, y1, x2, y2 = corners.unbind(-1)
        out.append(torch.stack([(x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1, torch.zeros_like(x1)], -1))
    return out


def regularize_anchors(anchors: Tensor, angle_version: str) -> Tensor:
    """MMRotate dev-1.x ``RotatedBoxes.regularize_boxes(angle_version)`` of angle-0 anchors ``[N, 5]``.

    ``le90``/``le135`` (width longer): anchors with ``w > h`` keep angle 0, the others become ``(h, w, -pi/2)``
    (``le135``: ``+pi/2``); ``oc``: every anchor becomes ``(h, w, -pi/2)``.
    """
    if angle_version not in ("oc", "le90", "le135"):
        raise ValueError(f"angle_version must be 'oc', 'le90' or 'le135', got {angle_version!r}")
    cx, cy, w, h, t = anchors.unbind(-1)
    if angle_version == "oc":
        turn = torch.ones_like(w, dtype=torch.bool)
        angle = -math.pi / 2
    else:
        turn = ~(w > h)
        angle = -math.pi / 2 if angle_version == "le90" else math.pi / 2
    t = torch.where(turn, torch.full_like(t, angle), t)
    return torch.stack([cx, cy, torch.where(turn, h, w), torch.where(turn, w, h), t], -1)


def num_base_anchors(scales_per_octave: int, ratios) -> int:
    return scales_per_octave * len(ratios)


def anchor_count(img_hw: tuple[int, int], strides) -> int:
    """Locations over all levels for an input of ``img_hw`` (helper for tests and FLOP counts)."""
    return sum(math.ceil(img_hw[0] / s) * math.ceil(img_hw[1] / s) for s in strides)
