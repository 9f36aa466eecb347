"""Delta (x, y, w, h, angle) box coder, MMRotate 1.x's ``DeltaXYWHTRBBoxCoder`` semantics.

Invariant (tested): ``decode(anchors, encode(anchors, gt)) == regularize(gt, version)`` for gt boxes whose
size ratio to the anchor is inside the ``wh_ratio_clip`` range.

* ``proj_xy``: centre offsets are measured in the anchor's rotated frame, else in image axes.
* ``edge_swap``: the target may swap w/h (adding pi/2 to the angle) when that gives the smaller angle delta,
  so a near-square target never asks for a 90 degree turn; decoded boxes are then put back to w >= h.
* the angle delta is wrapped to the version's period (``le90``/``le135``: into a pi-long range; ``oc``: as is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from rdet.boxes import regularize


def norm_angle(angle: Tensor, version: str) -> Tensor:
    """Wrap an angle (difference) into the version's range; ``oc`` leaves it as is (as MMRotate does)."""
    if version == "le90":
        return torch.remainder(angle + math.pi / 2, math.pi) - math.pi / 2
    if version == "le135":
        return torch.remainder(angle + math.pi / 4, math.pi) - math.pi / 4
    return angle


@dataclass
class DeltaXYWHTCoder:
    angle_version: str = "le90"
    edge_swap: bool = True
    proj_xy: bool = True
    norm_factor: float | None = None
    means: tuple[float, ...] = (0.0,) * 5
    stds: tuple[float, ...] = (1.0,) * 5
    wh_ratio_clip: float = 16 / 1000

    def encode(self, anchors: Tensor, gt: Tensor) -> Tensor:
        """Regression targets.

        Args:
            anchors (Tensor[N, 5]), gt (Tensor[N, 5]): boxes (gt is regularised to the version first).

        Returns:
            Tensor[N, 5]: normalised deltas ``(dx, dy, dw, dh, da)``.
        """
        anchors, gt = anchors.float(), regularize(gt.float(), self.angle_version)
        px, py, pw, ph, pt = anchors.unbind(-1)
        gx, gy, gw, gh, gt_ = gt.unbind(-1)
        if self.proj_xy:
            dx = (torch.cos(pt) * (gx - px) + torch.sin(pt) * (gy - py)) / pw
            dy = (-torch.sin(pt) * (gx - px) + torch.cos(pt) * (gy - py)) / ph
        else:
            dx, dy = (gx - px) / pw, (gy - py) / ph
        if self.edge_swap:
            d1 = norm_angle(gt_ - pt, self.angle_version)
            d2 = norm_angle(gt_ - pt + math.pi / 2, self.angle_version)
            first = d1.abs() < d2.abs()
            gw, gh = torch.where(first, gw, gh), torch.where(first, gh, gw)
            dt = torch.where(first, d1, d2)
        else:
            dt = norm_angle(gt_ - pt, self.angle_version)
        dw, dh = torch.log(gw / pw), torch.log(gh / ph)
        if self.norm_factor:
            dt = dt / (self.norm_factor * math.pi)
        deltas = torch.stack([dx, dy, dw, dh, dt], -1)
        return (deltas - deltas.new_tensor(self.means)) / deltas.new_tensor(self.stds)

    def decode(self, anchors: Tensor, deltas: Tensor) -> Tensor:
        """Boxes from deltas.

        Args:
            anchors (Tensor[..., 5]), deltas (Tensor[..., 5]).

        Returns:
            Tensor[..., 5]: boxes (w >= h and angle in the version's range when ``edge_swap``).
        """
        d = deltas * deltas.new_tensor(self.stds) + deltas.new_tensor(self.means)
        dx, dy, dw, dh, dt = d.unbind(-1)
        if self.norm_factor:
            dt = dt * (self.norm_factor * math.pi)
        px, py, pw, ph, pt = anchors.to(d.dtype).unbind(-1)
        max_ratio = abs(math.log(self.wh_ratio_clip))
        dw, dh = dw.clamp(-max_ratio, max_ratio), dh.clamp(-max_ratio, max_ratio)
        gw, gh = pw * dw.exp(), ph * dh.exp()
        if self.proj_xy:
            gx = dx * pw * torch.cos(pt) - dy * ph * torch.sin(pt) + px
            gy = dx * pw * torch.sin(pt) + dy * ph * torch.cos(pt) + py
        else:
            gx, gy = px + pw * dx, py + ph * dy
        gt = norm_angle(pt + dt, self.angle_version)
        if self.edge_swap:
            wide = gw > gh
            gw, gh, gt = torch.where(wide, gw, gh), torch.where(wide, gh, gw), torch.where(wide, gt, gt + math.pi / 2)
            gt = norm_angle(gt, self.angle_version)
        return torch.stack([gx, gy, gw, gh, gt], -1)


def clamp_centres(boxes: Tensor, sizes: Tensor) -> Tensor:
    """Clamp box centres into their image, as MMRotate does at test time (``decode(..., max_shape=img_shape)``:
    ``cx`` into ``[0, W - 1]``, ``cy`` into ``[0, H - 1]``, before NMS); sizes and angles are unchanged.

    Args:
        boxes (Tensor[B, N, 5]): decoded boxes.
        sizes (Tensor[B, 2] or Tensor[1, 2]): each image's ``(H, W)`` before padding (MMRotate's ``img_shape``).

    Returns:
        Tensor[B, N, 5].
    """
    limit = (sizes.to(boxes.dtype) - 1)[:, None]  # [B, 1, 2]: (H - 1, W - 1)
    cx = torch.minimum(boxes[..., 0].clamp(min=0), limit[..., 1])
    cy = torch.minimum(boxes[..., 1].clamp(min=0), limit[..., 0])
    return torch.cat([cx[..., None], cy[..., None], boxes[..., 2:]], -1)
