// Tri-plane sampling in double precision, written from the definitions (EG3D's
// sample_from_planes: grid_sample, bilinear, zero padding, align_corners=False), independently
// of csrc/common/triplane.h, as the reference of the CPU-thread runs of the CUDA kernels
// (tests/cpp/test_sample_triplane_emulated.cpp, test_decode_forward_emulated.cpp).
// Planes are [N, 3, C, H, W] (the op's layout, not the kernels' channels-last copy); point
// coordinates are already scaled by 2 / box_warp. Plane 0 reads (x, y), plane 1 (x, z),
// plane 2 (z, x), the first coordinate indexing W. A plane with a non-finite coordinate reads
// zero and passes no gradient (docs/ops.md, "Non-finite inputs"). Also the tests' shared
// inputs (points with exact texel / border coordinates, non-finite and far rows) and their
// element-wise comparison.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace ref {

struct Tap {
  int64_t x, y;   // texel inside the grid
  double w;       // bilinear weight
  double du, dv;  // d w / d u, d w / d v
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
      out[n++] = {static_cast<int64_t>(X), static_cast<int64_t>(Y), wx * wy,
                  (dx ? 1.0 : -1.0) * wy * W / 2.0, (dy ? 1.0 : -1.0) * wx * H / 2.0};
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
inline void sample_plane_backward(const Planes& pl, int64_t n, int p, const double xyz[3],
                                  const double* g, std::vector<double>* gplanes, double gxyz[3]) {
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

// Coordinates (before scaling) that land exactly on texel centres and edges, the box border
// and the limits of the taps' range (ix = -1 and ix = W) of both grid sizes a coordinate
// meets (x: W and H; y: H; z: H and W), kept only where float arithmetic reproduces the
// exact value (so the float kernels and the double reference floor to the same texel).
inline std::vector<float> special_coords(int64_t H, int64_t W, double scale) {
  std::vector<float> out;
  for (int64_t S : {W, H}) {
    std::vector<double> ixs = {-1.0, -0.5, static_cast<double>(S) - 1.0,
                               static_cast<double>(S) - 0.5, static_cast<double>(S)};
    for (int64_t k = 0; k < S; ++k) {
      ixs.push_back(static_cast<double>(k));
      ixs.push_back(k + 0.5);
    }
    for (double ix : ixs) {
      const double u = (2.0 * ix + 1.0) / S - 1.0;
      const float c = static_cast<float>(u / scale);
      bool exact = true;
      for (int64_t S2 : {W, H}) {
        const float uf = c * static_cast<float>(scale);
        const float f = ((uf + 1.f) * static_cast<float>(S2) - 1.f) / 2.f;
        const double d = ((static_cast<double>(c) * scale + 1.0) * S2 - 1.0) / 2.0;
        exact = exact && static_cast<double>(uf) == static_cast<double>(c) * scale &&
                static_cast<double>(f) == d;
      }
      if (exact && std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
    }
  }
  return out;
}

// Points [N, M, 3] (unscaled) for a grid of H x W texels: uniform over 1.2 times the box (about
// a sixth of the coordinates outside it), and at the start (at most half of the points)
// special rows.
inline std::vector<float> make_points(int64_t N, int64_t M, int64_t H, int64_t W, double scale,
                                      std::mt19937& rng) {
  std::uniform_real_distribution<float> ud(static_cast<float>(-1.2 / scale),
                                           static_cast<float>(1.2 / scale));
  std::vector<float> points(N * M * 3);
  for (auto& v : points) v = ud(rng);  // about a sixth of the coordinates outside the box
  // Special rows at the start of the [N * M] points (at most half of them): non-finite and
  // far coordinates, then points made of exact texel / border coordinates.
  const float nan = std::numeric_limits<float>::quiet_NaN(),
              inf = std::numeric_limits<float>::infinity();
  std::vector<std::array<float, 3>> rows = {
      {nan, 0.1f, 0.2f},    {0.1f, nan, 0.2f},  {0.1f, 0.2f, nan}, {inf, 0.1f, 0.2f},
      {0.1f, -inf, 0.2f},   {0.1f, 0.2f, inf},  {nan, nan, nan},   {5.f, 0.1f, 0.2f},
      {-1e30f, 0.1f, 0.2f}, {0.1f, 0.2f, 3e38f}};
  const std::vector<float> sc = special_coords(H, W, scale);
  std::uniform_int_distribution<size_t> pick(0, sc.size() - 1);
  for (float c : sc) rows.push_back({c, sc[pick(rng)], sc[pick(rng)]});  // each special value on x
  for (int k = 0; k < 4; ++k) rows.push_back({ud(rng), sc[pick(rng)], sc[pick(rng)]});
  for (size_t k = 0; k < rows.size() && static_cast<int64_t>(2 * k) < N * M; ++k) {
    for (int a = 0; a < 3; ++a) points[k * 3 + a] = rows[k][a];
  }
  return points;
}

// Element by element: |got - want| <= tol * (|want| + rms(want)) (a non-finite got fails).
inline bool close(const std::string& what, const std::vector<double>& got,
                  const std::vector<double>& want, double tol) {
  if (got.size() != want.size()) {
    std::fprintf(stderr, "%s: %zu values, expected %zu\n", what.c_str(), got.size(), want.size());
    return false;
  }
  double ss = 0.0;
  for (double w : want) ss += w * w;
  const double rms = want.empty() ? 0.0 : std::sqrt(ss / want.size());
  int bad = 0;
  for (size_t k = 0; k < got.size(); ++k) {
    if (!(std::fabs(got[k] - want[k]) <= tol * (std::fabs(want[k]) + rms))) {
      if (bad++ < 3)
        std::fprintf(stderr, "%s[%zu]: %.9g, expected %.9g\n", what.c_str(), k, got[k], want[k]);
    }
  }
  if (bad) std::fprintf(stderr, "%s: %d of %zu values wrong\n", what.c_str(), bad, got.size());
  return bad == 0;
}

// Float32 computes the texel coordinate ix = ((u + 1) W - 1) / 2 in float: its rounding moves
// the sample by up to a few float ulps of (|u| + 1) times W / 2 texels.
template <typename T>
double tolerance(int64_t H, int64_t W) {
  const double grid = static_cast<double>(std::max<int64_t>({H, W, 2}));
  return std::is_same_v<T, float> ? 1e-6 * grid : 1e-13;
}

}  // namespace ref
