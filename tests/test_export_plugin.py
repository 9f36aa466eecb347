"""The RotatedNMS TensorRT plugin without a GPU or TensorRT: its kernels and its library.

1. The plugin's CUDA pipeline (threshold + radix select + rank sort, the shared IoU mask kernel, the greedy
   reduction) runs on the CPU under ``cuda_emulator.h`` and must reproduce the PyTorch op exactly: ties at
   the top-k boundary, NaN scores, batches 1/2/4, class-agnostic, empty inputs (needs g++).
2. ``nvcc`` compiles the kernels and the GPU build of the driver that ``benchmarks/gpu_check.sh`` runs.
3. With TensorRT's public headers (``TensorRT_ROOT``: a TensorRT install, or a checkout of
   github.com/NVIDIA/TensorRT, whose ``include/`` is all that is needed): the library builds with its own
   CMake file, exports exactly ``getCreators`` and ``setLoggerFinder``, needs neither libnvinfer nor
   libcudart, loads in a process without TensorRT, and ``plugin_load_check.cpp`` (TensorRT's part played by
   the harness) exercises load-time registration, ``loadLibrary`` and the creator through the built ``.so``.
   Tests never download anything, so without the headers these are skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rdet.export import kernel_driver
from rdet.export.rotated_nms_op import NMSParams, rotated_nms_batched
from rdet.models.selection import sorted_candidates

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / "export" / "plugins" / "rotated_nms"
CSRC = ROOT / "rdet" / "ops" / "csrc"
CXX = shutil.which("g++") or shutil.which("c++")
NVCC = shutil.which("nvcc")


def tensorrt_include() -> Path | None:
    for root in (os.environ.get("TensorRT_ROOT"), os.environ.get("TENSORRT_ROOT"), "/usr", "/usr/local/tensorrt"):
        if not root:
            continue
        for sub in ("include", "include/x86_64-linux-gnu", "include/aarch64-linux-gnu"):
            if (Path(root) / sub / "NvInferRuntime.h").is_file():
                return Path(root) / sub
    return None


def cuda_include() -> Path | None:
    """The CUDA toolkit's include folder (TensorRT's headers include cuda_runtime_api.h)."""
    candidates = [Path(NVCC).resolve().parents[1] / "include"] if NVCC else []
    for cand in [*candidates, Path("/usr/local/cuda/include")]:
        if (cand / "cuda_runtime_api.h").is_file():
            return cand
    return None


NO_HEADERS = (
    "TensorRT headers not found: set TensorRT_ROOT to a TensorRT install or to a checkout of "
    "github.com/NVIDIA/TensorRT (only its include/ is used); CI has neither and tests never download"
)


# ------------------------------------------------------------------------- the pipeline, emulated
@pytest.fixture(scope="module")
def emulated_driver(tmp_path_factory) -> Path:
    if CXX is None:
        pytest.skip("no C++ compiler")
    return kernel_driver.build_driver(tmp_path_factory.mktemp("emulator") / "kernel_driver", emulate=True)


def run_driver(exe: Path, tmp_path: Path, boxes, scores, p: NMSParams) -> tuple[list[np.ndarray], dict]:
    outputs, report, _ = kernel_driver.run_driver(exe, boxes, scores, p, tmp_path)
    return outputs, report


def problem(seed: int, b: int, n: int, c: int, levels: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Clustered boxes with exact duplicates, and scores on a grid of ``levels`` values (many exact ties)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(b, max(1, n // 5), 2, generator=g) * 120
    pick = torch.randint(0, centres.shape[1], (b, n), generator=g)
    xy = torch.gather(centres, 1, pick[..., None].expand(-1, -1, 2)) + torch.randn(b, n, 2, generator=g) * 3
    wh = torch.rand(b, n, 2, generator=g) * 25 + 2
    boxes = torch.cat([xy, wh, (torch.rand(b, n, 1, generator=g) - 0.5) * 3], -1)
    boxes[:, n // 3 : n // 3 + 10] = boxes[:, :10]  # exact duplicates
    scores = (torch.rand(b, n, c, generator=g) * levels).floor() / levels
    return boxes, scores


CASES = {
    # name: (seed, B, N, C, params, tweak)
    "ties at the top-k cut, NaN and inf scores": (1, 1, 150, 3, NMSParams(0.2, 0.2, 300, 100), "nan"),
    "batch 2, class-agnostic, fewer than K pass, max_det cut": (2, 2, 120, 3, NMSParams(0.3, 0.5, 7, 1000, True), ""),
    "batch 4, negative IoU threshold, -0 scores": (3, 4, 60, 2, NMSParams(-0.5, -0.1, 50, 64), "negzero"),
    "K > 256 and > 64 (several rank and mask tiles)": (4, 1, 700, 2, NMSParams(0.1, 0.1, 1000, 600), ""),
    "an image whose scores are all NaN": (5, 2, 80, 2, NMSParams(0.25, 0.0, 40, 200), "allnan"),
    "no boxes": (6, 2, 0, 3, NMSParams(0.25, 0.0, 5, 100), ""),
}


@pytest.mark.parametrize("name", list(CASES))
def test_plugin_pipeline_emulated_equals_pytorch_op(emulated_driver, tmp_path, name):
    seed, b, n, c, p, tweak = CASES[name]
    boxes, scores = problem(seed, b, n, c)
    if tweak == "nan":
        scores[0, ::7, 1] = float("nan")
        scores[0, 3, 0] = scores[0, 40, 2] = float("inf")  # +inf: the largest score, a tie between the two
    if tweak == "negzero":
        scores[scores == 0] = -0.0
    if tweak == "allnan":
        scores[0] = float("nan")
    got, info = run_driver(emulated_driver, tmp_path, boxes, scores, p)
    want = [t.numpy() for t in rotated_nms_batched(boxes, scores, p)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert info["k"] == min(p.pre_nms_topk, n * c)
    if n:
        assert (want[0] > 0).any()  # the comparison is not vacuous
    if tweak == "allnan":
        assert want[0][0, 0] == 0 and want[0][1, 0] > 0  # NaN drops the scores, not the image
    if tweak == "nan":  # the K-th candidate's score also occurs below the cut: the tie rule decided
        flat = scores[0].reshape(-1)
        sel = sorted_candidates(scores[0], p.score_threshold, p.pre_nms_topk)
        kth = flat[sel[-1]]
        assert int(((flat == kth) & (flat > p.score_threshold)).sum()) > int((flat[sel] == kth).sum())


def test_plugin_workspace_does_not_grow_with_scores(emulated_driver, tmp_path):
    """Workspace: O(B * K) (K = pre_nms_topk), not O(B * N * C) as the full sort needed (68 MiB per image)."""
    p = NMSParams(0.1, 0.05, 100, 600)
    boxes, scores = problem(7, 1, 4000, 15)
    _, small = run_driver(emulated_driver, tmp_path, boxes[:, :200], scores[:, :200], p)
    _, large = run_driver(emulated_driver, tmp_path, boxes, scores, p)
    assert small["k"] == large["k"] == 600 and small["workspace_bytes"] == large["workspace_bytes"] < 1 << 18


# ------------------------------------------------------------------------------------------- nvcc
@pytest.mark.slow
@pytest.mark.skipif(NVCC is None, reason="nvcc not found")
def test_plugin_kernels_and_gpu_driver_compile(tmp_path):
    """The kernels and the GPU driver of benchmarks/gpu_check.sh build with nvcc (no GPU needed to compile)."""
    exe = kernel_driver.build_driver(tmp_path / "driver", emulate=False, arch="sm_75")
    assert exe.stat().st_size > 0


# ------------------------------------------------------------------------- the library, via CMake
@pytest.fixture(scope="module")
def plugin_library(tmp_path_factory) -> Path:
    if tensorrt_include() is None:
        pytest.skip(NO_HEADERS)
    if NVCC is None or shutil.which("cmake") is None or CXX is None or cuda_include() is None:
        pytest.skip("needs cmake, g++ and the CUDA toolkit (nvcc)")
    build = tmp_path_factory.mktemp("plugin_build")
    env = dict(os.environ, TensorRT_ROOT=str(tensorrt_include().parent))
    configure = ["cmake", "-S", str(PLUGIN_DIR), "-B", str(build), "-DCMAKE_CUDA_ARCHITECTURES=75"]
    for cmd in (configure, ["cmake", "--build", str(build), "-j", "2"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    lib = build / "librdet_rotated_nms_plugin.so"
    assert lib.is_file()
    return lib


@pytest.mark.slow
def test_plugin_library_exports_entry_points_only(plugin_library):
    nm = subprocess.run(["nm", "-D", "--defined-only", str(plugin_library)], capture_output=True, text=True)
    assert nm.returncode == 0, nm.stderr
    exported = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip()}
    assert exported == {"getCreators", "setLoggerFinder"}
    needed = subprocess.run(["readelf", "-d", str(plugin_library)], capture_output=True, text=True).stdout
    assert "NEEDED" in needed and "libnvinfer" not in needed and "libcudart" not in needed
    undefined = subprocess.run(["nm", "-D", "--undefined-only", str(plugin_library)], capture_output=True, text=True)
    assert "getPluginRegistry" not in undefined.stdout  # looked up at load time, never a link dependency


@pytest.mark.slow
def test_plugin_library_loads_without_tensorrt(plugin_library):
    """dlopen in a process with no TensorRT: loads, registers nothing, and getCreators still answers."""
    code = (
        "import ctypes, sys\n"
        "lib = ctypes.CDLL(sys.argv[1])\n"
        "n = ctypes.c_int32(0)\n"
        "lib.getCreators.restype = ctypes.c_void_p\n"
        "ptr = lib.getCreators(ctypes.byref(n))\n"
        "print(n.value, bool(ptr))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(plugin_library)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "True"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_plugin_library_registration_and_creator(plugin_library, tmp_path, mode):
    """``static``: dlopen registers the creator in namespace rdet (Triton plugins=, --staticPlugins), then
    loadLibrary still succeeds; ``dynamic``: loadLibrary first (load_library, --dynamicPlugins). Both: a
    second loadLibrary is refused, as TensorRT refuses it; NaN thresholds, missing fields and fp16 are refused."""
    exe = tmp_path / "plugin_load_check"
    cmd = [CXX, "-std=c++17", "-Wall", "-Wno-deprecated-declarations", "-rdynamic", "-isystem"]
    cmd += [str(tensorrt_include()), "-isystem", str(cuda_include()), str(PLUGIN_DIR / "plugin_load_check.cpp")]
    cmd += ["-ldl", "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run([str(exe), str(plugin_library), mode], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr
    assert "must be float32" in proc.stdout  # the fp16 refusal reached the logger of setLoggerFinder
