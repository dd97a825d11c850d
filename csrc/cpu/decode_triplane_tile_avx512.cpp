// decode_triplane's AVX-512 path: the primitives of cpu/decode_triplane_tile_body.h on 16-float
// vectors, and that body compiled for AVX-512 (see cpu/decode_triplane_tile.h, docs/cpu_isa.md).
#include "common/triplane.h"
#include "cpu/decode_triplane_tile.h"
#include "cpu/softplus_table.h"

#if NOFA_ISA_X86
#include <immintrin.h>

// Everything below is compiled for AVX-512 and only called after isa::path_for says so.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")
// GCC 12 flags the intrinsics' own undefined pass-through operands (-Wmaybe-uninitialized).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace nofa {
namespace fastdec {
namespace avx512 {
namespace {

constexpr isa::Isa kIsa = isa::Isa::kAvx512;
using V = __m512;
constexpr int kW = 16;
constexpr int kGroup = 4;  // 4 points x 4 vectors of accumulators: half the 32 registers
constexpr int kVB = 4;

inline V zero() { return _mm512_setzero_ps(); }
inline V set1(float x) { return _mm512_set1_ps(x); }
inline V loadu(const float* p) { return _mm512_loadu_ps(p); }
inline void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
inline V add(V a, V b) { return _mm512_add_ps(a, b); }
inline V sub(V a, V b) { return _mm512_sub_ps(a, b); }
inline V mul(V a, V b) { return _mm512_mul_ps(a, b); }
inline V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
inline V fmsub(V a, V b, V c) { return _mm512_fmsub_ps(a, b, c); }
inline V max(V a, V b) { return _mm512_max_ps(a, b); }  // b when either is NaN
inline V abs(V a) { return _mm512_abs_ps(a); }
inline V select_neg(V x, V a, V b) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, zero(), _CMP_LT_OQ), b, a);
}
inline float hsum(V a) { return _mm512_reduce_add_ps(a); }
inline __mmask16 first(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
inline V load_first(const float* p, int n) { return _mm512_maskz_loadu_ps(first(n), p); }
inline void store_first(float* p, V v, int n) { _mm512_mask_storeu_ps(p, first(n), v); }

// exp(x) for x <= 0: Cody-Waite reduction to r in [-ln2/2, ln2/2], a degree-7 Taylor
// polynomial (truncation error < 1e-8 relative), then scaling by 2^n. Inputs below -87 are
// clamped (exp is then < 2e-38, which every caller adds to 1 or 2).
inline V exp_nonpositive(V x) {
  x = max(set1(-87.0f), x);  // operand order: NaN propagates
  const V n = _mm512_roundscale_ps(mul(x, set1(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  V r = fnmadd(n, set1(0.693145751953125f), x);  // ln2 split in two
  r = fnmadd(n, set1(1.428606765330187e-06f), r);
  V p = set1(1.0f / 5040.0f);
  p = fmadd(p, r, set1(1.0f / 720.0f));
  p = fmadd(p, r, set1(1.0f / 120.0f));
  p = fmadd(p, r, set1(1.0f / 24.0f));
  p = fmadd(p, r, set1(1.0f / 6.0f));
  p = fmadd(p, r, set1(0.5f));
  p = fmadd(p, r, set1(1.0f));
  p = fmadd(p, r, set1(1.0f));
  return _mm512_scalef_ps(p, n);
}

// 1 / d for d in [1, 3]: the 14-bit estimate refined by one Newton step (~1 ulp).
inline V reciprocal(V d) {
  const V r = _mm512_rcp14_ps(d);
  return mul(r, fnmadd(d, r, set1(2.0f)));
}

// softplus alone (the forward): max(z, 0) + g(|z|) with g from the piecewise polynomials of
// cpu/softplus_table.h (absolute error < 1.2e-7). The coefficient lookups are two-register
// permutes, which run beside the FMA unit, so this costs about a third of the exp + log1p
// form (softplus in the body). AVX2 has no 32-entry permute: its path uses that form.
inline V softplus_forward(V z) {
  const V a = abs(z);
  const V kf = _mm512_min_ps(_mm512_roundscale_ps(mul(a, set1(1.0f / kSoftplusWidth)),
                                                  _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC),
                             set1(float(kSoftplusIntervals - 1)));
  const __m512i k = _mm512_cvttps_epi32(kf);
  // offset from the interval's centre
  const V x = sub(a, fmadd(kf, set1(kSoftplusWidth), set1(kSoftplusWidth / 2)));
  constexpr int D = sizeof(kSoftplusCoeffs) / sizeof(kSoftplusCoeffs[0]) - 1;
  V p = _mm512_permutex2var_ps(loadu(kSoftplusCoeffs[D]), k, loadu(kSoftplusCoeffs[D] + 16));
  for (int d = D - 1; d >= 0; --d) {
    const V c =
        _mm512_permutex2var_ps(loadu(kSoftplusCoeffs[d]), k, loadu(kSoftplusCoeffs[d] + 16));
    p = fmadd(p, x, c);
  }
  // Past the table g < 1.2e-7: 0 (also for |z| = inf; NaN passes through max below).
  const __mmask16 in = _mm512_cmp_ps_mask(a, set1(kSoftplusIntervals * kSoftplusWidth), _CMP_LT_OQ);
  return add(max(zero(), z), _mm512_maskz_mov_ps(in, p));
}

#include "cpu/decode_triplane_tile_body.h"

}  // namespace
}  // namespace avx512

const Kernels* kernels_avx512() { return &avx512::kKernels; }

}  // namespace fastdec
}  // namespace nofa

#pragma GCC diagnostic pop
#pragma GCC pop_options

#else

namespace nofa::fastdec {
const Kernels* kernels_avx512() { return nullptr; }  // not an x86-64 build
}  // namespace nofa::fastdec

#endif
