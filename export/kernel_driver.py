"""Build and run ``plugins/rotated_nms/kernel_driver.cu``: the TensorRT plugin's NMS kernels outside TensorRT.

Two builds of one driver: ``emulate=False`` (nvcc, the real kernels on a GPU: ``benchmarks/gpu_check.sh``) and
``emulate=True`` (a host C++ compiler and ``cuda_emulator.h``: the same kernel code on the CPU, for tests). The
driver reads one problem from a file and writes the plugin's four outputs, so they can be compared with
:func:`rdet.export.rotated_nms_op.rotated_nms_batched`.

Problem file: int32 ``B, N, C, max_det, pre_nms_topk, class_agnostic``, float32 ``iou_threshold,
score_threshold``, float32 boxes ``[B, N, 5]``, float32 scores ``[B, N, C]``. Output file: int32 num_dets
``[B]``, float32 det_boxes ``[B, max_det, 5]``, float32 det_scores ``[B, max_det]``, int32 det_classes
``[B, max_det]``. The driver prints one JSON object (workspace bytes, K, and GPU timings when asked).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

import rdet.ops
from rdet.export.rotated_nms_op import NMSParams

PLUGIN_DIR = Path(__file__).resolve().parent / "plugins" / "rotated_nms"
CSRC = Path(rdet.ops.__file__).resolve().parent / "csrc"  # the shared geometry and NMS mask kernel


def write_problem(path: Path, boxes: torch.Tensor, scores: torch.Tensor, p: NMSParams) -> None:
    """Write ``boxes [B, N, 5]``, ``scores [B, N, C]`` and the thresholds as a driver problem file."""
    b, n, c = scores.shape
    with open(path, "wb") as f:
        np.array([b, n, c, p.max_det, p.pre_nms_topk, int(p.class_agnostic)], np.int32).tofile(f)
        np.array([p.iou_threshold, p.score_threshold], np.float32).tofile(f)
        boxes.detach().cpu().numpy().astype(np.float32).tofile(f)
        scores.detach().cpu().numpy().astype(np.float32).tofile(f)


def read_outputs(path: Path, batch: int, max_det: int) -> list[np.ndarray]:
    """The driver's output file -> ``[num_dets [B, 1], det_boxes [B, M, 5], det_scores [B, M], det_classes [B, M]]``."""
    raw = Path(path).read_bytes()
    parts = [(np.int32, (batch, 1)), (np.float32, (batch, max_det, 5)), (np.float32, (batch, max_det))]
    parts.append((np.int32, (batch, max_det)))
    out, offset = [], 0
    for dtype, shape in parts:
        count = int(np.prod(shape))
        out.append(np.frombuffer(raw, dtype, count, offset).reshape(shape))
        offset += 4 * count
    if offset != len(raw):
        raise ValueError(f"{path}: {len(raw)} bytes, expected {offset}")
    return out


def build_driver(output: Path, emulate: bool, arch: str = "native", timeout: float = 900) -> Path:
    """Compile the driver to ``output``: with nvcc for ``arch`` (GPU), or with g++ under the CPU emulator.

    Raises:
        RuntimeError: the compiler is missing or fails (its message included).
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    includes = [f"-I{PLUGIN_DIR}", f"-I{CSRC}"]
    if emulate:
        cxx = shutil.which("g++") or shutil.which("c++")
        if cxx is None:
            raise RuntimeError("no C++ compiler (g++) for the emulated kernel driver")
        shim = output.parent / "emulated_include"
        shim.mkdir(exist_ok=True)
        (shim / "cuda_runtime.h").write_text('#include "cuda_emulator.h"\n')
        cmd = [cxx, "-x", "c++", "-std=c++17", "-O1", "-pthread", "-DRDET_CUDA_EMULATOR", f"-I{shim}", *includes]
        cmd += [str(PLUGIN_DIR / "kernel_driver.cu"), "-o", str(output)]
    else:
        nvcc = shutil.which("nvcc")
        if nvcc is None:
            raise RuntimeError("nvcc not found (the CUDA toolkit builds the GPU kernel driver)")
        cmd = [nvcc, "-O3", "-std=c++17", "-lineinfo", f"-arch={arch}", *includes]
        cmd += [str(PLUGIN_DIR / "kernel_driver.cu"), str(PLUGIN_DIR / "RotatedNMSKernels.cu"), "-o", str(output)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"building the kernel driver failed: {' '.join(cmd)}\n{proc.stderr[-4000:]}")
    return output


def run_driver(
    exe: Path,
    boxes: torch.Tensor,
    scores: torch.Tensor,
    params: NMSParams,
    workdir: Path,
    repeat: int = 0,
    prefix: Sequence[str] = (),
    timeout: float = 600,
) -> tuple[list[np.ndarray], dict, subprocess.CompletedProcess]:
    """Run the driver on one problem.

    Args:
        exe: a driver from :func:`build_driver`.
        boxes (Tensor[B, N, 5]), scores (Tensor[B, N, C]), params: the problem.
        workdir: where the problem and output files go.
        repeat: timed runs (GPU build only; 0: none).
        prefix: a command to run the driver under (e.g. ``compute-sanitizer --tool memcheck``).

    Returns:
        The four outputs (as :func:`read_outputs`), the driver's JSON report, and the finished process.

    Raises:
        RuntimeError: the driver failed (its stderr included).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    write_problem(workdir / "problem.bin", boxes, scores, params)
    cmd = [*prefix, str(exe), str(workdir / "problem.bin"), str(workdir / "outputs.bin"), str(repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {(proc.stdout + proc.stderr)[-3000:]}")
    report = next((json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")), {})
    return read_outputs(workdir / "outputs.bin", scores.shape[0], params.max_det), report, proc
