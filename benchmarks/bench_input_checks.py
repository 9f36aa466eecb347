"""Cost of the geometry input checks of issue 18.5, measured A/B in one process, interleaved (robust to the load of
a shared machine): the public NMS / IoU with and without the side check (``rdet.ops._ops.check_sides``), and --
with ``--old-ext`` -- the compiled kernels before and after the empty-box rule (an ``rdet._C`` built from the
previous sources, loaded beside the current one).

    python benchmarks/bench_input_checks.py [--sizes 2000 10000] [--rounds 15] [--old-ext /path/to/old/_C.so]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time

import torch

from benchmarks.bench_geometry import cpu_model, dota_like
from rdet import ops
from rdet.ops import _ops


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def ab(a, b, rounds: int) -> tuple[float, float]:
    """Median seconds of ``a`` and ``b``, run alternately ``rounds`` times each (after one warm-up)."""
    a(), b()
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(timed(a))
        tb.append(timed(b))
    return statistics.median(ta), statistics.median(tb)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--old-ext", default=None, help="an rdet._C built from the sources before the change")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    checked = _ops.check_sides
    print(f"Device: {cpu_model()}, 1 thread; torch {torch.__version__}; compiled: {ops.has_compiled()}\n")
    print("| workload | N | without check | with check | ratio |")
    print("|---|---|---|---|---|")
    for n in a.sizes:
        boxes, scores = dota_like(n)
        small = boxes[:1000]
        for name, fn in (
            ("nms_rotated (compiled)", lambda: ops.nms_rotated(boxes, scores, 0.1)),
            ("box_iou_rotated 1000 x N (compiled)", lambda: ops.box_iou_rotated(small, boxes)),
        ):

            def off(fn=fn):
                _ops.check_sides = lambda t, name: None
                try:
                    fn()
                finally:
                    _ops.check_sides = checked

            t0, t1 = ab(off, fn, a.rounds)
            print(f"| {name} | {n} | {t0 * 1e3:.2f} ms | {t1 * 1e3:.2f} ms | {t1 / t0:.3f} |")
    if a.old_ext:
        spec = importlib.util.spec_from_file_location("rdet._C", a.old_ext)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        from rdet import _C as new

        print("\n| kernel (float64) | N | before | after | ratio |")
        print("|---|---|---|---|---|")
        for n in a.sizes:
            boxes, scores = dota_like(n)
            small = boxes[:1000].contiguous()
            for name, call in (
                ("nms_rotated", lambda m: m.nms_rotated(boxes, scores, 0.1, None)),
                ("box_iou_rotated 1000 x N", lambda m: m.box_iou_rotated(small, boxes, False, False)),
            ):
                assert torch.equal(call(old), call(new))
                t0, t1 = ab(lambda: call(old), lambda: call(new), a.rounds)
                print(f"| {name} | {n} | {t0 * 1e3:.2f} ms | {t1 * 1e3:.2f} ms | {t1 / t0:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
