// CUDA side of the RotatedNMS TensorRT plugin: batched, exact rotated NMS with EfficientNMS-style
// fixed-shape outputs. TensorRT-free (plain device pointers), so nvcc can compile it on its own:
//   nvcc -c -std=c++17 -I rdet/ops/csrc export/plugins/rotated_nms/RotatedNMSKernels.cu
//
// Semantics (the same as export/rotated_nms_op.py), per image, images independent:
//   1. scores [N, C] flattened to N*C candidates (index n*C + c), stably sorted by decreasing score
//      (ties: lower index first), the first K = min(pre_nms_topk, N*C) kept, then those > score_threshold;
//   2. greedy NMS in that order: a candidate is dropped when its IoU with a kept candidate of the same
//      class (any class when class_agnostic) is > iou_threshold. The IoU mask is rdet's shared CUDA core
//      (rdet/ops/csrc/nms_rotated_kernel.cuh over geometry.h), computed in float32;
//   3. the first max_det survivors are written; the rest is padded (boxes/scores 0, classes -1).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace rdet {
namespace trt {

enum class ScalarType : int32_t { kFloat32 = 0, kFloat16 = 1 };

struct NMSConfig {
  float iou_threshold;
  float score_threshold;
  int32_t max_det;
  int32_t pre_nms_topk;
  bool class_agnostic;
};

struct NMSShape {
  int32_t batch;
  int32_t num_boxes;
  int32_t num_classes;
};

// Largest pre_nms_topk the plugin accepts: bounds the [K, K/64] suppression mask per image (32 MiB).
constexpr int32_t kMaxPreNmsTopk = 16384;

// K = min(pre_nms_topk, N * C).
int32_t candidate_count(NMSShape shape, NMSConfig config);

// Scratch bytes rotated_nms needs for this shape (a few arrays of B * N * C plus the K x K/64 masks).
size_t workspace_size(NMSShape shape, NMSConfig config);

// Queue the whole batched NMS on `stream`. boxes: [B, N, 5], scores: [B, N, C] (float or half, as
// box_type / score_type say); outputs num_dets [B, 1] int32, det_boxes [B, max_det, 5] (box_type),
// det_scores [B, max_det] (score_type), det_classes [B, max_det] int32. All pointers are device pointers.
cudaError_t rotated_nms(NMSShape shape, NMSConfig config, ScalarType box_type, ScalarType score_type,
                        void const* boxes, void const* scores, int32_t* num_dets, void* det_boxes,
                        void* det_scores, int32_t* det_classes, void* workspace, size_t workspace_bytes,
                        cudaStream_t stream);

}  // namespace trt
}  // namespace rdet
