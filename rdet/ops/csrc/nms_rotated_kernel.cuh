// Torch-free CUDA core of rdet's rotated IoU and NMS: kernels over raw device pointers plus a host
// reduction. Used by cuda_bindings.cu (PyTorch) and meant to be included as-is by a TensorRT plugin.
//
// NMS is the classic two-pass scheme: boxes sorted by decreasing score; one thread per (row box,
// 64-column tile) writes a 64-bit word whose bit k says "row suppresses column tile*64+k"
// (IoU > threshold, later in score order, same class); the host then walks the rows in order.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "geometry.h"

namespace rdet {
namespace cuda {

constexpr int kBitsPerWord = 64;  // columns per mask word = threads per NMS block

RDET_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// out[i * m + j] (or out[i] when aligned) = IoU/IoF of item i of a and item j of b, where items are
// rotated boxes (5 numbers) or quadrilaterals (8 numbers, quads = true).
template <typename T>
__global__ void iou_matrix_kernel(const T* a, int64_t n, const T* b, int64_t m, bool iof, bool aligned,
                                  bool quads, T* out) {
  const int64_t total = aligned ? n : n * m;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < total;
       k += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t i = aligned ? k : k / m;
    const int64_t j = aligned ? k : k % m;
    out[k] = quads ? geom::quad_iou(a + 8 * i, b + 8 * j, iof) : geom::box_iou(a + 5 * i, b + 5 * j, iof);
  }
}

// mask[i * ceil(n / 64) + t], for tiles t >= i / 64 only (the host reduction reads no other word).
template <typename T>
__global__ void nms_mask_kernel(const T* boxes, const int64_t* cls, int64_t n, T thr, uint64_t* mask) {
  const int64_t row_tile = blockIdx.y, col_tile = blockIdx.x;
  if (row_tile > col_tile) return;
  const int64_t words = ceil_div(n, kBitsPerWord);
  const int64_t col0 = col_tile * kBitsPerWord, row0 = row_tile * kBitsPerWord;
  const int col_size = static_cast<int>(n - col0 < kBitsPerWord ? n - col0 : kBitsPerWord);
  const int row_size = static_cast<int>(n - row0 < kBitsPerWord ? n - row0 : kBitsPerWord);
  __shared__ geom::BoxPre<T> cols[kBitsPerWord];
  __shared__ int64_t col_cls[kBitsPerWord];
  if (threadIdx.x < col_size) {
    cols[threadIdx.x] = geom::precompute(boxes + 5 * (col0 + threadIdx.x));
    col_cls[threadIdx.x] = cls ? cls[col0 + threadIdx.x] : 0;
  }
  __syncthreads();
  if (threadIdx.x >= row_size) return;
  const int64_t i = row0 + threadIdx.x;
  const geom::BoxPre<T> a = geom::precompute(boxes + 5 * i);
  const int64_t ci = cls ? cls[i] : 0;
  // Pairs whose cheap upper bound is within round-off of thr are clipped exactly.
  const T bound_thr = thr - (sizeof(T) == 4 ? T(1e-5) : T(1e-9));
  uint64_t bits = 0;
  for (int k = row_tile == col_tile ? static_cast<int>(threadIdx.x) + 1 : 0; k < col_size; ++k) {
    if (col_cls[k] != ci) continue;
    if (geom::box_iou_upper_bound(a, cols[k]) <= bound_thr) continue;
    if (geom::finish_iou(geom::box_inter_pre(a, cols[k]), a.area, cols[k].area, false) > thr)
      bits |= 1ULL << k;
  }
  mask[i * words + col_tile] = bits;
}

// Host launchers (defined and instantiated for float and double in cuda.cu). Pointers are device
// pointers; the work is queued on `stream`.
template <typename T>
cudaError_t iou_matrix(const T* a, int64_t n, const T* b, int64_t m, bool iof, bool aligned, bool quads, T* out,
                       cudaStream_t stream);

// boxes: [n, 5] sorted by decreasing score; cls: [n] or nullptr; mask: [n, ceil(n / 64)] words.
template <typename T>
cudaError_t nms_rotated_mask(const T* boxes, const int64_t* cls, int64_t n, T thr, uint64_t* mask,
                             cudaStream_t stream);

// Greedy reduction of a host copy of the mask (host code): writes the kept positions (in the sorted
// order) to keep[0:k] and returns k.
inline int64_t nms_rotated_reduce(const uint64_t* mask, int64_t n, int64_t* keep) {
  const int64_t words = ceil_div(n, kBitsPerWord);
  std::vector<uint64_t> removed(static_cast<size_t>(words), 0);
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t w = i / kBitsPerWord;
    if (removed[w] & (1ULL << (i % kBitsPerWord))) continue;
    keep[k++] = i;
    const uint64_t* row = mask + i * words;
    for (int64_t t = w; t < words; ++t) removed[t] |= row[t];
  }
  return k;
}

}  // namespace cuda
}  // namespace rdet
