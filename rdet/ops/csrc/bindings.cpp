// pybind11 module rdet._C: plain functions taking at::Tensor, dispatching to the CPU kernels
// (cpu.cpp) or, when built WITH_CUDA, to the CUDA wrappers (cuda_bindings.cu). Inputs are
// validated in Python (rdet/ops/_ops.py); here we only enforce layout and dtype.
#include <torch/extension.h>

#include <optional>
#include <vector>

namespace rdet {
namespace cpu {
void box_iou_rotated(const double* b1, int64_t n, const double* b2, int64_t m, bool iof, bool aligned,
                     double* out);
void poly_iou(const double* q1, int64_t n, const double* q2, int64_t m, bool iof, bool aligned, double* out);
std::vector<int64_t> nms_rotated(const double* boxes, const double* scores, const int64_t* cls, int64_t n,
                                 double thr);
}  // namespace cpu

#ifdef WITH_CUDA
namespace cuda_ops {
at::Tensor box_iou_rotated(const at::Tensor& b1, const at::Tensor& b2, bool iof, bool aligned);
at::Tensor poly_iou(const at::Tensor& q1, const at::Tensor& q2, bool iof, bool aligned);
at::Tensor nms_rotated(const at::Tensor& boxes, const at::Tensor& scores, double thr,
                       const std::optional<at::Tensor>& cls);
}  // namespace cuda_ops
#endif

namespace {

at::Tensor as_f64(const at::Tensor& t) { return t.to(at::kDouble).contiguous(); }

at::Tensor pair_op(const at::Tensor& a, const at::Tensor& b, bool iof, bool aligned, int64_t width, bool boxes) {
  TORCH_CHECK(a.dim() == 2 && a.size(1) == width && b.dim() == 2 && b.size(1) == width,
              "expected [N, ", width, "] and [M, ", width, "] inputs");
  TORCH_CHECK(!aligned || a.size(0) == b.size(0), "aligned needs equal lengths");
#ifdef WITH_CUDA
  if (a.is_cuda()) {
    return boxes ? cuda_ops::box_iou_rotated(a, b, iof, aligned) : cuda_ops::poly_iou(a, b, iof, aligned);
  }
#endif
  TORCH_CHECK(a.device().is_cpu() && b.device().is_cpu(), "rdet._C was built without CUDA");
  const at::Tensor x = as_f64(a), y = as_f64(b);
  const int64_t n = x.size(0), m = y.size(0);
  at::Tensor out = aligned ? at::zeros({n}, x.options()) : at::zeros({n, m}, x.options());
  if (n == 0 || m == 0) return out;
  {
    pybind11::gil_scoped_release nogil;
    if (boxes) {
      cpu::box_iou_rotated(x.data_ptr<double>(), n, y.data_ptr<double>(), m, iof, aligned, out.data_ptr<double>());
    } else {
      cpu::poly_iou(x.data_ptr<double>(), n, y.data_ptr<double>(), m, iof, aligned, out.data_ptr<double>());
    }
  }
  return out;
}

at::Tensor box_iou_rotated(const at::Tensor& b1, const at::Tensor& b2, bool iof, bool aligned) {
  return pair_op(b1, b2, iof, aligned, 5, true);
}

at::Tensor poly_iou(const at::Tensor& q1, const at::Tensor& q2, bool iof, bool aligned) {
  return pair_op(q1, q2, iof, aligned, 8, false);
}

at::Tensor nms_rotated(const at::Tensor& boxes, const at::Tensor& scores, double thr,
                       const std::optional<at::Tensor>& cls) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 5, "boxes must be [N, 5]");
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == boxes.size(0), "scores must be [N]");
#ifdef WITH_CUDA
  if (boxes.is_cuda()) return cuda_ops::nms_rotated(boxes, scores, thr, cls);
#endif
  TORCH_CHECK(boxes.device().is_cpu(), "rdet._C was built without CUDA");
  const at::Tensor b = as_f64(boxes), s = as_f64(scores);
  at::Tensor c;
  if (cls.has_value()) {
    c = cls->to(at::kLong).contiguous();
    TORCH_CHECK(c.dim() == 1 && c.size(0) == b.size(0), "idxs must be [N]");
  }
  std::vector<int64_t> keep;
  {
    pybind11::gil_scoped_release nogil;
    keep = cpu::nms_rotated(b.data_ptr<double>(), s.data_ptr<double>(),
                            c.defined() ? c.data_ptr<int64_t>() : nullptr, b.size(0), thr);
  }
  at::Tensor out = at::empty({static_cast<int64_t>(keep.size())}, at::kLong);
  std::copy(keep.begin(), keep.end(), out.data_ptr<int64_t>());
  return out;
}

bool has_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace
}  // namespace rdet

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "rdet compiled rotated-box geometry (exact IoU and greedy NMS)";
  m.def("box_iou_rotated", &rdet::box_iou_rotated, "IoU/IoF of rotated boxes [N,5] x [M,5]",
        pybind11::arg("boxes1"), pybind11::arg("boxes2"), pybind11::arg("iof"), pybind11::arg("aligned"));
  m.def("poly_iou", &rdet::poly_iou, "IoU/IoF of quadrilaterals [N,8] x [M,8]", pybind11::arg("polys1"),
        pybind11::arg("polys2"), pybind11::arg("iof"), pybind11::arg("aligned"));
  m.def("nms_rotated", &rdet::nms_rotated, "greedy rotated NMS (optional per-box class)", pybind11::arg("boxes"),
        pybind11::arg("scores"), pybind11::arg("iou_threshold"), pybind11::arg("idxs") = pybind11::none());
  m.def("has_cuda", &rdet::has_cuda, "whether the CUDA kernels were compiled in");
}
