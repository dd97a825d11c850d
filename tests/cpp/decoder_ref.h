// The tri-plane decoder MLP in double precision, written from the definitions (EG3D's
// OSGDecoder: z = W0 f + b0; h = softplus(z), beta 1, threshold 20; x = W1 h + b1;
// density = x0; features = sigmoid(x[1:]) * 1.002 - 0.001), independently of csrc/, as the
// reference of the CPU-thread runs of the decode_triplane CUDA kernels
// (tests/cpp/test_decode_forward_emulated.cpp, test_decode_backward_emulated.cpp,
// test_decode_chunked_emulated.cpp), one point at a time from its mean tri-plane feature f.
// Also their shared pieces: random decoder weights, and the weight gradients' comparison by
// relative error (tests/cpp/compare.h), the four tensors each on its own.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "compare.h"

namespace ref {

inline double softplus(double z) { return z > 20.0 ? z : std::log1p(std::exp(z)); }
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Weights in nn.Linear layout: w0 [Hd, C], b0 [Hd], w1 [O, Hd], b1 [O].
struct Decoder {
  int64_t C, Hd, O;
  const float *w0, *b0, *w1, *b1;
  // Weight-gradient layout: [gW0 | gb0 | gW1 | gb1].
  int64_t grad_size() const { return Hd * C + Hd + O * Hd + O; }
};

// fill(v, n, s): v = n normal values times s, one stream from rng (the tests' random planes,
// weights and cotangents).
struct NormalFill {
  std::mt19937& rng;
  std::normal_distribution<float> nd{};
  void operator()(std::vector<float>& v, int64_t n, float s) {
    v.resize(n);
    for (auto& x : v) x = nd(rng) * s;
  }
};

// Random decoder weights in nn.Linear layout, in this order: w0 [Hd, C] of scale 1 / sqrt(C),
// b0 [Hd], w1 [O, Hd] of scale w1_scale / sqrt(Hd), b1 [O].
inline void fill_decoder(NormalFill& fill, int64_t C, int64_t Hd, int64_t O, float w1_scale,
                         std::vector<float>& w0, std::vector<float>& b0, std::vector<float>& w1,
                         std::vector<float>& b1) {
  fill(w0, Hd * C, 1.f / std::sqrt(float(C)));
  fill(b0, Hd, 1.f);
  fill(w1, O * Hd, w1_scale / std::sqrt(float(Hd)));
  fill(b1, O, 1.f);
}

// The forward at one point: density and features[O - 1].
inline void decoder_forward(const Decoder& d, const double* f, double& density, double* features) {
  std::vector<double> h(d.Hd);
  for (int64_t j = 0; j < d.Hd; ++j) {
    double z = d.b0[j];
    for (int64_t c = 0; c < d.C; ++c) z += double(d.w0[j * d.C + c]) * f[c];
    h[j] = softplus(z);
  }
  for (int64_t o = 0; o < d.O; ++o) {
    double x = d.b1[o];
    for (int64_t j = 0; j < d.Hd; ++j) x += double(d.w1[o * d.Hd + j]) * h[j];
    if (o == 0) {
      density = x;
    } else {
      features[o - 1] = 1.002 * sigmoid(x) - 0.001;
    }
  }
}

// The backward at one point, for the cotangents gd (density) and gf[O - 1] (features): adds
// the weight gradients to gw ([gW0 | gb0 | gW1 | gb1]) and returns d / d f [C].
inline std::vector<double> decoder_backward(const Decoder& d, const double* f, double gd,
                                            const float* gf, double* gw) {
  const int64_t C = d.C, Hd = d.Hd, O = d.O;
  std::vector<double> z(Hd), h(Hd), gx(O), gz(Hd), gfeat(C, 0.0);
  for (int64_t j = 0; j < Hd; ++j) {
    z[j] = d.b0[j];
    for (int64_t c = 0; c < C; ++c) z[j] += double(d.w0[j * C + c]) * f[c];
    h[j] = softplus(z[j]);
  }
  gx[0] = gd;
  for (int64_t o = 1; o < O; ++o) {
    double x = d.b1[o];
    for (int64_t j = 0; j < Hd; ++j) x += double(d.w1[o * Hd + j]) * h[j];
    const double s = sigmoid(x);
    gx[o] = gf[o - 1] * 1.002 * s * (1.0 - s);
  }
  for (int64_t j = 0; j < Hd; ++j) {
    double gh = 0.0;
    for (int64_t o = 0; o < O; ++o) gh += double(d.w1[o * Hd + j]) * gx[o];
    gz[j] = gh * (z[j] > 20.0 ? 1.0 : sigmoid(z[j]));  // softplus' (threshold 20)
  }
  double* gw0 = gw;
  double* gb0 = gw0 + Hd * C;
  double* gw1 = gb0 + Hd;
  double* gb1 = gw1 + O * Hd;
  for (int64_t j = 0; j < Hd; ++j) {
    for (int64_t c = 0; c < C; ++c) {
      gw0[j * C + c] += gz[j] * f[c];
      gfeat[c] += double(d.w0[j * C + c]) * gz[j];
    }
    gb0[j] += gz[j];
  }
  for (int64_t o = 0; o < O; ++o) {
    for (int64_t j = 0; j < Hd; ++j) gw1[o * Hd + j] += gx[o] * h[j];
    gb1[o] += gx[o];
  }
  return gfeat;
}

// The four weight-gradient tensors of decoder d ([gW0 | gb0 | gW1 | gb1]), each on its own
// (a small one must not hide in a big one's norm).
inline void expect_weight_grads(const std::string& what, const Decoder& d,
                                const std::vector<double>& got, const std::vector<double>& want,
                                double tol) {
  const int64_t C = d.C, Hd = d.Hd, O = d.O;
  const int64_t start[5] = {0, Hd * C, Hd * C + Hd, Hd * C + Hd + O * Hd, d.grad_size()};
  CHECK(static_cast<int64_t>(got.size()) == start[4]);
  for (int t = 0; t < 4 && static_cast<int64_t>(got.size()) == start[4]; ++t) {
    expect_rel(what + ": weight tensor " + std::to_string(t),
               std::vector<double>(got.begin() + start[t], got.begin() + start[t + 1]),
               std::vector<double>(want.begin() + start[t], want.begin() + start[t + 1]), tol);
  }
}

}  // namespace ref
