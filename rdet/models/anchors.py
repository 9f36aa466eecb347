"""Anchors as MMDetection's AnchorGenerator lays them out (MMRotate wraps them as angle-0 rotated boxes).

Per level of stride ``s``: anchors centred on ``(x * s, y * s)`` (centre offset 0), sizes
``s * octave_base_scale * 2**(k / scales_per_octave)`` for each ratio ``r = h / w`` (``w = size / sqrt(r)``,
``h = size * sqrt(r)``), ratio-major then scale: the order fixes the head's channel layout, so it must match
published weights.
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
    featmap_sizes: list[tuple[int, int]], strides, octave_base_scale: float, scales_per_octave: int, ratios, device=None
) -> list[Tensor]:
    """Rotated anchors (angle 0) for every level.

    Args:
        featmap_sizes: ``[(H_l, W_l)]`` per level.

    Returns:
        list of Tensor[H_l * W_l * A, 5]: ``(cx, cy, w, h, 0)``, location-major then anchor, matching the
        head's ``[B, A*K, H, W] -> [B, H*W*A, K]`` flattening.
    """
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


def num_base_anchors(scales_per_octave: int, ratios) -> int:
    return scales_per_octave * len(ratios)


def anchor_count(img_hw: tuple[int, int], strides) -> int:
    """Locations over all levels for an input of ``img_hw`` (helper for tests and FLOP counts)."""
    return sum(math.ceil(img_hw[0] / s) * math.ceil(img_hw[1] / s) for s in strides)
