// CUDA side of the RotatedNMS TensorRT plugin: batched, exact rotated NMS with EfficientNMS-style
// fixed-shape outputs. TensorRT-free (plain device pointers), so nvcc can compile it on its own:
//   nvcc -c -std=c++17 -I rdet/ops/csrc export/plugins/rotated_nms/RotatedNMSKernels.cu
//
// Semantics (the same as export/rotated_nms_op.py), per image, images independent:
//   1. scores [N, C] flattened to N*C candidates (index n*C + c); those > score_threshold pass (NaN never
//      does) and the K = min(pre_nms_topk, N*C) highest of them are kept, by decreasing score, ties: lower
//      index first (= a stable descending sort of the passing scores, cut at K). No sort of all N*C scores:
//      a radix select finds the K-th largest (score, index) key, then only the K selected keys are ordered;
//   2. greedy NMS in that order: a candidate is dropped when its IoU with a kept candidate of the same
//      class (any class when class_agnostic) is > iou_threshold. The IoU mask is rdet's shared CUDA core
//      (rdet/ops/csrc/nms_rotated_kernel.cuh over geometry.h), computed in float32;
//   3. the first max_det survivors are written; the rest is padded (boxes/scores 0, classes -1).
// Inputs and outputs are float32 only (fp16 boxes move corners by up to 0.25 px at 1024 px and change
// the kept set; the TensorRT adapter refuses them, as MMDeploy's rotated NMS does).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace rdet {
namespace trt {

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

// nullptr when rotated_nms can run this problem, else why not (sizes, thresholds, limits).
char const* check_problem(NMSShape shape, NMSConfig config);

// Scratch bytes rotated_nms needs: per image a few arrays of K entries and the K x K/64 mask, nothing of
// size N * C (about 0.6 MiB per image for K = 2000). Non-decreasing in batch, num_boxes and num_classes,
// so the size for the largest shape of a TensorRT profile covers every shape of that profile.
size_t workspace_size(NMSShape shape, NMSConfig config);

// Queue the whole batched NMS on `stream` (no host synchronisation). boxes [B, N, 5], scores [B, N, C];
// outputs num_dets [B, 1], det_boxes [B, max_det, 5], det_scores [B, max_det], det_classes [B, max_det].
// All pointers are device pointers. Returns the first launch or argument error (cudaErrorInvalidValue
// for a problem check_problem refuses or a workspace smaller than workspace_size).
cudaError_t rotated_nms(NMSShape shape, NMSConfig config, float const* boxes, float const* scores,
                        int32_t* num_dets, float* det_boxes, float* det_scores, int32_t* det_classes,
                        void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace trt
}  // namespace rdet
