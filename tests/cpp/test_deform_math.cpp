// The deformation-field math in csrc/common/deform.h: positional encoding (layout, values,
// the double-angle recurrence against direct sin/cos), its derivative against central
// differences, the activations and the output head's gradient.
// Build by hand: g++ -std=c++17 -I csrc tests/cpp/test_deform_math.cpp && ./a.out
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "common/deform.h"

static int failures = 0;
#define EXPECT_NEAR(a, b, tol)                                                                   \
  do {                                                                                           \
    const double va = (a), vb = (b);                                                             \
    if (!(std::fabs(va - vb) <= (tol))) {                                                        \
      std::fprintf(stderr, "%s:%d: %s = %.17g vs %s = %.17g (tol %g)\n", __FILE__, __LINE__, #a, \
                   va, #b, vb, double(tol));                                                     \
      ++failures;                                                                                \
    }                                                                                            \
  } while (0)
#define EXPECT(c)                                                           \
  do {                                                                      \
    if (!(c)) {                                                             \
      std::fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #c); \
      ++failures;                                                           \
    }                                                                       \
  } while (0)

int main() {
  const double pi = 3.14159265358979323846;
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> U(-1.5, 1.5);

  EXPECT(nofa::pe_dim(0) == 3);
  EXPECT(nofa::pe_dim(6) == 39);

  // Layout and values against direct evaluation, in double and in float.
  for (int L : {0, 1, 6, 10}) {
    const int P = nofa::pe_dim(L);
    std::vector<double> pe(P);
    std::vector<float> pef(P);
    for (int t = 0; t < 200; ++t) {
      const double x[3] = {U(rng), U(rng), U(rng)};
      const float xf[3] = {float(x[0]), float(x[1]), float(x[2])};
      nofa::positional_encoding<double>(x, L, pe.data());
      nofa::positional_encoding<double>(xf, L, pef.data());
      for (int a = 0; a < 3; ++a) {
        EXPECT(pe[a] == x[a]);
        for (int k = 0; k < L; ++k) {
          const double arg = std::ldexp(pi, k) * x[a];
          // The recurrence loses about one bit per octave: 2^k * 1e-16 in double.
          EXPECT_NEAR(pe[3 + 6 * k + a], std::sin(arg), 1e-12);
          EXPECT_NEAR(pe[6 + 6 * k + a], std::cos(arg), 1e-12);
          const double argf = std::ldexp(pi, k) * double(xf[a]);
          EXPECT_NEAR(pef[3 + 6 * k + a], std::sin(argf), 2e-7);
          EXPECT_NEAR(pef[6 + 6 * k + a], std::cos(argf), 2e-7);
        }
      }
    }
  }

  // d(g . PE(x))/dx against central differences.
  for (int L : {0, 2, 6}) {
    const int P = nofa::pe_dim(L);
    std::vector<double> g(P), pp(P), pm(P);
    for (int t = 0; t < 50; ++t) {
      double x[3] = {U(rng), U(rng), U(rng)};
      for (auto& v : g) v = U(rng);
      double gx[3];
      nofa::positional_encoding_backward<double>(x, L, g.data(), gx);
      for (int a = 0; a < 3; ++a) {
        const double h = 1e-6, x0 = x[a];
        x[a] = x0 + h;
        nofa::positional_encoding<double>(x, L, pp.data());
        x[a] = x0 - h;
        nofa::positional_encoding<double>(x, L, pm.data());
        x[a] = x0;
        double fd = 0;
        for (int i = 0; i < P; ++i) fd += g[i] * (pp[i] - pm[i]) / (2 * h);
        EXPECT_NEAR(gx[a], fd, 1e-6 * (1 + std::fabs(fd)));
      }
    }
  }

  // Activations.
  EXPECT(nofa::relu(-2.0) == 0.0 && nofa::relu(3.0) == 3.0);
  EXPECT(nofa::relu_grad_from_output(0.0, 5.0) == 0.0);
  EXPECT(nofa::relu_grad_from_output(0.5, 5.0) == 5.0);
  for (double z : {-800.0, -30.0, -1.0, 0.0, 0.3, 30.0, 800.0}) {
    const double s = nofa::sigmoid(z);
    EXPECT(std::isfinite(s) && s >= 0.0 && s <= 1.0);
    EXPECT_NEAR(s, 1.0 / (1.0 + std::exp(-z)), 1e-15);
  }
  EXPECT(nofa::sigmoid(100.0f) == 1.0f && nofa::sigmoid(-100.0f) >= 0.0f);

  // Output head x_c = x + sigmoid(z) * off: analytic gradients against differences.
  for (int t = 0; t < 50; ++t) {
    const double gxc[3] = {U(rng), U(rng), U(rng)}, goff[3] = {U(rng), U(rng), U(rng)};
    const double gw = U(rng), z = 2 * U(rng);
    double off[3] = {U(rng), U(rng), U(rng)};
    auto loss = [&](const double* o, double zz) {
      const double w = nofa::sigmoid(zz);
      double s = gw * w;
      for (int a = 0; a < 3; ++a) s += gxc[a] * (w * o[a]) + goff[a] * o[a];
      return s;
    };
    double d_off[3], d_z;
    nofa::deform_head_backward(gxc, goff, gw, off, nofa::sigmoid(z), d_off, d_z);
    const double h = 1e-6;
    EXPECT_NEAR(d_z, (loss(off, z + h) - loss(off, z - h)) / (2 * h), 1e-7);
    for (int a = 0; a < 3; ++a) {
      const double o0 = off[a];
      off[a] = o0 + h;
      const double lp = loss(off, z);
      off[a] = o0 - h;
      const double lm = loss(off, z);
      off[a] = o0;
      EXPECT_NEAR(d_off[a], (lp - lm) / (2 * h), 1e-7);
    }
  }

  if (failures) {
    std::fprintf(stderr, "test_deform_math: %d failure(s)\n", failures);
    return 1;
  }
  std::printf("test_deform_math: ok\n");
  return 0;
}
