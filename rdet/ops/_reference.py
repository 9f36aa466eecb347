"""Pure-PyTorch rotated IoU and NMS: the test oracle and the fallback when ``rdet._C`` is absent.

Everything is vectorised over *pairs* of polygons: candidate pairs are found with a cheap
bounding-circle test, then each pair's intersection is the Sutherland-Hodgman clip of one convex
polygon by the four half-planes of the other, evaluated on all pairs of a chunk at once (polygons are
fixed-size vertex buffers with a per-pair vertex count; each clip stage compacts its output with a
cumulative sum). Coordinates are taken relative to the first box's centre so that float32 keeps
~1e-6 relative accuracy even for boxes far from the image origin.

Inputs are assumed validated (finite, right shapes) by :mod:`rdet.ops._ops`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# Pairs clipped at once: bounds peak memory to ~100 MB in float64.
PAIR_CHUNK = 1 << 15
# Rows of the N x M candidate mask built at once.
MASK_ELEMS = 1 << 22
# Vertex capacity of the clipped polygon. A convex quad clipped by 4 half-planes has <= 8 vertices;
# the slack only absorbs duplicated vertices produced by round-off on degenerate input.
CAPACITY = 12
# Score-sorted boxes resolved per step of the blocked greedy NMS.
NMS_BLOCK = 256
# Boxes with a side <= MIN_SIDE px are empty (area 0, IoU 0 with anything), as in csrc/geometry.h (kMinSide):
# below it the clip's round-off exceeds the box and IoUs came out asymmetric, up to 1.
MIN_SIDE = 1e-6


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other float dtype is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def box_corners(boxes: Tensor) -> Tensor:
    """Corners of rotated boxes relative to their own centre.

    Args:
        boxes (Tensor[..., 5]): ``(cx, cy, w, h, angle)``.

    Returns:
        Tensor[..., 4, 2]: ``-u-v, u-v, u+v, -u+v`` (the order of :func:`rdet.boxes.obb2poly`), which
        has a positive shoelace sum in (x right, y down) coordinates.
    """
    w, h, a = boxes[..., 2], boxes[..., 3], boxes[..., 4]
    cos, sin = torch.cos(a), torch.sin(a)
    u = torch.stack([w / 2 * cos, w / 2 * sin], dim=-1)
    v = torch.stack([-h / 2 * sin, h / 2 * cos], dim=-1)
    return torch.stack([-u - v, u - v, u + v, -u + v], dim=-2)


def box_areas(boxes: Tensor) -> Tensor:
    """``w * h`` of boxes ``Tensor[N, 5]``, 0 for empty boxes (a side <= ``MIN_SIDE``)."""
    w, h = boxes[:, 2], boxes[:, 3]
    return torch.where((w > MIN_SIDE) & (h > MIN_SIDE), w * h, torch.zeros_like(w))


def _cross(ax: Tensor, ay: Tensor, bx: Tensor, by: Tensor) -> Tensor:
    return ax * by - ay * bx


def shoelace(poly: Tensor, count: Tensor | None = None) -> Tensor:
    """Signed area of polygons ``Tensor[B, K, 2]`` whose first ``count[B]`` vertices are valid."""
    k = poly.shape[1]
    ar = torch.arange(k, device=poly.device)
    if count is None:
        nxt = (ar + 1) % k
        p, q = poly, poly[:, nxt]
        return 0.5 * _cross(p[..., 0], p[..., 1], q[..., 0], q[..., 1]).sum(1)
    valid = ar < count[:, None]
    nxt = torch.where(ar[None] + 1 < count[:, None], ar[None] + 1, torch.zeros_like(ar[None]))
    q = torch.gather(poly, 1, nxt[..., None].expand(-1, -1, 2))
    c = _cross(poly[..., 0], poly[..., 1], q[..., 0], q[..., 1])
    return 0.5 * torch.where(valid, c, torch.zeros_like(c)).sum(1)


def convex_intersection_area(subj: Tensor, clip: Tensor) -> Tensor:
    """Area of the intersection of convex polygons, pair by pair.

    Args:
        subj (Tensor[B, 4, 2]): convex quads (a triangle repeats a vertex), positive orientation.
        clip (Tensor[B, 4, 2]): convex quads, positive orientation (degenerate ones allowed: a
            zero-length edge is a half-plane that contains everything).

    Returns:
        Tensor[B]: intersection areas (>= 0).
    """
    b = subj.shape[0]
    dev = subj.device
    poly, count = subj, torch.full((b,), 4, dtype=torch.long, device=dev)
    for j in range(clip.shape[1]):
        q = clip[:, j]  # [B, 2]
        e = clip[:, (j + 1) % clip.shape[1]] - q
        k = poly.shape[1]
        ar = torch.arange(k, device=dev)
        valid = ar[None] < count[:, None]  # [B, K]
        # d >= 0 means inside (left of the edge in the positive orientation), boundary included.
        d = _cross(e[:, None, 0], e[:, None, 1], poly[..., 0] - q[:, None, 0], poly[..., 1] - q[:, None, 1])
        prev = (ar[None] - 1) % count.clamp(min=1)[:, None]
        d_prev = torch.gather(d, 1, prev)
        p_prev = torch.gather(poly, 1, prev[..., None].expand(-1, -1, 2))
        ins, ins_prev = d >= 0, d_prev >= 0
        crossing = (ins != ins_prev) & valid
        denom = torch.where(crossing, d_prev - d, torch.ones_like(d))
        t = (d_prev / denom)[..., None]
        ipt = p_prev + t * (poly - p_prev)
        cand = torch.stack([ipt, poly], dim=2).reshape(b, 2 * k, 2)
        cmask = torch.stack([crossing, ins & valid], dim=2).reshape(b, 2 * k)
        cap = min(2 * k, CAPACITY)
        pos = torch.cumsum(cmask, 1) - 1
        idx = torch.where(cmask & (pos < cap), pos, torch.full_like(pos, cap))
        out = poly.new_zeros(b, cap + 1, 2)
        out.scatter_(1, idx[..., None].expand(-1, -1, 2), cand)
        poly, count = out[:, :cap], cmask.sum(1).clamp(max=cap)
    return shoelace(poly, count).clamp(min=0)


def _as_positive_quads(polys: Tensor) -> Tensor:
    """Reverse the vertex order of quads ``Tensor[B, 4, 2]`` with a negative shoelace sum."""
    neg = shoelace(polys) < 0
    return torch.where(neg[:, None, None], polys.flip(1), polys)


def _convex_pieces(polys: Tensor) -> tuple[Tensor, Tensor]:
    """Split simple quads ``Tensor[B, 4, 2]`` (positive orientation) into two convex pieces.

    A convex quad is piece 0 itself and an empty piece 1. A quad with a reflex vertex ``r`` is cut
    along the diagonal from ``r`` (which lies inside it) into triangles ``(r, r+1, r+2)`` and
    ``(r, r+2, r+3)``, each stored as a quad repeating its last vertex.

    Returns:
        pieces (Tensor[B, 2, 4, 2]), present (Tensor[B, 2] bool).
    """
    nxt, prv = polys.roll(-1, 1), polys.roll(1, 1)
    turn = _cross(
        polys[..., 0] - prv[..., 0],
        polys[..., 1] - prv[..., 1],
        nxt[..., 0] - polys[..., 0],
        nxt[..., 1] - polys[..., 1],
    )  # [B, 4]
    reflex = turn < 0
    nonconvex = reflex.any(1)
    r = torch.argmax(reflex.to(torch.uint8), dim=1)  # first reflex vertex, 0 when convex
    ar = torch.arange(4, device=polys.device)
    rot = torch.gather(polys, 1, ((r[:, None] + ar[None]) % 4)[..., None].expand(-1, -1, 2))
    tri1 = rot[:, [0, 1, 2, 2]]
    tri2 = rot[:, [0, 2, 3, 3]]
    piece0 = torch.where(nonconvex[:, None, None], tri1, polys)
    piece1 = torch.where(nonconvex[:, None, None], tri2, torch.zeros_like(polys))
    present = torch.stack([torch.ones_like(nonconvex), nonconvex], dim=1)
    return torch.stack([piece0, piece1], dim=1), present


def quad_intersection_area(p: Tensor, q: Tensor) -> Tensor:
    """Intersection areas of simple quads ``p, q (Tensor[B, 4, 2])``, any orientation, any convexity."""
    pp, ppres = _convex_pieces(_as_positive_quads(p))
    qp, qpres = _convex_pieces(_as_positive_quads(q))
    if not bool(ppres[:, 1].any()) and not bool(qpres[:, 1].any()):
        return convex_intersection_area(pp[:, 0], qp[:, 0])
    area = p.new_zeros(p.shape[0])
    for a in range(2):
        for c in range(2):
            sel = (ppres[:, a] & qpres[:, c]).nonzero().squeeze(1)
            if sel.numel():
                area.index_add_(0, sel, convex_intersection_area(pp[sel, a], qp[sel, c]))
    return area


def _finish(inter: Tensor, area1: Tensor, area2: Tensor, mode: str) -> Tensor:
    inter = torch.minimum(inter, torch.minimum(area1, area2))
    denom = area1 if mode == "iof" else area1 + area2 - inter
    ok = denom > 0
    return torch.where(ok, inter / torch.where(ok, denom, torch.ones_like(denom)), torch.zeros_like(inter))


def _pair_candidates(c1: Tensor, r1: Tensor, c2: Tensor, r2: Tensor, extra=None) -> tuple[Tensor, Tensor]:
    """Index pairs ``(i, j)`` whose bounding circles overlap (chunked over rows of boxes1)."""
    n, m = c1.shape[0], c2.shape[0]
    rows = max(1, MASK_ELEMS // max(m, 1))
    ii, jj = [], []
    for s in range(0, n, rows):
        d2 = ((c1[s : s + rows, None] - c2[None]) ** 2).sum(-1)
        mask = d2 < (r1[s : s + rows, None] + r2[None]) ** 2
        if extra is not None:
            mask &= extra(s, min(s + rows, n))
        i, j = mask.nonzero(as_tuple=True)
        ii.append(i + s)
        jj.append(j)
    if not ii:
        e = torch.zeros(0, dtype=torch.long, device=c1.device)
        return e, e
    return torch.cat(ii), torch.cat(jj)


def _box_pair_inter(b1: Tensor, b2: Tensor) -> Tensor:
    """Intersection areas of rotated boxes ``b1[i], b2[i] (Tensor[P, 5])``, chunked."""
    out = b1.new_zeros(b1.shape[0])
    for s in range(0, b1.shape[0], PAIR_CHUNK):
        x, y = b1[s : s + PAIR_CHUNK], b2[s : s + PAIR_CHUNK]
        # Relative to the centre of x: its corners carry no cancellation error.
        p = box_corners(x)
        q = box_corners(y) + (y[:, None, :2] - x[:, None, :2])
        out[s : s + PAIR_CHUNK] = convex_intersection_area(p, q)
    return out


def box_iou_rotated(boxes1: Tensor, boxes2: Tensor, mode: str = "iou", aligned: bool = False) -> Tensor:
    """IoU (or IoF = inter / area(boxes1)) of rotated boxes.

    Args:
        boxes1 (Tensor[N, 5]), boxes2 (Tensor[M, 5]): ``(cx, cy, w, h, angle)``, finite.
        mode: ``'iou'`` or ``'iof'``.
        aligned: pair ``boxes1[i]`` with ``boxes2[i]`` (needs ``N == M``).

    Returns:
        Tensor[N, M] (``Tensor[N]`` if aligned) in the compute dtype (float32 or float64).
    """
    dt = compute_dtype(torch.promote_types(boxes1.dtype, boxes2.dtype))
    b1, b2 = boxes1.to(dt), boxes2.to(dt)
    a1, a2 = box_areas(b1), box_areas(b2)
    r1, r2 = 0.5 * torch.hypot(b1[:, 2], b1[:, 3]), 0.5 * torch.hypot(b2[:, 2], b2[:, 3])
    if aligned:
        near = ((b1[:, :2] - b2[:, :2]) ** 2).sum(-1) < (r1 + r2) ** 2
        inter = b1.new_zeros(b1.shape[0])
        idx = near.nonzero().squeeze(1)
        inter[idx] = _box_pair_inter(b1[idx], b2[idx])
        return _finish(inter, a1, a2, mode)
    i, j = _pair_candidates(b1[:, :2], r1, b2[:, :2], r2)
    out = b1.new_zeros(b1.shape[0], b2.shape[0])
    if i.numel():
        out[i, j] = _finish(_box_pair_inter(b1[i], b2[j]), a1[i], a2[j], mode)
    return out


def poly_iou(polys1: Tensor, polys2: Tensor, mode: str = "iou", aligned: bool = False) -> Tensor:
    """Exact IoU (or IoF = inter / area(polys1)) of simple quadrilaterals.

    Args:
        polys1 (Tensor[N, 8]), polys2 (Tensor[M, 8]): ``(x1, y1, ..., x4, y4)``, any orientation;
            convex or not, but not self-intersecting.

    Returns:
        Tensor[N, M] (``Tensor[N]`` if aligned) in the compute dtype.
    """
    dt = compute_dtype(torch.promote_types(polys1.dtype, polys2.dtype))
    p1, p2 = polys1.to(dt).reshape(-1, 4, 2), polys2.to(dt).reshape(-1, 4, 2)
    c1, c2 = p1.mean(1), p2.mean(1)
    r1 = ((p1 - c1[:, None]) ** 2).sum(-1).amax(1).sqrt()
    r2 = ((p2 - c2[:, None]) ** 2).sum(-1).amax(1).sqrt()
    a1, a2 = shoelace(p1 - c1[:, None]).abs(), shoelace(p2 - c2[:, None]).abs()

    def inter_of(i: Tensor, j: Tensor) -> Tensor:
        out = p1.new_zeros(i.shape[0])
        for s in range(0, i.shape[0], PAIR_CHUNK):
            ii, jj = i[s : s + PAIR_CHUNK], j[s : s + PAIR_CHUNK]
            origin = c1[ii][:, None]
            out[s : s + PAIR_CHUNK] = quad_intersection_area(p1[ii] - origin, p2[jj] - origin)
        return out

    if aligned:
        near = ((c1 - c2) ** 2).sum(-1) <= (r1 + r2) ** 2
        idx = near.nonzero().squeeze(1)
        inter = p1.new_zeros(p1.shape[0])
        inter[idx] = inter_of(idx, idx)
        return _finish(inter, a1, a2, mode)
    i, j = _pair_candidates(c1, r1 * (1 + 1e-9), c2, r2 * (1 + 1e-9))
    out = p1.new_zeros(p1.shape[0], p2.shape[0])
    if i.numel():
        out[i, j] = _finish(inter_of(i, j), a1[i], a2[j], mode)
    return out


def _first_per_class(order: Tensor, idxs: Tensor | None) -> Tensor:
    """Greedy NMS with a negative threshold: every IoU (>= 0) exceeds it, so the best box of each
    class suppresses all others."""
    if idxs is None:
        return order[:1]
    cls = idxs[order]
    first = torch.ones_like(cls, dtype=torch.bool)
    _, inv = torch.unique(cls, return_inverse=True)
    seen = torch.full((int(inv.max()) + 1,), order.numel(), dtype=torch.long, device=order.device)
    seen.scatter_reduce_(0, inv, torch.arange(order.numel(), device=order.device), reduce="amin")
    first = torch.zeros_like(first)
    first[seen] = True
    return order[first]


def nms_rotated(boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None = None) -> Tensor:
    """Exact greedy rotated NMS (torchvision semantics), optionally only within equal ``idxs``.

    Boxes are visited by decreasing score (ties: lower index first); a box is suppressed when its IoU
    with an already kept box is ``> iou_threshold``.

    Blocked greedy: the score-sorted boxes are taken ``NMS_BLOCK`` at a time; only the block's
    still-alive boxes are paired with the later still-alive boxes (so the work follows the kept boxes,
    not N^2), pairs are pruned by an IoU upper bound from bounding boxes and areas, the survivors are
    clipped exactly, and the block is then resolved in score order.

    Args:
        boxes (Tensor[N, 5]), scores (Tensor[N]), idxs (Tensor[N] int, optional): class of each box.

    Returns:
        Tensor[K] int64: kept indices, by decreasing score.
    """
    n = boxes.shape[0]
    dev = boxes.device
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=dev)
    order = torch.sort(scores, descending=True, stable=True).indices
    if iou_threshold < 0:
        return _first_per_class(order, idxs)
    b = boxes.to(compute_dtype(boxes.dtype))[order]
    cls = None if idxs is None else idxs[order]
    area = box_areas(b)
    cos, sin = torch.cos(b[:, 4]).abs(), torch.sin(b[:, 4]).abs()
    ex = 0.5 * (cos * b[:, 2] + sin * b[:, 3])  # half extents of the bounding boxes
    ey = 0.5 * (sin * b[:, 2] + cos * b[:, 3])
    # Pairs whose bound is within this margin of the threshold are clipped (bounds carry round-off).
    bound_thr = iou_threshold - (1e-9 if b.dtype == torch.float64 else 1e-5)
    alive = np.ones(n, dtype=bool)
    keep: list[int] = []
    for st in range(0, n, NMS_BLOCK):
        rows_np = st + np.flatnonzero(alive[st : st + NMS_BLOCK])
        cols_np = st + 1 + np.flatnonzero(alive[st + 1 :])
        hit_i = hit_j = np.zeros(0, dtype=np.int64)
        if rows_np.size and cols_np.size:
            rows, cols = torch.from_numpy(rows_np).to(dev), torch.from_numpy(cols_np).to(dev)
            ix = ex[rows, None] + ex[None, cols] - (b[rows, None, 0] - b[None, cols, 0]).abs()  # [R, C]
            iy = ey[rows, None] + ey[None, cols] - (b[rows, None, 1] - b[None, cols, 1]).abs()
            m = (cols[None] > rows[:, None]) & (ix > 0) & (iy > 0)
            if cls is not None:
                m &= cls[rows, None] == cls[None, cols]
            ri, cj = m.nonzero(as_tuple=True)
            i, j = rows[ri], cols[cj]
            lo = torch.minimum(area[i], area[j])
            ub_inter = torch.minimum(
                torch.minimum(ix[ri, cj], 2 * torch.minimum(ex[i], ex[j]))
                * torch.minimum(iy[ri, cj], 2 * torch.minimum(ey[i], ey[j])),
                lo,
            )
            ub = ub_inter / (area[i] + area[j] - ub_inter).clamp(min=torch.finfo(b.dtype).tiny)
            sel = ub > bound_thr
            i, j = i[sel], j[sel]
            if i.numel():
                iou = _finish(_box_pair_inter(b[i], b[j]), area[i], area[j], "iou")
                hit = iou > iou_threshold
                hit_i, hit_j = i[hit].cpu().numpy(), j[hit].cpu().numpy()
        # Resolve the block in score order (hit_i is sorted: nonzero() is row-major).
        starts = np.searchsorted(hit_i, rows_np, side="left")
        ends = np.searchsorted(hit_i, rows_np, side="right")
        for r, s0, s1 in zip(rows_np.tolist(), starts.tolist(), ends.tolist()):
            if alive[r]:
                keep.append(r)
                alive[hit_j[s0:s1]] = False
    return order[torch.tensor(keep, dtype=torch.long, device=dev)]
