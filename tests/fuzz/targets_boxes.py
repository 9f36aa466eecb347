"""Fuzz targets: rotated IoU and NMS (finite, symmetric, in [0, 1], compiled == pure PyTorch) and the Gaussian
losses (finite) on box pairs from ordinary to absurd."""

from __future__ import annotations

import math

import torch

from rdet import ops
from rdet.losses import gwd_loss, kld_loss

from .registry import SilentlyWrong, target
from .strategies import BOX_SETS, box_pair

ARGS = ["boxes1", "boxes2", "boxes"]


def _iou(a, b, aligned=False):
    return ops.box_iou_rotated(a, b, "iou", aligned)


def _tol(a: torch.Tensor, b: torch.Tensor) -> float:
    # float64 round-off of the clip grows with the coordinates' magnitude relative to the boxes' size
    scale = float(torch.cat([a, b])[:, :4].abs().max())
    smallest = float(torch.cat([a, b])[:, 2:4].clamp(min=1e-300).min())
    return 1e-6 + 1e-12 * scale / smallest


@target("boxes: IoU pair invariants", box_pair(), where=lambda ex: ARGS)
def iou_pair(example) -> None:
    a = torch.tensor([example[0]], dtype=torch.float64)
    b = torch.tensor([example[1]], dtype=torch.float64)
    ab = _iou(a, b).item()
    ba = _iou(b, a).item()
    with ops.reference_only():
        ref = _iou(a, b).item()
    if not (math.isfinite(ab) and 0.0 <= ab <= 1.0):
        raise SilentlyWrong(f"IoU {ab} outside [0, 1]")
    tol = _tol(a, b)
    if abs(ab - ba) > tol:
        raise SilentlyWrong(f"asymmetric IoU {ab} vs {ba}")
    if abs(ab - ref) > max(tol, 1e-5):
        raise SilentlyWrong(f"compiled {ab} vs pure PyTorch {ref}")
    w, h = example[0][2], example[0][3]
    if w > 1e-3 and h > 1e-3 and max(abs(example[0][0]), abs(example[0][1])) / min(w, h) < 1e6:
        self_iou = _iou(a, a).item()
        if abs(self_iou - 1.0) > 1e-6:
            raise SilentlyWrong(f"IoU of a box with itself is {self_iou}")


@target("boxes: NMS compiled == pure PyTorch", BOX_SETS, where=lambda ex: ARGS)
def nms(example) -> None:
    boxes = torch.tensor(example, dtype=torch.float64).reshape(-1, 5)
    g = torch.Generator().manual_seed(len(example))
    scores = torch.rand(boxes.shape[0], generator=g, dtype=torch.float64)
    keep = ops.nms_rotated(boxes, scores, 0.3)
    with ops.reference_only():
        ref = ops.nms_rotated(boxes, scores, 0.3)
    if len(set(keep.tolist())) != len(keep) or not bool((scores[keep][:-1] >= scores[keep][1:]).all()):
        raise SilentlyWrong(f"kept indices not unique / not by score: {keep.tolist()}")
    if keep.tolist() != ref.tolist():
        iou = _iou(boxes, boxes)
        if not bool(((iou - 0.3).abs() < 1e-6).any()):  # a tie at the threshold may go either way
            raise SilentlyWrong(f"compiled kept {keep.tolist()}, pure PyTorch {ref.tolist()}")


@target("losses: KLD/GWD finite on box pairs", box_pair(), where=lambda ex: ["pred", "target"])
def losses(example) -> None:
    p = torch.tensor([example[0]], dtype=torch.float32)
    t = torch.tensor([example[1]], dtype=torch.float32)
    if not bool(torch.isfinite(torch.cat([p, t])).all()) or bool((torch.cat([p, t])[:, 2:4] < 0).any()):
        return  # the losses take decoded boxes, finite with non-negative sides
    for name, v in (
        ("kld", kld_loss(p, t)),
        ("kld-stable", kld_loss(p, t, stable=True)),
        ("gwd", gwd_loss(p, t)),
        ("gwd-v1", gwd_loss(p, t, stable=False, normalize=False)),
    ):
        if not bool(torch.isfinite(v).all()):
            raise SilentlyWrong(f"{name} = {v.item()} for {example}")
