// Tri-plane projection and bilinear taps, shared by the CPU and CUDA kernels (and the
// ctest program), so the arithmetic the GPU runs is also exercised on the CPU.
//
// Conventions (EG3D): plane 0 samples (x, y), plane 1 (x, z), plane 2 (z, x); the first
// plane coordinate indexes W, the second H; grid_sample(bilinear, zeros,
// align_corners=False).
#pragma once
#include <cmath>

#include "common/macros.h"

namespace nofa {

// Plane coordinates (u -> W, v -> H) of a point already scaled by 2 / box_warp.
template <typename T>
NOFA_HD void plane_uv(int plane, T x, T y, T z, T& u, T& v) {
  if (plane == 0) {
    u = x;
    v = y;
  } else if (plane == 1) {
    u = x;
    v = z;
  } else {
    u = z;
    v = x;
  }
}

// Which point coordinate feeds u and v of a plane (for routing gradients back).
NOFA_HD void plane_axes(int plane, int& au, int& av) {
  if (plane == 0) {
    au = 0;
    av = 1;
  } else if (plane == 1) {
    au = 0;
    av = 2;
  } else {
    au = 2;
    av = 0;
  }
}

// The four taps of a bilinear lookup at normalised (u, v) in a H x W grid.
// Corner k: 0 = (x0, y0), 1 = (x0 + 1, y0), 2 = (x0, y0 + 1), 3 = (x0 + 1, y0 + 1).
// off[k] is y * W + x, or -1 for a corner outside the grid (zero padding).
// dwdu / dwdv are the derivatives of w[k] w.r.t. the normalised u and v.
template <typename T>
struct BilinearTaps {
  int64_t off[4];
  T w[4];
  T dwdu[4];
  T dwdv[4];
};

template <typename T>
NOFA_HD void bilinear_taps(T u, T v, int64_t H, int64_t W, BilinearTaps<T>& t) {
  // align_corners=False unnormalisation, in the same order of operations as ATen.
  const T ix = ((u + T(1)) * T(W) - T(1)) / T(2);
  const T iy = ((v + T(1)) * T(H) - T(1)) / T(2);
  // Outside [-1, size) no corner can be inside: all taps are zero (this also
  // catches NaN and keeps huge values away from the float -> int conversion).
  if (!(ix >= T(-1) && ix < T(W) && iy >= T(-1) && iy < T(H))) {
    for (int k = 0; k < 4; ++k) {
      t.off[k] = -1;
      t.w[k] = T(0);
      t.dwdu[k] = T(0);
      t.dwdv[k] = T(0);
    }
    return;
  }
  const T fx = std::floor(ix);
  const T fy = std::floor(iy);
  const int64_t x0 = static_cast<int64_t>(fx);
  const int64_t y0 = static_cast<int64_t>(fy);
  const T tx = ix - fx;
  const T ty = iy - fy;
  const T sx = T(W) / T(2);  // d ix / d u
  const T sy = T(H) / T(2);  // d iy / d v
  const bool vx0 = x0 >= 0, vx1 = x0 + 1 < W;
  const bool vy0 = y0 >= 0, vy1 = y0 + 1 < H;
  const bool valid[4] = {vx0 && vy0, vx1 && vy0, vx0 && vy1, vx1 && vy1};
  const int64_t offs[4] = {y0 * W + x0, y0 * W + x0 + 1, (y0 + 1) * W + x0, (y0 + 1) * W + x0 + 1};
  const T w[4] = {(T(1) - tx) * (T(1) - ty), tx * (T(1) - ty), (T(1) - tx) * ty, tx * ty};
  const T du[4] = {-(T(1) - ty) * sx, (T(1) - ty) * sx, -ty * sx, ty * sx};
  const T dv[4] = {-(T(1) - tx) * sy, -tx * sy, (T(1) - tx) * sy, tx * sy};
  for (int k = 0; k < 4; ++k) {
    t.off[k] = valid[k] ? offs[k] : -1;
    t.w[k] = valid[k] ? w[k] : T(0);
    t.dwdu[k] = valid[k] ? du[k] : T(0);
    t.dwdv[k] = valid[k] ? dv[k] : T(0);
  }
}

// One plane's share of a point's gradient, before the final 2 / box_warp factor: dot[k] is
// the gradient of the plane's bilinear sample dotted with texel k's values (0 for a tap
// outside the grid); d / du and d / dv go to the coordinates the plane reads. Shared by the
// CPU and CUDA point-gradient kernels (the CUDA ones pass one lane's partial dots and sum
// the lanes afterwards: the map is linear in dot). The selects keep acc in registers.
template <typename T>
NOFA_HD void add_plane_point_grad(int plane, const BilinearTaps<T>& t, const T dot[4], T acc[3]) {
  T du = T(0), dv = T(0);
  for (int k = 0; k < 4; ++k) {
    du += t.dwdu[k] * dot[k];
    dv += t.dwdv[k] * dot[k];
  }
  int au, av;
  plane_axes(plane, au, av);
  for (int a = 0; a < 3; ++a) acc[a] += a == au ? du : (a == av ? dv : T(0));
}

// Bilinear value of one channel: base points at that channel of texel 0 and texel k's value
// is base[off[k] * stride] (stride = C for channels-last planes).
template <typename T>
NOFA_HD T tap_sum(const BilinearTaps<T>& t, const T* base, int64_t stride) {
  T s = T(0);
  for (int k = 0; k < 4; ++k) {
    if (t.off[k] >= 0) s += t.w[k] * base[t.off[k] * stride];
  }
  return s;
}

}  // namespace nofa
