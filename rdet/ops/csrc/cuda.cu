// Host launchers of the torch-free CUDA kernels (nms_rotated_kernel.cuh). Compiles on its own:
//   nvcc -c -std=c++17 rdet/ops/csrc/cuda.cu
#include "nms_rotated_kernel.cuh"

namespace rdet {
namespace cuda {

template <typename T>
cudaError_t iou_matrix(const T* a, int64_t n, const T* b, int64_t m, bool iof, bool aligned, bool quads, T* out,
                       cudaStream_t stream) {
  const int64_t total = aligned ? n : n * m;
  if (total == 0) return cudaSuccess;
  const int threads = 256;
  // Grid-stride loop: cap the grid, large problems loop inside the kernel.
  const int64_t blocks = ceil_div(total, threads) < 65535 ? ceil_div(total, threads) : 65535;
  iou_matrix_kernel<T><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(a, n, b, m, iof, aligned, quads,
                                                                               out);
  return cudaGetLastError();
}

template <typename T>
cudaError_t nms_rotated_mask(const T* boxes, const int64_t* cls, int64_t n, T thr, uint64_t* mask,
                             cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const int64_t tiles = ceil_div(n, kBitsPerWord);
  if (tiles > 65535) return cudaErrorInvalidValue;  // grid.y limit: > 4M boxes
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(tiles));
  nms_mask_kernel<T><<<grid, kBitsPerWord, 0, stream>>>(boxes, cls, n, thr, mask);
  return cudaGetLastError();
}

template cudaError_t iou_matrix<float>(const float*, int64_t, const float*, int64_t, bool, bool, bool, float*,
                                       cudaStream_t);
template cudaError_t iou_matrix<double>(const double*, int64_t, const double*, int64_t, bool, bool, bool,
                                        double*, cudaStream_t);
template cudaError_t nms_rotated_mask<float>(const float*, const int64_t*, int64_t, float, uint64_t*,
                                             cudaStream_t);
template cudaError_t nms_rotated_mask<double>(const double*, const int64_t*, int64_t, double, uint64_t*,
                                              cudaStream_t);

}  // namespace cuda
}  // namespace rdet
