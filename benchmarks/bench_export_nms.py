"""Candidate selection and rotated NMS of the exported detectors at 1024 px, beside the network (CPU).

Issue 17.3 made the exported selection ``predict``'s (per FPN level: threshold, then the top ``nms_pre`` of
each level, all levels' candidates to NMS; :mod:`rdet.models.selection`) instead of one global top
``pre_nms_topk`` over all ``N * C`` scores. Each row times both in the same run, interleaved:

* eager selection (what ``predict`` and the ONNX Runtime custom op path run): before = the global top-k
  (:func:`rdet.models.selection.candidates` over all scores), after = the per-level top-k
  (:func:`rdet.models.selection.level_candidates`);
* eager NMS (:func:`rdet.ops.batched_nms_rotated`) on each selection's candidates;
* the ``nms='onnx'`` standard-op graph (selection + NMS + padding) in ONNX Runtime: before = the global
  selection graph of ``--baseline-ref`` (``export/nms_onnx.py`` as of that git commit, loaded with
  ``git show``; without it, the current ``rotated_nms_onnx``, which still implements the global selection),
  after = the exported detector's tail (:func:`rdet.export.onnx_export.detect`: one TopK per level, the
  candidates ordered, NMS on the valid prefix). Each graph's outputs are checked equal to its eager definition
  (before: :func:`rotated_nms_batched`; after: ``predict``'s :func:`rdet.models.selection.select_detections`).

Workload: Rotated RetinaNet R-18 (DOTA config: 15 classes, 1024 px gives N = 196,416 anchors, so 2.95 M
scores), seeded random weights, one random image. The classification bias is set to 0 so that every score is
about 0.5: all 2.95 M pass the 0.05 threshold, the global selection gives NMS 2000 candidates and the per-level
one 5 x 2000 = 10,000 (the most work). A second setting raises the score threshold until ~300 candidates pass,
closer to a trained model. The network rows time ``model.decode`` (eager) and the ``nms='none'`` ONNX graph in
ONNX Runtime.

Usage::

    python benchmarks/bench_export_nms.py --baseline-ref 12823d7   # 1024 px, 5 repeats, one thread
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
from rdet.boxes import regularize
from rdet.export import nms_onnx
from rdet.export.onnx_export import detect
from rdet.export.rotated_nms_op import NMSParams, rotated_nms_batched
from rdet.models.selection import candidates, level_candidates, select_detections


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench_export_nms.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="retinanet-r18", help="a model of rdet.bench.models.MODELS (%(default)s)")
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


def nms_session(fn: Callable, boxes: torch.Tensor, scores: torch.Tensor, module: types.ModuleType, threads: int):
    """An ONNX Runtime session of ``fn(boxes, scores)`` exported alone (inputs ``b``, ``s``), ``module`` being the
    ``nms_onnx`` whose greedy placeholder it uses."""
    import onnx
    import onnxruntime as ort

    class NMS(torch.nn.Module):
        def forward(self, b, s):
            return fn(b, s)

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

    from rdet.bench.models import MODELS, build

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
        rows.append(("network (decode, 1 run)", "eager PyTorch", fmt(t_net), "", ""))
        rows.append(("network (decode, 1 run)", "ONNX Runtime, nms='none' graph", fmt(t_ort), "", ""))
    flat = scores[0].reshape(-1)
    with torch.no_grad():
        per_level = model.head_outputs(norm, normalized=True).num_per_level
    sparse_thr = float(torch.topk(flat, min(300, flat.numel())).values[-1]) - 1e-7
    version = model.cfg.coder.angle_version
    for label, thr in ((f"{t.score_thr} (all {n * c:,} pass)", t.score_thr), ("~300 pass", sparse_thr)):
        p = NMSParams(t.iou_thr, thr, t.max_per_img, t.nms_pre)
        before = candidates(scores[0], thr, t.nms_pre)  # one global top-k
        after = level_candidates(scores[0], per_level, thr, t.nms_pre)  # per level, as predict
        sel = interleaved(
            {
                "before": lambda: candidates(scores[0], thr, t.nms_pre),
                "after": lambda: level_candidates(scores[0], per_level, thr, t.nms_pre),
            },
            args.repeat,
        )
        rows.append(
            (
                f"selection, score_thr {label}",
                "eager",
                f"{fmt(sel['before'])} ({before.numel()} cand.)",
                f"{fmt(sel['after'])} ({after.numel()} cand.)",
                f"{sel['before'] / sel['after']:.2f}x",
            )
        )
        cand = {k: (boxes[0][i // c], flat[i], i % c) for k, i in (("before", before), ("after", after))}
        nms_t = interleaved(
            {k: (lambda v=v: ops.batched_nms_rotated(v[0], v[1], v[2], p.iou_threshold)) for k, v in cand.items()},
            args.repeat,
        )
        rows.append(
            (
                "NMS of those candidates",
                "eager rdet.ops",
                fmt(nms_t["before"]),
                fmt(nms_t["after"]),
                f"{nms_t['before'] / nms_t['after']:.2f}x",
            )
        )
        old_mod = baseline if baseline is not None else nms_onnx
        sessions = {
            "before": nms_session(lambda b, s: old_mod.rotated_nms_onnx(b, s, p), boxes, scores, old_mod, args.threads),
            "after": nms_session(
                lambda b, s: detect(b, s, per_level, "onnx", p, version), boxes, scores, nms_onnx, args.threads
            ),
        }
        feeds = {"b": boxes.numpy(), "s": scores.numpy()}
        want_before = [o.numpy() for o in rotated_nms_batched(boxes, scores, p)]
        got = sessions["before"].run(None, feeds)
        assert all(np.array_equal(g, w) for g, w in zip(got, want_before)), "ORT NMS (before) differs from rdet.ops"
        wb, ws, wl = select_detections(scores[0], boxes[0], per_level, t, thr, t.iou_thr)
        num, db, ds, dl = sessions["after"].run(None, feeds)
        k = int(num[0, 0])
        assert dl[0, :k].tolist() == wl.tolist(), "ORT graph (after) differs from predict's selection"
        assert (
            np.abs(db[0, :k] - regularize(wb, version).numpy()).max() < 1e-3
            and np.abs(ds[0, :k] - ws.numpy()).max() < 1e-5
        )
        ort_t = interleaved({k: (lambda s=s: s.run(None, feeds)) for k, s in sessions.items()}, args.repeat)
        rows.append(
            (
                f"selection + NMS, score_thr {label}",
                "ONNX Runtime, nms='onnx' graph",
                fmt(ort_t["before"]),
                fmt(ort_t["after"]),
                f"{ort_t['before'] / ort_t['after']:.2f}x",
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
        f"pre_nms_topk / nms_pre {t.nms_pre}, iou_thr {t.iou_thr}; median of {args.repeat}; before = the global "
        f"top-k ({('ORT graph of commit ' + args.baseline_ref) if args.baseline_ref else 'current rotated_nms_onnx'}), "
        f"after = the per-level top-k of predict\n\n"
        f"Command: `{' '.join([Path(sys.executable).name, 'benchmarks/bench_export_nms.py', *(argv or sys.argv[1:])])}`"
    )
    table = [
        "| step | implementation | before: global top-k | after: per-level top-k (predict's) | before / after |",
        "|---|---|---:|---:|---:|",
        *(f"| {' | '.join(r)} |" for r in rows),
    ]
    text = head + "\n\n" + "\n".join(table) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
