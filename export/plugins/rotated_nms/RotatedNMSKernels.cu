// Batched rotated NMS for the TensorRT plugin (see RotatedNMSKernels.h for the semantics).
//
// The geometry and the suppression mask are NOT here: they are rdet's shared CUDA core
// (rdet/ops/csrc/nms_rotated_kernel.cuh + geometry.h, the same code as rdet.ops on CUDA). This file only
// adds what a batched, fixed-shape, device-only op needs around it: score sorting (CUB), candidate
// gathering, a device-side greedy reduction (no host round trip inside enqueue), and output padding.
#include <cuda_fp16.h>

#include <cub/device/device_segmented_radix_sort.cuh>

#include "RotatedNMSKernels.h"
#include "nms_rotated_kernel.cuh"

namespace rdet {
namespace trt {
namespace {

constexpr int kThreads = 256;
constexpr int kReduceThreads = 128;
constexpr size_t kAlign = 256;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

// Workspace layout (each part 256-byte aligned).
struct Layout {
  int64_t total_scores;  // B * N * C
  int32_t k, words;
  size_t keys_in, vals_in, keys_out, vals_out, offsets, cub_temp, cub_bytes, cand_boxes, cand_cls, mask, end;
};

Layout layout(NMSShape s, NMSConfig c) {
  Layout l{};
  l.total_scores = static_cast<int64_t>(s.batch) * s.num_boxes * s.num_classes;
  l.k = candidate_count(s, c);
  l.words = static_cast<int32_t>(rdet::cuda::ceil_div(l.k, rdet::cuda::kBitsPerWord));
  const size_t n = static_cast<size_t>(l.total_scores);
  size_t off = 0;
  l.keys_in = off;  off += align_up(n * sizeof(float));
  l.vals_in = off;  off += align_up(n * sizeof(int32_t));
  l.keys_out = off; off += align_up(n * sizeof(float));
  l.vals_out = off; off += align_up(n * sizeof(int32_t));
  l.offsets = off;  off += align_up((static_cast<size_t>(s.batch) + 1) * sizeof(int32_t));
  size_t cub_bytes = 0;
  // Size query only (null pointers): CUB reports the temporary storage the segmented sort needs.
  cub::DeviceSegmentedRadixSort::SortPairsDescending(
      nullptr, cub_bytes, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), static_cast<int>(n), s.batch,
      static_cast<const int32_t*>(nullptr), static_cast<const int32_t*>(nullptr));
  l.cub_temp = off;  l.cub_bytes = cub_bytes; off += align_up(cub_bytes);
  const size_t bk = static_cast<size_t>(s.batch) * l.k;
  l.cand_boxes = off; off += align_up(bk * 5 * sizeof(float));
  l.cand_cls = off;   off += align_up(bk * sizeof(int64_t));
  l.mask = off;       off += align_up(bk * l.words * sizeof(uint64_t));
  l.end = off;
  return l;
}

// keys = float(scores), vals = index of the score within its image (n * C + c).
template <typename TS>
__global__ void prepare_scores(const TS* scores, int64_t total, int32_t per_image, float* keys, int32_t* vals) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    keys[i] = to_float(scores[i]);
    vals[i] = static_cast<int32_t>(i % per_image);
  }
}

__global__ void segment_offsets(int32_t* offsets, int32_t batch, int32_t per_image) {
  const int32_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= batch) offsets[i] = i * per_image;
}

// The first K sorted candidates of each image: their boxes (float) and NMS classes.
template <typename TB>
__global__ void gather_candidates(const TB* boxes, const int32_t* vals_sorted, NMSShape s, int32_t k,
                                  bool agnostic, float* cand_boxes, int64_t* cand_cls) {
  const int64_t total = static_cast<int64_t>(s.batch) * k;
  const int64_t per_image = static_cast<int64_t>(s.num_boxes) * s.num_classes;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t b = t / k, j = t % k;
    const int32_t idx = vals_sorted[b * per_image + j];
    const int64_t n = idx / s.num_classes;
    const TB* src = boxes + (b * s.num_boxes + n) * 5;
    for (int d = 0; d < 5; ++d) cand_boxes[t * 5 + d] = to_float(src[d]);
    cand_cls[t] = agnostic ? 0 : idx % s.num_classes;
  }
}

// One block per image: walk the candidates in score order, keep those no kept one suppresses (the
// suppression bits of kept rows are OR-ed into a shared bitmap), write kept ones and the padding.
template <typename TB, typename TS>
__global__ void reduce_and_write(const uint64_t* mask, const float* keys_sorted, const int32_t* vals_sorted,
                                 const float* cand_boxes, NMSShape s, int32_t k, int32_t words, float score_thr,
                                 int32_t max_det, int32_t* num_dets, TB* det_boxes, TS* det_scores,
                                 int32_t* det_classes) {
  extern __shared__ uint64_t removed[];
  const int64_t b = blockIdx.x;
  const int64_t per_image = static_cast<int64_t>(s.num_boxes) * s.num_classes;
  const float* keys = keys_sorted + b * per_image;
  const int32_t* vals = vals_sorted + b * per_image;
  const uint64_t* m = mask + b * static_cast<int64_t>(k) * words;
  const float* cb = cand_boxes + b * static_cast<int64_t>(k) * 5;
  TB* ob = det_boxes + b * static_cast<int64_t>(max_det) * 5;
  TS* os = det_scores + b * static_cast<int64_t>(max_det);
  int32_t* oc = det_classes + b * static_cast<int64_t>(max_det);
  for (int t = threadIdx.x; t < words; t += blockDim.x) removed[t] = 0;
  __syncthreads();
  int32_t count = 0;  // identical in every thread: all branch conditions below are block-uniform
  for (int32_t i = 0; i < k && count < max_det; ++i) {
    if (!(keys[i] > score_thr)) break;  // sorted by score: every later candidate is below the threshold
    const bool kept = !((removed[i / rdet::cuda::kBitsPerWord] >> (i % rdet::cuda::kBitsPerWord)) & 1ULL);
    __syncthreads();  // everyone has read the bit before the bitmap changes
    if (kept) {
      if (threadIdx.x == 0) {
        for (int d = 0; d < 5; ++d) ob[count * 5 + d] = from_float<TB>(cb[i * 5 + d]);
        os[count] = from_float<TS>(keys[i]);
        oc[count] = vals[i] % s.num_classes;
      }
      const uint64_t* row = m + static_cast<int64_t>(i) * words;
      for (int t = i / rdet::cuda::kBitsPerWord + threadIdx.x; t < words; t += blockDim.x) removed[t] |= row[t];
      ++count;
    }
    __syncthreads();
  }
  for (int32_t j = count + threadIdx.x; j < max_det; j += blockDim.x) {
    for (int d = 0; d < 5; ++d) ob[j * 5 + d] = from_float<TB>(0.f);
    os[j] = from_float<TS>(0.f);
    oc[j] = -1;
  }
  if (threadIdx.x == 0) num_dets[b] = count;
}

template <typename TB, typename TS>
cudaError_t run(NMSShape s, NMSConfig c, const TB* boxes, const TS* scores, int32_t* num_dets, TB* det_boxes,
                TS* det_scores, int32_t* det_classes, char* ws, const Layout& l, cudaStream_t stream) {
  const int32_t per_image = s.num_boxes * s.num_classes;
  auto* keys_in = reinterpret_cast<float*>(ws + l.keys_in);
  auto* vals_in = reinterpret_cast<int32_t*>(ws + l.vals_in);
  auto* keys_out = reinterpret_cast<float*>(ws + l.keys_out);
  auto* vals_out = reinterpret_cast<int32_t*>(ws + l.vals_out);
  auto* offsets = reinterpret_cast<int32_t*>(ws + l.offsets);
  auto* cand_boxes = reinterpret_cast<float*>(ws + l.cand_boxes);
  auto* cand_cls = reinterpret_cast<int64_t*>(ws + l.cand_cls);
  auto* mask = reinterpret_cast<uint64_t*>(ws + l.mask);

  prepare_scores<TS><<<grid_for(l.total_scores), kThreads, 0, stream>>>(scores, l.total_scores, per_image,
                                                                         keys_in, vals_in);
  segment_offsets<<<grid_for(s.batch + 1), kThreads, 0, stream>>>(offsets, s.batch, per_image);
  size_t cub_bytes = l.cub_bytes;
  // Radix sort is stable, so equal scores keep the lower index first (the ONNX TopK / rdet.ops rule).
  cudaError_t err = cub::DeviceSegmentedRadixSort::SortPairsDescending(
      ws + l.cub_temp, cub_bytes, keys_in, keys_out, vals_in, vals_out, static_cast<int>(l.total_scores),
      s.batch, offsets, offsets + 1, 0, static_cast<int>(sizeof(float) * 8), stream);
  if (err != cudaSuccess) return err;
  gather_candidates<TB><<<grid_for(static_cast<int64_t>(s.batch) * l.k), kThreads, 0, stream>>>(
      boxes, vals_out, s, l.k, c.class_agnostic, cand_boxes, cand_cls);
  for (int32_t b = 0; b < s.batch; ++b) {  // images are independent: one mask per image
    err = rdet::cuda::nms_rotated_mask<float>(cand_boxes + static_cast<int64_t>(b) * l.k * 5,
                                              cand_cls + static_cast<int64_t>(b) * l.k, l.k, c.iou_threshold,
                                              mask + static_cast<int64_t>(b) * l.k * l.words, stream);
    if (err != cudaSuccess) return err;
  }
  reduce_and_write<TB, TS><<<s.batch, kReduceThreads, l.words * sizeof(uint64_t), stream>>>(
      mask, keys_out, vals_out, cand_boxes, s, l.k, l.words, c.score_threshold, c.max_det, num_dets, det_boxes,
      det_scores, det_classes);
  return cudaGetLastError();
}

template <typename TB>
cudaError_t dispatch_scores(NMSShape s, NMSConfig c, ScalarType score_type, const void* boxes, const void* scores,
                            int32_t* num_dets, void* det_boxes, void* det_scores, int32_t* det_classes, char* ws,
                            const Layout& l, cudaStream_t stream) {
  if (score_type == ScalarType::kFloat16)
    return run<TB, __half>(s, c, static_cast<const TB*>(boxes), static_cast<const __half*>(scores), num_dets,
                           static_cast<TB*>(det_boxes), static_cast<__half*>(det_scores), det_classes, ws, l, stream);
  return run<TB, float>(s, c, static_cast<const TB*>(boxes), static_cast<const float*>(scores), num_dets,
                        static_cast<TB*>(det_boxes), static_cast<float*>(det_scores), det_classes, ws, l, stream);
}

}  // namespace

int32_t candidate_count(NMSShape s, NMSConfig c) {
  const int64_t all = static_cast<int64_t>(s.num_boxes) * s.num_classes;
  return static_cast<int32_t>(all < c.pre_nms_topk ? all : c.pre_nms_topk);
}

size_t workspace_size(NMSShape s, NMSConfig c) { return layout(s, c).end; }

cudaError_t rotated_nms(NMSShape s, NMSConfig c, ScalarType box_type, ScalarType score_type, void const* boxes,
                        void const* scores, int32_t* num_dets, void* det_boxes, void* det_scores,
                        int32_t* det_classes, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (s.batch <= 0) return cudaSuccess;
  if (s.num_boxes <= 0 || s.num_classes <= 0 || c.max_det <= 0 || c.pre_nms_topk <= 0 ||
      c.pre_nms_topk > kMaxPreNmsTopk ||
      static_cast<int64_t>(s.batch) * s.num_boxes * s.num_classes > INT32_MAX)
    return cudaErrorInvalidValue;
  const Layout l = layout(s, c);
  if (workspace == nullptr || workspace_bytes < l.end) return cudaErrorInvalidValue;
  char* ws = static_cast<char*>(workspace);
  if (box_type == ScalarType::kFloat16)
    return dispatch_scores<__half>(s, c, score_type, boxes, scores, num_dets, det_boxes, det_scores, det_classes,
                                   ws, l, stream);
  return dispatch_scores<float>(s, c, score_type, boxes, scores, num_dets, det_boxes, det_scores, det_classes, ws,
                                l, stream);
}

}  // namespace trt
}  // namespace rdet
