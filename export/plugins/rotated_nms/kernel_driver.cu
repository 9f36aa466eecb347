// Runs the plugin's NMS on one problem read from a file and writes the four outputs. Two builds:
//   GPU (benchmarks/gpu_check.sh): nvcc -std=c++17 -I<rdet/ops/csrc> kernel_driver.cu RotatedNMSKernels.cu
//   CPU (tests): g++ -x c++ -std=c++17 -pthread -DRDET_CUDA_EMULATOR -I<dir with a cuda_runtime.h that includes
//                cuda_emulator.h> -I<rdet/ops/csrc> kernel_driver.cu
//
//   kernel_driver IN OUT [REPEAT]
// IN:  int32 B, N, C, max_det, pre_nms_topk, class_agnostic; float32 iou_threshold, score_threshold;
//      float32 boxes [B, N, 5]; float32 scores [B, N, C]
// OUT: int32 num_dets [B]; float32 det_boxes [B, max_det, 5]; float32 det_scores [B, max_det];
//      int32 det_classes [B, max_det]
// stdout: one JSON object: workspace bytes, K and, on the GPU with REPEAT > 0, the median time of the whole
// NMS and of the candidate selection alone over REPEAT runs (ms).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "RotatedNMSKernels.h"
#include "RotatedNMSPipeline.cuh"

using namespace rdet::trt;

namespace {

struct Problem {
  NMSShape shape{};
  NMSConfig config{};
  std::vector<float> boxes, scores;
};

[[noreturn]] void fail(char const* what, char const* detail = "") {
  std::fprintf(stderr, "kernel_driver: %s %s\n", what, detail);
  std::exit(1);
}

Problem read_problem(char const* path) {
  FILE* f = std::fopen(path, "rb");
  if (f == nullptr) fail("cannot open", path);
  int32_t h[6];
  float t[2];
  if (std::fread(h, sizeof(int32_t), 6, f) != 6 || std::fread(t, sizeof(float), 2, f) != 2) fail("short header", path);
  Problem p;
  p.shape = NMSShape{h[0], h[1], h[2]};
  p.config = NMSConfig{t[0], t[1], h[3], h[4], h[5] != 0};
  if (char const* why = detail::problem_error(p.shape, p.config)) fail("bad problem:", why);
  p.boxes.resize(static_cast<size_t>(h[0]) * h[1] * 5);
  p.scores.resize(static_cast<size_t>(h[0]) * h[1] * h[2]);
  if (std::fread(p.boxes.data(), sizeof(float), p.boxes.size(), f) != p.boxes.size() ||
      std::fread(p.scores.data(), sizeof(float), p.scores.size(), f) != p.scores.size())
    fail("short data", path);
  std::fclose(f);
  return p;
}

constexpr int32_t kGarbage = 0x7f7f7f7f;

struct Outputs {
  std::vector<int32_t> num, classes;
  std::vector<float> boxes, scores;
  explicit Outputs(Problem const& p)
      : num(p.shape.batch, kGarbage), classes(static_cast<size_t>(p.shape.batch) * p.config.max_det, kGarbage),
        boxes(static_cast<size_t>(p.shape.batch) * p.config.max_det * 5, 1e30f),
        scores(static_cast<size_t>(p.shape.batch) * p.config.max_det, 1e30f) {}  // every slot must be written
};

void write_outputs(char const* path, Outputs const& o) {
  FILE* f = std::fopen(path, "wb");
  if (f == nullptr) fail("cannot write", path);
  std::fwrite(o.num.data(), sizeof(int32_t), o.num.size(), f);
  std::fwrite(o.boxes.data(), sizeof(float), o.boxes.size(), f);
  std::fwrite(o.scores.data(), sizeof(float), o.scores.size(), f);
  std::fwrite(o.classes.data(), sizeof(int32_t), o.classes.size(), f);
  std::fclose(f);
}

#ifdef RDET_CUDA_EMULATOR
void run(Problem const& p, Outputs& o, int /*repeat*/) {
  detail::Layout const l = detail::make_layout(p.shape, p.config);
  std::vector<char> ws(l.end + 1, static_cast<char>(0x5a));  // garbage, as a real workspace holds
  cuda_emulator::Launcher launcher;
  if (p.shape.batch > 0 &&
      detail::run_pipeline(launcher, p.shape, p.config, p.boxes.data(), p.scores.data(), o.num.data(),
                           o.boxes.data(), o.scores.data(), o.classes.data(), ws.data(), l, 2) != cudaSuccess)
    fail("emulated launch refused");
  if (ws[l.end] != static_cast<char>(0x5a)) fail("wrote past the workspace");
  std::printf("{\"workspace_bytes\": %zu, \"k\": %d, \"launches\": %d}\n", l.end, l.k, launcher.launches);
}
#else
void check(cudaError_t err, char const* what) {
  if (err != cudaSuccess) fail(what, cudaGetErrorString(err));
}

template <typename T>
T* upload(std::vector<T> const& v) {
  T* d = nullptr;
  check(cudaMalloc(&d, std::max<size_t>(v.size(), 1) * sizeof(T)), "cudaMalloc");
  check(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy");
  return d;
}

// The pipeline's launcher with events around the selection, for timing.
struct TimingLauncher {
  cudaStream_t stream;
  cudaEvent_t selected;
  template <typename... Params, typename... Args>
  cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args... args) {
    kernel<<<grid, block, 0, stream>>>(args...);
    return cudaGetLastError();
  }
  cudaError_t memset(void* ptr, int value, size_t bytes) {
    return bytes == 0 ? cudaSuccess : cudaMemsetAsync(ptr, value, bytes, stream);
  }
  void mark_selection_done() { cudaEventRecord(selected, stream); }
};

double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

void run(Problem const& p, Outputs& o, int repeat) {
  size_t const ws_bytes = workspace_size(p.shape, p.config);
  float* boxes = upload(p.boxes);
  float* scores = upload(p.scores);
  int32_t* num = upload(o.num);  // outputs start as garbage
  float* det_boxes = upload(o.boxes);
  float* det_scores = upload(o.scores);
  int32_t* det_classes = upload(o.classes);
  void* ws = nullptr;
  check(cudaMalloc(&ws, std::max<size_t>(ws_bytes, 1)), "cudaMalloc workspace");  // exactly the size reported
  check(rotated_nms(p.shape, p.config, boxes, scores, num, det_boxes, det_scores, det_classes, ws, ws_bytes, 0),
        "rotated_nms");
  check(cudaDeviceSynchronize(), "kernels");
  check(cudaMemcpy(o.num.data(), num, o.num.size() * 4, cudaMemcpyDeviceToHost), "copy num_dets");
  check(cudaMemcpy(o.boxes.data(), det_boxes, o.boxes.size() * 4, cudaMemcpyDeviceToHost), "copy det_boxes");
  check(cudaMemcpy(o.scores.data(), det_scores, o.scores.size() * 4, cudaMemcpyDeviceToHost), "copy det_scores");
  check(cudaMemcpy(o.classes.data(), det_classes, o.classes.size() * 4, cudaMemcpyDeviceToHost), "copy classes");
  std::vector<float> total_ms, select_ms;
  if (repeat > 0 && p.shape.batch > 0) {
    detail::Layout const l = detail::make_layout(p.shape, p.config);
    cudaEvent_t start, selected, end;
    check(cudaEventCreate(&start), "event");
    check(cudaEventCreate(&selected), "event");
    check(cudaEventCreate(&end), "event");
    TimingLauncher launcher{0, selected};
    for (int r = 0; r < repeat + 3; ++r) {  // 3 warm-up runs
      check(cudaEventRecord(start, 0), "record");
      check(detail::run_pipeline(launcher, p.shape, p.config, boxes, scores, num, det_boxes, det_scores,
                                 det_classes, static_cast<char*>(ws), l, 512),
            "run_pipeline");
      check(cudaEventRecord(end, 0), "record");
      check(cudaEventSynchronize(end), "kernels (timed)");
      float a = 0, b = 0;
      check(cudaEventElapsedTime(&a, start, end), "elapsed");
      check(cudaEventElapsedTime(&b, start, selected), "elapsed");
      if (r >= 3) {
        total_ms.push_back(a);
        select_ms.push_back(b);
      }
    }
  }
  std::printf("{\"workspace_bytes\": %zu, \"k\": %d, \"repeat\": %d, \"ms_total\": %.5f, \"ms_selection\": %.5f}\n",
              ws_bytes, detail::k_for(p.shape, p.config), repeat, median(total_ms), median(select_ms));
  cudaFree(boxes);
  cudaFree(scores);
  cudaFree(num);
  cudaFree(det_boxes);
  cudaFree(det_scores);
  cudaFree(det_classes);
  cudaFree(ws);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) fail("usage: kernel_driver IN OUT [REPEAT]");
  Problem const p = read_problem(argv[1]);
  Outputs o(p);
  run(p, o, argc > 3 ? std::atoi(argv[3]) : 0);
  write_outputs(argv[2], o);
  return 0;
}
