// Tri-plane sampling in double precision, written from the definitions (EG3D's
// sample_from_planes: grid_sample, bilinear, zero padding, align_corners=False), independently
// of csrc/common/triplane.h, as the reference of the CPU-thread runs of the CUDA kernels
// (tests/cpp/test_sample_triplane_emulated.cpp, test_decode_forward_emulated.cpp).
// Planes are [N, 3, C, H, W] (the op's layout, not the kernels' channels-last copy); point
// coordinates are already scaled by 2 / box_warp. Plane 0 reads (x, y), plane 1 (x, z),
// plane 2 (z, x), the first coordinate indexing W. A plane with a non-finite coordinate reads
// zero and passes no gradient (docs/ops.md, "Non-finite inputs").
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace ref {

struct Tap {
  int64_t x, y;      // texel inside the grid
  double w;          // bilinear weight
  double du, dv;     // d w / d u, d w / d v
};

// The taps of (u, v) that fall inside the H x W grid; returns how many.
inline int taps(double u, double v, int64_t H, int64_t W, Tap out[4]) {
  if (!std::isfinite(u) || !std::isfinite(v)) return 0;
  const double ix = ((u + 1.0) * W - 1.0) / 2.0, iy = ((v + 1.0) * H - 1.0) / 2.0;
  const double fx = std::floor(ix), fy = std::floor(iy), tx = ix - fx, ty = iy - fy;
  int n = 0;
  for (int dy = 0; dy < 2; ++dy) {
    for (int dx = 0; dx < 2; ++dx) {
      const double X = fx + dx, Y = fy + dy;
      if (X < 0 || X > W - 1 || Y < 0 || Y > H - 1) continue;
      const double wx = dx ? tx : 1.0 - tx, wy = dy ? ty : 1.0 - ty;
      // d ix / d u = W / 2, d iy / d v = H / 2.
      out[n++] = {static_cast<int64_t>(X), static_cast<int64_t>(Y), wx * wy, (dx ? 1.0 : -1.0) * wy * W / 2.0,
                  (dy ? 1.0 : -1.0) * wx * H / 2.0};
    }
  }
  return n;
}

// Which point coordinates plane p reads as (u, v).
inline void plane_axes(int p, int& au, int& av) {
  const int axes[3][2] = {{0, 1}, {0, 2}, {2, 0}};
  au = axes[p][0];
  av = axes[p][1];
}

struct Planes {
  int64_t N, C, H, W;
  std::vector<double> v;  // [N, 3, C, H, W]
  double at(int64_t n, int p, int64_t c, int64_t y, int64_t x) const {
    return v[(((n * 3 + p) * C + c) * H + y) * W + x];
  }
};

// Plane p's bilinear sample of every channel at point xyz (scaled) of batch element n.
inline std::vector<double> sample_plane(const Planes& pl, int64_t n, int p, const double xyz[3]) {
  int au, av;
  plane_axes(p, au, av);
  Tap t[4];
  const int k = taps(xyz[au], xyz[av], pl.H, pl.W, t);
  std::vector<double> s(pl.C, 0.0);
  for (int64_t c = 0; c < pl.C; ++c) {
    for (int j = 0; j < k; ++j) s[c] += t[j].w * pl.at(n, p, c, t[j].y, t[j].x);
  }
  return s;
}

// The mean of the three planes' samples ([C]).
inline std::vector<double> sample_mean(const Planes& pl, int64_t n, const double xyz[3]) {
  std::vector<double> f(pl.C, 0.0);
  for (int p = 0; p < 3; ++p) {
    const std::vector<double> s = sample_plane(pl, n, p, xyz);
    for (int64_t c = 0; c < pl.C; ++c) f[c] += s[c] / 3.0;
  }
  return f;
}

// Backward of plane p's sample at xyz, given its cotangent g ([C]): adds to the plane gradient
// ([N, 3, C, H, W], may be null) and to d loss / d xyz (scaled coordinates, 3 values).
inline void sample_plane_backward(const Planes& pl, int64_t n, int p, const double xyz[3], const double* g,
                                  std::vector<double>* gplanes, double gxyz[3]) {
  int au, av;
  plane_axes(p, au, av);
  Tap t[4];
  const int k = taps(xyz[au], xyz[av], pl.H, pl.W, t);
  for (int j = 0; j < k; ++j) {
    for (int64_t c = 0; c < pl.C; ++c) {
      const int64_t at = (((n * 3 + p) * pl.C + c) * pl.H + t[j].y) * pl.W + t[j].x;
      if (gplanes) (*gplanes)[at] += t[j].w * g[c];
      gxyz[au] += t[j].du * g[c] * pl.v[at];
      gxyz[av] += t[j].dv * g[c] * pl.v[at];
    }
  }
}

}  // namespace ref
