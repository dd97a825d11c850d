// fill_intervals for the CPU kernels, in float32 8 (AVX2) or 16 (AVX-512) intervals at a
// time; which one: the tier isa::path_for gives the op (cpu/isa.h, docs/cpu_isa.md).
//
// The per-interval math (exp, log1p, exp) is independent across intervals, and scalar
// libm calls were most of the CPU kernel's time. The vector exp / log1p come from SLEEF
// as exported by libtorch_cpu (the functions PyTorch's own CPU softplus and exp use, so
// the results match the reference's to the bit where both use them). They are declared
// weak: a torch build that does not export them has no vector tier for this op (see
// implement_intervals). The scalar tier, float64 and the tails use fill_intervals of
// common/composite.h. In float32 the paths agree to rounding (a few ulp), not bit for bit.
#pragma once
#include <cstdint>
#include <type_traits>

#include "common/composite.h"
#include "cpu/isa.h"

#if NOFA_ISA_X86
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
extern "C" {
__m256 Sleef_expf8_u10(__m256) __attribute__((weak));
__m256 Sleef_log1pf8_u10(__m256) __attribute__((weak));
__m512 Sleef_expf16_u10(__m512) __attribute__((weak));
__m512 Sleef_log1pf16_u10(__m512) __attribute__((weak));
}
#pragma GCC pop_options
#endif

namespace nofa {

#if NOFA_ISA_X86
// Intervals [k, k + 8): the same operations, in the same order, as interval_at.
NOFA_TARGET_AVX2 inline void intervals8(const float* dens, const float* z, int64_t K, int64_t k,
                                        float* buf) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  const __m256 threshold = _mm256_set1_ps(20.0f), sign = _mm256_set1_ps(-0.0f);
  const __m256 dmid =
      _mm256_mul_ps(_mm256_add_ps(_mm256_loadu_ps(dens + k), _mm256_loadu_ps(dens + k + 1)), half);
  const __m256 x = _mm256_sub_ps(dmid, one);
  const __m256 e = Sleef_expf8_u10(x);
  const __m256 big = _mm256_cmp_ps(x, threshold, _CMP_GT_OQ);
  const __m256 sigma = _mm256_blendv_ps(Sleef_log1pf8_u10(e), x, big);
  const __m256 dsigma = _mm256_blendv_ps(_mm256_div_ps(e, _mm256_add_ps(e, one)), one, big);
  const __m256 delta = _mm256_sub_ps(_mm256_loadu_ps(z + k + 1), _mm256_loadu_ps(z + k));
  const __m256 decay = Sleef_expf8_u10(_mm256_xor_ps(_mm256_mul_ps(sigma, delta), sign));
  _mm256_storeu_ps(buf + kSigma * K + k, sigma);
  _mm256_storeu_ps(buf + kDSigma * K + k, dsigma);
  _mm256_storeu_ps(buf + kDelta * K + k, delta);
  _mm256_storeu_ps(buf + kAlpha * K + k, _mm256_sub_ps(one, decay));
  _mm256_storeu_ps(buf + kDecay * K + k, decay);
}

// Intervals [k, k + 16), likewise.
NOFA_TARGET_AVX512 inline void intervals16(const float* dens, const float* z, int64_t K, int64_t k,
                                           float* buf) {
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  const __m512 dmid =
      _mm512_mul_ps(_mm512_add_ps(_mm512_loadu_ps(dens + k), _mm512_loadu_ps(dens + k + 1)), half);
  const __m512 x = _mm512_sub_ps(dmid, one);
  const __m512 e = Sleef_expf16_u10(x);
  const __mmask16 big = _mm512_cmp_ps_mask(x, _mm512_set1_ps(20.0f), _CMP_GT_OQ);
  const __m512 sigma = _mm512_mask_blend_ps(big, Sleef_log1pf16_u10(e), x);
  const __m512 dsigma = _mm512_mask_blend_ps(big, _mm512_div_ps(e, _mm512_add_ps(e, one)), one);
  const __m512 delta = _mm512_sub_ps(_mm512_loadu_ps(z + k + 1), _mm512_loadu_ps(z + k));
  const __m512 decay =
      Sleef_expf16_u10(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(sigma, delta)));
  _mm512_storeu_ps(buf + kSigma * K + k, sigma);
  _mm512_storeu_ps(buf + kDSigma * K + k, dsigma);
  _mm512_storeu_ps(buf + kDelta * K + k, delta);
  _mm512_storeu_ps(buf + kAlpha * K + k, _mm512_sub_ps(one, decay));
  _mm512_storeu_ps(buf + kDecay * K + k, decay);
}

NOFA_TARGET_AVX2 inline void fill_intervals_avx2(const float* dens, const float* z, int64_t K,
                                                 float* buf) {
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) intervals8(dens, z, K, k, buf);
  for (; k < K; ++k) store_interval(buf, K, int64_t(1), k, interval_at(dens, z, k));
}

NOFA_TARGET_AVX512 inline void fill_intervals_avx512(const float* dens, const float* z, int64_t K,
                                                     float* buf) {
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) intervals16(dens, z, K, k, buf);
  if (k + 8 <= K) {
    intervals8(dens, z, K, k, buf);
    k += 8;
  }
  for (; k < K; ++k) store_interval(buf, K, int64_t(1), k, interval_at(dens, z, k));
}
#endif

// Declares the vector tiers of `op`'s interval math that this build and torch provide.
inline bool implement_intervals(isa::Op op) {
#if NOFA_ISA_X86
  if (Sleef_expf8_u10 && Sleef_log1pf8_u10) isa::implement(op, {isa::Isa::kAvx2});
  if (Sleef_expf8_u10 && Sleef_log1pf8_u10 && Sleef_expf16_u10 && Sleef_log1pf16_u10)
    isa::implement(op, {isa::Isa::kAvx512});
#endif
  return true;
}

// The path a call of `op` takes on float32 (float64: scalar), recorded.
template <typename T>
inline isa::Isa intervals_path(isa::Op op) {
  const isa::Isa t = std::is_same_v<T, float> ? isa::path_for(op) : isa::Isa::kScalar;
  isa::record(op, t);
  return t;
}

// The scratch (stride 1) of one ray with K intervals: every field but kTrans.
template <typename T>
inline void fill_intervals_cpu(const T* dens, const T* z, int64_t K, T* buf, isa::Isa tier) {
#if NOFA_ISA_X86
  if constexpr (std::is_same_v<T, float>) {
    if (tier == isa::Isa::kAvx512) return fill_intervals_avx512(dens, z, K, buf);
    if (tier == isa::Isa::kAvx2) return fill_intervals_avx2(dens, z, K, buf);
  }
#endif
  (void)tier;
  fill_intervals(dens, z, K, buf, UnitStride{});
}

}  // namespace nofa
