// The per-ray compositing math in csrc/common/composite.h: activation and its derivative,
// alpha, nan_to_num, the clamp gradient routing, and the suffix-sum backward of a whole
// ray against central finite differences (float64), including saturated and empty rays.
#include <random>
#include <vector>

#include "../../tests/cpp/check.h"
#include "common/composite.h"

namespace {

struct Ray {
  int64_t S, C;
  std::vector<double> col, den, z;  // [S, C], [S], [S]
};

// Scalar loss L = <gf, features> + gz * depth + <gw, weights>, computed with the header's
// forward functions (features as the reference writes them: per-interval midpoints).
double loss(const Ray& r, const std::vector<double>& gf, double gz, const std::vector<double>& gw,
            bool white, double lo, double hi) {
  const int64_t K = r.S - 1;
  std::vector<double> w(K);
  double wsum, zsum;
  nofa::ray_weights(r.z.data(), K, nofa::AlphaFromInputs<double>{r.den.data(), r.z.data()},
                    w.data(), 1, wsum, zsum);
  double L = gz * nofa::ray_depth(zsum, wsum, lo, hi);
  for (int64_t k = 0; k < K; ++k) L += gw[k] * w[k];
  for (int64_t c = 0; c < r.C; ++c) {
    double f = 0;
    for (int64_t k = 0; k < K; ++k) f += w[k] * (r.col[k * r.C + c] + r.col[(k + 1) * r.C + c]) / 2;
    if (white) f = f + 1 - wsum;
    L += gf[c] * (f * 2 - 1);
  }
  return L;
}

struct Grad {
  std::vector<double> col, den, z;
  double glo, ghi;
};

Grad analytic(const Ray& r, const std::vector<double>& gf, double gz, const std::vector<double>& gw,
              bool white, double lo, double hi) {
  const int64_t K = r.S - 1;
  std::vector<double> grgb(r.C), e(r.S, 0.0), buf(K * nofa::kScratch);
  double total = 0;
  for (int64_t c = 0; c < r.C; ++c) total += (grgb[c] = 2 * gf[c]);
  for (int64_t s = 0; s < r.S; ++s)
    for (int64_t c = 0; c < r.C; ++c) e[s] += grgb[c] * r.col[s * r.C + c];
  nofa::RayCotangents<double> ct{e.data(), gw.data(), white ? -total : 0.0, gz, lo, hi};
  Grad g{std::vector<double>(r.S * r.C), std::vector<double>(r.S), std::vector<double>(r.S), 0, 0};
  nofa::fill_intervals(r.den.data(), r.z.data(), K, buf.data(), 1);
  nofa::ray_backward(r.z.data(), K, ct, buf.data(), 1, g.den.data(), g.z.data(), g.glo, g.ghi);
  for (int64_t s = 0; s < r.S; ++s) {
    const double u = ((s > 0 ? buf[s - 1] : 0.0) + (s < K ? buf[s] : 0.0)) / 2;  // field kTrans: w
    for (int64_t c = 0; c < r.C; ++c) g.col[s * r.C + c] = u * grgb[c];
  }
  return g;
}

// Compare every analytic derivative with a central difference of `loss`.
void check_ray(Ray r, bool white, double tol) {
  std::mt19937 rng(7);
  std::normal_distribution<double> nd;
  const int64_t K = r.S - 1;
  std::vector<double> gf(r.C), gw(K);
  for (auto& v : gf) v = nd(rng);
  for (auto& v : gw) v = nd(rng);
  const double gz = nd(rng), lo = r.z.front() - 0.5, hi = r.z.back() + 0.5;  // depth not on a bound
  const Grad g = analytic(r, gf, gz, gw, white, lo, hi);
  CHECK(g.glo == 0 && g.ghi == 0);
  const double h = 1e-6;
  auto fd = [&](std::vector<double>& v, int64_t i) {
    const double keep = v[i];
    v[i] = keep + h;
    const double a = loss(r, gf, gz, gw, white, lo, hi);
    v[i] = keep - h;
    const double b = loss(r, gf, gz, gw, white, lo, hi);
    v[i] = keep;
    return (a - b) / (2 * h);
  };
  for (int64_t i = 0; i < r.S * r.C; ++i) CHECK_NEAR(g.col[i], fd(r.col, i), tol);
  for (int64_t i = 0; i < r.S; ++i) CHECK_NEAR(g.den[i], fd(r.den, i), tol);
  for (int64_t i = 0; i < r.S; ++i) CHECK_NEAR(g.z[i], fd(r.z, i), tol);
}

Ray random_ray(int64_t S, int64_t C, double dens_scale, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Ray r{S, C, std::vector<double>(S * C), std::vector<double>(S), std::vector<double>(S)};
  for (auto& v : r.col) v = u(rng);
  for (auto& v : r.den) v = dens_scale * (2 * u(rng) - 1);
  double t = 0.5;
  for (auto& v : r.z) v = (t += 0.02 + 0.3 * u(rng));  // uneven spacing
  return r;
}

// The strided form the CUDA kernels run (samples of ray r at [s * rays + r], sample-major
// [S, rays] arrays, and the scratch's [field * K + k][rays]) against stride 1, ray by ray:
// the same operations in the same order, so the results must be equal bit for bit.
template <typename T>
void check_strided(int64_t rays, int64_t S, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  const int64_t K = S - 1;
  // Row-major [rays, S] / [rays, K] values, and their sample-major copies.
  std::vector<T> den(rays * S), z(rays * S), e(rays * S), gw(rays * K);
  for (int64_t r = 0; r < rays; ++r) {
    T t = T(0.5);
    for (int64_t s = 0; s < S; ++s) {
      den[r * S + s] = T(3 * nd(rng));
      z[r * S + s] = (t += T(0.05 + 0.2 * std::fabs(nd(rng))));
      e[r * S + s] = T(nd(rng));
    }
    for (int64_t k = 0; k < K; ++k) gw[r * K + k] = T(nd(rng));
  }
  if (rays > 1) {  // an empty ray and a saturated one
    for (int64_t s = 0; s < S; ++s) den[s] = T(-80), den[S + s] = T(80);
  }
  auto transpose = [](const std::vector<T>& v, int64_t rows, int64_t cols) {
    std::vector<T> t(v.size());
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = v[i * cols + j];
    return t;
  };
  const auto den_t = transpose(den, rays, S), z_t = transpose(z, rays, S),
             e_t = transpose(e, rays, S);
  const auto gw_t = transpose(gw, rays, K);
  const T lo = z[0], hi = z[rays * S - 1] + T(1);
  std::vector<T> w_t(K * rays), buf_t(K * nofa::kScratch * rays), gd_t(S * rays), gz_t(S * rays);
  std::vector<T> w(K), buf(K * nofa::kScratch), gd(S), gzv(S);
  for (int64_t r = 0; r < rays; ++r) {
    const T *dr = den.data() + r * S, *zr = z.data() + r * S;
    T ws1, zs1, ws2, zs2;
    nofa::ray_weights(zr, K, nofa::AlphaFromInputs<T>{dr, zr}, w.data(), 1, ws1, zs1);
    nofa::ray_weights(z_t.data() + r, K,
                      nofa::AlphaFromInputs<T>{den_t.data() + r, z_t.data() + r, rays},
                      w_t.data() + r, rays, ws2, zs2);
    CHECK(ws1 == ws2 && zs1 == zs2);
    for (int64_t k = 0; k < K; ++k) CHECK(w[k] == w_t[k * rays + r]);
    // Backward with every cotangent (white background constant, depth on no bound).
    const nofa::RayCotangents<T> ct1{e.data() + r * S, gw.data() + r * K, T(-0.3), T(0.7), lo, hi};
    const nofa::RayCotangents<T> ct2{e_t.data() + r, gw_t.data() + r, T(-0.3), T(0.7), lo, hi};
    T glo1, ghi1, glo2, ghi2;
    nofa::fill_intervals(dr, zr, K, buf.data(), 1);
    nofa::ray_backward(zr, K, ct1, buf.data(), 1, gd.data(), gzv.data(), glo1, ghi1);
    nofa::fill_intervals(den_t.data() + r, z_t.data() + r, K, buf_t.data() + r, rays);
    nofa::ray_backward(z_t.data() + r, K, ct2, buf_t.data() + r, rays, gd_t.data() + r,
                       gz_t.data() + r, glo2, ghi2);
    CHECK(glo1 == glo2 && ghi1 == ghi2);
    for (int64_t s = 0; s < S; ++s)
      CHECK(gd[s] == gd_t[s * rays + r] && gzv[s] == gz_t[s * rays + r]);
    for (int64_t f = 0; f < nofa::kScratch; ++f)
      for (int64_t k = 0; k < K; ++k) CHECK(buf[f * K + k] == buf_t[(f * K + k) * rays + r]);
  }
}

template <typename T>
T act_grad(T density_mid) {
  T g;
  nofa::density_activation(density_mid, g);
  return g;
}

}  // namespace

int main() {
  // softplus(x - 1) with PyTorch's threshold 20, and its derivative.
  CHECK_NEAR(nofa::density_activation(1.0), std::log(2.0), 1e-15);
  CHECK(nofa::density_activation(30.0) == 29.0);
  CHECK_NEAR(act_grad(1.0), 0.5, 1e-15);
  CHECK(act_grad(30.0) == 1.0);
  for (double x : {-5.0, -0.3, 0.0, 2.5, 15.0}) {
    const double fd =
        (nofa::density_activation(x + 1e-6) - nofa::density_activation(x - 1e-6)) / 2e-6;
    CHECK_NEAR(act_grad(x), fd, 1e-8);
  }
  // Saturation in float32: alpha is exactly 1 (and the factor exactly 1e-10) for +80, and
  // exactly 0 for -80, with finite derivatives.
  float decay;
  CHECK(nofa::interval_alpha(nofa::density_activation(80.0f), 0.5f, decay) == 1.0f);
  CHECK(nofa::transmit_factor(1.0f) == 1e-10f);
  CHECK(nofa::interval_alpha(nofa::density_activation(-80.0f), 0.5f, decay) == 0.0f);
  CHECK(decay == 1.0f && std::isfinite(act_grad(-80.0f)));
  // nan_to_num(nan=inf) and the clamp.
  CHECK(nofa::nan_to_inf(NAN) == INFINITY);
  CHECK(nofa::nan_to_inf(INFINITY) == FLT_MAX && nofa::nan_to_inf(-INFINITY) == -FLT_MAX);
  CHECK(nofa::nan_to_inf(-INFINITY * 1.0) == -DBL_MAX);
  CHECK(nofa::ray_depth(0.0f, 0.0f, 1.0f, 3.0f) == 3.0f);  // empty ray: 0/0 -> +inf -> far bound
  CHECK(nofa::ray_depth(5.0f, 2.0f, 1.0f, 3.0f) == 2.5f);
  CHECK(!nofa::is_finite(NAN) && !nofa::is_finite(INFINITY) && nofa::is_finite(1e30f));
  // A clamp bound's gradient shared between the elements equal to it: none when the total
  // is 0 (a NaN in depths: NaN bounds, no element equal, and 0/0 must not appear), and
  // NaN bounds route the whole cotangent to the value.
  CHECK(nofa::bound_share(0.0, 0) == 0.0 && nofa::bound_share(0.0f, 3) == 0.0f);
  CHECK(nofa::bound_share(1.5, 3) == 0.5 && nofa::bound_share(2.0, 0) == 0.0);
  {
    double gv, glo, ghi;
    nofa::clamp_grad(2.0, double(NAN), double(NAN), 1.0, gv, glo, ghi);
    CHECK(gv == 1.0 && glo == 0.0 && ghi == 0.0);
  }
  // Clamp routing, as torch.clamp(x, lo_tensor, hi_tensor).backward() does (torch 2.x).
  struct Case {
    double v, lo, hi, gv, glo, ghi;
  };
  for (const Case& c : {Case{1, 1, 3, .5, .5, 0}, Case{3, 1, 3, .5, 0, .5}, Case{0, 1, 3, 0, 1, 0},
                        Case{4, 1, 3, 0, 0, 1}, Case{2, 1, 3, 1, 0, 0}, Case{2, 2, 2, 1, 0, 0},
                        Case{1, 2, 2, 0, 1, 0}, Case{3, 2, 2, 0, 0, 1}}) {
    double gv, glo, ghi;
    nofa::clamp_grad(c.v, c.lo, c.hi, 1.0, gv, glo, ghi);
    CHECK(gv == c.gv && glo == c.glo && ghi == c.ghi);
  }

  // Whole-ray backward against finite differences.
  for (int64_t S : {2, 3, 9}) {
    for (bool white : {false, true}) {
      check_ray(random_ray(S, 3, 2.0, 11 + S), white, 1e-6);
      check_ray(random_ray(S, 1, 6.0, 31 + S), white, 1e-6);
    }
  }

  // A saturated ray: alpha == 1 at the first interval. Everything after it is invisible,
  // the gradients stay finite and exact (no 0/0 from dividing by 1 - alpha).
  {
    Ray r = random_ray(6, 2, 1.0, 5);
    for (auto& d : r.den) d = 80.0;
    for (int64_t s = 0; s < r.S; ++s) r.z[s] = 1.0 + s;  // sigma * delta = 79: alpha == 1
    std::vector<double> gf = {0.7, -1.3}, gw = {0.5, -0.25, 1.0, 2.0, -1.0};
    const Grad g = analytic(r, gf, 0.3, gw, true, 1.0, 6.0);
    bool finite = true;
    for (double v : g.col) finite = finite && std::isfinite(v);
    for (double v : g.den) finite = finite && std::isfinite(v);
    for (double v : g.z) finite = finite && std::isfinite(v);
    CHECK(finite);
    // Colours: only interval 0 (weight 1) is seen, so samples 0 and 1 share 2 * gf / 2 each.
    CHECK_NEAR(g.col[0], gf[0], 1e-12);
    CHECK_NEAR(g.col[1 * 2 + 1], gf[1] + 1e-10 * gf[1], 1e-12);
    // Intervals >= 2 see transmittance <= 1e-20: their densities get (next to) nothing.
    CHECK(std::fabs(g.den[4]) < 1e-18 && std::fabs(g.den[5]) < 1e-18);
  }
  // An empty ray (densities -80): weights 0, depth 0/0 -> clamped to the far bound, and the
  // depth cotangent goes to that bound only.
  {
    Ray r = random_ray(5, 2, 1.0, 9);
    for (auto& d : r.den) d = -80.0;
    std::vector<double> gf = {1.0, 2.0}, gw = {1, 1, 1, 1};
    const Grad g = analytic(r, gf, 0.75, gw, false, r.z.front(), r.z.back());
    CHECK(g.ghi == 0.75 && g.glo == 0.0);
    bool finite = true;
    for (double v : g.den) finite = finite && std::isfinite(v);
    for (double v : g.z) finite = finite && std::isfinite(v);
    CHECK(finite);
    for (double v : g.col) CHECK(v == 0.0);
  }
  // The CUDA kernels' sample-major layout gives the stride-1 results exactly.
  for (int64_t S : {2, 3, 17}) {
    check_strided<float>(5, S, 40 + S);
    check_strided<double>(7, S, 50 + S);
  }
  check_strided<float>(1, 4, 3);
  TEST_MAIN_END();
}
