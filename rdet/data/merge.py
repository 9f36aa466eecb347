"""Merge patch-level detections back into full images, and write DOTA Task1 submission files.

Patch names say where a patch came from (``rdet.data.split``):

* ``P0706__1024__0___824``: MMRotate naming, the middle field is the window size, the patch is a plain
  crop, so a detection maps back by adding the offset ``(0, 824)``;
* ``P0706__0.5__0___824``: DOTA devkit naming, the middle field is the rate the image was resized by
  before cropping, so a detection maps back by ``(p + offset) / rate``.

``naming='auto'`` tells them apart by the middle field: a decimal point or a value below 16 is a rate
(no patch is smaller than 16 px, no one resizes by 16x). After mapping, detections of one image are
de-duplicated class by class with exact rotated NMS (``rdet.ops.batched_nms_rotated``; MMRotate merges
DOTA patches with IoU threshold 0.1).

The Task1 reader/writer live in :mod:`rdet.data.task1` (re-exported here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rdet.boxes import obb2poly, poly2obb
from rdet.data.task1 import Task1Detections, parse_task1, read_task1, write_task1
from rdet.ops import batched_nms_rotated

_NAME = re.compile(r"^(?P<image>.+?)__(?P<scale>\d+(?:\.\d*)?)__(?P<x>\d+)___(?P<y>\d+)$")
NAMINGS = ("auto", "size", "rate")


@dataclass(frozen=True)
class PatchName:
    """A parsed patch name: source image id, offset ``(x, y)`` in the (rate-scaled) image, and ``rate``."""

    image_id: str
    x: int
    y: int
    rate: float
    scale_field: str


def parse_patch_name(name: str, naming: str = "auto") -> PatchName:
    """Parse ``<image>__<size or rate>__<x>___<y>`` (an extension, if any, is ignored).

    Args:
        naming: ``'size'`` (MMRotate), ``'rate'`` (devkit) or ``'auto'`` (module docstring).
    """
    if naming not in NAMINGS:
        raise ValueError(f"naming must be one of {NAMINGS}, got {naming!r}")
    stem = Path(name).stem if Path(name).suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".bmp", ".txt") else name
    m = _NAME.match(stem)
    if m is None:
        raise ValueError(f"patch name {name!r} is not <image>__<size|rate>__<x>___<y> (e.g. P0706__1024__0___824)")
    field = m["scale"]
    value = float(field)
    is_rate = naming == "rate" or (naming == "auto" and ("." in field or value < 16))
    if is_rate and value <= 0:
        raise ValueError(f"patch name {name!r}: rate must be positive")
    return PatchName(m["image"], int(m["x"]), int(m["y"]), value if is_rate else 1.0, field)


def patch_to_image(boxes: Tensor, patch: PatchName) -> Tensor:
    """Map rotated boxes ``[N, 5]`` from patch pixels to pixels of the original image."""
    shift = boxes.new_tensor([patch.x, patch.y])
    return torch.cat([(boxes[:, :2] + shift) / patch.rate, boxes[:, 2:4] / patch.rate, boxes[:, 4:]], -1)


def merge_patch_detections(
    patch_dets: dict[str, tuple[Tensor, Tensor, Tensor]], iou_threshold: float = 0.1, naming: str = "auto"
) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
    """Patch detections -> full-image detections with class-wise rotated NMS.

    Args:
        patch_dets: ``{patch name: (boxes Tensor[N, 5], scores Tensor[N], labels Tensor[N] int)}``, boxes in
            patch pixels.
        iou_threshold: NMS threshold (a box is dropped when IoU > threshold with a kept box of its class).

    Returns:
        ``{image id: (boxes Tensor[K, 5], scores Tensor[K], labels Tensor[K])}``, by decreasing score.
    """
    grouped: dict[str, list] = {}
    for name, (boxes, scores, labels) in patch_dets.items():
        if not (boxes.ndim == 2 and boxes.shape[1] == 5 and scores.shape == (len(boxes),) == labels.shape):
            raise ValueError(
                f"{name}: expected boxes [N, 5], scores [N], labels [N], got "
                f"{list(boxes.shape)}, {list(scores.shape)}, {list(labels.shape)}"
            )
        p = parse_patch_name(name, naming)
        grouped.setdefault(p.image_id, []).append((patch_to_image(boxes, p), scores, labels))
    out = {}
    for image_id, parts in grouped.items():
        boxes = torch.cat([b for b, _, _ in parts])
        scores = torch.cat([s for _, s, _ in parts])
        labels = torch.cat([c for _, _, c in parts]).long()
        keep = batched_nms_rotated(boxes, scores, labels, iou_threshold)
        out[image_id] = (boxes[keep], scores[keep], labels[keep])
    return out


def to_task1(merged: dict[str, tuple[Tensor, Tensor, Tensor]], class_names: list[str]) -> dict[str, Task1Detections]:
    """``{image id: (boxes, scores, labels)}`` -> ``{class name: Task1Detections}`` (polygons = box corners)."""
    per_class: dict[str, tuple[list, list, list]] = {n: ([], [], []) for n in class_names}
    for image_id, (boxes, scores, labels) in merged.items():
        polys = obb2poly(boxes.double()).numpy()
        for poly, s, c in zip(polys, scores.tolist(), labels.tolist()):
            if not 0 <= c < len(class_names):
                raise ValueError(f"{image_id}: label {c} outside the {len(class_names)} class names")
            ids, sc, pl = per_class[class_names[c]]
            ids.append(image_id), sc.append(s), pl.append(poly)
    return {
        n: Task1Detections(ids, np.array(sc, np.float64), np.array(pl, np.float64).reshape(-1, 8))
        for n, (ids, sc, pl) in per_class.items()
    }


def merge_to_task1(
    patch_dets: dict[str, tuple[Tensor, Tensor, Tensor]],
    out_dir: str | Path,
    class_names: list[str],
    iou_threshold: float = 0.1,
    naming: str = "auto",
) -> list[Path]:
    """``merge_patch_detections`` then ``write_task1``: the DOTA submission of patch-level detections."""
    merged = merge_patch_detections(patch_dets, iou_threshold, naming)
    return write_task1(out_dir, to_task1(merged, class_names), class_names)


def merge_task1_dir(
    in_dir: str | Path, out_dir: str | Path, iou_threshold: float = 0.1, naming: str = "auto"
) -> list[Path]:
    """Merge Task1 files whose image ids are patch names (the devkit's ``ResultMerge``) into Task1 files of
    the full images. NMS runs on the boxes fitted to the polygons; the kept polygons are written as given."""
    written = []
    for name, det in read_task1(in_dir).items():
        ids, scores, polys = [], [], []
        for pid, s, poly in zip(det.image_ids, det.scores, det.polygons):
            p = parse_patch_name(pid, naming)
            ids.append(p.image_id), scores.append(s)
            polys.append((poly + [p.x, p.y] * 4) / p.rate)
        polys_t = torch.tensor(np.array(polys, np.float64).reshape(-1, 8))
        image_index = {k: i for i, k in enumerate(dict.fromkeys(ids))}
        group = torch.tensor([image_index[i] for i in ids], dtype=torch.int64)
        keep = batched_nms_rotated(
            poly2obb(polys_t), torch.tensor(scores, dtype=torch.float64), group, iou_threshold
        ).tolist()
        merged = Task1Detections([ids[k] for k in keep], np.array(scores)[keep], polys_t.numpy()[keep].reshape(-1, 8))
        written += write_task1(out_dir, {name: merged}, [name])
    return written


__all__ = [
    "PatchName",
    "parse_patch_name",
    "patch_to_image",
    "merge_patch_detections",
    "to_task1",
    "merge_to_task1",
    "merge_task1_dir",
    "Task1Detections",
    "parse_task1",
    "read_task1",
    "write_task1",
]
