"""R3Det's feature refinement module (FRM) in plain PyTorch: bilinear re-sampling at refined boxes.

Each location of a level carries one refined box (the previous stage's best box there). The FRM
re-encodes that box's position into the location's feature by bilinear interpolation (R3Det, Yang et al.,
AAAI 2021, section "Feature Refinement Module")::

    f   = conv_5x1(conv_1x5(x)) + conv_1x1(x)
    out = x + f + sum_k bilinear(f, p_k)          p_k: the box centre (points=1) or centre + 4 corners (points=5)

which is mmcv's ``rotated_feature_align(f, boxes, 1 / stride, points)`` added to ``x``, as MMRotate's
``FRM`` (dev-1.x ``models/layers/align.py``) and 0.x's ``FeatureRefineModule`` compute it. Parameter names
(``conv_5_1``, ``conv_1_5``, ``conv_1_1``) follow them so checkpoints load.

Two details reproduce what the published models computed (mmcv's kernel, ``rotated_feature_align``):

* ``points = 1``: MMRotate calls the op with its default ``points=1``, so only the centre is sampled.
* ``swap_xy = True``: the kernel reads ``box[0]`` as the row (y) and ``box[1]`` as the column (x) although
  the boxes are ``(cx, cy, ...)``; the centre is therefore sampled at the *transposed* position
  ``(x, y) = (cy, cx) / stride`` (corners are offset from that point with the box's own orientation).
  On a square feature map this is the mirror location across the diagonal. ``swap_xy=False`` samples
  where the box is.

Sampling semantics (mmcv's ``bilinear_interpolate``): positions are in feature-map pixel indices
(``position / stride``, pixel centres at integers); a point with ``y < -1``, ``y > H``, ``x < -1`` or
``x > W`` contributes 0; otherwise the coordinates are clamped into ``[0, H-1] x [0, W-1]`` and
interpolated bilinearly. ``grid_sample(align_corners=True, padding_mode='border')`` is exactly that clamp,
plus an explicit in-range mask. Differentiable in the features (the boxes are detached upstream) and
exportable to ONNX (``GridSample``, opset >= 16).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FRM_POINTS = (1, 5)


def sample_points(boxes: Tensor, points: int = 1, swap_xy: bool = True) -> Tensor:
    """Where the FRM samples for each box, in the boxes' pixel units.

    Args:
        boxes (Tensor[..., 5]): ``(cx, cy, w, h, angle)``.
        points: 1 (centre) or 5 (centre, then ``c+u+v, c-u+v, c-u-v, c+u-v`` with
            ``u = (w/2)(cos a, sin a)``, ``v = (h/2)(-sin a, cos a)``, mmcv's order).
        swap_xy: take the centre as ``(cy, cx)``, as mmcv's kernel does (see the module docstring).

    Returns:
        Tensor[..., points, 2]: ``(x, y)`` per point.
    """
    if points not in FRM_POINTS:
        raise ValueError(f"points must be one of {FRM_POINTS}, got {points}")
    cx, cy, w, h, a = boxes.unbind(-1)
    if swap_xy:
        cx, cy = cy, cx
    centre = torch.stack([cx, cy], -1)[..., None, :]  # [..., 1, 2]
    if points == 1:
        return centre
    cos, sin = torch.cos(a), torch.sin(a)
    u = torch.stack([cos * w / 2, sin * w / 2], -1)
    v = torch.stack([-sin * h / 2, cos * h / 2], -1)
    corners = torch.stack([u + v, -u + v, -u - v, u - v], -2)  # [..., 4, 2]
    return torch.cat([centre, centre + corners], -2)


def bilinear_sample(feat: Tensor, xy: Tensor) -> Tensor:
    """mmcv-style bilinear interpolation of ``feat`` at feature-pixel positions.

    Args:
        feat (Tensor[B, C, H, W]).
        xy (Tensor[B, H', W', 2]): ``(x, y)`` in pixel indices of ``feat``.

    Returns:
        Tensor[B, C, H', W']: zero where a point lies outside ``[-1, W] x [-1, H]``, else the bilinear value
        at the point clamped into the map.
    """
    h, w = feat.shape[-2:]
    x, y = xy.unbind(-1)
    inside = (x >= -1) & (x <= w) & (y >= -1) & (y <= h)  # [B, H', W']
    # align_corners=True: -1 and 1 are the centres of the first and last pixels; max(., 1) keeps a
    # one-pixel map (P7 of a small input) finite: any coordinate then clamps to pixel 0.
    grid = torch.stack([x * (2 / max(w - 1, 1)) - 1, y * (2 / max(h - 1, 1)) - 1], -1).float()
    # float32 positions: in half precision a 128-pixel map would lose ~0.06 pixel of position.
    out = F.grid_sample(feat.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return (out * inside[:, None].to(out.dtype)).to(feat.dtype)


def rotated_feature_align(feat: Tensor, boxes: Tensor, stride: float, points: int = 1, swap_xy: bool = True) -> Tensor:
    """``feat`` plus its bilinear samples at each location's box points (mmcv ``rotated_feature_align``).

    Args:
        feat (Tensor[B, C, H, W]).
        boxes (Tensor[B, H, W, 5]): one box per location, image pixels.
        stride: the level's stride (positions are divided by it).
        points, swap_xy: see :func:`sample_points`.

    Returns:
        Tensor[B, C, H, W]: ``feat + sum_k bilinear(feat, p_k / stride)``.
    """
    b, c, h, w = feat.shape
    if tuple(boxes.shape) != (b, h, w, 5):
        raise ValueError(
            f"boxes must be [B, H, W, 5] = {[b, h, w, 5]} for a feature map {list(feat.shape)}, got {list(boxes.shape)}"
        )
    pts = sample_points(boxes.float(), points, swap_xy) / stride  # [B, H, W, P, 2]
    sampled = bilinear_sample(feat, pts.reshape(b, h, w * points, 2))  # [B, C, H, W*P]
    return feat + sampled.reshape(b, c, h, w, points).sum(-1)


class FRM(nn.Module):
    """Feature refinement for every level: ``out_l = x_l + rotated_feature_align(f_l, boxes_l)``.

    Args:
        channels: feature channels (in = out).
        strides: one stride per level, matching the features given to ``forward``.
        points, swap_xy: see :func:`sample_points` (defaults: what the published models compute).
    """

    def __init__(self, channels: int, strides: tuple[int, ...], points: int = 1, swap_xy: bool = True):
        super().__init__()
        if points not in FRM_POINTS:
            raise ValueError(f"FRM points must be one of {FRM_POINTS}, got {points}")
        self.strides, self.points, self.swap_xy = tuple(strides), points, swap_xy
        self.conv_5_1 = nn.Conv2d(channels, channels, (5, 1), padding=(2, 0))
        self.conv_1_5 = nn.Conv2d(channels, channels, (1, 5), padding=(0, 2))
        self.conv_1_1 = nn.Conv2d(channels, channels, 1)
        for m in (self.conv_5_1, self.conv_1_5, self.conv_1_1):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)  # type: ignore[arg-type]  # Conv2d(bias=True)

    def forward(self, feats: list[Tensor], boxes: list[Tensor]) -> list[Tensor]:
        """``feats[l] (Tensor[B, C, H_l, W_l])``, ``boxes[l] (Tensor[B, H_l, W_l, 5])`` -> refined features."""
        if not len(feats) == len(boxes) == len(self.strides):
            raise ValueError(
                f"FRM got {len(feats)} feature levels and {len(boxes)} box levels for "
                f"{len(self.strides)} strides {self.strides}"
            )
        out = []
        for x, bx, s in zip(feats, boxes, self.strides):
            f = self.conv_5_1(self.conv_1_5(x)) + self.conv_1_1(x)
            out.append(x + rotated_feature_align(f, bx, s, self.points, self.swap_xy))
        return out
