// at::Tensor wrappers of the CUDA kernels; compiled only when torch has CUDA (setup.py, WITH_CUDA).
// float64 inputs are computed in float64, everything else in float32.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <optional>
#include <vector>

#include "nms_rotated_kernel.cuh"

namespace rdet {
namespace cuda_ops {

namespace {

at::ScalarType compute_type(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

void check(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, "rdet CUDA ", what, " failed: ", cudaGetErrorString(err));
}

at::Tensor pair_op(const at::Tensor& a, const at::Tensor& b, bool iof, bool aligned, bool quads) {
  const c10::cuda::CUDAGuard guard(a.device());
  const auto dt = compute_type(a);
  const at::Tensor x = a.to(dt).contiguous();
  const at::Tensor y = b.to(a.device(), dt).contiguous();
  const int64_t n = x.size(0), m = y.size(0);
  at::Tensor out = aligned ? at::zeros({n}, x.options()) : at::zeros({n, m}, x.options());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(dt, "rdet_iou_matrix", [&] {
    check(rdet::cuda::iou_matrix<scalar_t>(x.data_ptr<scalar_t>(), n, y.data_ptr<scalar_t>(), m, iof, aligned,
                                           quads, out.data_ptr<scalar_t>(), stream),
          "iou_matrix");
  });
  return out;
}

}  // namespace

at::Tensor box_iou_rotated(const at::Tensor& b1, const at::Tensor& b2, bool iof, bool aligned) {
  return pair_op(b1, b2, iof, aligned, false);
}

at::Tensor poly_iou(const at::Tensor& q1, const at::Tensor& q2, bool iof, bool aligned) {
  return pair_op(q1, q2, iof, aligned, true);
}

at::Tensor nms_rotated(const at::Tensor& boxes, const at::Tensor& scores, double thr,
                       const std::optional<at::Tensor>& cls) {
  const c10::cuda::CUDAGuard guard(boxes.device());
  const int64_t n = boxes.size(0);
  if (n == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  // Stable descending sort: equal scores keep the lower index first (torchvision semantics).
  const at::Tensor order = std::get<1>(at::sort(scores, /*stable=*/true, /*dim=*/0, /*descending=*/true));
  const auto dt = compute_type(boxes);
  const at::Tensor sorted = boxes.index_select(0, order).to(dt).contiguous();
  at::Tensor sorted_cls;
  if (cls.has_value()) sorted_cls = cls->to(boxes.device(), at::kLong).index_select(0, order).contiguous();
  const int64_t words = rdet::cuda::ceil_div(n, rdet::cuda::kBitsPerWord);
  at::Tensor mask = at::empty({n, words}, boxes.options().dtype(at::kLong));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(dt, "rdet_nms_rotated", [&] {
    check(rdet::cuda::nms_rotated_mask<scalar_t>(
              sorted.data_ptr<scalar_t>(), sorted_cls.defined() ? sorted_cls.data_ptr<int64_t>() : nullptr, n,
              static_cast<scalar_t>(thr), reinterpret_cast<uint64_t*>(mask.data_ptr<int64_t>()), stream),
          "nms_rotated_mask");
  });
  const at::Tensor mask_cpu = mask.to(at::kCPU);
  std::vector<int64_t> keep(static_cast<size_t>(n));
  const int64_t k = rdet::cuda::nms_rotated_reduce(reinterpret_cast<const uint64_t*>(mask_cpu.data_ptr<int64_t>()),
                                                   n, keep.data());
  const at::Tensor keep_t = at::from_blob(keep.data(), {k}, at::kLong).to(boxes.device());
  return order.index_select(0, keep_t);
}

}  // namespace cuda_ops
}  // namespace rdet
