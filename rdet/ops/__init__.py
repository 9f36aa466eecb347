"""Exact rotated-box geometry: IoU and greedy NMS (names follow mmcv.ops so its users feel at home).

Boxes are ``(cx, cy, w, h, angle)`` as documented in :mod:`rdet.boxes` (pixels, radians, y down,
positive angle clockwise on screen). Every function accepts any float dtype, computes relative to
box centres in float64 (compiled CPU kernel, float64 inputs) or float32, and returns IoUs in the
input's float dtype. The intersection is exact polygon clipping, not an approximation.

The ops are ``torch.library`` custom ops (``torch.ops.rdet.*``), so they trace under
``torch.compile`` / ``torch.export``. They run compiled C++/CUDA kernels (see :func:`has_compiled`): the
extension ``rdet._C`` built at install time, or, when it is absent (pip's build isolation) or was built for
another torch, the same sources compiled once on first use into ``$RDET_HOME/torch_extensions``
(:mod:`rdet.ops._build`; ``rdet doctor`` shows which). Without a C++ compiler, or with ``RDET_NO_EXT=1``, a
vectorised pure-PyTorch implementation runs instead (one warning names the slowdown).
"""

from __future__ import annotations

from torch import Tensor

from rdet.ops import _ops
from rdet.ops._ops import has_compiled, reference_only

__all__ = ["box_iou_rotated", "poly_iou", "nms_rotated", "batched_nms_rotated", "has_compiled", "reference_only"]


def box_iou_rotated(boxes1: Tensor, boxes2: Tensor, mode: str = "iou", aligned: bool = False) -> Tensor:
    """Exact IoU of rotated boxes.

    Args:
        boxes1 (Tensor[N, 5]), boxes2 (Tensor[M, 5]): ``(cx, cy, w, h, angle)``.
        mode: ``'iou'`` = inter / union, or ``'iof'`` = inter / area(boxes1).
        aligned: compare ``boxes1[i]`` with ``boxes2[i]`` only (needs ``N == M``).

    Returns:
        Tensor[N, M] (``Tensor[N]`` when aligned), in the promoted float dtype of the inputs. Pairs
        whose denominator is 0 (zero-area boxes) get 0.

    Raises:
        ValueError: wrong shape/dtype/device, unknown mode, or NaN/Inf coordinates.
    """
    _ops.check_pair(boxes1, boxes2, ("boxes1", "boxes2"), 5, mode, aligned)
    return _ops.box_iou_rotated_op(boxes1, boxes2, mode, aligned)


def poly_iou(polys1: Tensor, polys2: Tensor, mode: str = "iou", aligned: bool = False) -> Tensor:
    """Exact IoU of quadrilaterals (DOTA polygons).

    Exact for every simple (not self-intersecting) quad, convex or not, in either vertex order
    (a non-convex quad is cut into two triangles). Used by DOTA evaluation and the image splitter.

    Args:
        polys1 (Tensor[N, 8]), polys2 (Tensor[M, 8]): ``(x1, y1, ..., x4, y4)``.
        mode: ``'iou'`` or ``'iof'`` = inter / area(polys1).
        aligned: compare ``polys1[i]`` with ``polys2[i]`` only.

    Returns:
        Tensor[N, M] (``Tensor[N]`` when aligned) in the promoted float dtype of the inputs.
    """
    _ops.check_pair(polys1, polys2, ("polys1", "polys2"), 8, mode, aligned)
    return _ops.poly_iou_op(polys1, polys2, mode, aligned)


def nms_rotated(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Exact greedy rotated NMS with torchvision ``nms`` semantics.

    Boxes are visited by decreasing score (ties: lower index first); a box is dropped when its IoU
    with an already kept box is ``> iou_threshold``.

    Args:
        boxes (Tensor[N, 5]): ``(cx, cy, w, h, angle)``.
        scores (Tensor[N]): any float dtype.
        iou_threshold: suppression threshold.

    Returns:
        Tensor[K] int64: indices of kept boxes, by decreasing score.
    """
    _ops.check_nms(boxes, scores, iou_threshold, None)
    return _ops.nms_rotated_op(boxes, scores, float(iou_threshold), None)


def batched_nms_rotated(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Greedy rotated NMS within each category: boxes with different ``idxs`` never suppress each other.

    Args:
        boxes (Tensor[N, 5]), scores (Tensor[N]), idxs (Tensor[N] int): category of each box.
        iou_threshold: suppression threshold.

    Returns:
        Tensor[K] int64: indices of kept boxes, by decreasing score (across all categories).
    """
    _ops.check_nms(boxes, scores, iou_threshold, idxs)
    return _ops.nms_rotated_op(boxes, scores, float(iou_threshold), idxs)
