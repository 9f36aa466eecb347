"""Exact greedy rotated NMS from standard ONNX ops (the ``nms='onnx'`` export mode).

The same four outputs and semantics as :mod:`rdet.export.rotated_nms_op`, written as fixed-shape torch code that
the TorchScript exporter turns into standard ONNX ops, so any runtime (TensorRT without our plugin
included) runs it:

1. scores that fail the threshold (NaN included) become ``-inf``, then one ``TopK`` over the flattened
   ``[B, N * C]`` scores (ties: lower index first, as ONNX specifies) gives the candidates
   (:func:`select_candidates`);
2. a ``[B, K, K]`` suppression matrix: candidate pairs (``i < j``, same class unless class-agnostic, both
   valid) whose bounding boxes overlap are picked with ``NonZero``; of those, pairs whose IoU upper bound
   (:func:`iou_upper_bound`, from bounding boxes and areas) cannot pass the threshold are dropped, and the rest
   get their exact IoU from a fixed 20-point ring (:func:`box_iou_pairs`: box 2's outline clamped to box 1,
   in box 1's frame; elementwise ops only);
3. greedy selection over the K sorted candidates: the one step with a sequential dependency. It is the op
   ``rdet_export::greedy_keep`` (eager: a Python loop) that :func:`expand_greedy_keep` rewrites into an ONNX
   ``Loop`` after export, which stops after the last valid candidate;
4. the first ``max_det`` survivors scattered into padded outputs.

The IoU runs in the graph's float dtype (float32) relative to box centres; ``rdet.ops`` computes in float64
on CPU, so keep-sets agree except for pairs whose IoU lies within ~1e-6 of the threshold. With TensorRT, the
``TopK`` limits ``pre_nms_topk`` to 3840 (:data:`rdet.export.trt_build.TRT_MAX_TOPK`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rdet.export.rotated_nms_op import NMSParams, check_inputs
from rdet.models.selection import level_topk
from rdet.ops._reference import MIN_SIDE  # boxes with a smaller side are empty, as in rdet.ops

TOPK_ROUND = 3840  # TensorRT's TopK takes K <= 3840 (rdet.export.trt_build.TRT_MAX_TOPK)
_PLACEHOLDER = "rdet_export::GreedyKeep"


# --------------------------------------------------------------------------------------- geometry
def box_areas(b: Tensor) -> Tensor:
    """``w * h`` of boxes ``[..., 5]``; 0 for a box with a side <= ``MIN_SIDE`` px, which is empty (IoU 0 with
    anything), the rule of ``rdet.ops`` and ``geometry.h``."""
    w, h = b[..., 2], b[..., 3]
    return torch.where((w > MIN_SIDE) & (h > MIN_SIDE), w * h, torch.zeros_like(w))


def _sort_by_t(pts: list[tuple[Tensor, Tensor, Tensor]]) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Four ``(t, x, y)`` sorted by ``t`` elementwise: a 5-comparator network of ``Where`` (no ``TopK``); equal
    ``t`` keep their order, so eager and exported graphs agree bit for bit."""
    out = list(pts)
    for i, j in ((0, 1), (2, 3), (0, 2), (1, 3), (1, 2)):
        swap = out[i][0] > out[j][0]
        lo = tuple(torch.where(swap, v, u) for u, v in zip(out[i], out[j]))
        hi = tuple(torch.where(swap, u, v) for u, v in zip(out[i], out[j]))
        out[i], out[j] = lo, hi  # type: ignore[assignment]
    return out


def box_iou_pairs(b1: Tensor, b2: Tensor) -> Tensor:
    """IoU of box pairs ``b1[i]``, ``b2[i]`` with elementwise ops only (exports to standard ONNX).

    In box 1's frame, box 1 is the rectangle ``R = [-w1/2, w1/2] x [-h1/2, h1/2]`` and box 2 a convex
    quadrilateral ``Q``. The intersection area is the shoelace area of ``clamp_R(boundary of Q)``, the
    boundary of ``Q`` with every point moved to its nearest point of ``R`` (coordinates clamped): points of
    ``Q`` outside ``R`` land on ``R``'s boundary, so the clamped loop winds once around each interior point of
    ``R`` that is in ``Q`` and zero times elsewhere. Along an edge the clamp is linear between the places where
    the edge crosses the lines ``x = +-w1/2`` and ``y = +-h1/2``, so each edge becomes 5 points (its start and
    its 4 crossings, sorted along the edge; a crossing outside the edge is the edge's start or end): a fixed
    20-point ring, no data-dependent vertex count, no scatter (Sutherland-Hodgman with compaction, which this
    replaced, took 3x longer per pair in eager PyTorch and more in ONNX Runtime; BENCHMARKS.md).
    Identical boxes, shared edges and exact touching need no special case: the clamp is continuous.

    Args:
        b1 (Tensor[P, 5]), b2 (Tensor[P, 5]): ``(cx, cy, w, h, angle)``.

    Returns:
        Tensor[P]: IoU; 0 for disjoint bounding boxes and where a box is empty (a side <= ``MIN_SIDE``), as
        ``rdet.ops``.
    """
    cx1, cy1, w1, h1, a1 = b1.unbind(-1)
    cx2, cy2, w2, h2, a2 = b2.unbind(-1)
    c1, s1, c2, s2 = torch.cos(a1), torch.sin(a1), torch.cos(a2), torch.sin(a2)
    dx, dy = cx2 - cx1, cy2 - cy1
    x0, y0 = dx * c1 + dy * s1, -dx * s1 + dy * c1  # box 2's centre in box 1's frame
    cr, sr = c2 * c1 + s2 * s1, s2 * c1 - c2 * s1  # cos/sin(a2 - a1)
    hw2, hh2 = w2 * 0.5, h2 * 0.5
    ux, uy, vx, vy = hw2 * cr, hw2 * sr, -hh2 * sr, hh2 * cr
    xs = torch.stack([x0 - ux - vx, x0 + ux - vx, x0 + ux + vx, x0 - ux + vx], 1)  # [P, 4], positive orientation
    ys = torch.stack([y0 - uy - vy, y0 + uy - vy, y0 + uy + vy, y0 - uy + vy], 1)
    qx, qy = torch.roll(xs, -1, 1), torch.roll(ys, -1, 1)  # edge ends
    ex, ey = qx - xs, qy - ys  # edge vectors [P, 4]
    hw1, hh1 = (w1 * 0.5)[:, None], (h1 * 0.5)[:, None]
    crossings = []  # (t, x, y) of the edge's crossing with each line; its start or end when it does not cross
    for axis, lim in ((0, -hw1), (0, hw1), (1, -hh1), (1, hh1)):
        start, step = (xs, ex) if axis == 0 else (ys, ey)
        flat = step == 0
        t = (lim - start) / torch.where(flat, torch.ones_like(step), step)
        inside = (t > 0) & (t < 1) & ~flat
        after = (t >= 1) & ~flat
        # A crossing lies on its line exactly: computed as start + t * step, the coordinate across the line
        # would carry the rounding of far-away vertices, and that error times the length of R's side is area.
        on_line = lim.expand_as(t)
        along = (ys + t * ey) if axis == 0 else (xs + t * ex)
        cx = on_line if axis == 0 else along
        cy = along if axis == 0 else on_line
        crossings.append(
            (
                torch.where(inside, t, after.to(t.dtype)),
                torch.where(inside, cx, torch.where(after, qx, xs)),
                torch.where(inside, cy, torch.where(after, qy, ys)),
            )
        )
    ring = [(xs, ys)] + [(x, y) for _, x, y in _sort_by_t(crossings)]
    x = torch.minimum(torch.maximum(torch.stack([x for x, _ in ring], 2).flatten(1), -hw1), hw1)  # [P, 20]
    y = torch.minimum(torch.maximum(torch.stack([y for _, y in ring], 2).flatten(1), -hh1), hh1)
    inter = 0.5 * (x * torch.roll(y, -1, 1) - y * torch.roll(x, -1, 1)).sum(1)
    area1, area2 = box_areas(b1), box_areas(b2)
    inter = torch.minimum(inter.clamp(min=0), torch.minimum(area1, area2))
    denom = area1 + area2 - inter
    iou = inter / torch.where(denom > 0, denom, torch.ones_like(denom))
    iou = torch.where(denom > 0, iou, torch.zeros_like(iou)).clamp(max=1)
    # Disjoint boxes get exactly 0 (an IoU threshold of 0 suppresses any overlap): bounding boxes apart, the
    # early exit of geometry.h's aabb_overlap, or a separating axis among the boxes' 4 edge directions. The
    # clamped ring of a disjoint pair runs along R's outline and back: its area is 0 only up to rounding.
    r_u = (hw1 * cr[:, None].abs() + hh1 * sr[:, None].abs())[:, 0]  # R's half extents along box 2's axes
    r_v = (hw1 * sr[:, None].abs() + hh1 * cr[:, None].abs())[:, 0]
    apart = (
        (xs.amin(1) >= hw1[:, 0])
        | (xs.amax(1) <= -hw1[:, 0])
        | (ys.amin(1) >= hh1[:, 0])
        | (ys.amax(1) <= -hh1[:, 0])
        | ((x0 * cr + y0 * sr).abs() >= hw2 + r_u)
        | ((-x0 * sr + y0 * cr).abs() >= hh2 + r_v)
    )
    return torch.where(aabb_overlap(b1, b2) & ~apart, iou, torch.zeros_like(iou))


def _half_extents(b: Tensor) -> tuple[Tensor, Tensor]:
    c, s = torch.cos(b[..., 4]).abs(), torch.sin(b[..., 4]).abs()
    hw, hh = b[..., 2] * 0.5, b[..., 3] * 0.5
    return c * hw + s * hh, s * hw + c * hh


def aabb_overlap(b1: Tensor, b2: Tensor) -> Tensor:
    """Whether the axis-aligned bounding boxes overlap with positive area (broadcasting ``[..., 5]``)."""
    ex1, ey1 = _half_extents(b1)
    ex2, ey2 = _half_extents(b2)
    return ((b2[..., 0] - b1[..., 0]).abs() < ex1 + ex2) & ((b2[..., 1] - b1[..., 1]).abs() < ey1 + ey2)


# ------------------------------------------------------------------------------------------- NMS
# A pair is clipped only if its IoU upper bound exceeds iou_threshold - BOUND_MARGIN. The margin is far above
# the float32 rounding of the bound (~1e-6 relative) and of the clipped IoU, so a pruned pair has an exact IoU
# below the threshold: pruning never changes a keep-set (the CUDA mask kernel uses the same margin).
BOUND_MARGIN = 1e-5
_ROUNDING = 1e-6  # relative allowance on the AABB overlap, against cancellation far from the origin


def iou_upper_bound(b1: Tensor, b2: Tensor) -> Tensor:
    """An upper bound of the IoU of box pairs ``b1[i]``, ``b2[i]`` from their bounding boxes and areas.

    The intersection lies inside the intersection of the two axis-aligned bounding boxes and is at most the
    smaller area, so ``IoU <= u / (area1 + area2 - u)`` with ``u = min(min(ix, 2 ex1, 2 ex2) *
    min(iy, 2 ey1, 2 ey2), area1, area2)`` (``ix, iy``: overlap of the bounding boxes; ``ex, ey``: their half
    extents). The overlap is widened by a rounding allowance, so the bound holds in float32 too.

    Args:
        b1 (Tensor[P, 5]), b2 (Tensor[P, 5]).

    Returns:
        Tensor[P]: the bound, in [0, 1] (0 where both boxes have no area).
    """
    ex1, ey1 = _half_extents(b1)
    ex2, ey2 = _half_extents(b2)
    sx, sy = ex1 + ex2, ey1 + ey2
    tol_x = _ROUNDING * (sx + b1[:, 0].abs() + b2[:, 0].abs())
    tol_y = _ROUNDING * (sy + b1[:, 1].abs() + b2[:, 1].abs())
    ix = torch.minimum(sx - (b2[:, 0] - b1[:, 0]).abs(), 2 * torch.minimum(ex1, ex2))
    iy = torch.minimum(sy - (b2[:, 1] - b1[:, 1]).abs(), 2 * torch.minimum(ey1, ey2))
    a1, a2 = box_areas(b1), box_areas(b2)
    inter = torch.minimum((ix + tol_x).clamp(min=0) * (iy + tol_y).clamp(min=0), torch.minimum(a1, a2))
    denom = a1 + a2 - inter
    bound = inter / torch.where(denom > 0, denom, torch.ones_like(denom))
    return torch.where(denom > 0, bound, torch.zeros_like(bound))


def suppression_matrix(
    boxes: Tensor, labels: Tensor, valid: Tensor, iou_threshold: float, class_agnostic: bool, prune: bool = True
) -> Tensor:
    """``S[b, i, j]``: candidate ``i`` suppresses ``j`` if kept (``i < j``, IoU > threshold).

    Only pairs whose bounding boxes overlap are gathered (``NonZero``); of those, only pairs whose IoU upper
    bound (:func:`iou_upper_bound`) can exceed the threshold are clipped, so the polygon clipping, the
    expensive part, runs on few pairs. Pairs left out have an IoU of 0 or below the threshold.

    Args:
        boxes (Tensor[B, K, 5]), labels (Tensor[B, K] int64), valid (Tensor[B, K] bool): candidates by
        decreasing score.
        prune: apply the upper bound; the result is the same without (False exists for tests and the
            before/after benchmark).

    Returns:
        Tensor[B, K, K] bool.
    """
    k = boxes.shape[1]
    ar = torch.arange(k, device=boxes.device)
    # The [B, K, K] tests are most of the cost with thousands of candidates: only boolean K x K tensors are
    # made. An invalid candidate gets a label of its own (-1 - index), so one comparison covers class and
    # validity.
    group = labels if not class_agnostic else torch.zeros_like(labels)
    group = torch.where(valid, group, -1 - ar[None].expand_as(labels))
    pair = (ar[:, None] < ar[None, :])[None] & (group[:, :, None] == group[:, None, :])
    if iou_threshold < 0:  # every pair suppresses (IoU >= 0 > threshold), as in rdet.ops: nothing to clip
        return pair
    # Bounding boxes as intervals, widened by a rounding allowance: a superset of the pairs aabb_overlap
    # accepts (box_iou_pairs applies the exact test again), so the K x K part needs no float temporaries.
    ex, ey = _half_extents(boxes)
    tol_x = _ROUNDING * (boxes[..., 0].abs() + ex)
    tol_y = _ROUNDING * (boxes[..., 1].abs() + ey)
    x_lo, x_hi = boxes[..., 0] - ex - tol_x, boxes[..., 0] + ex + tol_x
    y_lo, y_hi = boxes[..., 1] - ey - tol_y, boxes[..., 1] + ey + tol_y
    near = (x_lo[:, :, None] < x_hi[:, None, :]) & (x_lo[:, None, :] < x_hi[:, :, None])
    near = near & (y_lo[:, :, None] < y_hi[:, None, :]) & (y_lo[:, None, :] < y_hi[:, :, None])
    cand = (pair & near).reshape(-1)
    lin = torch.nonzero(cand)[:, 0]  # (b * K + i) * K + j
    flat = boxes.reshape(-1, 5)
    b1 = flat[torch.div(lin, k, rounding_mode="floor")]  # row b * K + i
    b2 = flat[torch.div(lin, k * k, rounding_mode="floor") * k + lin % k]  # row b * K + j
    if prune:
        near = torch.nonzero(iou_upper_bound(b1, b2) > iou_threshold - BOUND_MARGIN)[:, 0]
        lin, b1, b2 = lin[near], b1[near], b2[near]
    hit = box_iou_pairs(b1, b2) > iou_threshold
    return torch.zeros_like(cand).scatter(0, lin, hit).reshape(pair.shape)  # only pairs in `pair` are set


@torch.library.custom_op("rdet_export::greedy_keep", mutates_args=())
def greedy_keep(suppress: Tensor, valid: Tensor) -> Tensor:
    """Greedy selection: ``keep[b, j] = valid[b, j] and not any(keep[b, i] and suppress[b, i, j], i < j)``.

    Args:
        suppress (Tensor[B, K, K] bool): upper triangular, see :func:`suppression_matrix`.
        valid (Tensor[B, K] bool).

    Returns:
        Tensor[B, K] bool. Exported as an ONNX ``Loop`` over ``i`` (see :func:`expand_greedy_keep`).
    """
    keep = valid.clone()
    for i in range(suppress.shape[1]):
        keep &= ~(suppress[:, i] & keep[:, i : i + 1])
    return keep


@greedy_keep.register_fake
def _(suppress, valid):
    return torch.empty_like(valid)


def select_candidates(scores: Tensor, score_threshold: float, pre_nms_topk: int) -> tuple[Tensor, Tensor, Tensor]:
    """Steps 1-2 as fixed-shape graph ops: threshold, then one ``TopK`` (no sort of all ``N * C`` scores).

    :func:`rdet.models.selection.level_topk` with all rows as one level: scores that do not pass (NaN included)
    become ``-inf`` before ``TopK``, so the passing ones come first, in the order of
    :func:`rdet.models.selection.candidates` (ONNX ``TopK`` breaks ties by lower index).

    Args:
        scores (Tensor[B, N, C]).

    Returns:
        top_s (Tensor[B, K]), top_i (Tensor[B, K] int64, flat ``n * C + c``), valid (Tensor[B, K] bool),
        ``K = min(pre_nms_topk, N * C)``; entries past an image's passing count are invalid.
    """
    return level_topk(scores, [scores.shape[1]], score_threshold, pre_nms_topk)  # all rows as one level


def rotated_nms_onnx(
    boxes: Tensor, scores: Tensor, params: NMSParams, prune: bool = True
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The ``onnx`` mode: same inputs, outputs and semantics as :func:`export.rotated_nms_op.rotated_nms_batched`.

    Args:
        boxes (Tensor[B, N, 5]), scores (Tensor[B, N, C]).
        prune: see :func:`suppression_matrix` (the same result either way).

    Returns:
        num_dets [B, 1] int32, det_boxes [B, max_det, 5], det_scores [B, max_det], det_classes [B, max_det]
        int32.
    """
    check_inputs(boxes, scores)
    top_s, top_i, valid = select_candidates(scores, params.score_threshold, params.pre_nms_topk)
    c = scores.shape[2]
    bx = torch.gather(boxes, 1, torch.div(top_i, c, rounding_mode="floor")[..., None].expand(-1, -1, 5))
    return nms_sorted(bx, top_s, top_i % c, valid, params, prune)


def sort_desc(scores: Tensor) -> tuple[Tensor, Tensor]:
    """``Tensor[B, K]`` -> ``(values, indices)`` in stable descending order (ties: lower index first).

    Traced: ONNX ``TopK`` (sorted, ties by lower index), in rounds of at most :data:`TOPK_ROUND` places
    (TensorRT's ``TopK`` limit): each round masks the places already taken with ``-inf``. A round can pick a
    taken place again only after every finite score is out, and then with the value ``-inf``: places with
    ``-inf`` values are unused, the order of the others is exact. Eager: ``torch.sort(stable=True)``.
    """
    k = scores.shape[1]
    if not torch.jit.is_tracing():
        return torch.sort(scores, dim=1, descending=True, stable=True)
    if k <= TOPK_ROUND:
        return scores.topk(k, dim=1)
    values, indices, masked = [], [], scores
    for start in range(0, k, TOPK_ROUND):
        v, i = masked.topk(min(TOPK_ROUND, k - start), dim=1)
        values.append(v)
        indices.append(i)
        masked = masked.scatter(1, i, torch.full_like(v, -math.inf))
    return torch.cat(values, 1), torch.cat(indices, 1)


def rotated_nms_candidates(
    boxes: Tensor, scores: Tensor, labels: Tensor, valid: Tensor, params: NMSParams, prune: bool = True
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The ``onnx`` mode's NMS on selected candidates (:func:`rdet.models.selection.level_topk`): ordered by
    decreasing score (ties: candidate order), then as :func:`rotated_nms_onnx` from step 2 on.

    Args:
        boxes (Tensor[B, K, 5]), scores (Tensor[B, K]), labels (Tensor[B, K] int64), valid (Tensor[B, K] bool).

    Returns:
        the four outputs of :func:`rotated_nms_onnx`.
    """
    top_s, order = sort_desc(torch.where(valid, scores, torch.full_like(scores, -math.inf)))
    # Only the valid prefix goes on (its length M, the most valid candidates of an image of the batch, is
    # data-dependent in the graph): the [B, M, M] pair tests then cost what the candidates need, not K^2.
    m = torch.clamp((top_s > -math.inf).sum(1).max(), min=1)  # >= 1: the greedy Loop needs a candidate
    prefix = torch.arange(m, device=scores.device)
    order, top_s = order.index_select(1, prefix), top_s.index_select(1, prefix)
    bx = torch.gather(boxes, 1, order[..., None].expand(-1, -1, 5))
    ok = top_s > -math.inf  # the valid candidates, first (a valid score passed a finite threshold)
    return nms_sorted(bx, top_s, torch.gather(labels, 1, order), ok, params, prune)


def nms_sorted(
    bx: Tensor, top_s: Tensor, labels: Tensor, valid: Tensor, params: NMSParams, prune: bool = True
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Steps 2-4 on candidates already in order (valid ones first, by decreasing score).

    Args:
        bx (Tensor[B, K, 5]), top_s (Tensor[B, K]), labels (Tensor[B, K] int64), valid (Tensor[B, K] bool).
    """
    k = bx.shape[1]
    sup = suppression_matrix(bx, labels, valid, params.iou_threshold, params.class_agnostic, prune)
    keep = torch.ops.rdet_export.greedy_keep(sup, valid)
    m = params.max_det
    rank = torch.cumsum(keep.to(torch.int64), 1) - 1
    sel = keep & (rank < m)
    num = sel.to(torch.int32).sum(1, keepdim=True).to(torch.int32)
    # Survivors go to slot `rank`; all others to distinct slots past max_det, cut off below.
    dest = torch.where(sel, rank, m + torch.arange(k, device=bx.device)[None])
    pad = bx.new_zeros(1, m, 1).expand(bx.shape[0], -1, -1)  # [B, m, 1]
    out_b = torch.cat([pad.expand(-1, -1, 5), torch.zeros_like(bx)], 1)
    out_b = out_b.scatter(1, dest[..., None].expand(-1, -1, 5), bx)[:, :m]
    out_s = torch.cat([pad[..., 0].to(top_s.dtype), torch.zeros_like(top_s)], 1).scatter(1, dest, top_s)[:, :m]
    cls = torch.where(sel, labels, torch.full_like(labels, -1))
    out_c = torch.cat([pad[..., 0].to(torch.int64) - 1, cls], 1).scatter(1, dest, cls)[:, :m]
    return num, out_b, out_s, out_c.to(torch.int32)


# ------------------------------------------------------------------------------------- ONNX export
_SYMBOLIC_OPSETS: set[int] = set()


def register_onnx_symbolic(opset: int) -> None:
    """Emit ``greedy_keep`` as a placeholder node that :func:`expand_greedy_keep` replaces by a ``Loop``."""
    if opset in _SYMBOLIC_OPSETS:
        return

    def symbolic(g, suppress, valid):
        out = g.op(_PLACEHOLDER, suppress, valid)
        out.setType(valid.type())
        return out

    torch.onnx.register_custom_op_symbolic("rdet_export::greedy_keep", symbolic, opset)
    _SYMBOLIC_OPSETS.add(opset)


def reduce_max_rows(x: str, out: str, axes_name: str, opset: int) -> list:
    """ONNX nodes ``out = ReduceMax(x, axis 0)`` (axes moved from an attribute to an input in opset 18)."""
    from onnx import TensorProto, helper

    if opset < 18:
        return [helper.make_node("ReduceMax", [x], [out], axes=[0], keepdims=0)]
    axes = helper.make_tensor(axes_name, TensorProto.INT64, [1], [0])
    return [
        helper.make_node("Constant", [], [axes_name], value=axes),
        helper.make_node("ReduceMax", [x, axes_name], [out], keepdims=0),
    ]


def expand_greedy_keep(model) -> int:
    """Replace each placeholder node of an ``onnx.ModelProto`` (in place) by an equivalent ONNX ``Loop``.

    The loop runs ``i = 0 .. L`` with the keep mask ``[B, K]`` as its state:
    ``keep &= not(suppress[:, i, :] and keep[:, i:i+1])``, where ``L`` is the last candidate valid in any
    image (rows after it are invalid everywhere and suppress nothing): with few scores above the threshold
    the loop is short. Constants live outside the loop body (ONNX Runtime's cost per node dominates the
    loop). Returns the number of nodes replaced.
    """
    from onnx import TensorProto, helper

    domain = _PLACEHOLDER.split("::")[0]
    graph = model.graph
    opset = next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx"))
    replaced = 0
    for pos, node in enumerate(list(graph.node)):
        if node.domain != domain:
            continue
        sup, valid = node.input
        p = f"{node.name or 'greedy_keep'}_{replaced}"
        names = ("i", "cond", "keep_in", "cond_out", "keep_out", "i1", "row", "ki", "hit", "nhit", "axes", "shape")
        nm = {n: f"{p}_{n}" for n in names + ("trip", "true", "vint", "colsum", "last", "one", "zero")}
        body = helper.make_graph(
            [
                helper.make_node("Unsqueeze", [nm["i"], nm["axes"]], [nm["i1"]]),  # [1]
                helper.make_node("Gather", [sup, nm["i"]], [nm["row"]], axis=1),  # [B, K]
                helper.make_node("Gather", [nm["keep_in"], nm["i1"]], [nm["ki"]], axis=1),  # [B, 1]
                helper.make_node("And", [nm["row"], nm["ki"]], [nm["hit"]]),
                helper.make_node("Not", [nm["hit"]], [nm["nhit"]]),
                helper.make_node("And", [nm["keep_in"], nm["nhit"]], [nm["keep_out"]]),
                helper.make_node("Identity", [nm["cond"]], [nm["cond_out"]]),
            ],
            f"{p}_body",
            [
                helper.make_tensor_value_info(nm["i"], TensorProto.INT64, []),
                helper.make_tensor_value_info(nm["cond"], TensorProto.BOOL, []),
                helper.make_tensor_value_info(nm["keep_in"], TensorProto.BOOL, None),
            ],
            [
                helper.make_tensor_value_info(nm["cond_out"], TensorProto.BOOL, []),
                helper.make_tensor_value_info(nm["keep_out"], TensorProto.BOOL, None),
            ],
        )
        new = [
            helper.make_node(
                "Constant", [], [nm["axes"]], value=helper.make_tensor(nm["axes"], TensorProto.INT64, [1], [0])
            ),
            # trip count: 1 + the last column valid in any image (K when none is: then nothing changes)
            helper.make_node("Cast", [valid], [nm["vint"]], to=TensorProto.INT32),  # [B, K]
            *reduce_max_rows(nm["vint"], nm["colsum"], nm["zero"], opset),  # [K]: 1 where any image is valid
            helper.make_node("ArgMax", [nm["colsum"]], [nm["last"]], axis=0, keepdims=0, select_last_index=1),
            helper.make_node(
                "Constant", [], [nm["one"]], value=helper.make_tensor(nm["one"], TensorProto.INT64, [], [1])
            ),
            helper.make_node("Add", [nm["last"], nm["one"]], [nm["trip"]]),
            helper.make_node(
                "Constant", [], [nm["true"]], value=helper.make_tensor(nm["true"], TensorProto.BOOL, [], [True])
            ),
            helper.make_node("Loop", [nm["trip"], nm["true"], valid], [node.output[0]], name=f"{p}_loop", body=body),
        ]
        graph.node.remove(node)
        for off, n in enumerate(new):
            graph.node.insert(pos + replaced * (len(new) - 1) + off, n)
        replaced += 1
    for imp in list(model.opset_import):
        if imp.domain == domain:
            model.opset_import.remove(imp)
    return replaced
