"""Rotated NMS / IoU benchmark on a DOTA-like workload: rdet (compiled, pure-torch) vs shapely vs OpenCV.

Workload (fixed seed): objects on a 1024 x 1024 canvas with widths log-uniform in 8-300 px, aspect
ratio log-uniform in 1-10 and uniform angles; 80 % of the N boxes are jittered duplicates around the
objects (what a detector emits before NMS), 20 % uniform clutter. Greedy NMS at the MMRotate DOTA
threshold (IoU 0.1). The exact reference is greedy NMS with shapely polygon IoUs.

Usage::

    python benchmarks/bench_geometry.py            # N = 1k, 5k, 20k (one CPU thread)
    python benchmarks/bench_geometry.py --quick    # N = 500, 2k (a few seconds)
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import subprocess
import time
from collections.abc import Callable

import cv2
import numpy as np
import shapely
import torch

from rdet.ops import _reference, box_iou_rotated, has_compiled, nms_rotated, reference_only

CANVAS = 1024.0
IOU_THR = 0.1


def dota_like(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """N DOTA-like detections before NMS.

    Returns:
        boxes (Tensor[N, 5] float64) ``(cx, cy, w, h, angle)`` and scores (Tensor[N] float64).
    """
    rng = np.random.default_rng(seed)
    n_clutter = int(round(0.2 * n))
    n_dup = n - n_clutter
    n_obj = max(1, n_dup // 8)

    def random_boxes(k: int) -> np.ndarray:
        w = np.exp(rng.uniform(math.log(8), math.log(300), k))
        h = w / np.exp(rng.uniform(0, math.log(10), k))
        swap = rng.random(k) < 0.5  # w is not always the long side
        w, h = np.where(swap, h, w), np.where(swap, w, h)
        xy = rng.uniform(0, CANVAS, (k, 2))
        a = rng.uniform(-math.pi / 2, math.pi / 2, k)
        return np.column_stack([xy, w, h, a])

    obj = random_boxes(n_obj)
    owner = rng.integers(0, n_obj, n_dup)
    dup = obj[owner].copy()
    size = np.sqrt(dup[:, 2] * dup[:, 3])
    dup[:, :2] += rng.normal(0, 0.15, (n_dup, 2)) * size[:, None]
    dup[:, 2:4] *= np.exp(rng.normal(0, 0.15, (n_dup, 2)))
    dup[:, 4] += rng.normal(0, 0.15, n_dup)
    dup_scores = rng.uniform(0.3, 1.0, n_dup)
    clutter = random_boxes(n_clutter)
    clutter_scores = rng.uniform(0.05, 0.5, n_clutter)
    boxes = np.concatenate([dup, clutter])
    scores = np.concatenate([dup_scores, clutter_scores])
    perm = rng.permutation(n)
    return torch.from_numpy(boxes[perm]), torch.from_numpy(scores[perm])


def shapely_polys(boxes: torch.Tensor) -> np.ndarray:
    corners = (_reference.box_corners(boxes) + boxes[:, None, :2]).numpy()
    return shapely.polygons(corners)


def shapely_nms(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> torch.Tensor:
    """Exact greedy NMS with shapely IoUs (vectorised over the candidates of each kept box)."""
    polys = shapely_polys(boxes)
    areas = shapely.area(polys)
    order = np.argsort(-scores.numpy(), kind="stable")
    bounds = shapely.bounds(polys)
    alive = np.ones(len(order), bool)
    keep = []
    for r, i in enumerate(order):
        if not alive[i]:
            continue
        keep.append(i)
        rest = order[r + 1 :]
        rest = rest[alive[rest]]
        b = bounds[rest]
        near = rest[
            (b[:, 0] < bounds[i, 2]) & (b[:, 2] > bounds[i, 0]) & (b[:, 1] < bounds[i, 3]) & (b[:, 3] > bounds[i, 1])
        ]
        if len(near):
            inter = shapely.area(shapely.intersection(polys[i], polys[near]))
            iou = inter / (areas[i] + areas[near] - inter)
            alive[near[iou > thr]] = False
    return torch.tensor(keep, dtype=torch.long)


def opencv_nms(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> torch.Tensor:
    # OpenCV's RotatedRect angle is in degrees, clockwise on screen: the rdet convention in degrees.
    b = boxes.numpy()
    rects = [((x, y), (w, h), math.degrees(a)) for x, y, w, h, a in b.tolist()]
    idx = cv2.dnn.NMSBoxesRotated(rects, scores.numpy().astype(np.float32).tolist(), 0.0, thr)
    return torch.as_tensor(np.asarray(idx, dtype=np.int64).reshape(-1))


def shapely_iou_matrix(b1: torch.Tensor, b2: torch.Tensor) -> np.ndarray:
    p1, p2 = shapely_polys(b1), shapely_polys(b2)
    i, j = shapely.STRtree(p2).query(p1)
    out = np.zeros((len(p1), len(p2)))
    inter = shapely.area(shapely.intersection(p1[i], p2[j]))
    out[i, j] = inter / (shapely.area(p1[i]) + shapely.area(p2[j]) - inter)
    return out


def median_time(fn: Callable[[], object], repeats: int, budget_s: float = 20.0) -> tuple[float, object]:
    """Median wall time of ``fn`` over up to ``repeats`` runs (fewer if the budget is spent)."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        if sum(times) > budget_s:
            break
    return statistics.median(times), out


def _fmt(t: float) -> str:
    return f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def run(sizes: list[int], repeats: int) -> str:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    lines = [
        f"Device: {cpu_model()}, 1 thread (torch.set_num_threads(1)); torch {torch.__version__}, "
        f"shapely {shapely.__version__}, OpenCV {cv2.__version__}; compiled rdet._C: {has_compiled()}; "
        f"NMS IoU threshold {IOU_THR}.",
        "",
        "| N | kept (exact) | rdet compiled | rdet pure-torch | shapely | OpenCV | shapely / compiled "
        "| compiled = exact | pure-torch = exact | OpenCV = exact (kept) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    warm = dota_like(50)
    nms_rotated(*warm, IOU_THR)  # first call imports torch._dynamo machinery (~1 s), not our cost
    for n in sizes:
        boxes, scores = dota_like(n)
        t_ref, ref = median_time(lambda: shapely_nms(boxes, scores, IOU_THR), 1 if n > 5000 else max(1, repeats // 3))
        ref_set = set(ref.tolist())
        if has_compiled():
            t_c, k_c = median_time(lambda: nms_rotated(boxes, scores, IOU_THR), repeats)
            c_ok = torch.equal(k_c, ref)
            tc_s, ratio = _fmt(t_c), f"{t_ref / t_c:.0f}x"
        else:
            tc_s, ratio, c_ok = "n/a", "n/a", "n/a"
        with reference_only():
            t_p, k_p = median_time(lambda: nms_rotated(boxes, scores, IOU_THR), 1 if n > 5000 else repeats)
        t_o, k_o = median_time(lambda: opencv_nms(boxes, scores, IOU_THR), repeats)
        o_ok = set(k_o.tolist()) == ref_set
        lines.append(
            f"| {n} | {len(ref)} | {tc_s} | {_fmt(t_p)} | {_fmt(t_ref)} | {_fmt(t_o)} | {ratio} | {c_ok} "
            f"| {torch.equal(k_p, ref)} | {o_ok} ({len(k_o)}) |"
        )
    # IoU matrix, 1k x 1k.
    b1, _ = dota_like(1000, seed=1)
    b2, _ = dota_like(1000, seed=2)
    t_s, m_s = median_time(lambda: shapely_iou_matrix(b1, b2), max(1, repeats // 3))
    lines += ["", "| IoU matrix 1000 x 1000 | time | max abs diff vs shapely |", "|---|---|---|"]
    if has_compiled():
        t_c, m_c = median_time(lambda: box_iou_rotated(b1, b2), repeats)
        lines.append(f"| rdet compiled | {_fmt(t_c)} | {np.abs(m_c.numpy() - m_s).max():.1e} |")
    with reference_only():
        t_p, m_p = median_time(lambda: box_iou_rotated(b1, b2), max(1, repeats // 3))
    lines.append(f"| rdet pure-torch | {_fmt(t_p)} | {np.abs(m_p.numpy() - m_s).max():.1e} |")
    lines.append(f"| shapely (STRtree candidates) | {_fmt(t_s)} | 0 |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N only (a few seconds)")
    parser.add_argument("--sizes", type=int, nargs="*", help="override the N values")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (median)")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([500, 2000] if args.quick else [1000, 5000, 20000])
    print(run(sizes, 3 if args.quick else args.repeats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
