// CPU kernels over raw float64 pointers (the at::Tensor glue lives in bindings.cpp).
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "geometry.h"

namespace rdet {
namespace cpu {

using geom::BoxPre;

static std::vector<BoxPre<double>> precompute_all(const double* boxes, int64_t n) {
  std::vector<BoxPre<double>> pre(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pre[i] = geom::precompute(boxes + 5 * i);
  return pre;
}

// out[N, M] (or out[N] when aligned) of IoU / IoF.
void box_iou_rotated(const double* b1, int64_t n, const double* b2, int64_t m, bool iof, bool aligned,
                     double* out) {
  const auto p1 = precompute_all(b1, n);
  const auto p2 = precompute_all(b2, m);
  if (aligned) {
    at::parallel_for(0, n, 2048, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) out[i] = geom::box_iou_pre(p1[i], p2[i], iof);
    });
    return;
  }
  // Rows in parallel; one row is cheap (mostly bounding-box rejections), so use coarse grains.
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(m, 1));
  at::parallel_for(0, n, grain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      const BoxPre<double>& a = p1[i];
      double* row = out + i * m;
      for (int64_t j = 0; j < m; ++j) row[j] = geom::box_iou_pre(a, p2[j], iof);
    }
  });
}

void poly_iou(const double* q1, int64_t n, const double* q2, int64_t m, bool iof, bool aligned,
              double* out) {
  if (aligned) {
    at::parallel_for(0, n, 1024, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) out[i] = geom::quad_iou(q1 + 8 * i, q2 + 8 * i, iof);
    });
    return;
  }
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(m, 1));
  at::parallel_for(0, n, grain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i)
      for (int64_t j = 0; j < m; ++j) out[i * m + j] = geom::quad_iou(q1 + 8 * i, q2 + 8 * j, iof);
  });
}

// Greedy NMS: visit boxes by decreasing score (stable sort, so ties keep the lower index first);
// each kept box suppresses later boxes of the same class with IoU > thr. Returns kept indices.
//
// Speed: boxes are also sorted by the left edge of their bounding box, so a kept box only scans the
// x-window of boxes whose bounding boxes can reach it; then a bounding-box/area upper bound of the
// IoU rejects most remaining pairs before the exact polygon clip.
std::vector<int64_t> nms_rotated(const double* boxes, const double* scores, const int64_t* cls, int64_t n,
                                 double thr) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  std::vector<int64_t> keep;
  if (thr < 0) {  // every pair has IoU >= 0 > thr: the best box of each class suppresses the rest
    std::vector<int64_t> seen;
    for (int64_t i : order) {
      const int64_t c = cls ? cls[i] : 0;
      if (std::find(seen.begin(), seen.end(), c) == seen.end()) {
        seen.push_back(c);
        keep.push_back(i);
      }
    }
    return keep;
  }
  // rank[i] = position of box i in score order.
  std::vector<int64_t> rank(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) rank[order[k]] = k;
  const auto pre = precompute_all(boxes, n);
  // Sweep structure: boxes by increasing left edge (cx - ex).
  std::vector<int64_t> byx(static_cast<size_t>(n));
  std::iota(byx.begin(), byx.end(), 0);
  std::sort(byx.begin(), byx.end(), [&](int64_t a, int64_t b) {
    return pre[a].cx - pre[a].ex < pre[b].cx - pre[b].ex;
  });
  struct Slot {  // hot fields of the x-sorted array, packed for the scan
    double left, cx, cy, ex, ey;
    int64_t rank, cls;
  };
  std::vector<Slot> slots(static_cast<size_t>(n));
  std::vector<int64_t> pos_of(static_cast<size_t>(n));
  double max_width = 0;
  for (int64_t k = 0; k < n; ++k) {
    const int64_t i = byx[k];
    const BoxPre<double>& p = pre[i];
    slots[k] = {p.cx - p.ex, p.cx, p.cy, p.ex, p.ey, rank[i], cls ? cls[i] : 0};
    pos_of[i] = k;
    max_width = std::max(max_width, 2 * p.ex);
  }
  std::vector<uint8_t> removed(static_cast<size_t>(n), 0);  // indexed by x-sorted position
  // Pairs whose bound is within this margin of thr are clipped exactly (bounds carry round-off).
  const double bound_thr = thr - 1e-9;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t i = order[r];
    const int64_t pi = pos_of[i];
    if (removed[pi]) continue;
    keep.push_back(i);
    const BoxPre<double>& a = pre[i];
    const Slot& si = slots[pi];
    const double right = a.cx + a.ex;
    // Candidates have left < right and left > si.left - max_width (else their right edge < ours).
    const double lo_left = si.left - max_width;
    int64_t k0 = std::lower_bound(slots.begin(), slots.begin() + pi, lo_left,
                                  [](const Slot& s, double v) { return s.left < v; }) - slots.begin();
    for (int64_t k = k0; k < n; ++k) {
      const Slot& s = slots[k];
      if (s.left >= right) break;
      if (removed[k] || s.rank <= r || s.cls != si.cls) continue;
      if (std::abs(s.cx - si.cx) >= si.ex + s.ex || std::abs(s.cy - si.cy) >= si.ey + s.ey) continue;
      const BoxPre<double>& b = pre[byx[k]];
      if (geom::box_iou_upper_bound(a, b) <= bound_thr) continue;
      const double iou = geom::finish_iou(geom::box_inter_pre(a, b), a.area, b.area, false);
      if (iou > thr) removed[k] = 1;
    }
  }
  return keep;
}

}  // namespace cpu
}  // namespace rdet
