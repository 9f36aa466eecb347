// Batched rotated NMS for the TensorRT plugin (semantics in RotatedNMSKernels.h, kernels in
// RotatedNMSPipeline.cuh). This file only binds the pipeline to CUDA: launches on a stream, every launch
// checked, no host synchronisation.
#include "RotatedNMSKernels.h"
#include "RotatedNMSPipeline.cuh"

namespace rdet {
namespace trt {
namespace {

// Blocks per image of the scans over all N*C scores: enough to fill a large GPU for batch 1.
constexpr unsigned kMaxScanBlocks = 512;

struct CudaLauncher {
  cudaStream_t stream;

  template <typename... Params, typename... Args>
  cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args... args) {
    kernel<<<grid, block, 0, stream>>>(args...);
    return cudaGetLastError();  // launch-configuration errors; execution errors surface on the stream
  }

  cudaError_t memset(void* ptr, int value, size_t bytes) {
    return bytes == 0 ? cudaSuccess : cudaMemsetAsync(ptr, value, bytes, stream);
  }

  void mark_selection_done() {}
};

}  // namespace

int32_t candidate_count(NMSShape s, NMSConfig c) { return detail::k_for(s, c); }

char const* check_problem(NMSShape s, NMSConfig c) { return detail::problem_error(s, c); }

size_t workspace_size(NMSShape s, NMSConfig c) { return detail::make_layout(s, c).end; }

cudaError_t rotated_nms(NMSShape s, NMSConfig c, float const* boxes, float const* scores, int32_t* num_dets,
                        float* det_boxes, float* det_scores, int32_t* det_classes, void* workspace,
                        size_t workspace_bytes, cudaStream_t stream) {
  if (detail::problem_error(s, c) != nullptr) return cudaErrorInvalidValue;
  if (s.batch == 0) return cudaSuccess;
  const detail::Layout l = detail::make_layout(s, c);
  if (workspace == nullptr || workspace_bytes < l.end) return cudaErrorInvalidValue;
  CudaLauncher launcher{stream};
  return detail::run_pipeline(launcher, s, c, boxes, scores, num_dets, det_boxes, det_scores, det_classes,
                              static_cast<char*>(workspace), l, kMaxScanBlocks);
}

}  // namespace trt
}  // namespace rdet
