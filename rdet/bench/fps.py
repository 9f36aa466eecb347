"""Inference speed of rdet detectors beside MMRotate's published fps (``rdet bench``).

For each model x input x batch x backend, with and without NMS: warm-up, then the median and p90 of
``--iters`` synchronized iterations (>= 50 unless ``--allow-few-iters``, which the ``iters`` column shows).

* without NMS: ``model.decode(images)`` (network + anchor decoding + sigmoid, the ONNX ``none`` graph);
* with NMS: ``model.predict(images)`` (the same + per-level top-k + class-wise rotated NMS), which is what
  MMRotate's "Inf Time (fps)" measured (one RTX 2080 Ti, batch 1, fp32, forward + rotated NMS, data loading
  excluded); that published fps is printed beside every row of the model and input ("2080 Ti, published").

Weights are random (no trained checkpoints are needed to time arithmetic), which makes the NMS workload
arbitrary: ``--nms-load cap`` (default) sets the score threshold to 0 so every FPN level hands ``nms_pre``
(2000) candidates to NMS, an upper bound of the published test config's work; ``--nms-load config`` keeps
the config's threshold (random heads then score below it, so NMS sees almost nothing). ``dets/img`` shows it.

Backends: ``eager`` (fp32), ``channels_last``, ``bf16``/``fp16`` (autocast), ``compile`` (``torch.compile``),
``cudagraphs`` (``torch.compile(mode='reduce-overhead')``, CUDA only), ``onnx`` (ONNX Runtime on a
``nms='none'`` export from :mod:`rdet.export.onnx_export`; NMS by :class:`rdet.export.runtime.Runner`, i.e. rdet.ops),
``trt``/``trt-fp16`` (TensorRT engine of the same file). Unavailable backends are listed as skipped.
ONNX/TensorRT rows take uint8 images from host memory (the graph normalises them), PyTorch rows a normalised
float batch already on the device.

The physical limit is ``peak FLOP/s / FLOPs per image`` (:mod:`rdet.bench.flops`; model FLOPs = 2 x MACs
of every conv): on a GPU the datasheet peak of the row's precision (tf32 for fp32 rows, as PyTorch/ORT/TRT
use tf32 convolutions by default; ``--peak-tflops`` overrides), on a CPU the best FLOP/s of 2048^3 matmuls
measured right after each row (its practical peak under the load of that moment: on a shared machine the
load changes within minutes). ``CPU ms`` is the process CPU time per iteration (all threads): on a CPU, wall
time much above ``CPU ms / threads`` means other processes had the cores.

    rdet bench --quick                                        # tiny model, seconds
    rdet bench --model work_dirs/x/model.pt --backends eager onnx   # your own checkpoint (or model.onnx)
    rdet bench --models retinanet-r18 retinanet-r50 --inputs dota --batch 1 --backends eager onnx \\
        --iters 3 --warmup 1 --allow-few-iters --output /tmp/cpu.md   # the CPU table
    rdet bench --backends all --batch 1 16 --output gpu.md    # the full matrix on a GPU
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# OpenMP threads that spin while waiting are 10-50x slower when the cores are shared with other processes
# (measured: 2.8 s instead of 60 ms per tiny forward on 2 busy cores). libgomp reads this when torch is
# imported, so it is set before; an explicit OMP_WAIT_POLICY wins, and every report prints the value.
# torch imported by a caller before any policy was set: the setting below cannot act any more
_OMP_LATE = "torch" in sys.modules and "OMP_WAIT_POLICY" not in os.environ
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rdet.bench.backends import BACKENDS, COMPILED, ExportCache, Skip, make_step, runner_step, time_step  # noqa: E402
from rdet.bench.flops import Peaks, device_peaks, model_flops  # noqa: E402
from rdet.bench.models import (  # noqa: E402
    DEFAULT_MODELS,
    MODELS,
    UserModel,
    bench_config,
    build,
    default_inputs,
    parse_input,
)

MIN_ITERS = 50
COMPILE_WARMUP = 3
PUBLISHED_HEADER = "2080 Ti, published (fps)"


# ------------------------------------------------------------------------------------------ device + table
def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict[str, str]:
    """Device, date, commit, versions and load: the header of every table."""
    try:
        commit = (
            subprocess.run(
                ["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    if device.type == "cuda":
        dev = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), host CPU {cpu_name()}"
    else:
        dev = f"CPU {cpu_name()}, {torch.get_num_threads()} torch threads of {os.cpu_count()} cores"
    dev += f", OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}"
    dev += " (set after torch was imported: not in effect)" if _OMP_LATE else ""
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    return {
        "device": dev,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "torch": torch.__version__,
        "load average (1/5/15 min)": load,
    }


@dataclass
class Row:
    model: str
    input: str
    batch: int
    backend: str
    nms: bool
    iters: int
    median_ms: float
    p90_ms: float
    cpu_ms: float
    dets: float
    gflop: float
    published: str
    limit: float | None
    precision: str

    @property
    def images_per_s(self) -> float:
        return 1000.0 * self.batch / self.median_ms


COLUMNS = [
    "model",
    "input",
    "batch",
    "backend",
    "NMS",
    "iters",
    "median ms",
    "p90 ms",
    "CPU ms",
    "images/s",
    PUBLISHED_HEADER,
    "GFLOP/img",
    "limit img/s",
    "% of limit",
    "dets/img",
]


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * 4 + ":-:|" + "---:|" * (len(COLUMNS) - 5)]
    for r in rows:
        limit = f"{r.limit:.3g} ({r.precision})" if r.limit else "n/a"
        frac = f"{100 * r.images_per_s / r.limit:.1f}" if r.limit else "n/a"
        gflop = f"{r.gflop:.1f}" if math.isfinite(r.gflop) else "n/a"  # an exported file: not computed
        lines.append(
            f"| {r.model} | {r.input} | {r.batch} | {r.backend} | {'yes' if r.nms else 'no'} | {r.iters} | "
            f"{r.median_ms:.1f} | {r.p90_ms:.1f} | {r.cpu_ms:.0f} | {r.images_per_s:.3g} | {r.published or '-'} | "
            f"{gflop} | {limit} | {frac} | {f'{r.dets:.0f}' if r.nms else '-'} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ run
def run(args: argparse.Namespace) -> tuple[list[Row], list[str], list[str]]:
    """Run the matrix. Returns (rows, skipped lines, failed lines).

    The exported files go to ``args.workdir`` (kept), else to a temporary folder removed at the end."""
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        return _run(args, Path(args.workdir))
    with tempfile.TemporaryDirectory(prefix="rdet_bench_") as tmp:
        return _run(args, Path(tmp))


def _run(args: argparse.Namespace, workdir: Path) -> tuple[list[Row], list[str], list[str]]:
    device = torch.device(args.device)
    rows: list[Row] = []
    skipped: list[str] = []
    failed: list[str] = []
    exports = ExportCache(workdir)
    peaks = args.peaks
    score_thr = 0.0 if args.nms_load == "cap" else None
    nms_modes = {"both": (False, True), "yes": (True,), "no": (False,)}[args.nms]
    targets = [(name, MODELS[name]) for name in args.models] + [(u.label, u) for u in args.user_models]
    for name, spec in targets:
        user = spec if isinstance(spec, UserModel) else None
        loaded = user.load(device) if user else None
        inputs = args.inputs if not user or args.inputs_given else default_inputs(loaded)
        for text in inputs:
            key, size = parse_input(text)
            shown = f"{size[1]}x{size[0]}"
            if user and user.exported:
                _run_exported(user, loaded, size, args, rows, skipped, failed)
                continue
            try:
                model = loaded if user else build(spec, key, device)
            except Exception as e:  # noqa: BLE001 - e.g. a model still being written: report and go on
                failed.append(f"{name} {shown}: cannot build the model: {type(e).__name__}: {e}")
                continue
            if model is None:
                skipped.append(f"{name} {shown}: no published config for input {key!r}")
                continue
            gflop = model_flops(model.config if user else bench_config(spec, key), size).gflop
            for batch in args.batch:
                gen = torch.Generator().manual_seed(0)
                raw_t = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, generator=gen)
                images = model.preprocess_image(raw_t)  # the model's own pre-processing, outside the timing
                raw = raw_t.numpy()
                for backend in args.backends:
                    for nms in nms_modes:
                        what = f"{name} {shown} b{batch} {backend} nms={'yes' if nms else 'no'}"
                        try:
                            step = make_step(backend, name, model, images, raw, nms, score_thr, exports)
                            t0 = time.perf_counter()
                            # compiled callables recompile once more after the first call fills the anchor
                            # cache: give them COMPILE_WARMUP warm-up iterations at least
                            warmup = max(args.warmup, COMPILE_WARMUP) if backend in COMPILED else args.warmup
                            times, cpu_times, dets = time_step(step, args.iters, warmup, device)
                        except Skip as e:
                            skipped.append(f"{what}: {e}")
                            break  # the same reason holds with and without NMS
                        except Exception as e:  # noqa: BLE001 - one failing backend must not end a GPU session
                            failed.append(f"{what}: {type(e).__name__}: {str(e)[:300]}")
                            continue
                        limit, precision = peaks.for_backend(backend, device)
                        precision = "bf16" if backend == "bf16" else precision
                        row = Row(
                            spec.label,
                            shown,
                            batch,
                            backend,
                            nms,
                            args.iters,
                            float(np.median(times)),
                            float(np.percentile(times, 90)),
                            float(np.median(cpu_times)),
                            dets / batch,
                            gflop,
                            spec.published.get(key, "") if text == key else "",
                            limit / (gflop * 1e9) if limit else None,
                            precision,
                        )
                        rows.append(row)
                        print(
                            f"  {what}: median {row.median_ms:.1f} ms, p90 {row.p90_ms:.1f} ms "
                            f"({time.perf_counter() - t0:.0f} s)",
                            file=sys.stderr,
                            flush=True,
                        )
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows, skipped, failed


def _run_exported(
    user: UserModel, runner, size: tuple[int, int], args, rows: list, skipped: list, failed: list
) -> None:
    """Time an exported file as it is: uint8 batches of its input size through ``Runner.run`` (with the NMS of
    the export), one row per batch size; the FLOPs of a graph are not computed (``n/a``)."""
    device = torch.device(args.device)
    if tuple(size) != tuple(runner.input_size):
        skipped.append(f"{user.label}: the file's input is fixed at {runner.input_size[1]}x{runner.input_size[0]}")
        return
    for batch in args.batch:
        what = f"{user.label} {size[1]}x{size[0]} b{batch} {user.exported}"
        if runner.fixed_batch is not None and batch != runner.fixed_batch:
            skipped.append(f"{what}: the file was exported for batch {runner.fixed_batch}")
            continue
        raw = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        try:
            times, cpu_times, dets = time_step(runner_step(runner, raw.numpy(), True), args.iters, args.warmup, device)
        except Exception as e:  # noqa: BLE001 - reported as a failed row, like the other backends
            failed.append(f"{what}: {type(e).__name__}: {str(e)[:300]}")
            continue
        row = Row(
            user.label, f"{size[1]}x{size[0]}", batch, str(user.exported), True, args.iters, float(np.median(times)),
            float(np.percentile(times, 90)), float(np.median(cpu_times)), dets / batch, float("nan"), "", None, "file",
        )  # fmt: skip
        rows.append(row)
        print(f"  {what}: median {row.median_ms:.1f} ms, p90 {row.p90_ms:.1f} ms", file=sys.stderr, flush=True)


def report(
    rows: list[Row],
    skipped: list[str],
    failed: list[str],
    env: dict[str, str],
    peaks: Peaks,
    args: argparse.Namespace,
    command: str,
) -> str:
    lines = [f"- {k}: {v}" for k, v in env.items()]
    lines.append("- peak FLOP/s (physical limit): " + peaks.describe())
    lines.append(
        f"- iterations: {args.warmup} warm-up (compile/cudagraphs: >= {COMPILE_WARMUP}) + {args.iters} timed"
        + (f" (FEWER than {MIN_ITERS}: --allow-few-iters)" if args.iters < MIN_ITERS else "")
    )
    lines.append(
        f"- NMS load: {args.nms_load}"
        + (
            " (score_thr 0: nms_pre candidates per level, random weights)"
            if args.nms_load == "cap"
            else " (config score_thr)"
        )
    )
    lines.append("- load average at the end (1/5/15 min): " + " / ".join(f"{v:.2f}" for v in os.getloadavg()))
    lines.append(f"- command: `{command}`")
    out = "\n".join(lines) + "\n\n" + markdown_table(rows) + "\n"
    if skipped:
        out += "\nSkipped:\n" + "\n".join(f"- {s}" for s in skipped) + "\n"
    if failed:
        out += "\nFailed:\n" + "\n".join(f"- {s}" for s in failed) + "\n"
    return out


def finalize_args(args: argparse.Namespace, error) -> argparse.Namespace:
    """Fill the device-dependent defaults of parsed ``rdet bench`` arguments (:mod:`rdet.commands.bench`) and
    check them; ``error(message)`` reports a bad combination (it does not return)."""
    args.user_models = [UserModel(p) for p in (args.model or [])]
    args.inputs_given = args.inputs is not None
    if args.models is None:
        args.models = [] if args.user_models else list(DEFAULT_MODELS)
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        error(f"--models: unknown {unknown}; choose from {', '.join(sorted(MODELS))} (your own file: --model PATH)")
    for u in args.user_models:  # a path must exist; a bare name may be a zoo model (rdet.load_checkpoint)
        if not Path(u.path).is_file() and ("/" in u.path or Path(u.path).suffix):
            error(f"--model: no such file {u.path}")
    args.inputs = args.inputs or ["dota", "hrsc"]
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    cuda = args.device.startswith("cuda")
    if args.quick:
        args.models, args.inputs, args.batch = ["tiny"], ["128x128"], args.batch or [1, 2]
        args.backends = args.backends or ["eager", "channels_last", "onnx"]
        args.iters, args.warmup, args.allow_few_iters = (
            min(args.iters, 3),
            1 if args.warmup is None else args.warmup,
            True,
        )
    args.batch = args.batch or ([1, 16] if cuda else [1])
    if args.backends is None:
        args.backends = (
            ["eager", "channels_last", "fp16", "bf16", "cudagraphs", "onnx", "trt-fp16"] if cuda else ["eager", "onnx"]
        )
    elif args.backends == ["all"]:
        args.backends = list(BACKENDS)
    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown:
        error(f"--backends: unknown {unknown}; choose from {', '.join(BACKENDS)} or 'all'")
    if args.warmup is None:
        args.warmup = 10 if cuda else 1
    if args.iters < 1 or args.warmup < 0 or any(b < 1 for b in args.batch):
        error("--iters and --batch must be >= 1, --warmup >= 0")
    if args.iters < MIN_ITERS and not args.allow_few_iters:
        error(f"--iters {args.iters} < {MIN_ITERS}: pass --allow-few-iters (the table will say so)")
    for text in args.inputs:
        try:
            parse_input(text)
        except ValueError as e:
            error(f"--inputs: {e}")
    return args


def main(args: argparse.Namespace, command: str) -> int:
    """Run parsed, finalized ``rdet bench`` arguments and print (and write ``--output``) the report."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    env = environment(device)
    args.peaks = device_peaks(device, args.peak_tflops)
    rows, skipped, failed = run(args)
    text = report(rows, skipped, failed, env, args.peaks, args, command)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    return 1 if failed else 0
