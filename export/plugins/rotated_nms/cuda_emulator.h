// Runs CUDA kernels on the CPU, for checking kernel logic where no GPU exists (tests only; never part of
// the plugin library). Include it as <cuda_runtime.h> (a cuda_runtime.h that includes this file) and
// compile with a host compiler and -pthread.
//
// Emulated: one host thread per CUDA thread, the blocks of a launch one after another; threadIdx/blockIdx
// per thread, blockDim/gridDim per launch; __shared__ variables are function statics (shared by the
// threads of the running block); __syncthreads() is a barrier that, as on the GPU, does not wait for
// threads that have returned; atomicAdd is a sequentially consistent atomic. Threads really run in
// parallel, so a missing barrier can show up as a wrong result, but this is no race detector
// (compute-sanitizer racecheck is, on a GPU: benchmarks/gpu_check.sh).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

typedef int cudaError_t;
typedef void* cudaStream_t;
constexpr cudaError_t cudaSuccess = 0;
constexpr cudaError_t cudaErrorInvalidValue = 1;

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

#define __global__
#define __device__
#define __host__
#define __forceinline__
#define __shared__ static

namespace cuda_emulator {

class Barrier {
 public:
  explicit Barrier(unsigned n) : n_(n) {}
  void sync() {
    std::unique_lock<std::mutex> lock(m_);
    const unsigned long gen = gen_;
    if (++waiting_ + done_ == n_) {
      release();
    } else {
      cv_.wait(lock, [&] { return gen_ != gen; });
    }
  }
  void exit() {  // a thread returned from the kernel: later barriers no longer wait for it
    std::lock_guard<std::mutex> lock(m_);
    ++done_;
    if (waiting_ > 0 && waiting_ + done_ == n_) release();
  }

 private:
  void release() {
    waiting_ = 0;
    ++gen_;
    cv_.notify_all();
  }
  std::mutex m_;
  std::condition_variable cv_;
  unsigned n_, waiting_ = 0, done_ = 0;
  unsigned long gen_ = 0;
};

inline thread_local Barrier* current_barrier = nullptr;

}  // namespace cuda_emulator

inline thread_local dim3 threadIdx{0, 0, 0};
inline thread_local dim3 blockIdx{0, 0, 0};
inline dim3 blockDim{1, 1, 1};
inline dim3 gridDim{1, 1, 1};

inline void __syncthreads() { cuda_emulator::current_barrier->sync(); }

template <typename T>
inline T atomicAdd(T* address, T value) {
  return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST);
}

namespace cuda_emulator {

// The launcher interface of RotatedNMSPipeline.cuh, on host memory.
struct Launcher {
  template <typename... Params, typename... Args>
  cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args... args) {
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0 || block.y == 0 || block.z == 0 ||
        block.x * block.y * block.z > 1024)
      return cudaErrorInvalidValue;  // what a real launch would refuse
    gridDim = grid;
    blockDim = block;
    for (unsigned bz = 0; bz < grid.z; ++bz)
      for (unsigned by = 0; by < grid.y; ++by)
        for (unsigned bx = 0; bx < grid.x; ++bx) {
          Barrier barrier(block.x * block.y * block.z);
          std::vector<std::thread> threads;
          for (unsigned tz = 0; tz < block.z; ++tz)
            for (unsigned ty = 0; ty < block.y; ++ty)
              for (unsigned tx = 0; tx < block.x; ++tx)
                threads.emplace_back([&, tx, ty, tz] {
                  threadIdx = dim3(tx, ty, tz);
                  blockIdx = dim3(bx, by, bz);
                  current_barrier = &barrier;
                  kernel(args...);
                  barrier.exit();
                });
          for (auto& t : threads) t.join();
        }
    ++launches;
    return cudaSuccess;
  }

  cudaError_t memset(void* ptr, int value, size_t bytes) {
    std::memset(ptr, value, bytes);
    return cudaSuccess;
  }

  void mark_selection_done() {}

  int launches = 0;
};

}  // namespace cuda_emulator
