// Volume compositing along one ray (EG3D MipRayMarcher2), shared by the CPU and CUDA
// kernels and the ctest program, so the arithmetic the GPU runs is also exercised on the CPU.
//
// A ray has S samples and K = S - 1 intervals. Interval k uses the midpoints of samples
// k and k + 1: sigma_k = softplus(density_mid - 1), alpha_k = 1 - exp(-sigma_k * delta_k),
// T_k = prod_{j<k} (1 - alpha_j + 1e-10), w_k = alpha_k * T_k. The operations are in the
// same order as the PyTorch reference, so float32 results agree to rounding.
//
// Backward without dividing by (1 - alpha): with b_k the cotangent of w_k,
//   dL/dalpha_k = T_k * (b_k - G_k),   G_k = sum_{i>k} b_i alpha_i prod_{k<j<i} p_j,
// and G_{k-1} = b_k alpha_k + p_k G_k (p_k = 1 - alpha_k + 1e-10) is a suffix recurrence,
// so a ray that saturates (alpha == 1, p == 1e-10, T == 0 further on) stays exact.
//
// Strides: the per-ray functions read sample s of a ray at [s * stride] (and interval k at
// [k * stride]). The CPU passes 1 (each ray's values are a contiguous run); the CUDA kernels
// pass the ray count, reading sample-major [S, rays] copies in which thread r walks column r
// and neighbouring threads touch neighbouring addresses (coalesced). The arithmetic is the
// same for every stride; tests/cpp/test_composite_math.cpp checks strided against stride 1.
// The CPU passes UnitStride, a compile-time 1, so its indexing compiles to the unstrided one.
#pragma once
#include <cfloat>
#include <cmath>
#include <type_traits>

#include "common/macros.h"
#include "common/osg_decoder.h"

namespace nofa {

using UnitStride = std::integral_constant<int64_t, 1>;

template <typename T>
struct FloatMax;
template <>
struct FloatMax<float> {
  NOFA_HD static float value() { return FLT_MAX; }
};
template <>
struct FloatMax<double> {
  NOFA_HD static double value() { return DBL_MAX; }
};

// EG3D's transmittance floor: keeps the product from being exactly 0 after one opaque step.
template <typename T>
NOFA_HD T transmit_eps() {
  return T(1e-10);
}

// softplus(x) with PyTorch's defaults (beta 1, threshold 20) at x = density_mid - 1, and
// its derivative written as PyTorch's softplus backward does (z / (z + 1), z = exp(x)),
// sharing the one exp.
template <typename T>
NOFA_HD T density_activation(T density_mid, T& grad) {
  return softplus(density_mid - T(1), grad);
}

template <typename T>
NOFA_HD T density_activation(T density_mid) {
  T unused;
  return density_activation(density_mid, unused);
}

// alpha = 1 - exp(-sigma * delta); `decay` = exp(-sigma * delta) is d alpha / d(sigma*delta).
// 1 - exp (not -expm1) on purpose: an almost empty interval must give alpha == 0 exactly,
// as in EG3D, so that an empty ray's depth becomes 0/0 and is clamped like EG3D's.
template <typename T>
NOFA_HD T interval_alpha(T sigma, T delta, T& decay) {
  decay = std::exp(-(sigma * delta));
  return T(1) - decay;
}

// Everything about interval k (between samples k and k + 1) that the backward reuses.
template <typename T>
struct Interval {
  T sigma, dsigma;  // activated density and d sigma / d density_mid
  T delta, alpha, decay;
};

// Samples k and k + 1 are dens / z[k * stride] and [(k + 1) * stride].
template <typename T, typename Stride = int64_t>
NOFA_HD Interval<T> interval_at(const T* dens, const T* z, int64_t k, Stride stride = 1) {
  Interval<T> iv;
  const int64_t i = k * stride, j = (k + 1) * stride;
  iv.sigma = density_activation((dens[i] + dens[j]) / T(2), iv.dsigma);
  iv.delta = z[j] - z[i];
  iv.alpha = interval_alpha(iv.sigma, iv.delta, iv.decay);
  return iv;
}

// Scratch of one ray, struct-of-arrays: field f of interval k at buf[(f * K + k) * stride]
// (stride 1 on the CPU, so a field is a contiguous run the CPU can fill with SIMD; the
// ray count on CUDA, where thread r owns column r and neighbouring threads touch
// neighbouring addresses).
enum IntervalField : int64_t { kTrans = 0, kSigma, kDSigma, kDelta, kAlpha, kDecay, kScratch };

template <typename T>
NOFA_HD void store_interval(T* buf, int64_t K, int64_t stride, int64_t k, const Interval<T>& iv) {
  buf[(kSigma * K + k) * stride] = iv.sigma;
  buf[(kDSigma * K + k) * stride] = iv.dsigma;
  buf[(kDelta * K + k) * stride] = iv.delta;
  buf[(kAlpha * K + k) * stride] = iv.alpha;
  buf[(kDecay * K + k) * stride] = iv.decay;
}

// All K intervals of a ray into the scratch (every field but kTrans); `stride` is both the
// inputs' sample stride and the scratch's (1 on the CPU, the ray count on CUDA).
template <typename T, typename Stride>
NOFA_HD void fill_intervals(const T* dens, const T* z, int64_t K, T* buf, Stride stride) {
  for (int64_t k = 0; k < K; ++k)
    store_interval(buf, K, stride, k, interval_at(dens, z, k, stride));
}

// Where ray_weights gets alpha_k: computed on the spot, or read from a filled scratch.
template <typename T>
struct AlphaFromInputs {
  const T* dens;
  const T* z;
  int64_t stride = 1;  // of dens and z, as in interval_at
  NOFA_HD T operator()(int64_t k) const { return interval_at(dens, z, k, stride).alpha; }
};

template <typename T>
struct AlphaFromScratch {
  const T* buf;
  int64_t K, stride;
  NOFA_HD T operator()(int64_t k) const { return buf[(kAlpha * K + k) * stride]; }
};

template <typename T>
NOFA_HD T transmit_factor(T alpha) {
  return T(1) - alpha + transmit_eps<T>();
}

template <typename T>
NOFA_HD bool is_finite(T v) {
  return v == v && v <= FloatMax<T>::value() && v >= -FloatMax<T>::value();
}

// torch.nan_to_num(v, nan=inf): NaN -> +inf, +inf -> largest finite, -inf -> lowest finite.
template <typename T>
NOFA_HD T nan_to_inf(T v) {
  if (v != v) return T(INFINITY);
  if (v > FloatMax<T>::value()) return FloatMax<T>::value();
  if (v < -FloatMax<T>::value()) return -FloatMax<T>::value();
  return v;
}

// The ray depth as EG3D computes it: weighted mean depth, NaN -> +inf, clamped to [lo, hi].
template <typename T>
NOFA_HD T ray_depth(T zsum, T wsum, T lo, T hi) {
  const T v = nan_to_inf(zsum / wsum);
  const T m = v < lo ? lo : v;
  return m > hi ? hi : m;
}

// Routes the cotangent g of clamp(v, lo, hi) like PyTorch's clamp(Tensor, Tensor, Tensor)
// backward: a value on a bound shares g half and half with that bound (unless lo == hi).
template <typename T>
NOFA_HD void clamp_grad(T v, T lo, T hi, T g, T& gv, T& glo, T& ghi) {
  gv = glo = ghi = T(0);
  if (v < lo) {
    glo = g;
  } else if (v > hi) {
    ghi = g;
  } else if (lo == hi) {
    gv = g;
  } else if (v == lo) {
    gv = glo = g * T(0.5);
  } else if (v == hi) {
    gv = ghi = g * T(0.5);
  } else {
    gv = g;
  }
}

// The depth output is clamped to [lo, hi] = [min(depths), max(depths)]; a ray on a bound
// sends its share of the depth cotangent to that bound, and the bound's total gradient
// `total` is shared evenly between the `count` elements of depths equal to it (as
// torch.min / max do between ties). No gradient reaches a bound, or an element equal to it,
// when total is 0: with a NaN in depths both bounds are NaN, no element compares equal
// (count 0) and 0 / 0 must not turn every depth gradient into NaN. Used by the CPU and
// the CUDA backward alike.
template <typename T>
NOFA_HD T bound_share(T total, int64_t count) {
  return total == T(0) || count == 0 ? T(0) : total / T(count);
}

// Forward weights of one ray with S = K + 1 depths z (sample s at z[s * stride]) and
// alpha_k = alpha_at(k). Writes w_k to w[k * stride] (w may be null) and returns sum(w) and
// sum(w * depth_mid).
template <typename T, typename AlphaAt, typename Stride>
NOFA_HD void ray_weights(const T* z, int64_t K, const AlphaAt& alpha_at, T* w, Stride stride,
                         T& wsum, T& zsum) {
  T trans = T(1);
  wsum = zsum = T(0);
  for (int64_t k = 0; k < K; ++k) {
    const T alpha = alpha_at(k);
    const T wk = alpha * trans;
    if (w) w[k * stride] = wk;
    wsum += wk;
    zsum += wk * ((z[k * stride] + z[(k + 1) * stride]) / T(2));
    trans *= transmit_factor(alpha);
  }
}

// What one ray's backward needs besides its densities and depths (e and gw are read with
// ray_backward's stride).
template <typename T>
struct RayCotangents {
  const T* e;   // [S] e_s = sum_c g_rgb_c * colors[s, c] (g_rgb = 2 * grad_features); or null
  const T* gw;  // [K] cotangent of the weights output; or null
  T gw_const;   // added to every b_k: -sum_c g_rgb_c with a white background, else 0
  T gdepth;     // cotangent of the depth output (0 when none)
  T lo, hi;     // the depth clamp range (min / max of the whole depths tensor)
};

// Backward of one ray, from a scratch already filled by fill_intervals (or its SIMD twin
// on the CPU), so no exp / log1p is evaluated here. `stride` is the distance between
// consecutive samples / intervals in z, ct.e, ct.gw, gdens, gz and a scratch field (1 on
// the CPU, the ray count on CUDA). gdens ([S], overwritten) receives
// dL/d densities; gz ([S], overwritten, may be null) dL/d depths without the clamp-bound
// part, which goes to glo / ghi (dL/d lo, dL/d hi) for the caller to route to the
// elements of depths that hold the minimum / maximum. On return field kTrans holds the
// weights w_k (the colour gradient needs them).
template <typename T, typename Stride>
NOFA_HD void ray_backward(const T* z, int64_t K, const RayCotangents<T>& ct, T* buf, Stride stride,
                          T* gdens, T* gz, T& glo, T& ghi) {
  auto at = [&](IntervalField f, int64_t k) -> T& { return buf[(f * K + k) * stride]; };
  // Depth midpoint of interval k (samples k and k + 1).
  auto zmid = [&](int64_t k) { return (z[k * stride] + z[(k + 1) * stride]) / T(2); };
  T trans = T(1), wsum = T(0), zsum = T(0);
  for (int64_t k = 0; k < K; ++k) {
    const T alpha = at(kAlpha, k);
    at(kTrans, k) = trans;
    wsum += alpha * trans;
    zsum += alpha * trans * zmid(k);
    trans *= transmit_factor(alpha);
  }
  // Depth = clamp(nan_to_num(zsum / wsum)): nan_to_num passes a gradient only to finite
  // values, and 0/0 (an empty ray) gets none, where autograd through zsum / wsum would
  // produce 0 * (1/0) = NaN.
  const T raw = zsum / wsum;
  T gv;
  clamp_grad(nan_to_inf(raw), ct.lo, ct.hi, ct.gdepth, gv, glo, ghi);
  const T graw = is_finite(raw) ? gv : T(0);
  // d depth / d zsum and d depth / d wsum; both 0 (not 0 * NaN) when raw gets no gradient.
  const T gzsum = graw != T(0) ? graw / wsum : T(0);
  const T gwsum = graw != T(0) ? -gzsum * raw : T(0);
  const T bconst = ct.gw_const + gwsum;

  T suffix = T(0);                   // G_k
  T gd_next = T(0), gz_next = T(0);  // what sample k + 1 gets from interval k + 1
  for (int64_t k = K - 1; k >= 0; --k) {
    const T tk = at(kTrans, k), alpha = at(kAlpha, k);
    const T wk = alpha * tk;
    T cot = bconst + gzsum * zmid(k);  // b_k, the cotangent of w_k
    if (ct.e) cot += (ct.e[k * stride] + ct.e[(k + 1) * stride]) / T(2);
    if (ct.gw) cot += ct.gw[k * stride];
    const T galpha = tk * (cot - suffix);
    suffix = cot * alpha + transmit_factor(alpha) * suffix;
    at(kTrans, k) = wk;

    const T gx = galpha * at(kDecay, k);  // d alpha / d(sigma * delta) = exp(-sigma * delta)
    const T gdmid = gx * at(kDelta, k) * at(kDSigma, k);
    gdens[(k + 1) * stride] = gd_next + gdmid / T(2);
    gd_next = gdmid / T(2);
    if (gz) {
      const T gdelta = gx * at(kSigma, k);
      const T gzmid = gzsum * wk;
      gz[(k + 1) * stride] = gz_next + gdelta + gzmid / T(2);
      gz_next = -gdelta + gzmid / T(2);
    }
  }
  gdens[0] = gd_next;
  if (gz) gz[0] = gz_next;
}

}  // namespace nofa
