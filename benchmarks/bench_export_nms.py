"""Candidate selection and rotated NMS of the exported detectors at 1024 px, beside the network (CPU).

Each NMS implementation is timed before and after the issue-17 changes in the same run, interleaved:

* eager selection (the PyTorch op; also what the ONNX Runtime custom op of ``--nms plugin`` graphs runs):
  before = a stable sort of every passing score (:func:`rotated_nms_op.sorted_candidates`, the old code),
  after = threshold then ``topk`` (:func:`rotated_nms_op.candidates`);
* eager NMS on those candidates (:func:`rdet.ops.batched_nms_rotated`);
* the ``nms='onnx'`` standard-op NMS graph (selection + NMS + padding) in ONNX Runtime: before = the graph of
  ``--baseline-ref`` (``export/nms_onnx.py`` as of that git commit, loaded with ``git show``; without it, the
  current graph with ``prune=False``), after = the current graph; all outputs are checked equal to
  :func:`rotated_nms_batched`. A third column shows the current graph without the IoU-bound pruning.

Workload: Rotated RetinaNet R-18 (DOTA config: 15 classes, 1024 px gives N = 196,416 anchors, so 2.95 M
scores), seeded random weights, one random image. The classification bias is set to 0 so that every score is
about 0.5: all 2.95 M pass the 0.05 threshold and NMS gets the full ``pre_nms_topk = 2000`` candidates (the
most work). A second setting raises the score threshold until ~300 candidates pass, closer to a trained
model. The network rows time ``model.decode`` (eager) and the ``nms='none'`` ONNX graph in ONNX Runtime.

Usage::

    python benchmarks/bench_export_nms.py --baseline-ref 3896e6f   # 1024 px, 5 repeats, one thread
    python benchmarks/bench_export_nms.py --imgsz 256 --repeat 1 --no-network    # smoke run (seconds)
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning OpenMP threads are 10-50x slower

import argparse
import datetime
import io
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rdet import ops
from rdet.export import nms_onnx
from rdet.export.rotated_nms_op import NMSParams, candidates, rotated_nms_batched, sorted_candidates


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench_export_nms.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="retinanet-r18", help="a model of rdet.bench.fps.MODELS (default %(default)s)")
    ap.add_argument("--imgsz", type=int, default=1024, help="square input size, divisible by 32 (%(default)s)")
    ap.add_argument("--repeat", type=int, default=5, help="timed repeats of each NMS row (%(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads (%(default)s)")
    ap.add_argument("--no-network", action="store_true", help="skip the network rows (and the full-model export)")
    ap.add_argument("--baseline-ref", default=None, help="git commit whose export/nms_onnx.py is the 'before' graph")
    ap.add_argument("--output", default=None, help="also write the markdown table to this file")
    args = ap.parse_args(argv)
    if args.imgsz < 32 or args.imgsz % 32:
        ap.error(f"--imgsz must be a positive multiple of 32, got {args.imgsz}")
    if args.repeat < 1 or args.threads < 1:
        ap.error("--repeat and --threads must be >= 1")
    return args


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each function over ``repeat`` rounds, the functions alternating within a round."""
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            times[k].append(timed(fn)[0])
    return {k: statistics.median(v) for k, v in times.items()}


def baseline_module(ref: str) -> types.ModuleType:
    """``export/nms_onnx.py`` as of git ``ref``, with its custom op renamed to live beside the current one."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(["git", "show", f"{ref}:export/nms_onnx.py"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"--baseline-ref {ref}: {proc.stderr.strip()}")
    module = types.ModuleType("nms_onnx_baseline")
    source = proc.stdout.replace("rdet_export", "rdet_export_baseline")
    exec(compile(source, f"{ref}:export/nms_onnx.py", "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


def nms_session(
    module: types.ModuleType, boxes: torch.Tensor, scores: torch.Tensor, params: NMSParams, kw: dict, threads: int
):
    """An ONNX Runtime session of ``module``'s ``nms='onnx'`` NMS alone (inputs ``boxes``, ``scores``)."""
    import onnx
    import onnxruntime as ort

    class NMS(torch.nn.Module):
        def forward(self, b, s):
            return module.rotated_nms_onnx(b, s, params, **kw)

    module.register_onnx_symbolic(17)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(NMS(), (boxes, scores), buf, dynamo=False, opset_version=17, input_names=["b", "s"])
    proto = onnx.load_from_string(buf.getvalue())
    module.expand_greedy_keep(proto)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = threads
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import onnxruntime as ort

    from rdet.bench.fps import MODELS, build

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(MODELS[args.model], "dota", torch.device("cpu"))
    with torch.no_grad():
        model.bbox_head.retina_cls.bias.zero_()  # scores ~0.5: every score passes 0.05
    x = torch.randint(0, 256, (1, 3, args.imgsz, args.imgsz), generator=torch.Generator().manual_seed(0))
    norm = (x.float() - torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)) / torch.tensor(
        [58.395, 57.12, 57.375]
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        t_net, (boxes, scores) = timed(lambda: model.decode(norm))
    n, c = scores.shape[1], scores.shape[2]
    t = model.cfg.test
    rows: list[tuple[str, ...]] = []
    baseline = baseline_module(args.baseline_ref) if args.baseline_ref else None
    if not args.no_network:
        from rdet.export.onnx_export import export_onnx

        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(model, Path(tmp) / "net.onnx", nms="none", imgsz=args.imgsz)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = args.threads
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            sess.run(None, {"images": x.numpy().astype(np.uint8)})  # warm-up
            t_ort, _ = timed(lambda: sess.run(None, {"images": x.numpy().astype(np.uint8)}))
        rows.append(("network (decode, 1 run)", "eager PyTorch", fmt(t_net), "", "", ""))
        rows.append(("network (decode, 1 run)", "ONNX Runtime, nms='none' graph", fmt(t_ort), "", "", ""))
    flat = scores[0].reshape(-1)
    sparse_thr = float(torch.topk(flat, min(300, flat.numel())).values[-1]) - 1e-7
    for label, thr in ((f"{t.score_thr} (all {n * c:,} pass)", t.score_thr), ("~300 pass", sparse_thr)):
        p = NMSParams(t.iou_thr, thr, t.max_per_img, t.nms_pre)
        before = sorted_candidates(scores[0], p.score_threshold, p.pre_nms_topk)
        after = candidates(scores[0], p.score_threshold, p.pre_nms_topk)
        assert torch.equal(before, after), "top-k selection differs from the sorted definition"
        sel = interleaved(
            {
                "before": lambda: sorted_candidates(scores[0], p.score_threshold, p.pre_nms_topk),
                "after": lambda: candidates(scores[0], p.score_threshold, p.pre_nms_topk),
            },
            args.repeat,
        )
        rows.append(
            (
                f"selection, score_thr {label}",
                "eager (and ORT custom op)",
                fmt(sel["before"]),
                fmt(sel["after"]),
                f"{sel['before'] / sel['after']:.1f}x",
                "",
            )
        )
        bx, sc, lab = boxes[0][after // c], flat[after], after % c
        nms_t = interleaved({"nms": lambda: ops.batched_nms_rotated(bx, sc, lab, p.iou_threshold)}, args.repeat)
        rows.append((f"NMS of {after.numel()} candidates", "eager rdet.ops", "", fmt(nms_t["nms"]), "", ""))
        variants = {
            "before": (baseline, {}) if baseline is not None else (nms_onnx, {"prune": False}),
            "after": (nms_onnx, {}),
            "unpruned": (nms_onnx, {"prune": False}),
        }
        sessions = {k: nms_session(m, boxes, scores, p, kw, args.threads) for k, (m, kw) in variants.items()}
        feeds = {"b": boxes.numpy(), "s": scores.numpy()}
        want = [o.numpy() for o in rotated_nms_batched(boxes, scores, p)]
        for k, s in sessions.items():
            got = s.run(None, feeds)
            assert all(np.array_equal(g, w) for g, w in zip(got, want)), f"ORT NMS ({k}) differs from rdet.ops"
        ort_t = interleaved({k: (lambda s=s: s.run(None, feeds)) for k, s in sessions.items()}, args.repeat)
        rows.append(
            (
                f"selection + NMS, score_thr {label}",
                "ONNX Runtime, nms='onnx' graph",
                fmt(ort_t["before"]),
                fmt(ort_t["after"]),
                f"{ort_t['before'] / ort_t['after']:.1f}x",
                fmt(ort_t["unpruned"]),
            )
        )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in line
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    head = (
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit or '?'}, {cpu}, "
        f"{args.threads} thread(s), load {os.getloadavg()[0]:.1f}, torch {torch.__version__}, onnxruntime "
        f"{ort.__version__}; {args.model} at {args.imgsz} px: N = {n:,} boxes x C = {c} classes, "
        f"pre_nms_topk {t.nms_pre}, iou_thr {t.iou_thr}; median of {args.repeat}; before (ORT graph) = "
        f"{('commit ' + args.baseline_ref) if args.baseline_ref else 'current graph, prune=False'}\n\n"
        f"Command: `{' '.join([Path(sys.executable).name, 'benchmarks/bench_export_nms.py', *(argv or sys.argv[1:])])}`"
    )
    table = [
        "| step | implementation | before | after | before / after | after, no IoU-bound pruning |",
        "|---|---|---:|---:|---:|---:|",
        *(f"| {' | '.join(r)} |" for r in rows),
    ]
    text = head + "\n\n" + "\n".join(table) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
