// decode_triplane's float32 fast path on x86-64 CPUs with AVX-512: the tri-plane gather, both
// dense layers and the activations of a group of 4 points, all in registers (the weights,
// ~20 KiB, stay in L1). Taken for the decoder shapes it is written for (C and Hd multiples of
// 16, the 1 + F outputs fitting the padded output vectors); everything else, float64, and
// CPUs without AVX-512 use the generic tile path in decode_triplane.cpp.
//
// Why by hand: per point the OSG decoder is only ~4k multiply-adds, so per-tile ATen calls
// (GEMM dispatch, a separate softplus pass over a [tile, Hd] buffer, sigmoid, scaling) cost
// as much as the arithmetic. Here the hidden activations never leave registers in the
// forward; the backward keeps, per tile, exactly what the two weight-gradient GEMMs need.
//
// The activations use short polynomial forms of exp and log1p written for the ranges they
// meet (exp of a non-positive number, log1p on [0, 1]), ~3x cheaper than general vector
// libm calls, accurate to a few float32 ulp. Results agree with the reference to float32
// rounding, not bit for bit (the 1/3 of the tri-plane mean is also folded into the first
// layer's weights).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/triplane.h"
#include "cpu/softplus_table.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define NOFA_AVX512_DECODER 1
#include <immintrin.h>

#endif

// GCC 12 flags the intrinsics' own undefined pass-through operands (-Wmaybe-uninitialized).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace nofa {
namespace fastdec {

// Shapes of the fast path, in 16-float vectors: channels, hidden units, padded outputs
// (F feature columns, then the density column, then zeros).
constexpr int CV = 2, HV = 4, OV = 3;
constexpr int kC = 16 * CV, kHd = 16 * HV, kOP = 16 * OV;
constexpr int kGroup = 4;  // points per register block

inline bool shape_ok(int64_t C, int64_t Hd, int64_t O) { return C == kC && Hd == kHd && O >= 1 && O <= kOP; }

// The decoder rearranged for the fast path; built once per call.
struct Weights {
  alignas(64) float w0t[kC][kHd];  // W0^T / 3: the tri-plane mean folded in
  alignas(64) float b0[kHd];
  alignas(64) float w0[kHd][kC];   // W0 as is (backward: grad of the mean features)
  alignas(64) float w1t[kHd][kOP]; // column j < F: W1[1 + j] (the feature logits)
  alignas(64) float w1p[kOP][kHd]; // row j < F: W1[1 + j]; row F: W1[0] (backward)
  alignas(64) float b1[kOP];       // b1[1 + j], then b1[0]
  alignas(64) float w1d[kHd];      // W1[0]: the density is a dot product, not a padded column
  float b1d;
  int F;

  Weights(const float* W0, const float* B0, const float* W1, const float* B1, int64_t O) {
    std::memset(this, 0, sizeof(*this));
    F = static_cast<int>(O - 1);
    for (int k = 0; k < kHd; ++k) {
      b0[k] = B0[k];
      for (int c = 0; c < kC; ++c) {
        w0t[c][k] = W0[k * kC + c] / 3.0f;
        w0[k][c] = W0[k * kC + c];
      }
    }
    for (int j = 0; j <= F; ++j) {
      const int row = j < F ? j + 1 : 0;  // output column j of the padded layout
      b1[j] = B1[row];
      if (j == F) {
        b1d = B1[0];
        for (int k = 0; k < kHd; ++k) w1d[k] = W1[k];
      }
      for (int k = 0; k < kHd; ++k) {
        if (j < F) w1t[k][j] = W1[row * kHd + k];
        w1p[j][k] = W1[row * kHd + k];
      }
    }
  }
};

// Planes in channels-last layout [N, 3, H, W, C] and points [N * M, 3].
struct Source {
  const float* planes;
  const float* pts;
  int64_t M, H, W;
  float scale;  // 2 / box_warp
};

#ifdef NOFA_AVX512_DECODER

inline bool supported() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

// NOFA_CPU_SIMD=0 forces the generic path (tests compare both against the reference).
inline bool available() {
  if (!supported()) return false;
  const char* env = std::getenv("NOFA_CPU_SIMD");
  return !(env && env[0] == '0');
}

// Random-ish points make the lookups latency-bound: the taps of a point are computed
// kAhead points early, their texels prefetched, and the record kept in a small ring until
// the point is gathered (so the tap arithmetic is done once, not once to prefetch and once
// to read). Taps outside the planes point at a row of zeros with weight 0: no branches.
constexpr int kAhead = 8;
constexpr int kRing = 16;  // power of two > kAhead

struct PointTaps {
  const float* src[12];  // plane p, corner k -> entry 4 p + k
  float w[12];
};

alignas(64) inline const float kZeroRow[kC] = {};

class TapRing {
 public:
  TapRing(const Source& s, int64_t i0, int64_t i1) : s_(s), i1_(i1) {
    for (int64_t i = i0; i < std::min(i1, i0 + kAhead); ++i) fill(i);
  }
  // Taps of point i (in order: i0, i0 + 1, ...); schedules point i + kAhead.
  const PointTaps& take(int64_t i) {
    if (i + kAhead < i1_) fill(i + kAhead);
    return ring_[i & (kRing - 1)];
  }

 private:
  void fill(int64_t i) {
    PointTaps& r = ring_[i & (kRing - 1)];
    const int64_t n = i / s_.M, HW = s_.H * s_.W;
    const float* q = s_.pts + i * 3;
    const float x = q[0] * s_.scale, y = q[1] * s_.scale, z = q[2] * s_.scale;
    for (int p = 0; p < 3; ++p) {
      float u, v;
      plane_uv(p, x, y, z, u, v);
      BilinearTaps<float> t;
      bilinear_taps(u, v, s_.H, s_.W, t);
      const float* base = s_.planes + (n * 3 + p) * HW * kC;
      for (int k = 0; k < 4; ++k) {
        const bool in = t.off[k] >= 0;
        const float* a = in ? base + t.off[k] * kC : kZeroRow;
        r.src[4 * p + k] = a;
        r.w[4 * p + k] = in ? t.w[k] : 0.0f;
        if (in) {
          for (int b = 0; b < kC; b += 16) __builtin_prefetch(a + b);
        }
      }
    }
  }
  const Source& s_;
  int64_t i1_;
  PointTaps ring_[kRing];
};

// Sum over the three planes (not yet the mean) of the bilinear features of one point -> f[kC].
__attribute__((target("avx512f"))) inline void gather(const PointTaps& t, float* f) {
  __m512 acc[CV];
  for (int v = 0; v < CV; ++v) acc[v] = _mm512_setzero_ps();
#pragma GCC unroll 12
  for (int k = 0; k < 12; ++k) {
    const __m512 w = _mm512_set1_ps(t.w[k]);
    for (int c = 0; c < CV; ++c) acc[c] = _mm512_fmadd_ps(w, _mm512_load_ps(t.src[k] + 16 * c), acc[c]);
  }
  for (int c = 0; c < CV; ++c) _mm512_store_ps(f + 16 * c, acc[c]);
}

// y = W x + b for a group of points, in registers: x is kGroup rows of IN values, W^T is
// [IN][ROW] (row k: the weights of input k for every output), the first V output vectors.
// Each row of W^T is loaded once for the whole group.
template <int IN, int ROW, int V, int OUTV>
__attribute__((target("avx512f"))) inline void dense(const float (*wt)[ROW], const float* bias, const float (*x)[IN],
                                                     int g, __m512 (&y)[kGroup][OUTV]) {
  for (int p = 0; p < kGroup; ++p)
    for (int v = 0; v < V; ++v) y[p][v] = _mm512_load_ps(bias + 16 * v);
#pragma GCC unroll 4
  for (int k = 0; k < IN; ++k) {
    __m512 row[V];
    for (int v = 0; v < V; ++v) row[v] = _mm512_load_ps(&wt[k][16 * v]);
    for (int p = 0; p < kGroup; ++p) {
      const __m512 b = _mm512_set1_ps(x[p < g ? p : 0][k]);
      for (int v = 0; v < V; ++v) y[p][v] = _mm512_fmadd_ps(b, row[v], y[p][v]);
    }
  }
}

// z = W0 f / 3 + b0 (f: the three planes' sum).
__attribute__((target("avx512f"))) inline void layer0(const Weights& w, const float (*f)[kC], int g,
                                                      __m512 (&z)[kGroup][HV]) {
  dense<kC, kHd, HV, HV>(w.w0t, w.b0, f, g, z);
}

// x = W1 h + b1 in the padded output layout; only the first V output vectors.
template <int V>
__attribute__((target("avx512f"))) inline void layer1(const Weights& w, const float (*h)[kHd], int g,
                                                      __m512 (&x)[kGroup][OV]) {
  dense<kHd, kOP, V, OV>(w.w1t, w.b1, h, g, x);
}

// exp(x) for x <= 0: Cody-Waite reduction to r in [-ln2/2, ln2/2], a degree-7 Taylor
// polynomial (truncation error < 1e-8 relative), then scaling by 2^n. Inputs below -87 are
// clamped (exp is then < 2e-38, which every caller adds to 1 or 2).
__attribute__((target("avx512f"))) inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);  // operand order: NaN propagates
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln2 split in two
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// 1 / d for d in [1, 3]: the 14-bit estimate refined by one Newton step (~1 ulp).
__attribute__((target("avx512f"))) inline __m512 reciprocal(__m512 d) {
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

// log1p(t) for t in [0, 1] as 2 atanh(s), s = t / (2 + t) in [0, 1/3]: no cancellation for
// small t; the odd series is cut after s^13 (remainder < 2e-8 relative).
__attribute__((target("avx512f"))) inline __m512 log1p_unit(__m512 t) {
  const __m512 s = _mm512_mul_ps(t, reciprocal(_mm512_add_ps(t, _mm512_set1_ps(2.0f))));
  const __m512 s2 = _mm512_mul_ps(s, s);
  __m512 p = _mm512_set1_ps(1.0f / 13.0f);
  p = _mm512_fmadd_ps(p, s2, _mm512_set1_ps(1.0f / 11.0f));
  p = _mm512_fmadd_ps(p, s2, _mm512_set1_ps(1.0f / 9.0f));
  p = _mm512_fmadd_ps(p, s2, _mm512_set1_ps(1.0f / 7.0f));
  p = _mm512_fmadd_ps(p, s2, _mm512_set1_ps(1.0f / 5.0f));
  p = _mm512_fmadd_ps(p, s2, _mm512_set1_ps(1.0f / 3.0f));
  p = _mm512_fmadd_ps(p, s2, _mm512_set1_ps(1.0f));
  return _mm512_mul_ps(_mm512_add_ps(s, s), p);
}

// softplus(z) = max(z, 0) + log1p(exp(-|z|)) and its derivative sigmoid(z). PyTorch returns
// z itself above its threshold of 20; there the log1p term is below half an ulp of z, so
// the two agree.
__attribute__((target("avx512f"))) inline __m512 softplus(__m512 z, __m512* grad) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512 t = exp_nonpositive(_mm512_sub_ps(zero, _mm512_abs_ps(z)));
  if (grad) {
    const __mmask16 neg = _mm512_cmp_ps_mask(z, zero, _CMP_LT_OQ);
    const __m512 r = reciprocal(_mm512_add_ps(t, _mm512_set1_ps(1.0f)));
    *grad = _mm512_mask_mul_ps(r, neg, r, t);  // 1 / (1 + t) or t / (1 + t)
  }
  return _mm512_add_ps(_mm512_max_ps(zero, z), log1p_unit(t));
}

// softplus alone (the forward): max(z, 0) + g(|z|) with g from the piecewise polynomials of
// cpu/softplus_table.h (absolute error < 1.2e-7). The coefficient lookups are permutes, which
// run beside the FMA unit, so this costs about a third of the exp + log1p form above.
__attribute__((target("avx512f"))) inline __m512 softplus_forward(__m512 z) {
  const __m512 a = _mm512_abs_ps(z);
  const __m512 kf = _mm512_min_ps(
      _mm512_roundscale_ps(_mm512_mul_ps(a, _mm512_set1_ps(1.0f / kSoftplusWidth)), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC),
      _mm512_set1_ps(float(kSoftplusIntervals - 1)));
  const __m512i k = _mm512_cvttps_epi32(kf);
  // offset from the interval's centre
  const __m512 x = _mm512_sub_ps(a, _mm512_fmadd_ps(kf, _mm512_set1_ps(kSoftplusWidth), _mm512_set1_ps(kSoftplusWidth / 2)));
  constexpr int D = sizeof(kSoftplusCoeffs) / sizeof(kSoftplusCoeffs[0]) - 1;
  __m512 p = _mm512_permutex2var_ps(_mm512_load_ps(kSoftplusCoeffs[D]), k, _mm512_load_ps(kSoftplusCoeffs[D] + 16));
  for (int d = D - 1; d >= 0; --d) {
    const __m512 c = _mm512_permutex2var_ps(_mm512_load_ps(kSoftplusCoeffs[d]), k, _mm512_load_ps(kSoftplusCoeffs[d] + 16));
    p = _mm512_fmadd_ps(p, x, c);
  }
  // Past the table g < 1.2e-7: 0 (also for |z| = inf; NaN passes through max below).
  const __mmask16 in = _mm512_cmp_ps_mask(a, _mm512_set1_ps(kSoftplusIntervals * kSoftplusWidth), _CMP_LT_OQ);
  return _mm512_add_ps(_mm512_max_ps(_mm512_setzero_ps(), z), _mm512_maskz_mov_ps(in, p));
}

__attribute__((target("avx512f"))) inline __m512 sigmoid(__m512 x) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512 t = exp_nonpositive(_mm512_sub_ps(zero, _mm512_abs_ps(x)));
  const __m512 r = reciprocal(_mm512_add_ps(t, _mm512_set1_ps(1.0f)));
  return _mm512_mask_mul_ps(r, _mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ), r, t);
}

// Forward of points [i0, i1): density [P] and features [P, F] rows; V = ceil(F / 16)
// feature vectors (0: density only).
template <int V>
__attribute__((target("avx512f"))) void forward_range(const Weights& w, const Source& s, int64_t i0, int64_t i1,
                                                      float* dens, float* feat) {
  alignas(64) float f[kGroup][kC];
  alignas(64) float h[kGroup][kHd];
  const __m512 scale = _mm512_set1_ps(1.002f), shift = _mm512_set1_ps(0.001f);
  const int F = w.F;
  TapRing ring(s, i0, i1);
  for (int64_t i = i0; i < i1; i += kGroup) {
    const int g = static_cast<int>(std::min<int64_t>(kGroup, i1 - i));
    for (int p = 0; p < g; ++p) gather(ring.take(i + p), f[p]);
    __m512 z[kGroup][HV];
    layer0(w, f, g, z);
    for (int p = 0; p < kGroup; ++p) {
      __m512 d = _mm512_setzero_ps();
      for (int v = 0; v < HV; ++v) {
        const __m512 hv = softplus_forward(z[p][v]);
        if (V > 0) _mm512_store_ps(&h[p][16 * v], hv);
        d = _mm512_fmadd_ps(hv, _mm512_load_ps(w.w1d + 16 * v), d);
      }
      if (p < g) dens[i + p] = _mm512_reduce_add_ps(d) + w.b1d;
    }
    if constexpr (V > 0) {
      __m512 o[kGroup][OV];
      layer1<V>(w, h, g, o);
      for (int p = 0; p < g; ++p) {
        float* fo = feat + (i + p) * F;
        for (int v = 0; v < V; ++v) {
          const int j = 16 * v, cnt = F - j > 16 ? 16 : F - j;
          const __m512 y = _mm512_fmsub_ps(sigmoid(o[p][v]), scale, shift);
          if (cnt == 16) {
            _mm512_storeu_ps(fo + j, y);
          } else {
            _mm512_mask_storeu_ps(fo + j, static_cast<__mmask16>((1u << cnt) - 1u), y);
          }
        }
      }
    }
  }
}

// Per-tile buffers of the backward (rows = points of the tile).
struct BackwardTile {
  float* fmean;  // [n, kC]   mean tri-plane features
  float* h;      // [n, kHd]  softplus(z)
  float* gz;     // [n, kHd]  d loss / d z
  float* gout;   // [n, kOP]  d loss / d x in the padded output layout (column F: density)
  float* gfeat;  // [P, kC]   d loss / d mean features, rows of the whole call
  float* gb0;    // [kHd]     running sums of gz rows (fc0 bias gradient)
  float* gb1;    // [kOP]     running sums of gout rows (fc1 bias gradient, padded layout)
  const float* feat;  // [P, F] the forward's features, or null: recompute the output layer
};

// Backward of points [i0, i1): fills the tile rows (relative to i0) and gfeat rows;
// V = ceil(F / 16) feature-logit vectors (at least 1).
template <int V>
__attribute__((target("avx512f"))) void backward_range(const Weights& w, const Source& s, int64_t i0,
                                                              int64_t i1, const float* gd, const float* gf,
                                                              const BackwardTile& t) {
  alignas(64) float f[kGroup][kC];
  const int F = w.F;
  const __m512 third = _mm512_set1_ps(1.0f / 3.0f), one = _mm512_set1_ps(1.0f);
  const __m512 widen = _mm512_set1_ps(1.002f), inv_widen = _mm512_set1_ps(1.0f / 1.002f);
  const __m512 shift = _mm512_set1_ps(0.001f);
  __m512 sb0[HV], sb1[OV];
  for (int v = 0; v < HV; ++v) sb0[v] = _mm512_setzero_ps();
  for (int v = 0; v < OV; ++v) sb1[v] = _mm512_setzero_ps();
  TapRing ring(s, i0, i1);
  for (int64_t i = i0; i < i1; i += kGroup) {
    const int g = static_cast<int>(std::min<int64_t>(kGroup, i1 - i));
    for (int p = 0; p < g; ++p) gather(ring.take(i + p), f[p]);
    __m512 z[kGroup][HV];
    layer0(w, f, g, z);
    const int64_t r0 = i - i0;  // first tile row of the group
    float(*h)[kHd] = reinterpret_cast<float(*)[kHd]>(t.h + r0 * kHd);
    float(*gz)[kHd] = reinterpret_cast<float(*)[kHd]>(t.gz + r0 * kHd);
    for (int p = 0; p < g; ++p) {
      for (int v = 0; v < CV; ++v)
        _mm512_storeu_ps(t.fmean + (r0 + p) * kC + 16 * v, _mm512_mul_ps(_mm512_load_ps(f[p] + 16 * v), third));
      for (int v = 0; v < HV; ++v) {
        __m512 dz;
        _mm512_storeu_ps(&h[p][16 * v], softplus(z[p][v], &dz));
        _mm512_storeu_ps(&gz[p][16 * v], dz);  // softplus'(z) for now; d loss / d z below
      }
    }
    // Only the feature logits' sigmoids are needed (the density's gradient passes straight
    // through): from the forward's features when given, s = (features + 0.001) / 1.002.
    __m512 o[kGroup][OV];
    if (!t.feat) layer1<V>(w, h, g, o);
    float(*gout)[kOP] = reinterpret_cast<float(*)[kOP]>(t.gout + r0 * kOP);
    for (int p = 0; p < g; ++p) {
      float* go = gout[p];
      const float* gfr = gf + (i + p) * F;
      for (int v = 0; v < OV; ++v) {
        const int j = 16 * v;
        const int cnt = F - j < 0 ? 0 : (F - j > 16 ? 16 : F - j);
        if (cnt == 0) {
          _mm512_storeu_ps(go + j, _mm512_setzero_ps());
          continue;
        }
        const __mmask16 m = static_cast<__mmask16>((1u << cnt) - 1u);
        const __m512 sg =
            t.feat ? _mm512_mul_ps(_mm512_add_ps(_mm512_maskz_loadu_ps(m, t.feat + (i + p) * F + j), shift), inv_widen)
                   : sigmoid(o[p][v]);
        const __m512 up = _mm512_maskz_loadu_ps(m, gfr + j);
        // d features / d logit = 1.002 * s * (1 - s)
        _mm512_storeu_ps(go + j, _mm512_mul_ps(_mm512_mul_ps(up, widen), _mm512_mul_ps(sg, _mm512_sub_ps(one, sg))));
      }
      go[F] = gd[i + p];
      for (int v = 0; v < OV; ++v) sb1[v] = _mm512_add_ps(sb1[v], _mm512_loadu_ps(go + 16 * v));
    }
    // gh = W1^T gout and gz = gh * softplus'(z), for the group at once (weights loaded once).
    {
      __m512 gh[kGroup][HV];
      for (int p = 0; p < kGroup; ++p)
        for (int v = 0; v < HV; ++v) gh[p][v] = _mm512_setzero_ps();
      for (int j = 0; j <= F; ++j) {
        __m512 row[HV];
        for (int v = 0; v < HV; ++v) row[v] = _mm512_load_ps(&w.w1p[j][16 * v]);
        for (int p = 0; p < kGroup; ++p) {
          const __m512 b = _mm512_set1_ps(gout[p < g ? p : 0][j]);
          for (int v = 0; v < HV; ++v) gh[p][v] = _mm512_fmadd_ps(b, row[v], gh[p][v]);
        }
      }
      for (int p = 0; p < g; ++p)
        for (int v = 0; v < HV; ++v) {
          const __m512 d = _mm512_mul_ps(gh[p][v], _mm512_loadu_ps(&gz[p][16 * v]));
          _mm512_storeu_ps(&gz[p][16 * v], d);
          sb0[v] = _mm512_add_ps(sb0[v], d);
        }
    }
    // gfeat = W0^T gz.
    {
      __m512 gm[kGroup][CV];
      for (int p = 0; p < kGroup; ++p)
        for (int v = 0; v < CV; ++v) gm[p][v] = _mm512_setzero_ps();
#pragma GCC unroll 4
      for (int k = 0; k < kHd; ++k) {
        __m512 row[CV];
        for (int v = 0; v < CV; ++v) row[v] = _mm512_load_ps(&w.w0[k][16 * v]);
        for (int p = 0; p < kGroup; ++p) {
          const __m512 b = _mm512_set1_ps(gz[p < g ? p : 0][k]);
          for (int v = 0; v < CV; ++v) gm[p][v] = _mm512_fmadd_ps(b, row[v], gm[p][v]);
        }
      }
      for (int p = 0; p < g; ++p)
        for (int v = 0; v < CV; ++v) _mm512_storeu_ps(t.gfeat + (i + p) * kC + 16 * v, gm[p][v]);
    }
  }
  for (int v = 0; v < HV; ++v) _mm512_storeu_ps(t.gb0 + 16 * v, _mm512_add_ps(_mm512_loadu_ps(t.gb0 + 16 * v), sb0[v]));
  for (int v = 0; v < OV; ++v) _mm512_storeu_ps(t.gb1 + 16 * v, _mm512_add_ps(_mm512_loadu_ps(t.gb1 + 16 * v), sb1[v]));
}

#else

inline bool supported() { return false; }
inline bool available() { return false; }
template <int V>
inline void forward_range(const Weights&, const Source&, int64_t, int64_t, float*, float*) {}
struct BackwardTile {
  float *fmean, *h, *gz, *gout, *gfeat, *gb0, *gb1;
  const float* feat;
};
template <int V>
inline void backward_range(const Weights&, const Source&, int64_t, int64_t, const float*, const float*,
                           const BackwardTile&) {}

#endif

}  // namespace fastdec
}  // namespace nofa

#pragma GCC diagnostic pop
