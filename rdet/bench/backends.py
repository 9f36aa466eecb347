"""The backends ``rdet bench`` times: a step function per backend (eager, channels_last, bf16/fp16 autocast,
torch.compile, CUDA graphs, ONNX Runtime, TensorRT), the export cache they share, and the timing loop.

Used by :mod:`rdet.bench.fps` (the matrix, its table and the CLI).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

BACKENDS = ("eager", "channels_last", "bf16", "fp16", "compile", "cudagraphs", "onnx", "trt", "trt-fp16")
COMPILED = ("compile", "cudagraphs")


class Skip(Exception):
    """A backend that cannot run here (missing package or device): listed, not an error."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _count(dets) -> int:
    return sum(len(d) for d in dets)


def _torch_step(
    model, x: torch.Tensor, nms: bool, score_thr: float | None, autocast: torch.dtype | None = None, decode=None
) -> Callable[[], int]:
    decode = decode or model.decode
    ctx = (lambda: torch.autocast(x.device.type, dtype=autocast)) if autocast else contextlib.nullcontext

    def step() -> int:
        with torch.inference_mode(), ctx():
            if nms:
                return _count(model.predict(x, score_thr=score_thr, normalized=True))
            decode(x, normalized=True)
            return 0

    return step


class ExportCache:
    """ONNX files (and TensorRT engines) per model/input/batch, exported once per run into ``workdir``."""

    def __init__(self, workdir: Path):
        self.workdir, self.files = workdir, dict[tuple, Path]()

    def onnx(self, name: str, model, size: tuple[int, int], batch: int, score_thr: float | None) -> Path:
        key = ("onnx", name, size, batch)
        if key not in self.files:
            try:
                from rdet.export.onnx_export import export_onnx
            except ImportError as e:
                raise Skip(f"onnx export needs the onnx package ({e})") from e
            path = self.workdir / f"{name}_{size[1]}x{size[0]}_b{batch}.onnx"
            self.files[key] = export_onnx(
                copy.deepcopy(model).cpu(), path, nms="none", batch=batch, imgsz=size, score_threshold=score_thr
            )
        return self.files[key]

    def engine(self, name: str, onnx_path: Path, fp16: bool) -> Path:
        key = ("trt", onnx_path, fp16)
        if key not in self.files:
            from rdet.export.trt_build import build_engine

            self.files[key] = build_engine(
                onnx_path, onnx_path.with_suffix(".fp16.engine" if fp16 else ".engine"), fp16=fp16
            )
        return self.files[key]


def make_step(
    backend: str,
    name: str,
    model,
    images: torch.Tensor,
    raw: np.ndarray,
    nms: bool,
    score_thr: float | None,
    exports: ExportCache,
) -> Callable[[], int]:
    """One synchronizable iteration of ``backend``: returns the number of detections (0 without NMS).

    Args:
        images: normalised float ``[B, 3, H, W]`` on the model's device (PyTorch backends).
        raw: the same images as uint8 0-255 ``[B, 3, H, W]`` numpy (ONNX Runtime / TensorRT).
    """
    device = images.device
    if backend == "eager":
        return _torch_step(model, images, nms, score_thr)
    if backend == "channels_last":
        m = copy.deepcopy(model).to(memory_format=torch.channels_last)
        return _torch_step(m, images.contiguous(memory_format=torch.channels_last), nms, score_thr)
    if backend in ("bf16", "fp16"):
        dtype = torch.bfloat16 if backend == "bf16" else torch.float16
        if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise Skip("this GPU has no bf16")
        return _torch_step(model, images, nms, score_thr, autocast=dtype)
    if backend in ("compile", "cudagraphs"):
        if backend == "cudagraphs" and device.type != "cuda":
            raise Skip("CUDA graphs need a CUDA device")
        mode = "reduce-overhead" if backend == "cudagraphs" else None
        m = copy.deepcopy(model)
        if nms:  # predict() has data-dependent shapes (score filter, NMS): compile the dense part it calls
            m.head_outputs = torch.compile(m.head_outputs, mode=mode)
            return _torch_step(m, images, nms, score_thr)
        return _torch_step(m, images, nms, score_thr, decode=torch.compile(m.decode, mode=mode))
    if backend == "onnx":
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise Skip(f"onnxruntime is not installed ({e})") from e
        if device.type == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise Skip("this onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu)")
        from rdet.export.runtime import Runner

        path = exports.onnx(name, model, (images.shape[-2], images.shape[-1]), images.shape[0], score_thr)
        runner = Runner(path, device="cuda" if device.type == "cuda" else "cpu")
        return runner_step(runner, raw, nms)
    if backend in ("trt", "trt-fp16"):
        if device.type != "cuda":
            raise Skip("TensorRT needs a CUDA device")
        try:
            importlib.import_module("tensorrt")
        except ImportError as e:
            raise Skip(f"TensorRT is not installed ({e})") from e
        from rdet.export.runtime import Runner

        onnx_path = exports.onnx(name, model, (images.shape[-2], images.shape[-1]), images.shape[0], score_thr)
        runner = Runner(exports.engine(name, onnx_path, backend == "trt-fp16"), device=str(device))
        return runner_step(runner, raw, nms)
    raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")


def runner_step(runner, raw: np.ndarray, nms: bool) -> Callable[[], int]:
    def step() -> int:
        if nms:  # the Runner applies the export's NMS thresholds to the 'none' graph's outputs
            return sum(len(r["scores"]) for r in runner.run(raw))
        runner.backend(raw)
        return 0

    return step


def time_step(
    step: Callable[[], int], iters: int, warmup: int, device: torch.device
) -> tuple[list[float], list[float], int]:
    """Run ``warmup`` then ``iters`` synchronized iterations.

    Returns:
        wall milliseconds per iteration, process CPU milliseconds per iteration (all threads), last dets.
    """
    dets = 0
    for _ in range(warmup):
        dets = step()
    _sync(device)
    wall, cpu = [], []
    for _ in range(iters):
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        dets = step()
        _sync(device)
        wall.append(1000.0 * (time.perf_counter() - t0))
        cpu.append(1000.0 * (time.process_time() - c0))
    return wall, cpu, dets
