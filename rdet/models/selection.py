"""Test-time candidate selection and NMS: ONE definition for ``predict`` and every exported graph.

MMRotate 1.x (mmdet 3.x ``_predict_by_feat_single`` with ``filter_scores_and_topk``), per image:

1. per FPN level, the (row, class) scores ``> score_thr`` pass (NaN never does);
2. of those, the ``nms_pre`` highest of the level are kept, by decreasing score (ties: lower flat index
   ``row * C + class`` first), i.e. the first ``nms_pre`` of a stable descending sort of the level's passing
   scores (:func:`candidates`; threshold then top-k, never a sort of all scores);
3. the levels' candidates, concatenated in level order, go to class-wise rotated NMS by decreasing score (ties:
   concatenation order, a stable sort), and the first ``max_per_img`` survivors are the detections.

:meth:`~rdet.models.detector.DenseDetector.predict` runs :func:`select_detections`; the exported graphs
(``rdet.export``) run :func:`level_topk` (the same selection with fixed shapes: the level sizes are static in a
graph, so step 2 is one ``TopK`` per level) and feed its candidates to their NMS in the same order.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rdet import ops
from rdet.boxes import regularize
from rdet.config import TestConfig
from rdet.detections import Detections


def candidates(scores: Tensor, score_threshold: float, k: int) -> Tensor:
    """Steps 1-2 on one set of scores: the ``k`` highest of those ``> score_threshold``, stable order.

    Equal to ``sort(passing, descending=True, stable=True)[:k]`` (:func:`sorted_candidates`), computed with one
    ``topk`` over all scores (non-passing ones set to ``-inf``) plus a sort of the ``k`` selected ones, never a
    sort of all scores (2.95 M for one 1024 px image with 15 classes).

    Args:
        scores (Tensor[N, C] or Tensor[M]).

    Returns:
        Tensor[K] int64, ``K <= k``: flat indices (``n * C + c``) of scores ``> score_threshold``, by decreasing
        score (ties: lower index first).
    """
    flat = scores.reshape(-1)
    passing = flat > score_threshold  # NaN compares False
    k = min(k, flat.numel())
    if int(torch.count_nonzero(passing)) > k:
        masked = torch.where(passing, flat, torch.full_like(flat, -math.inf))
        top, top_i = torch.topk(masked, k, sorted=False)
        v = top.min()  # the k-th largest passing score
        # torch.topk promises no tie order, so of its picks only those > v are certain; the places left go to
        # the lowest indices whose score equals v (the stable sort's choice among ties).
        above = top_i[top > v]
        ties = torch.nonzero(masked == v).squeeze(1)[: k - above.numel()]
        idx = torch.sort(torch.cat([above, ties])).values  # index order, for the stable sort below
        return idx[torch.sort(flat[idx], descending=True, stable=True).indices]
    idx = torch.nonzero(passing).squeeze(1)  # at most k of them
    return idx[torch.sort(flat[idx], descending=True, stable=True).indices]


def sorted_candidates(scores: Tensor, score_threshold: float, k: int) -> Tensor:
    """The definition :func:`candidates` implements: a stable sort of every passing score (tests, benchmarks).

    Args:
        scores (Tensor[N, C] or Tensor[M]).

    Returns:
        Tensor[K] int64, as :func:`candidates`.
    """
    flat = scores.reshape(-1)
    idx = torch.nonzero(flat > score_threshold).squeeze(1)
    return idx[torch.sort(flat[idx], descending=True, stable=True).indices[:k]]


def level_candidates(scores: Tensor, num_per_level: list[int], score_threshold: float, nms_pre: int) -> Tensor:
    """Steps 1-2 for one image, every level: flat indices into ``scores`` in level order, each level's by
    decreasing score.

    Args:
        scores (Tensor[N, C]): ``N = sum(num_per_level)`` rows, levels in order.

    Returns:
        Tensor[K] int64: flat indices ``n * C + c``, ``K <= sum(min(nms_pre, L_l * C))``.
    """
    c = scores.shape[1]
    out, start = [], 0
    for rows in num_per_level:
        out.append(candidates(scores[start : start + rows], score_threshold, nms_pre) + start * c)
        start += rows
    return torch.cat(out) if out else scores.new_zeros(0, dtype=torch.int64)


def level_sizes_k(num_per_level: list[int], num_classes: int, nms_pre: int) -> list[int]:
    """Candidate places per level in a fixed-shape graph: ``min(nms_pre, L_l * C)``."""
    return [min(nms_pre, rows * num_classes) for rows in num_per_level]


def level_topk(
    scores: Tensor, num_per_level: list[int], score_threshold: float, nms_pre: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Steps 1-2 with fixed shapes, for a batch (what the exported graphs compute).

    Traced (ONNX export): per level, failing scores become ``-inf`` and one ``TopK`` of
    ``min(nms_pre, L_l * C)`` (ONNX ``TopK`` sorts and breaks ties by lower index, exactly the stable order).
    Eager: :func:`level_candidates` per image, padded the same way.

    Args:
        scores (Tensor[B, N, C]).

    Returns:
        top_s (Tensor[B, K]) scores (``-inf`` in unused places), top_i (Tensor[B, K] int64, flat ``n * C + c``),
        valid (Tensor[B, K] bool); ``K = sum_l min(nms_pre, L_l * C)``, levels in order, each level's valid
        candidates first by decreasing score.
    """
    b, c = scores.shape[0], int(scores.shape[2])
    sizes = level_sizes_k(num_per_level, c, nms_pre)
    if torch.jit.is_tracing():
        parts_s, parts_i, start = [], [], 0
        for rows, k in zip(num_per_level, sizes):
            flat = scores[:, start : start + rows].reshape(b, rows * c)
            masked = torch.where(flat > score_threshold, flat, torch.full_like(flat, -math.inf))
            s, i = masked.topk(k, dim=1)
            parts_s.append(s)
            parts_i.append(i + start * c)
            start += rows
        top_s, top_i = torch.cat(parts_s, 1), torch.cat(parts_i, 1)
    else:  # torch.topk promises no tie order: the exact selection, padded as TopK pads
        total = sum(sizes)
        top_i = torch.zeros(b, total, dtype=torch.int64, device=scores.device)
        top_s = torch.full((b, total), -math.inf, dtype=scores.dtype, device=scores.device)
        for img in range(b):
            flat, start, place = scores[img].reshape(-1), 0, 0
            for rows, k in zip(num_per_level, sizes):
                idx = candidates(scores[img, start : start + rows], score_threshold, k) + start * c
                top_i[img, place : place + idx.numel()] = idx
                top_s[img, place : place + idx.numel()] = flat[idx]
                start, place = start + rows, place + k
    return top_s, top_i, top_s > score_threshold


def select_detections(
    scores: Tensor,
    boxes: Tensor,
    num_per_level: list[int],
    cfg: TestConfig,
    score_thr: float | None = None,
    iou_thr: float | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Steps 1-3 for one image.

    Args:
        scores (Tensor[N, C]): class probabilities; boxes (Tensor[N, 5]): decoded (centres clamped) boxes.
        num_per_level: rows per level (``sum == N``).

    Returns:
        boxes (Tensor[K, 5]), scores (Tensor[K]), labels (Tensor[K] int64), by decreasing score.
    """
    score_thr = cfg.score_thr if score_thr is None else score_thr
    iou_thr = cfg.iou_thr if iou_thr is None else iou_thr
    c = scores.shape[1]
    idx = level_candidates(scores, num_per_level, score_thr, cfg.nms_pre)
    flat = scores.reshape(-1)
    idx = idx[torch.sort(flat[idx], descending=True, stable=True).indices]  # step 3's order
    bx, sc, lab = boxes[idx // c].float(), flat[idx], idx % c
    if bx.shape[0] == 0:
        return bx, sc, lab
    # rdet.ops gets the ranks as scores: exactly this order, ties included (as the exported NMS)
    rank = torch.arange(idx.numel(), 0, -1, dtype=torch.float64, device=scores.device)
    keep = ops.batched_nms_rotated(bx, rank, lab, iou_thr)[: cfg.max_per_img]
    return bx[keep], sc[keep], lab[keep]


def detections_per_image(
    cls: Tensor,
    boxes: Tensor,
    per_level: list[int],
    cfg: TestConfig,
    angle_version: str,
    class_names: list[str],
    score_thr: float | None = None,
    iou_thr: float | None = None,
) -> list[Detections]:
    """:func:`select_detections` for every image of a batch.

    Args:
        cls (Tensor[B, N, C]): class logits; boxes (Tensor[B, N, 5]): decoded boxes; per_level: N split by level.

    Returns:
        one :class:`Detections` per image, boxes regularised to ``angle_version``.
    """
    out = []
    for b in range(cls.shape[0]):
        bx, sc, lab = select_detections(cls[b].float().sigmoid(), boxes[b].float(), per_level, cfg, score_thr, iou_thr)
        out.append(Detections(regularize(bx, angle_version), sc, lab, class_names))
    return out
