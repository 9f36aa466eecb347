"""GPU evidence for the deployment path (issue 17.6), in one run of under 8 minutes, summarised in one JSON file.

Run it through ``bash benchmarks/gpu_check.sh`` (the hard time limit and the interpreter). Steps, each recorded
as passed / failed / skipped (with the reason), with its seconds and details:

* ``environment``: torch, CUDA device, rdet's compiled CUDA ops, nvcc, compute-sanitizer, TensorRT (and its
  headers), ONNX Runtime providers;
* ``ops``: ``rdet.ops`` on CUDA against the CPU: IoU matrix, NMS class-wise and class-agnostic with exact score
  ties, NaN refused alike; the export op (``rotated_nms_batched``) on CUDA against the CPU at batch 1/2/4;
* ``kernels``: the TensorRT plugin's kernels (``kernel_driver.cu`` built with nvcc) against the PyTorch op:
  batch 1/2/4, class-wise and class-agnostic, ties at the top-k cut, NaN scores, an all-NaN image;
* ``sanitizer``: compute-sanitizer memcheck (with leak check), racecheck, initcheck and synccheck on the
  kernels: 0 errors each;
* ``timing``: candidate selection and NMS at 1024 px (N = 196,416 boxes x 15 classes): the plugin kernels
  (every score passing / ~300 passing; batch 1 and 4), and eager PyTorch on CUDA (full sort before, top-k
  after; ``rdet.ops`` NMS of the candidates);
* ``tensorrt``: the plugin library built with the repository's CMake and loaded once; engines for
  ``--nms plugin`` and ``--nms onnx`` built from a small random model, run, and compared with ONNX Runtime.

Without a CUDA device every step but ``environment`` is skipped, so the script is known to start; the JSON is
rewritten after every step, so an interrupted run keeps what it measured. ``--emulate`` checks the script itself
on a CPU: ``ops``, ``kernels`` and ``timing`` run on CPU tensors with the CPU-emulated kernel driver (their
comparisons are real, their times are not GPU figures and are labelled so).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime
import json
import math
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("environment", "ops", "kernels", "sanitizer", "timing", "tensorrt")
NEEDS = {"ops": 20, "kernels": 60, "sanitizer": 90, "timing": 60, "tensorrt": 150}  # seconds a step needs at least
N_1024, C_DOTA = 196_416, 15  # anchors of a 1024 px image (21,824 locations x 9), DOTA classes


class Skip(Exception):
    """A step that cannot run here; the message says why."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="gpu_check.sh", description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", default="gpu_check.json", help="the JSON summary (default %(default)s)")
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for all steps (default %(default)s)")
    ap.add_argument("--only", nargs="+", default=None, metavar="STEP", help=f"run only these of {', '.join(STEPS)}")
    ap.add_argument("--skip", nargs="+", default=[], metavar="STEP", help="steps not to run")
    ap.add_argument("--workdir", default=None, help="build folder (default: a temporary one, removed at the end)")
    ap.add_argument("--list", action="store_true", help="list the steps and exit")
    ap.add_argument("--emulate", action="store_true", help="CPU check of this script: emulated kernels, CPU tensors")
    args = ap.parse_args(argv)
    for name in (args.only or []) + args.skip:
        if name not in STEPS:
            ap.error(f"unknown step {name!r}; steps: {', '.join(STEPS)}")
    if not args.budget > 0:
        ap.error(f"--budget must be > 0 seconds, got {args.budget}")
    return args


class Context:
    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.args, self.workdir = args, workdir
        self.deadline = time.monotonic() + args.budget
        self.env: dict = {}
        self.emulate = bool(args.emulate)
        self.device = "cpu" if self.emulate else "cuda"

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def need_cuda(self, emulated: bool = False) -> None:
        """Skip unless a CUDA device is visible (or ``--emulate`` runs this step on the CPU)."""
        if not self.env.get("cuda_available") and not (emulated and self.emulate):
            raise Skip("no CUDA device visible to torch")

    def need(self, tool: str) -> str:
        if self.emulate and tool == "nvcc":
            return "emulated"
        path = self.env.get(tool)
        if not path:
            raise Skip(f"{tool} not found")
        return path


# ------------------------------------------------------------------------------------------- helpers
def sync_time(fn: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of ``fn`` (CUDA synchronised when there is a device), after one warm-up call."""
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def clustered(b: int, n: int, c: int, seed: int, levels: int = 20, extent: float = 200.0):
    """Boxes [B, N, 5] in clusters, exact duplicates, and scores [B, N, C] on ``levels`` values (ties)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(b, max(1, n // 6), 2, generator=g) * extent
    pick = torch.randint(0, centres.shape[1], (b, n), generator=g)
    xy = torch.gather(centres, 1, pick[..., None].expand(-1, -1, 2)) + torch.randn(b, n, 2, generator=g) * 4
    boxes = torch.cat([xy, torch.rand(b, n, 2, generator=g) * 30 + 3, (torch.rand(b, n, 1, generator=g) - 0.5) * 3], -1)
    boxes[:, n // 3 : n // 3 + 10] = boxes[:, :10]
    return boxes, (torch.rand(b, n, c, generator=g) * levels).floor() / levels


def equal_outputs(got, want) -> bool:
    import numpy as np

    return all(np.array_equal(np.asarray(g), w.cpu().numpy() if hasattr(w, "cpu") else w) for g, w in zip(got, want))


# --------------------------------------------------------------------------------------------- steps
def step_environment(ctx: Context) -> dict:
    import torch

    import rdet.ops

    d = {"python": sys.version.split()[0], "torch": torch.__version__, "torch_cuda": torch.version.cuda}
    d["cuda_available"] = torch.cuda.is_available()
    if d["cuda_available"]:
        d["device"] = torch.cuda.get_device_name(0)
        d["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    d["rdet_compiled_cuda_ops"] = rdet.ops.has_compiled("cuda")
    d["nvcc"] = shutil.which("nvcc")
    sanitizer = shutil.which("compute-sanitizer")
    if sanitizer is None and d["nvcc"]:
        cand = Path(d["nvcc"]).resolve().parent / "compute-sanitizer"
        sanitizer = str(cand) if cand.exists() else None
    d["compute-sanitizer"] = sanitizer
    d["cmake"] = shutil.which("cmake")
    try:
        import tensorrt

        d["tensorrt"] = tensorrt.__version__
    except ImportError as e:
        d["tensorrt"] = None
        d["tensorrt_error"] = str(e)
    d["tensorrt_include"] = str(tensorrt_include()) if tensorrt_include() else None
    try:
        import onnxruntime

        d["onnxruntime"] = onnxruntime.__version__
        d["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError as e:
        d["onnxruntime"] = f"not installed ({e})"
    ctx.env = d
    return d


def step_ops(ctx: Context) -> dict:
    ctx.need_cuda(emulated=True)
    import torch

    from rdet import ops
    from rdet.export.rotated_nms_op import NMSParams, rotated_nms_batched

    dev = ctx.device
    d: dict = {"compiled_cuda": ctx.env["rdet_compiled_cuda_ops"], "device": dev}
    boxes, scores = clustered(1, 1500, 3, seed=1)
    b, s = boxes[0], scores[0]
    iou_cpu = ops.box_iou_rotated(b.double(), b.double())
    iou_gpu = ops.box_iou_rotated(b.to(dev), b.to(dev)).double().cpu()
    d["iou_max_abs_diff"] = float((iou_cpu - iou_gpu).abs().max())
    labels = s.argmax(1)
    best = s.max(1).values  # quantised: exact ties
    for name, idxs in (("class_agnostic", None), ("class_wise", labels)):
        for thr in (0.1, 0.5):
            if idxs is None:
                cpu, gpu = ops.nms_rotated(b, best, thr), ops.nms_rotated(b.to(dev), best.to(dev), thr).cpu()
            else:
                cpu = ops.batched_nms_rotated(b, best, idxs, thr)
                gpu = ops.batched_nms_rotated(b.to(dev), best.to(dev), idxs.to(dev), thr).cpu()
            d[f"nms_{name}_iou{thr}_kept"] = int(cpu.numel())
            d[f"nms_{name}_iou{thr}_equal"] = bool(torch.equal(cpu, gpu))
    nan = best.clone()
    nan[3] = float("nan")
    refused = []
    for device in ("cpu", dev):
        try:
            ops.nms_rotated(b.to(device), nan.to(device), 0.1)
            refused.append(False)
        except ValueError:
            refused.append(True)
    d["nan_scores_refused_cpu_and_device"] = refused
    p = NMSParams(0.2, 0.2, 300, 400)
    for batch in (1, 2, 4):
        bx, sc = clustered(batch, 800, 4, seed=batch)
        sc[0, ::9, 1] = float("nan")
        d[f"export_op_batch{batch}_equal"] = equal_outputs(
            [o.cpu() for o in rotated_nms_batched(bx.to(dev), sc.to(dev), p)], rotated_nms_batched(bx, sc, p)
        )
    flags = [v for k, v in d.items() if k.endswith("_equal")] + [refused == [True, True], d["iou_max_abs_diff"] < 1e-4]
    if not all(flags):
        raise AssertionError(f"CUDA and CPU disagree: {d}")
    return d


def gpu_driver(ctx: Context) -> Path:
    from rdet.export import kernel_driver

    exe = ctx.workdir / ("kernel_driver_emulated" if ctx.emulate else "kernel_driver_gpu")
    if not exe.exists():
        kernel_driver.build_driver(exe, emulate=ctx.emulate, arch="native")
    return exe


KERNEL_CASES = [  # batch, N, C, class_agnostic, pre_nms_topk, tweak
    (1, 1500, 3, False, 500, "nan"),
    (2, 1500, 3, True, 500, ""),
    (4, 900, 5, False, 2000, "allnan"),
    (4, 3000, 2, True, 4000, "nan"),
]


def kernel_case(case: tuple, seed: int):
    """``(boxes, scores, params)`` of one KERNEL_CASES entry."""
    from rdet.export.rotated_nms_op import NMSParams

    batch, n, c, agnostic, topk, tweak = case
    boxes, scores = clustered(batch, n, c, seed=seed)
    if tweak == "nan":
        scores[0, ::7, 0] = float("nan")
    if tweak == "allnan":
        scores[1] = float("nan")
    return boxes, scores, NMSParams(0.1, 0.1, 1000, topk, agnostic)


def step_kernels(ctx: Context) -> dict:
    ctx.need_cuda(emulated=True)
    ctx.need("nvcc")
    from rdet.export import kernel_driver
    from rdet.export.rotated_nms_op import rotated_nms_batched

    exe, d, bad = gpu_driver(ctx), {"emulated": ctx.emulate}, []
    for i, case in enumerate(KERNEL_CASES):
        boxes, scores, p = kernel_case(case, seed=10 + i)
        got, report, _ = kernel_driver.run_driver(exe, boxes, scores, p, ctx.workdir / f"case{i}")
        want = rotated_nms_batched(boxes, scores, p)
        same = equal_outputs(got, want)
        d[f"case{i}"] = {"batch": case[0], "N": case[1], "C": case[2], "class_agnostic": case[3], "K": report.get("k"),
                         "tweak": case[5], "kept": [int(v) for v in want[0][:, 0]], "equal": same}  # fmt: skip
        if not same:
            bad.append(i)
    if bad:
        raise AssertionError(f"plugin kernels differ from the PyTorch op in cases {bad}: {d}")
    return d


def step_sanitizer(ctx: Context) -> dict:
    ctx.need_cuda()
    ctx.need("nvcc")
    sanitizer = ctx.need("compute-sanitizer")
    from rdet.export import kernel_driver

    exe, d = gpu_driver(ctx), {}
    boxes, scores, p = kernel_case((2, 400, 3, False, 300, "nan"), seed=3)
    tools = {"memcheck": ["--tool", "memcheck", "--leak-check", "full"], "racecheck": ["--tool", "racecheck"]}
    tools.update({"initcheck": ["--tool", "initcheck"], "synccheck": ["--tool", "synccheck"]})
    for name, opts in tools.items():
        prefix = [sanitizer, *opts, "--error-exitcode", "99"]
        try:
            _, _, proc = kernel_driver.run_driver(exe, boxes, scores, p, ctx.workdir / name, prefix=prefix)
            summary = [
                line for line in proc.stdout.splitlines() if "ERROR SUMMARY" in line or "RACECHECK SUMMARY" in line
            ]
            d[name] = {"errors": 0, "summary": summary}
        except RuntimeError as e:
            d[name] = {"errors": "see output", "output": str(e)[-2000:]}
    if any(v["errors"] != 0 for v in d.values()):
        raise AssertionError(f"compute-sanitizer found errors: {d}")
    return d


def step_timing(ctx: Context) -> dict:
    ctx.need_cuda(emulated=True)
    import torch

    from rdet import ops
    from rdet.export import kernel_driver
    from rdet.export.rotated_nms_op import NMSParams
    from rdet.models.selection import candidates, sorted_candidates

    d: dict = {"N": N_1024, "C": C_DOTA, "pre_nms_topk": 2000, "iou_threshold": 0.1, "device": ctx.device}
    if ctx.emulate:
        d["note"] = "EMULATED on the CPU: these times are not GPU figures"
    g = torch.Generator().manual_seed(0)
    boxes = torch.cat([torch.rand(4, N_1024, 2, generator=g) * 1024, torch.rand(4, N_1024, 2, generator=g) * 280 + 20,
                       (torch.rand(4, N_1024, 1, generator=g) - 0.5) * math.pi], -1)  # fmt: skip
    dense = torch.rand(4, N_1024, C_DOTA, generator=g)  # every score passes 0.05
    sparse = torch.rand(4, N_1024, C_DOTA, generator=g) * 0.04  # ~300 per image pass
    sparse.view(4, -1)[:, torch.randperm(N_1024 * C_DOTA, generator=g)[:300]] = 0.5
    p = NMSParams(0.1, 0.05, 2000, 2000)
    if ctx.env.get("nvcc") or ctx.emulate:
        exe = gpu_driver(ctx)
        for name, scores in (("all_pass", dense), ("300_pass", sparse)):
            for batch in (1,) if ctx.emulate else (1, 4):
                _, report, _ = kernel_driver.run_driver(
                    exe, boxes[:batch], scores[:batch], p, ctx.workdir / f"time_{name}_{batch}", repeat=50
                )
                d[f"plugin_kernels_{name}_batch{batch}"] = {k: report.get(k) for k in ("ms_total", "ms_selection")}
                d[f"plugin_kernels_{name}_batch{batch}"]["workspace_bytes"] = report.get("workspace_bytes")
    else:
        d["plugin_kernels"] = "skipped: nvcc not found"
    for name, scores in (("all_pass", dense), ("300_pass", sparse)):
        s = scores[0].to(ctx.device)
        d[f"eager_{ctx.device}_selection_{name}_ms"] = {
            "before_full_sort": sync_time(lambda s=s: sorted_candidates(s, 0.05, 2000), 20),
            "after_topk": sync_time(lambda s=s: candidates(s, 0.05, 2000), 20),
        }
        idx = candidates(s, 0.05, 2000)
        bx, sc, lab = boxes[0].to(ctx.device)[idx // C_DOTA], s.reshape(-1)[idx], idx % C_DOTA
        d[f"eager_{ctx.device}_nms_{name}_ms"] = sync_time(lambda: ops.batched_nms_rotated(bx, sc, lab, 0.1), 20)
        d[f"eager_{ctx.device}_nms_{name}_candidates"] = int(idx.numel())
    return d


def tensorrt_include() -> Path | None:
    for root in (os.environ.get("TensorRT_ROOT"), "/usr", "/usr/local/tensorrt", "/opt/tensorrt"):
        for sub in ("include", "include/x86_64-linux-gnu", "include/aarch64-linux-gnu"):
            if root and (Path(root) / sub / "NvInferRuntime.h").is_file():
                return Path(root) / sub
    return None


def step_tensorrt(ctx: Context) -> dict:
    ctx.need_cuda()
    if not ctx.env.get("tensorrt"):
        raise Skip(f"tensorrt not importable ({ctx.env.get('tensorrt_error', '')})")
    import numpy as np
    import tensorrt as trt
    import torch

    from rdet.bench.models import MODELS, build
    from rdet.export.onnx_export import export_onnx
    from rdet.export.runtime import Runner, load_plugin_library
    from rdet.export.trt_build import build_engine

    d: dict = {"tensorrt": trt.__version__}
    lib = None
    inc = tensorrt_include()
    if inc is None or not ctx.env.get("cmake") or not ctx.env.get("nvcc"):
        d["plugin"] = "skipped: needs TensorRT headers (TensorRT_ROOT), cmake and nvcc"
    else:
        build_dir = ctx.workdir / "plugin_build"
        env = dict(os.environ, TensorRT_ROOT=str(inc.parent))
        src = ROOT / "export" / "plugins" / "rotated_nms"
        for cmd in (["cmake", "-S", str(src), "-B", str(build_dir), "-DCMAKE_CUDA_ARCHITECTURES=native"],
                    ["cmake", "--build", str(build_dir), "-j", "8"]):  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
            if proc.returncode != 0:
                raise AssertionError(f"plugin build failed: {(proc.stdout + proc.stderr)[-3000:]}")
        lib = build_dir / "librdet_rotated_nms_plugin.so"
        nm = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True).stdout
        d["plugin_exports"] = sorted(line.split()[-1] for line in nm.splitlines() if line.strip())
        d["plugin_loaded"] = load_plugin_library(trt, lib)
        d["plugin_loaded_again"] = load_plugin_library(trt, lib)  # once per process: no second registration
    torch.manual_seed(0)
    model = build(MODELS["retinanet-r18-narrow"], "dota", torch.device("cpu"))
    with torch.no_grad():
        model.bbox_head.retina_cls.bias.zero_()  # scores ~0.5: NMS has work to do
    images = np.random.default_rng(0).integers(0, 256, (4, 3, 512, 512), dtype=np.uint8)
    mismatches = []
    for mode in ("onnx", "plugin"):
        if mode == "plugin" and lib is None:
            continue
        onnx_path = export_onnx(model, ctx.workdir / f"model_{mode}.onnx", nms=mode, dynamic_batch=True, imgsz=512,
                                score_threshold=0.3, pre_nms_topk=1000, max_det=300)  # fmt: skip
        t = time.perf_counter()
        engine = build_engine(onnx_path, ctx.workdir / f"model_{mode}.engine", plugin_lib=lib, max_batch=4)
        d[f"{mode}_engine_build_s"] = round(time.perf_counter() - t, 1)
        runner = Runner(engine, device="cuda")
        got = runner.run(images)
        want = Runner(onnx_path).run(images)
        d[f"{mode}_engine_ms_batch4"] = sync_time(lambda runner=runner: runner.run(images), 10)
        for i, (g, w) in enumerate(zip(got, want)):
            same = g["labels"].tolist() == w["labels"].tolist() and np.allclose(g["boxes"], w["boxes"], atol=1e-2)
            same = same and np.allclose(g["scores"], w["scores"], atol=1e-4)
            d[f"{mode}_image{i}"] = {"kept_trt": len(g["labels"]), "kept_ort": len(w["labels"]), "equal": bool(same)}
            if not same:
                mismatches.append(f"{mode} image {i}")
    if mismatches:
        raise AssertionError(f"TensorRT differs from ONNX Runtime: {mismatches}; {d}")
    return d


# ----------------------------------------------------------------------------------------------- run
def on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt("SIGTERM (the time limit of gpu_check.sh)")


def write_summary(path: Path, summary: dict) -> None:
    """Write the summary atomically (a killed run leaves the previous complete file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name in STEPS:
            print(name)
        return 0
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    summary = {
        "script": "benchmarks/gpu_check.sh",
        "argv": sys.argv[1:] if argv is None else argv,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit.stdout.strip() or None,
        "budget_s": args.budget,
        "emulated": bool(args.emulate),
        "steps": [],
    }
    tmp = tempfile.TemporaryDirectory(prefix="gpu_check_") if args.workdir is None else None
    workdir = Path(args.workdir or tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Context(args, workdir)
    counts: dict = {}
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        for name in STEPS:
            record = {"name": name, "status": "skipped", "reason": "", "seconds": 0.0, "details": {}}
            summary["steps"].append(record)
            t = time.monotonic()
            try:
                if name != "environment" and (name in args.skip or (args.only and name not in args.only)):
                    raise Skip("not selected (--only / --skip)")
                if ctx.remaining() < NEEDS.get(name, 0):
                    raise Skip(f"time budget: {ctx.remaining():.0f} s left of {args.budget:.0f} s")
                record["details"] = globals()[f"step_{name}"](ctx)
                record["status"] = "passed"
            except Skip as e:
                record["reason"] = str(e)
            except Exception as e:  # noqa: BLE001 - a failed step is recorded and the next one runs
                record.update(status="failed", reason=f"{type(e).__name__}: {e}"[:4000])
                record["traceback"] = traceback.format_exc()[-4000:]
            record["seconds"] = round(time.monotonic() - t, 2)
            print(f"gpu_check: {name}: {record['status']} ({record['seconds']} s) {record['reason'][:200]}", flush=True)
            write_summary(out, summary)
    except KeyboardInterrupt as e:
        summary["interrupted"] = str(e) or "interrupted"
    finally:
        counts = {s: sum(r["status"] == s for r in summary["steps"]) for s in ("passed", "failed", "skipped")}
        summary.update(
            counts=counts, finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        )
        write_summary(out, summary)
        if tmp is not None:
            tmp.cleanup()
    print(f"gpu_check: {counts} -> {out}")
    return 1 if counts["failed"] or summary.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
