// Exact rotated-box / quadrilateral intersection geometry shared by the CPU kernels, the CUDA
// kernels and (later) the TensorRT plugin. Torch-free on purpose: plain arrays, templates on the
// float type, every function `__host__ __device__` under nvcc.
//
// Convention (rdet.boxes): box = (cx, cy, w, h, angle), angle in radians from +x towards +y with y
// pointing down. Corners c-u-v, c+u-v, c+u+v, c-u+v with u = w/2 (cos a, sin a) and
// v = h/2 (-sin a, cos a); that order has a positive shoelace sum ("positive orientation").
//
// Intersection = Sutherland-Hodgman clip of one convex polygon by the half-planes of the other,
// then the shoelace area. Coordinates are relative to the first box's centre (box pairs are even
// expressed in the first box's frame, where its half-planes are axis-aligned), so float32 stays
// accurate far from the image origin.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define RDET_HD __host__ __device__ __forceinline__
#else
#define RDET_HD inline
#endif

namespace rdet {
namespace geom {

// Vertex capacity of a clipped polygon: a convex quad clipped by 4 half-planes has <= 8 vertices;
// the slack absorbs duplicate vertices that round-off can produce on degenerate (collinear) input.
constexpr int kCap = 16;

// Boxes with a side <= kMinSide pixels (or a negative/NaN side) are empty: area 0, so their IoU with anything is
// 0. Below this size the clip's round-off exceeds the box itself and gave asymmetric IoUs up to 1 (issue 18.5);
// rdet.ops rejects negative sides before calling the kernels, and _reference.py applies the same rule.
constexpr double kMinSide = 1e-6;

template <typename T>
RDET_HD T min_(T a, T b) { return a < b ? a : b; }
template <typename T>
RDET_HD T max_(T a, T b) { return a > b ? a : b; }
template <typename T>
RDET_HD T abs_(T a) { return a < T(0) ? -a : a; }
// Explicit float/double overloads: unqualified cos(float) would silently promote on some hosts.
RDET_HD float cos_(float a) { return cosf(a); }
RDET_HD double cos_(double a) { return cos(a); }
RDET_HD float sin_(float a) { return sinf(a); }
RDET_HD double sin_(double a) { return sin(a); }

// Per-box quantities reused across many pairs (NMS, IoU matrices): trig is computed once per box.
template <typename T>
struct BoxPre {
  T cx, cy, hw, hh, c, s;  // centre, half sizes, cos/sin of the angle
  T ex, ey;                // half extents of the axis-aligned bounding box
  T area;
};

template <typename T>
RDET_HD BoxPre<T> precompute(const T* b) {
  BoxPre<T> p;
  p.cx = b[0];
  p.cy = b[1];
  p.hw = b[2] * T(0.5);
  p.hh = b[3] * T(0.5);
  p.c = cos_(b[4]);
  p.s = sin_(b[4]);
  p.ex = abs_(p.c) * p.hw + abs_(p.s) * p.hh;
  p.ey = abs_(p.s) * p.hw + abs_(p.c) * p.hh;
  // `!(x > eps)` is also true for NaN: such a box is empty too.
  p.area = (b[2] > T(kMinSide) && b[3] > T(kMinSide)) ? b[2] * b[3] : T(0);
  return p;
}

// Corners of a box relative to (ox, oy), in the positive order documented above.
template <typename T>
RDET_HD void box_corners(const T* b, T ox, T oy, T* xs, T* ys) {
  const T c = cos_(b[4]), s = sin_(b[4]);
  const T ux = b[2] * T(0.5) * c, uy = b[2] * T(0.5) * s;
  const T vx = -b[3] * T(0.5) * s, vy = b[3] * T(0.5) * c;
  const T x = b[0] - ox, y = b[1] - oy;
  xs[0] = x - ux - vx; ys[0] = y - uy - vy;
  xs[1] = x + ux - vx; ys[1] = y + uy - vy;
  xs[2] = x + ux + vx; ys[2] = y + uy + vy;
  xs[3] = x - ux + vx; ys[3] = y - uy + vy;
}

// Signed area (shoelace) of the polygon (xs, ys)[0:n].
template <typename T>
RDET_HD T shoelace(const T* xs, const T* ys, int n) {
  T acc = 0;
  for (int k = 0; k < n; ++k) {
    const int l = k + 1 == n ? 0 : k + 1;
    acc += xs[k] * ys[l] - ys[k] * xs[l];
  }
  return acc * T(0.5);
}

// One Sutherland-Hodgman stage: keep the part of polygon (xs, ys)[0:n] where
// nx * x + ny * y + c >= 0 (boundary included). Returns the output vertex count.
// A zero normal (from a zero-length edge) keeps everything, which is what a degenerate clip
// polygon needs.
template <typename T>
RDET_HD int clip_halfplane(const T* xs, const T* ys, int n, T nx, T ny, T c, T* ox, T* oy) {
  if (n == 0) return 0;
  int m = 0;
  T px = xs[n - 1], py = ys[n - 1];
  T dp = nx * px + ny * py + c;
  for (int k = 0; k < n; ++k) {
    const T x = xs[k], y = ys[k];
    const T d = nx * x + ny * y + c;
    const bool in = d >= T(0), pin = dp >= T(0);
    if (in != pin && m < kCap) {
      // The signs differ, so dp - d != 0 and t lies in [0, 1].
      const T t = dp / (dp - d);
      ox[m] = px + t * (x - px);
      oy[m] = py + t * (y - py);
      ++m;
    }
    if (in && m < kCap) {
      ox[m] = x;
      oy[m] = y;
      ++m;
    }
    px = x;
    py = y;
    dp = d;
  }
  return m;
}

// Intersection area of two rotated boxes. Box 2 is expressed in box 1's frame, where box 1 is the
// axis-aligned rectangle [-hw1, hw1] x [-hh1, hh1]; its 4 half-planes then need no rounding.
template <typename T>
RDET_HD T box_inter_pre(const BoxPre<T>& a, const BoxPre<T>& b) {
  const T dx = b.cx - a.cx, dy = b.cy - a.cy;
  const T x0 = dx * a.c + dy * a.s, y0 = -dx * a.s + dy * a.c;
  const T cr = b.c * a.c + b.s * a.s, sr = b.s * a.c - b.c * a.s;  // cos/sin(angle_b - angle_a)
  const T ux = b.hw * cr, uy = b.hw * sr, vx = -b.hh * sr, vy = b.hh * cr;
  T xa[kCap], ya[kCap], xb[kCap], yb[kCap];
  xa[0] = x0 - ux - vx; ya[0] = y0 - uy - vy;
  xa[1] = x0 + ux - vx; ya[1] = y0 + uy - vy;
  xa[2] = x0 + ux + vx; ya[2] = y0 + uy + vy;
  xa[3] = x0 - ux + vx; ya[3] = y0 - uy + vy;
  int n = clip_halfplane(xa, ya, 4, T(-1), T(0), a.hw, xb, yb);  // x <= hw
  n = clip_halfplane(xb, yb, n, T(1), T(0), a.hw, xa, ya);       // x >= -hw
  n = clip_halfplane(xa, ya, n, T(0), T(-1), a.hh, xb, yb);      // y <= hh
  n = clip_halfplane(xb, yb, n, T(0), T(1), a.hh, xa, ya);       // y >= -hh
  const T area = shoelace(xa, ya, n);
  return area > T(0) ? area : T(0);
}

// inter / union (iof: inter / area(a)); 0 when the denominator is 0 (zero-area boxes).
template <typename T>
RDET_HD T finish_iou(T inter, T area_a, T area_b, bool iof) {
  inter = min_(inter, min_(area_a, area_b));
  const T denom = iof ? area_a : area_a + area_b - inter;
  if (!(denom > T(0))) return T(0);
  const T r = inter / denom;
  return r > T(1) ? T(1) : r;
}

// Axis-aligned bounding boxes overlap (touching counts as disjoint: such pairs have no area).
template <typename T>
RDET_HD bool aabb_overlap(const BoxPre<T>& a, const BoxPre<T>& b) {
  return abs_(b.cx - a.cx) < a.ex + b.ex && abs_(b.cy - a.cy) < a.ey + b.ey;
}

template <typename T>
RDET_HD T box_iou_pre(const BoxPre<T>& a, const BoxPre<T>& b, bool iof) {
  if (!aabb_overlap(a, b)) return T(0);
  return finish_iou(box_inter_pre(a, b), a.area, b.area, iof);
}

// IoU (or IoF) of boxes given as 5 numbers each.
template <typename T>
RDET_HD T box_iou(const T* b1, const T* b2, bool iof) {
  return box_iou_pre(precompute(b1), precompute(b2), iof);
}

// Upper bound of the IoU from the bounding boxes and areas alone (for NMS pruning):
// inter <= min(area_a, area_b, |AABB_a n AABB_b|), union >= a + b - that bound.
template <typename T>
RDET_HD T box_iou_upper_bound(const BoxPre<T>& a, const BoxPre<T>& b) {
  const T ix = a.ex + b.ex - abs_(b.cx - a.cx);
  const T iy = a.ey + b.ey - abs_(b.cy - a.cy);
  if (!(ix > T(0) && iy > T(0))) return T(0);
  const T w = min_(min_(ix, T(2) * a.ex), T(2) * b.ex);
  const T h = min_(min_(iy, T(2) * a.ey), T(2) * b.ey);
  const T inter = min_(w * h, min_(a.area, b.area));
  const T denom = a.area + b.area - inter;
  return denom > T(0) ? inter / denom : T(0);
}

// ------------------------------------------------------------------------------ quadrilaterals
// Intersection area of two convex polygons with positive orientation, (sx, sy)[0:ns] clipped by the
// half-planes of (cx, cy)[0:nc] (zero-length clip edges are no constraint).
template <typename T>
RDET_HD T convex_inter(const T* sx, const T* sy, int ns, const T* qx, const T* qy, int nc) {
  T xa[kCap], ya[kCap], xb[kCap], yb[kCap];
  for (int k = 0; k < ns; ++k) {
    xa[k] = sx[k];
    ya[k] = sy[k];
  }
  int n = ns;
  for (int k = 0; k < nc && n > 0; ++k) {
    const int l = k + 1 == nc ? 0 : k + 1;
    const T ex = qx[l] - qx[k], ey = qy[l] - qy[k];
    // cross(e, p - q) >= 0  <=>  -ey * x + ex * y + (ey * qx - ex * qy) >= 0
    n = clip_halfplane(xa, ya, n, -ey, ex, ey * qx[k] - ex * qy[k], xb, yb);
    for (int i = 0; i < n; ++i) {
      xa[i] = xb[i];
      ya[i] = yb[i];
    }
  }
  const T area = shoelace(xa, ya, n);
  return area > T(0) ? area : T(0);
}

// Cut a simple quad (positive orientation) into convex pieces: itself when convex, else the two
// triangles on either side of the diagonal from its reflex vertex (that diagonal lies inside).
// Writes up to 2 pieces of 3 or 4 vertices into px/py[piece * 4 + k]; returns the piece count.
template <typename T>
RDET_HD int convex_pieces(const T* xs, const T* ys, T* px, T* py, int* sizes) {
  int reflex = -1;
  for (int k = 0; k < 4; ++k) {
    const int p = (k + 3) & 3, q = (k + 1) & 3;
    const T turn = (xs[k] - xs[p]) * (ys[q] - ys[k]) - (ys[k] - ys[p]) * (xs[q] - xs[k]);
    if (turn < T(0)) {
      reflex = k;
      break;
    }
  }
  if (reflex < 0) {
    for (int k = 0; k < 4; ++k) {
      px[k] = xs[k];
      py[k] = ys[k];
    }
    sizes[0] = 4;
    return 1;
  }
  const int r = reflex;
  const int idx[6] = {r, (r + 1) & 3, (r + 2) & 3, r, (r + 2) & 3, (r + 3) & 3};
  for (int k = 0; k < 3; ++k) {
    px[k] = xs[idx[k]];
    py[k] = ys[idx[k]];
    px[4 + k] = xs[idx[3 + k]];
    py[4 + k] = ys[idx[3 + k]];
  }
  sizes[0] = 3;
  sizes[1] = 3;
  return 2;
}

// Load a quad (x1, y1, ..., x4, y4) relative to (ox, oy) with positive orientation; returns |area|.
template <typename T>
RDET_HD T load_quad(const T* q, T ox, T oy, T* xs, T* ys) {
  for (int k = 0; k < 4; ++k) {
    xs[k] = q[2 * k] - ox;
    ys[k] = q[2 * k + 1] - oy;
  }
  const T a = shoelace(xs, ys, 4);
  if (a < T(0)) {
    T t = xs[1]; xs[1] = xs[3]; xs[3] = t;
    t = ys[1]; ys[1] = ys[3]; ys[3] = t;
    return -a;
  }
  return a;
}

// Exact IoU (iof: inter / area(q1)) of two simple quadrilaterals (convex or not, any orientation).
template <typename T>
RDET_HD T quad_iou(const T* q1, const T* q2, bool iof) {
  const T ox = (q1[0] + q1[2] + q1[4] + q1[6]) * T(0.25);
  const T oy = (q1[1] + q1[3] + q1[5] + q1[7]) * T(0.25);
  T x1[4], y1[4], x2[4], y2[4];
  const T a1 = load_quad(q1, ox, oy, x1, y1);
  const T a2 = load_quad(q2, ox, oy, x2, y2);
  // Bounding boxes first: most pairs in a DOTA image are far apart.
  T l1 = x1[0], r1 = x1[0], t1 = y1[0], b1 = y1[0], l2 = x2[0], r2 = x2[0], t2 = y2[0], b2 = y2[0];
  for (int k = 1; k < 4; ++k) {
    l1 = min_(l1, x1[k]); r1 = max_(r1, x1[k]); t1 = min_(t1, y1[k]); b1 = max_(b1, y1[k]);
    l2 = min_(l2, x2[k]); r2 = max_(r2, x2[k]); t2 = min_(t2, y2[k]); b2 = max_(b2, y2[k]);
  }
  if (!(l1 < r2 && l2 < r1 && t1 < b2 && t2 < b1)) return T(0);
  T px1[8], py1[8], px2[8], py2[8];
  int n1[2], n2[2];
  const int k1 = convex_pieces(x1, y1, px1, py1, n1);
  const int k2 = convex_pieces(x2, y2, px2, py2, n2);
  T inter = 0;
  for (int i = 0; i < k1; ++i)
    for (int j = 0; j < k2; ++j)
      inter += convex_inter(px1 + 4 * i, py1 + 4 * i, n1[i], px2 + 4 * j, py2 + 4 * j, n2[j]);
  return finish_iou(inter, a1, a2, iof);
}

}  // namespace geom
}  // namespace rdet
