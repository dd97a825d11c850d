// The tri-plane projection and bilinear taps in csrc/common/triplane.h.
#include <random>

#include "../../tests/cpp/check.h"
#include "common/triplane.h"

using nofa::BilinearTaps;

// Interpolate a function sampled on texel centres; compare with the exact value.
static double lookup(const double* grid, int64_t H, int64_t W, double u, double v) {
  BilinearTaps<double> t;
  nofa::bilinear_taps(u, v, H, W, t);
  return nofa::tap_sum(t, grid, 1);
}

int main() {
  // Plane convention: 0 -> (x, y), 1 -> (x, z), 2 -> (z, x).
  double u, v;
  nofa::plane_uv(0, 1.0, 2.0, 3.0, u, v);
  CHECK(u == 1.0 && v == 2.0);
  nofa::plane_uv(1, 1.0, 2.0, 3.0, u, v);
  CHECK(u == 1.0 && v == 3.0);
  nofa::plane_uv(2, 1.0, 2.0, 3.0, u, v);
  CHECK(u == 3.0 && v == 1.0);
  for (int p = 0; p < 3; ++p) {
    int au, av;
    nofa::plane_axes(p, au, av);
    const double xyz[3] = {1.0, 2.0, 3.0};
    nofa::plane_uv(p, xyz[0], xyz[1], xyz[2], u, v);
    CHECK(u == xyz[au] && v == xyz[av]);
  }

  // A bilinear function a + b*ix + c*iy + d*ix*iy is reproduced exactly inside the grid.
  const int64_t H = 5, W = 7;
  double grid[H * W];
  auto f = [](double ix, double iy) { return 0.3 + 1.5 * ix - 0.7 * iy + 0.2 * ix * iy; };
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) grid[y * W + x] = f(double(x), double(y));
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> U(-1.0, 1.0);
  for (int i = 0; i < 1000; ++i) {
    const double uu = U(rng), vv = U(rng);
    const double ix = ((uu + 1) * W - 1) / 2, iy = ((vv + 1) * H - 1) / 2;
    if (ix < 0 || ix > W - 1 || iy < 0 || iy > H - 1) continue;  // not all 4 taps inside
    CHECK_NEAR(lookup(grid, H, W, uu, vv), f(ix, iy), 1e-12);
  }

  // Weights sum to 1 inside; the texel centre hits one texel exactly.
  BilinearTaps<double> t;
  nofa::bilinear_taps((2 * 3 + 1.0) / W - 1, (2 * 1 + 1.0) / H - 1, H, W, t);
  CHECK_NEAR(t.w[0], 1.0, 1e-12);
  CHECK(t.off[0] == 1 * W + 3);

  // Zero padding: far outside, NaN and inf give no taps at all.
  const double bad[] = {3.0, -3.0, NAN, INFINITY, -INFINITY, 1e30};
  for (double b : bad) {
    nofa::bilinear_taps(b, 0.0, H, W, t);
    for (int k = 0; k < 4; ++k) CHECK(t.off[k] == -1 && t.w[k] == 0 && t.dwdu[k] == 0);
  }
  // Half a texel outside the border: only the border taps remain, with half weight.
  nofa::bilinear_taps(-1.0, (2 * 2 + 1.0) / H - 1, H, W, t);
  CHECK(t.off[0] == -1 && t.off[1] == 2 * W + 0);
  CHECK_NEAR(t.w[1], 0.5, 1e-12);

  // Weight derivatives match central finite differences.
  for (int i = 0; i < 200; ++i) {
    const double uu = U(rng) * 0.9, vv = U(rng) * 0.9, h = 1e-7;
    BilinearTaps<float> unused;
    (void)unused;
    BilinearTaps<double> a, b, c, d;
    nofa::bilinear_taps(uu, vv, H, W, t);
    nofa::bilinear_taps(uu + h, vv, H, W, a);
    nofa::bilinear_taps(uu - h, vv, H, W, b);
    nofa::bilinear_taps(uu, vv + h, H, W, c);
    nofa::bilinear_taps(uu, vv - h, H, W, d);
    bool same = true;
    for (int k = 0; k < 4; ++k)
      same = same && a.off[k] == b.off[k] && c.off[k] == d.off[k] && a.off[k] == t.off[k];
    if (!same) continue;  // straddles a texel line
    for (int k = 0; k < 4; ++k) {
      CHECK_NEAR(t.dwdu[k], (a.w[k] - b.w[k]) / (2 * h), 1e-5);
      CHECK_NEAR(t.dwdv[k], (c.w[k] - d.w[k]) / (2 * h), 1e-5);
    }
  }
  TEST_MAIN_END();
}
