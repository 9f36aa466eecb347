"""Label writers: DOTA labelTxt and YOLO-OBB, and re-indexing onto another class list (``rdet convert``).

The readers are in :mod:`rdet.data.formats` (which re-exports these for compatibility).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rdet.boxes import poly_to_yolo_obb
from rdet.data import classes as C
from rdet.data.annotations import Annotations


def remap_classes(ann: Annotations, classes) -> Annotations:
    """Re-index ``ann`` onto another class list, matching names loosely (``rdet.data.classes.ClassIndex``);
    a name missing from the new list raises ``ValueError``."""
    names = C.resolve_classes(classes, ())
    index = C.ClassIndex(names)
    mapping = [index.get(n) for n in ann.class_names]
    used = sorted({ann.class_names[i] for i in ann.labels if mapping[i] is None})
    if used:
        raise ValueError(f"{ann.label_path}: classes {used} are not in the target list {names}")
    labels = np.array([mapping[i] for i in ann.labels], np.int64)
    return Annotations(
        ann.image_path,
        ann.width,
        ann.height,
        ann.polygons,
        labels,
        names,
        ann.difficult,
        ann.difficulty,
        ann.label_path,
        dict(ann.meta),
    )


def _fmt(v: float) -> str:
    # Shortest text that reads back to the same float32: 512 -> '512', 0.1 -> '0.1'.
    return np.format_float_positional(np.float32(v), unique=True, trim="-")


def write_dota(path: str | Path, ann: Annotations, header: bool = True) -> None:
    """Write DOTA labelTxt (``imagesource``/``gsd`` header lines when ``header`` and known; difficulty raw)."""
    bad = [n for n in ann.class_names if not n or len(n.split()) != 1 or n != n.strip()]
    if bad:
        raise ValueError(
            f"DOTA class names cannot contain whitespace: {bad}; map them first, e.g. remap_classes(ann, 'dota1.0')"
        )
    lines = []
    if header:
        if "imagesource" in ann.meta:
            lines.append(f"imagesource:{ann.meta['imagesource']}")
        if "gsd" in ann.meta:
            lines.append(f"gsd:{'null' if ann.meta['gsd'] is None else repr(ann.meta['gsd'])}")
    for poly, label, diff in zip(ann.polygons, ann.labels, ann.difficulty):
        lines.append(" ".join(_fmt(v) for v in poly) + f" {ann.class_names[label]} {diff}")
    Path(path).write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")


def write_yolo_obb(path: str | Path, ann: Annotations, precision: int | None = None, clip: bool = True) -> int:
    """Write YOLO-OBB (``class_id`` + normalised polygon). ``precision=None`` writes the shortest text that
    reads back to the same float64 (exact round trip); an int gives that many decimals (Ultralytics: 6).

    ``clip=True`` clips normalised coordinates to ``[0, 1]`` (objects cut by the image border; Ultralytics
    expects normalised values). YOLO-OBB has no ``difficult`` field: that flag cannot be written (``rdet
    convert`` reports how many objects lose it).

    Returns:
        the number of objects whose coordinates were clipped.
    """
    if not ann.width or not ann.height:
        raise ValueError(f"{ann.label_path or ann.image_path}: YOLO-OBB needs the image size (width/height)")
    norm = poly_to_yolo_obb(torch.from_numpy(ann.polygons.astype(np.float64)), ann.width, ann.height).numpy()
    clipped = int(((norm < 0) | (norm > 1)).any(1).sum()) if clip else 0
    if clip:
        norm = norm.clip(0.0, 1.0)
    f = (lambda v: repr(float(v))) if precision is None else (lambda v: f"{v:.{precision}f}")
    Path(path).write_text(
        "".join(f"{label} " + " ".join(f(v) for v in p) + "\n" for p, label in zip(norm, ann.labels)), encoding="utf-8"
    )
    return clipped
