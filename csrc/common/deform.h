// Deformation-field math shared by the CPU and CUDA kernels (and the ctest program):
// the positional encoding, its derivative, and the activations. At the end, the CUDA
// kernels' arguments (DeformArgs), which the ATen glue fills.
//
// PE(x) layout (P = 3 + 6 L values per point), the same in the reference twin:
//   [x0, x1, x2, sin(pi x)(3), cos(pi x)(3), sin(2 pi x)(3), cos(2 pi x)(3), ...,
//    sin(2^(L-1) pi x)(3), cos(2^(L-1) pi x)(3)]
#pragma once
#include <cmath>
#include <cstdint>

#include "common/macros.h"

namespace nofa {

NOFA_HD int pe_dim(int n_freqs) { return 3 + 6 * n_freqs; }

// sin(pi v) and cos(pi v). On the GPU sincospi is exact at integers and needs no range
// reduction of a multiplied argument; on the host we multiply by pi in the accumulation
// type (double for float inputs).
#if defined(__CUDA_ARCH__)
NOFA_HD void sincos_pi(float v, float& s, float& c) { sincospif(v, &s, &c); }
NOFA_HD void sincos_pi(double v, double& s, double& c) { sincospi(v, &s, &c); }
NOFA_HD float exp_(float v) { return expf(v); }
NOFA_HD double exp_(double v) { return ::exp(v); }
#else
template <typename A>
inline void sincos_pi(A v, A& s, A& c) {
  const A a = static_cast<A>(3.14159265358979323846) * v;
  s = std::sin(a);
  c = std::cos(a);
}
template <typename A>
inline A exp_(A v) {
  return std::exp(v);
}
#endif

// Writes PE(x) to out[0 .. pe_dim(L)). Frequencies after the first come from the
// double-angle recurrence (sin 2t = 2 s c, cos 2t = c^2 - s^2) evaluated in A, so one
// sin/cos pair per coordinate is evaluated. With A = double the recurrence error stays
// far below float precision (it grows about 2x per octave: 2^L * 1e-16).
template <typename A, typename T>
NOFA_HD void positional_encoding(const T x[3], int n_freqs, T* out) {
  for (int a = 0; a < 3; ++a) {
    out[a] = x[a];
    A s, c;
    sincos_pi(static_cast<A>(x[a]), s, c);
    for (int k = 0; k < n_freqs; ++k) {
      out[3 + 6 * k + a] = static_cast<T>(s);
      out[6 + 6 * k + a] = static_cast<T>(c);
      const A s2 = A(2) * s * c;
      const A c2 = c * c - s * s;
      s = s2;
      c = c2;
    }
  }
}

// Chain rule through PE: given g = dL/dPE (P values), returns dL/dx (3 values).
// d sin(2^k pi x)/dx = 2^k pi cos(.), d cos(2^k pi x)/dx = -2^k pi sin(.).
template <typename A, typename T>
NOFA_HD void positional_encoding_backward(const T x[3], int n_freqs, const T* g, T gx[3]) {
  const A pi = static_cast<A>(3.14159265358979323846);
  for (int a = 0; a < 3; ++a) {
    A acc = static_cast<A>(g[a]);
    A s, c;
    sincos_pi(static_cast<A>(x[a]), s, c);
    A f = pi;
    for (int k = 0; k < n_freqs; ++k) {
      acc += f * (static_cast<A>(g[3 + 6 * k + a]) * c - static_cast<A>(g[6 + 6 * k + a]) * s);
      const A s2 = A(2) * s * c;
      const A c2 = c * c - s * s;
      s = s2;
      c = c2;
      f *= A(2);
    }
    gx[a] = static_cast<T>(acc);
  }
}

// torch.relu's rule: NaN stays NaN (a NaN weight, bias or input must reach the outputs, as
// in the reference; `v > 0 ? v : 0` or fmaxf(v, 0) would turn it into 0), -0 stays -0.
template <typename T>
NOFA_HD T relu(T v) {
  return v < T(0) ? T(0) : v;
}

// ReLU's derivative expressed through its output (h = relu(z)), as torch's
// threshold_backward: 0 where h <= 0, else g (a NaN h passes g through, like the reference).
template <typename T>
NOFA_HD T relu_grad_from_output(T h, T g) {
  return h <= T(0) ? T(0) : g;
}

// Numerically safe logistic function (no overflow of exp for large |z|).
template <typename T>
NOFA_HD T sigmoid(T z) {
  if (z >= T(0)) {
    const T e = exp_(-z);
    return T(1) / (T(1) + e);
  }
  const T e = exp_(z);
  return e / (T(1) + e);
}

// One point's output head: x_c = x + w * offset, w = sigmoid(z). Given the upstream
// gradients (of x_c, offset, weight), returns the gradients of the offset (D-Net output)
// and of the logit z (W-Net output); the direct x_c -> x gradient is gxc itself.
template <typename T>
NOFA_HD void deform_head_backward(const T gxc[3], const T goff[3], T gw, const T off[3], T w,
                                  T d_off[3], T& d_z) {
  T dw = gw;
  for (int a = 0; a < 3; ++a) {
    d_off[a] = gxc[a] * w + goff[a];
    dw += gxc[a] * off[a];
  }
  d_z = dw * w * (T(1) - w);
}

// ---- The deform_points CUDA kernels' arguments ----------------------------------------
// Raw pointers and sizes, no CUDA or torch headers: the kernels (cuda/deform_points_device.h)
// read them, the ATen glue (cuda/deform_points_cuda.cpp) fills them, and the CPU-thread test
// (tests/cpp/test_deform_emulated.cpp) fills them as the glue does.

constexpr int kDeformMaxLayers = 8;   // linear layers per MLP
constexpr int kDeformMaxWidth = 256;  // hidden width (and PE width) a tile keeps on chip

// One MLP. Layer 0 reads PE(x) only (alpha/beta are folded into the per-batch bias c).
template <typename T>
struct DeformMlp {
  int layers;                      // number of linear layers, >= 2
  int dims[kDeformMaxLayers + 1];  // dims[0] = P, dims[l + 1] = outputs of layer l
  const T* wt[kDeformMaxLayers];   // layer l weight transposed, [in, out] (layer 0: PE part)
  const T* w[kDeformMaxLayers];    // layer l weight, [out, in] (layer 0: PE part, [out, P])
  const T* b[kDeformMaxLayers];    // bias of layers >= 1
  const T* c;                      // [N, dims[1]]: first-layer bias per batch element
  int col[kDeformMaxLayers];       // column of layer l's output in the acts / deltas buffers
};

template <typename T>
struct DeformArgs {
  int64_t rows;  // points in this launch (a chunk of the flattened [N * M])
  int64_t row0;  // flattened index of the chunk's first point
  int64_t M;     // points per batch element (batch of a point = (row0 + r) / M)
  int n_freqs, P;
  const T* points;  // [N * M, 3]
  DeformMlp<T> d, w;
  // Forward outputs (null when not wanted), indexed by the flattened row.
  T* x_c;
  T* offset;
  T* weight;
  T* hidden;  // [N * M, hidden_ld]: D-Net layers 1 .. L-2, may be null
  int64_t hidden_ld;
  // Recompute-for-backward mode: every layer's output (and PE at column 0) of the chunk's
  // points, [rows, acts_ld], chunk-relative rows. Null in the plain forward.
  T* acts;
  int64_t acts_ld;
  // Backward: upstream gradients (flattened rows), per-layer pre-activation gradients
  // ([rows, acts_ld], same columns as acts) and the point gradient.
  const T* grad_x_c;
  const T* grad_offset;
  const T* grad_weight;
  T* deltas;
  T* grad_points;
};

}  // namespace nofa
