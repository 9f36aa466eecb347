// The kernels of the RotatedNMS plugin and the order they run in (semantics in RotatedNMSKernels.h).
//
// Written against a small launcher interface instead of <<<>>> so that the same code runs on a GPU
// (RotatedNMSKernels.cu: CudaLauncher) and, for tests without a GPU, on the CPU under
// cuda_emulator.h (every CUDA thread a host thread, __syncthreads a barrier). A launcher provides
//   cudaError_t launch(kernel, dim3 grid, dim3 block, args...)   // queue one kernel, report launch errors
//   cudaError_t memset(void* ptr, int value, size_t bytes)
//   void mark_selection_done()                                  // after the candidates are ordered
//
// Candidate selection is exact and never sorts all N*C scores (2.95 M for one 1024 px image, 15 classes):
//   key(score, index) = (order-preserving bits of the score) << 32 | (0xFFFFFFFF - index)
// orders candidates by decreasing score, then increasing index, and no two keys are equal. An 8-pass radix
// select (one 256-bin histogram per byte of the key, over the scores > threshold only) finds the K-th
// largest key; the keys >= it are exactly the K candidates, and ranking those K keys by counting orders
// them. NaN scores fail `score > threshold` and are never candidates.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "RotatedNMSKernels.h"
#include "nms_rotated_kernel.cuh"

namespace rdet {
namespace trt {
namespace detail {

using u64 = unsigned long long;  // the 64-bit type of CUDA's atomics

constexpr int kThreads = 256;      // threads of the scan and rank kernels (= the rank tile)
constexpr int kReduceThreads = 128;
constexpr int kBins = 256;         // 8-bit radix digits
constexpr int kPasses = 8;         // 64-bit keys
constexpr int kMaxWords = kMaxPreNmsTopk / rdet::cuda::kBitsPerWord;
constexpr size_t kAlign = 256;

// Per-image state of the selection (zeroed before the first pass).
struct SelectState {
  u64 prefix;          // the top bytes of the K-th largest key found so far (all 8 after the last pass)
  unsigned remaining;  // rank of the K-th largest key among the keys that start with `prefix`
  unsigned passing;    // number of scores > threshold
  unsigned take_all;   // passing <= K: every passing score is a candidate
  unsigned selected;   // slots handed out by select_write_kernel
};

RDET_HD int32_t imin(int32_t a, int32_t b) { return a < b ? a : b; }

// Larger key = higher score, then lower index. -0 counts as +0 (equal scores, as in a sort).
RDET_HD u64 candidate_key(float score, uint32_t index) {
  uint32_t bits;
  std::memcpy(&bits, &score, sizeof(bits));
  bits = score == 0.f ? 0u : bits;
  bits = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return (static_cast<u64>(bits) << 32) | static_cast<u64>(0xFFFFFFFFu - index);
}

RDET_HD uint32_t key_index(u64 key) { return 0xFFFFFFFFu - static_cast<uint32_t>(key & 0xFFFFFFFFull); }

// ------------------------------------------------------------------------------------ host helpers
inline int32_t k_for(NMSShape s, NMSConfig c) {
  const int64_t all = static_cast<int64_t>(s.num_boxes) * s.num_classes;
  return static_cast<int32_t>(all < c.pre_nms_topk ? all : c.pre_nms_topk);
}

inline char const* problem_error(NMSShape s, NMSConfig c) {
  if (s.batch < 0 || s.num_boxes < 0 || s.num_classes < 0) return "negative dimension";
  if (s.batch > 65535) return "batch > 65535 (CUDA grid limit)";
  if (static_cast<int64_t>(s.num_boxes) * s.num_classes > INT32_MAX) return "N * C > 2^31 - 1 scores per image";
  if (!std::isfinite(c.iou_threshold) || !std::isfinite(c.score_threshold))
    return "iou_threshold and score_threshold must be finite";
  if (c.max_det < 1) return "max_det must be >= 1";
  if (c.pre_nms_topk < 1 || c.pre_nms_topk > kMaxPreNmsTopk) return "pre_nms_topk must be in [1, 16384]";
  return nullptr;
}

inline size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Workspace layout, each part 256-byte aligned; state and hist first and adjacent (one memset).
struct Layout {
  int32_t k = 0, words = 0;
  size_t state = 0, hist = 0, sel_keys = 0, sorted_keys = 0, cand_boxes = 0, cand_cls = 0, mask = 0;
  size_t zero_bytes = 0, end = 0;
};

inline Layout make_layout(NMSShape s, NMSConfig c) {
  Layout l;
  l.k = k_for(s, c);
  l.words = static_cast<int32_t>(rdet::cuda::ceil_div(l.k, rdet::cuda::kBitsPerWord));
  const size_t b = static_cast<size_t>(s.batch), bk = b * static_cast<size_t>(l.k);
  size_t off = 0;
  l.state = off;       off += align_up(b * sizeof(SelectState));
  l.hist = off;        off += align_up(b * kBins * sizeof(unsigned));
  l.zero_bytes = off;
  l.sel_keys = off;    off += align_up(bk * sizeof(u64));
  l.sorted_keys = off; off += align_up(bk * sizeof(u64));
  l.cand_boxes = off;  off += align_up(bk * 5 * sizeof(float));
  l.cand_cls = off;    off += align_up(bk * sizeof(int64_t));
  l.mask = off;        off += align_up(bk * static_cast<size_t>(l.words) * sizeof(uint64_t));
  l.end = off;
  return l;
}

inline unsigned scan_blocks(int64_t per_image, unsigned max_blocks) {
  const int64_t want = (per_image + kThreads * 8 - 1) / (kThreads * 8);
  return static_cast<unsigned>(want < 1 ? 1 : (want < max_blocks ? want : max_blocks));
}

// ---------------------------------------------------------------------------------------- kernels
// Radix-select pass `pass` (byte 7 - pass of the key): histogram of that byte over the passing keys whose
// higher bytes equal the prefix found so far. Grid (blocks, B); each block strides over one image.
static __global__ void select_histogram_kernel(const float* scores, int64_t per_image, float thr, int pass,
                                        const SelectState* state, unsigned* hist) {
  __shared__ unsigned bins[kBins];
  const int64_t b = blockIdx.y;
  const SelectState st = state[b];
  if (pass > 0 && st.take_all) return;  // block-uniform: every thread leaves before any barrier
  for (int t = threadIdx.x; t < kBins; t += blockDim.x) bins[t] = 0;
  __syncthreads();
  const int shift = 56 - 8 * pass;
  const float* s = scores + b * per_image;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < per_image;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const float v = s[i];
    if (!(v > thr)) continue;
    const u64 key = candidate_key(v, static_cast<uint32_t>(i));
    if (pass > 0 && (key >> (shift + 8)) != st.prefix) continue;
    atomicAdd(&bins[(key >> shift) & 0xFFu], 1u);
  }
  __syncthreads();
  for (int t = threadIdx.x; t < kBins; t += blockDim.x)
    if (bins[t] != 0) atomicAdd(&hist[b * kBins + t], bins[t]);
}

// One thread per image: pick the byte of the K-th largest key from the histogram, then clear it.
static __global__ void select_digit_kernel(SelectState* state, unsigned* hist, int pass, int32_t k, int32_t batch) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b >= batch) return;
  SelectState& st = state[b];
  unsigned* h = hist + b * kBins;
  if (pass == 0) {
    unsigned total = 0;
    for (int d = 0; d < kBins; ++d) total += h[d];
    st.passing = total;
    if (total <= static_cast<unsigned>(k)) st.take_all = 1;
    else st.remaining = static_cast<unsigned>(k);
  }
  if (!st.take_all) {
    for (int d = kBins - 1; d >= 0; --d) {  // from the largest byte down
      if (st.remaining <= h[d]) {
        st.prefix = (st.prefix << 8) | static_cast<u64>(d);
        break;
      }
      st.remaining -= h[d];
    }
  }
  for (int d = 0; d < kBins; ++d) h[d] = 0;
}

// Write the keys of the K candidates (in no particular order): all passing keys >= the K-th largest.
static __global__ void select_write_kernel(const float* scores, int64_t per_image, float thr, int32_t k,
                                    SelectState* state, u64* sel_keys) {
  const int64_t b = blockIdx.y;
  const bool all = state[b].take_all != 0;
  const u64 kth = state[b].prefix;
  const float* s = scores + b * per_image;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < per_image;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const float v = s[i];
    if (!(v > thr)) continue;
    const u64 key = candidate_key(v, static_cast<uint32_t>(i));
    if (!all && key < kth) continue;
    const unsigned slot = atomicAdd(&state[b].selected, 1u);
    if (slot < static_cast<unsigned>(k)) sel_keys[b * k + slot] = key;
  }
}

// Order the selected keys: a key's rank is the number of larger keys (keys are unique). Grid (K / 256, B).
static __global__ void rank_sort_kernel(const SelectState* state, int32_t k, const u64* sel_keys, u64* sorted_keys) {
  __shared__ u64 tile[kThreads];
  const int64_t b = blockIdx.y;
  const int32_t count = imin(static_cast<int32_t>(state[b].selected), k);
  if (static_cast<int32_t>(blockIdx.x * blockDim.x) >= count) return;  // block-uniform
  const int32_t j = static_cast<int32_t>(blockIdx.x * blockDim.x + threadIdx.x);
  const u64* keys = sel_keys + b * k;
  const u64 mine = j < count ? keys[j] : 0;
  int32_t rank = 0;
  for (int32_t t0 = 0; t0 < count; t0 += static_cast<int32_t>(blockDim.x)) {
    const int32_t t = t0 + static_cast<int32_t>(threadIdx.x);
    tile[threadIdx.x] = t < count ? keys[t] : 0;
    __syncthreads();
    const int32_t n = imin(static_cast<int32_t>(blockDim.x), count - t0);
    for (int32_t q = 0; q < n; ++q) rank += tile[q] > mine ? 1 : 0;
    __syncthreads();
  }
  if (j < count) sorted_keys[b * k + rank] = mine;
}

// The boxes and NMS classes of the sorted candidates; unused slots get an empty box and class -1.
static __global__ void gather_kernel(const float* boxes, NMSShape s, int32_t k, bool agnostic, const SelectState* state,
                              const u64* sorted_keys, float* cand_boxes, int64_t* cand_cls) {
  const int64_t total = static_cast<int64_t>(s.batch) * k;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t b = t / k, j = t % k;
    if (j < imin(static_cast<int32_t>(state[b].selected), k)) {
      const int64_t idx = key_index(sorted_keys[t]);
      const float* src = boxes + (b * s.num_boxes + idx / s.num_classes) * 5;
      for (int d = 0; d < 5; ++d) cand_boxes[t * 5 + d] = src[d];
      cand_cls[t] = agnostic ? 0 : idx % s.num_classes;
    } else {
      for (int d = 0; d < 5; ++d) cand_boxes[t * 5 + d] = 0.f;
      cand_cls[t] = -1;
    }
  }
}

// One block per image: walk the candidates in order, keep those no kept one suppresses (the mask rows of
// kept candidates are OR-ed into a shared bitmap), write the first max_det kept ones and the padding.
static __global__ void reduce_write_kernel(const uint64_t* mask, const SelectState* state, const u64* sorted_keys,
                                    const float* cand_boxes, const float* scores, NMSShape s, int32_t k,
                                    int32_t words, int32_t max_det, int32_t* num_dets, float* det_boxes,
                                    float* det_scores, int32_t* det_classes) {
  __shared__ uint64_t removed[kMaxWords];
  const int64_t b = blockIdx.x;
  const int64_t per_image = static_cast<int64_t>(s.num_boxes) * s.num_classes;
  const int32_t count = imin(static_cast<int32_t>(state[b].selected), k);
  const uint64_t* m = mask + b * static_cast<int64_t>(k) * words;
  const u64* keys = sorted_keys + b * static_cast<int64_t>(k);
  const float* cb = cand_boxes + b * static_cast<int64_t>(k) * 5;
  float* ob = det_boxes + b * static_cast<int64_t>(max_det) * 5;
  float* os = det_scores + b * static_cast<int64_t>(max_det);
  int32_t* oc = det_classes + b * static_cast<int64_t>(max_det);
  for (int t = threadIdx.x; t < words; t += blockDim.x) removed[t] = 0;
  __syncthreads();
  int32_t kept = 0;  // the same in every thread: every branch below is block-uniform
  for (int32_t i = 0; i < count && kept < max_det; ++i) {
    const int w = i / rdet::cuda::kBitsPerWord;
    const bool keep = !((removed[w] >> (i % rdet::cuda::kBitsPerWord)) & 1ULL);
    __syncthreads();  // everyone has read the bit before the bitmap changes
    if (keep) {
      if (threadIdx.x == 0) {
        const int64_t idx = key_index(keys[i]);
        for (int d = 0; d < 5; ++d) ob[kept * 5 + d] = cb[i * 5 + d];
        os[kept] = scores[b * per_image + idx];
        oc[kept] = static_cast<int32_t>(idx % s.num_classes);
      }
      const uint64_t* row = m + static_cast<int64_t>(i) * words;
      for (int t = w + threadIdx.x; t < words; t += blockDim.x) removed[t] |= row[t];
      ++kept;
    }
    __syncthreads();
  }
  for (int32_t j = kept + threadIdx.x; j < max_det; j += blockDim.x) {
    for (int d = 0; d < 5; ++d) ob[j * 5 + d] = 0.f;
    os[j] = 0.f;
    oc[j] = -1;
  }
  if (threadIdx.x == 0) num_dets[b] = kept;
}

// ------------------------------------------------------------------------------------ the pipeline
// Queue every step; the first launch error is returned. `ws` holds make_layout(s, c).end bytes;
// `max_blocks` caps the blocks per image of the scans over all N*C scores (grid-stride loops).
template <class Launcher>
cudaError_t run_pipeline(Launcher& launcher, NMSShape s, NMSConfig c, const float* boxes, const float* scores,
                         int32_t* num_dets, float* det_boxes, float* det_scores, int32_t* det_classes, char* ws,
                         const Layout& l, unsigned max_blocks) {
  const int64_t per_image = static_cast<int64_t>(s.num_boxes) * s.num_classes;
  auto* state = reinterpret_cast<SelectState*>(ws + l.state);
  auto* hist = reinterpret_cast<unsigned*>(ws + l.hist);
  auto* sel_keys = reinterpret_cast<u64*>(ws + l.sel_keys);
  auto* sorted_keys = reinterpret_cast<u64*>(ws + l.sorted_keys);
  auto* cand_boxes = reinterpret_cast<float*>(ws + l.cand_boxes);
  auto* cand_cls = reinterpret_cast<int64_t*>(ws + l.cand_cls);
  auto* mask = reinterpret_cast<uint64_t*>(ws + l.mask);
  const unsigned batch = static_cast<unsigned>(s.batch);
  cudaError_t err = launcher.memset(ws, 0, l.zero_bytes);  // state and histograms
  if (err != cudaSuccess || batch == 0) return err;
  if (l.k == 0)  // no scores (N * C = 0): only the padding and num_dets = 0
    return launcher.launch(reduce_write_kernel, dim3(batch), dim3(kReduceThreads), mask, state, sorted_keys,
                           cand_boxes, scores, s, l.k, l.words, c.max_det, num_dets, det_boxes, det_scores,
                           det_classes);
  const dim3 scan_grid(scan_blocks(per_image, max_blocks), batch);
  const dim3 per_image_threads((batch + 63) / 64);
  for (int pass = 0; pass < kPasses; ++pass) {
    err = launcher.launch(select_histogram_kernel, scan_grid, dim3(kThreads), scores, per_image,
                          c.score_threshold, pass, state, hist);
    if (err != cudaSuccess) return err;
    err = launcher.launch(select_digit_kernel, per_image_threads, dim3(64), state, hist, pass, l.k, s.batch);
    if (err != cudaSuccess) return err;
  }
  err = launcher.launch(select_write_kernel, scan_grid, dim3(kThreads), scores, per_image, c.score_threshold, l.k,
                        state, sel_keys);
  if (err != cudaSuccess) return err;
  const unsigned k_blocks = static_cast<unsigned>(rdet::cuda::ceil_div(l.k, kThreads));
  err = launcher.launch(rank_sort_kernel, dim3(k_blocks, batch), dim3(kThreads), state, l.k, sel_keys, sorted_keys);
  if (err != cudaSuccess) return err;
  launcher.mark_selection_done();  // a timing hook (kernel_driver.cu); a no-op otherwise
  const int64_t bk = static_cast<int64_t>(s.batch) * l.k;
  const unsigned gather_blocks = static_cast<unsigned>(rdet::cuda::ceil_div(bk, kThreads));
  err = launcher.launch(gather_kernel, dim3(gather_blocks), dim3(kThreads), boxes, s, l.k, c.class_agnostic, state,
                        sorted_keys, cand_boxes, cand_cls);
  if (err != cudaSuccess) return err;
  const dim3 mask_grid(static_cast<unsigned>(l.words), static_cast<unsigned>(l.words));
  for (int64_t b = 0; b < s.batch; ++b) {  // the shared core's mask kernel, one image per launch
    err = launcher.launch(&rdet::cuda::nms_mask_kernel<float>, mask_grid, dim3(rdet::cuda::kBitsPerWord),
                          cand_boxes + b * l.k * 5, cand_cls + b * l.k, static_cast<int64_t>(l.k),
                          c.iou_threshold, mask + b * static_cast<int64_t>(l.k) * l.words);
    if (err != cudaSuccess) return err;
  }
  return launcher.launch(reduce_write_kernel, dim3(batch), dim3(kReduceThreads), mask, state, sorted_keys,
                         cand_boxes, scores, s, l.k, l.words, c.max_det, num_dets, det_boxes, det_scores,
                         det_classes);
}

}  // namespace detail
}  // namespace trt
}  // namespace rdet
