"""What a missing compiler costs: rdet's compiled rotated ops vs their pure-PyTorch fallback, same inputs.

The figure quoted by the fallback warning (``rdet.ops._build.SLOWDOWN``) and the README comes from here. The two
implementations are timed alternately (compiled, fallback, compiled, ...) and the medians compared, so a load
change on a shared machine hits both sides alike; the ratio is the figure to trust, not the absolute times.
Workload: ``bench_geometry.dota_like`` (DOTA-like detections before NMS, IoU threshold 0.1).

    python -m benchmarks.bench_fallback   # NMS 1k and 20k boxes, IoU 1k x 1k, torch default threads
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.bench_geometry import IOU_THR, dota_like
from rdet.ops import _build, box_iou_rotated, has_compiled, nms_rotated, reference_only


def paired(fn, repeats: int) -> tuple[float, float]:
    """Median seconds of ``fn`` compiled and under the fallback, timed alternately."""
    fast, slow = [], []
    fn()
    with reference_only():
        fn()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        fast.append(time.perf_counter() - t0)
        with reference_only():
            t0 = time.perf_counter()
            fn()
            slow.append(time.perf_counter() - t0)
    return statistics.median(fast), statistics.median(slow)


def _ms(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    a = ap.parse_args(argv)
    if not has_compiled():
        raise SystemExit(f"the compiled ops are not available ({_build.info().reason}); nothing to compare")
    b1k, s1k = dota_like(1000)
    b20k, s20k = dota_like(20000)
    i1, _ = dota_like(1000, seed=1)
    i2, _ = dota_like(1000, seed=2)
    rows = [
        ("NMS, 1000 boxes", lambda: nms_rotated(b1k, s1k, IOU_THR), a.repeats),
        ("NMS, 20000 boxes", lambda: nms_rotated(b20k, s20k, IOU_THR), max(3, a.repeats // 5)),
        ("IoU matrix 1000 x 1000", lambda: box_iou_rotated(i1, i2), a.repeats),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; compiled ops: {_build.info().source}")
    print("\n| op | compiled | pure-PyTorch fallback | fallback / compiled |\n|---|---|---|---|")
    for name, fn, n in rows:
        fast, slow = paired(fn, n)
        print(f"| {name} | {_ms(fast)} | {_ms(slow)} | {slow / fast:.0f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
