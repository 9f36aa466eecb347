"""Checks of the torch-free CUDA sources without a GPU.

1. ``nvcc -c -std=c++17 rdet/ops/csrc/cuda.cu`` compiles (skipped without nvcc).
2. The CUDA kernels' logic runs on the CPU: a g++ harness maps the CUDA built-ins (threadIdx,
   blockIdx, __shared__, __syncthreads) onto a sequential emulation, runs ``nms_mask_kernel`` +
   ``nms_rotated_reduce`` and ``iou_matrix_kernel``, and must reproduce rdet.ops' CPU results
   (skipped without g++). A real-GPU comparison lives in tests/test_ops.py::TestCUDA.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from rdet import ops
from rdet.ops import _reference

CSRC = Path(__file__).resolve().parents[1] / "rdet" / "ops" / "csrc"

HARNESS = r"""
// Sequential host emulation of the CUDA kernels in nms_rotated_kernel.cuh.
#include <cstdint>
#include <cstdio>
#include <vector>
struct Dim3 { unsigned x = 0, y = 0, z = 0; };
static Dim3 threadIdx, blockIdx, blockDim, gridDim;
// Every block runs twice over its threads: pass 0 stops at __syncthreads() once shared memory is
// filled; pass 1 reruns the (idempotent) loads and does the work.
static int emul_pass = 1;
#define __global__
#define __shared__ static
#define __syncthreads() do { if (emul_pass == 0) return; } while (0)
#include "nms_rotated_kernel.cuh"

int main() {
  char mode[8];
  long long n, m;
  int iof, aligned, quads, has_cls;
  double thr;
  if (scanf("%7s", mode) != 1) return 2;
  if (mode[0] == 'n') {  // nms: n thr has_cls, then n sorted boxes (5 numbers), then n classes
    if (scanf("%lld %lf %d", &n, &thr, &has_cls) != 3) return 2;
    std::vector<double> boxes(5 * n);
    std::vector<int64_t> cls(n);
    for (auto& v : boxes) if (scanf("%lf", &v) != 1) return 2;
    for (auto& c : cls) { long long t; if (scanf("%lld", &t) != 1) return 2; c = t; }
    const int64_t words = rdet::cuda::ceil_div(n, rdet::cuda::kBitsPerWord);
    std::vector<uint64_t> mask(n * words, 0xdeadbeefULL);  // garbage where the kernel writes nothing
    blockDim.x = rdet::cuda::kBitsPerWord;
    for (unsigned by = 0; by < words; ++by)
      for (unsigned bx = 0; bx < words; ++bx)
        for (emul_pass = 0; emul_pass < 2; ++emul_pass)
          for (unsigned t = 0; t < rdet::cuda::kBitsPerWord; ++t) {
            blockIdx.x = bx; blockIdx.y = by; threadIdx.x = t;
            rdet::cuda::nms_mask_kernel<double>(boxes.data(), has_cls ? cls.data() : nullptr, n, thr, mask.data());
          }
    std::vector<int64_t> keep(n);
    const int64_t k = rdet::cuda::nms_rotated_reduce(mask.data(), n, keep.data());
    for (int64_t i = 0; i < k; ++i) printf("%lld\n", (long long)keep[i]);
  } else {  // iou: n m iof aligned quads, then the two arrays
    if (scanf("%lld %lld %d %d %d", &n, &m, &iof, &aligned, &quads) != 5) return 2;
    const int w = quads ? 8 : 5;
    std::vector<double> a(w * n), b(w * m), out(aligned ? n : n * m, -1.0);
    for (auto& v : a) if (scanf("%lf", &v) != 1) return 2;
    for (auto& v : b) if (scanf("%lf", &v) != 1) return 2;
    blockDim.x = 1; gridDim.x = 1; blockIdx.x = 0; threadIdx.x = 0;  // one thread strides over all
    rdet::cuda::iou_matrix_kernel<double>(a.data(), n, b.data(), m, iof, aligned, quads, out.data());
    for (double v : out) printf("%.17g\n", v);
  }
  return 0;
}
"""


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_cuda_sources_compile_with_nvcc(tmp_path):
    out = tmp_path / "cuda.o"
    proc = subprocess.run(
        ["nvcc", "-c", "-std=c++17", str(CSRC / "cuda.cu"), "-o", str(out)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    d = tmp_path_factory.mktemp("emul")
    (d / "cuda_runtime.h").write_text("#pragma once\ntypedef int cudaError_t;\ntypedef void* cudaStream_t;\n")
    (d / "harness.cpp").write_text(HARNESS)
    exe = d / "harness"
    proc = subprocess.run(
        [cxx, "-std=c++17", "-O1", f"-I{d}", f"-I{CSRC}", str(d / "harness.cpp"), "-o", str(exe)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return exe


def _run(exe: Path, text: str) -> list[str]:
    proc = subprocess.run([str(exe)], input=text, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def _clustered(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(max(1, n // 6), 2, dtype=torch.float64, generator=g) * 300
    boxes = torch.empty(n, 5, dtype=torch.float64)
    boxes[:, :2] = (
        centres[torch.randint(0, centres.shape[0], (n,), generator=g)]
        + torch.randn(n, 2, dtype=torch.float64, generator=g) * 4
    )
    boxes[:, 2:4] = torch.rand(n, 2, dtype=torch.float64, generator=g) * 40 + 2
    boxes[:, 4] = (torch.rand(n, dtype=torch.float64, generator=g) - 0.5) * math.pi
    return boxes, torch.rand(n, dtype=torch.float64, generator=g)


def _nums(t: torch.Tensor) -> str:
    return " ".join(repr(float(v)) for v in t.reshape(-1).tolist())


@pytest.mark.parametrize(("n", "classes"), [(1, 0), (64, 0), (65, 3), (700, 0), (700, 4)])
def test_cuda_nms_kernel_logic_matches_cpu(harness, n, classes):
    boxes, scores = _clustered(n, seed=n + classes)
    idxs = torch.randint(0, max(classes, 1), (n,), generator=torch.Generator().manual_seed(1))
    order = torch.sort(scores, descending=True, stable=True).indices  # the CUDA wrapper's sort
    text = f"nms {n} 0.1 {int(classes > 0)}\n{_nums(boxes[order])}\n{' '.join(map(str, idxs[order].tolist()))}\n"
    keep = order[torch.tensor([int(v) for v in _run(harness, text)], dtype=torch.long)]
    expected = ops.batched_nms_rotated(boxes, scores, idxs, 0.1) if classes else ops.nms_rotated(boxes, scores, 0.1)
    assert torch.equal(keep, expected)


@pytest.mark.parametrize(("iof", "aligned", "quads"), [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1)])
def test_cuda_iou_kernel_logic_matches_cpu(harness, iof, aligned, quads):
    b, _ = _clustered(60, seed=3)
    a, c = b, b[:45]
    if aligned:  # pair each box with a moved, turned copy of itself
        c = b.clone()
        c[:, :2] += torch.randn(60, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 5
        c[:, 4] += 0.3
    if quads:
        a = (_reference.box_corners(a) + a[:, None, :2]).reshape(-1, 8)
        c = (_reference.box_corners(c) + c[:, None, :2]).reshape(-1, 8)
    text = f"iou {a.shape[0]} {c.shape[0]} {iof} {aligned} {quads}\n{_nums(a)}\n{_nums(c)}\n"
    got = torch.tensor([float(v) for v in _run(harness, text)], dtype=torch.float64)
    fn = ops.poly_iou if quads else ops.box_iou_rotated
    expected = fn(a, c, mode="iof" if iof else "iou", aligned=bool(aligned)).reshape(-1)
    assert (expected > 0).sum() > 10  # the case has real overlaps
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)
