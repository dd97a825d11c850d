// fill_intervals for the CPU kernel, 8 intervals at a time in float32 on x86-64 with AVX2.
//
// The per-interval math (exp, log1p, exp) is independent across intervals, and scalar
// libm calls were most of the CPU kernel's time. The vector exp / log1p come from SLEEF
// as exported by libtorch_cpu (the functions PyTorch's own CPU softplus and exp use, so
// the results match the reference's to the bit where both use them). They are declared
// weak: a torch build that does not export them, or a CPU without AVX2 / FMA, takes the
// scalar fill_intervals of common/composite.h (also what float64 and the tail use).
// In float32 the two paths agree to rounding (a few ulp), not bit for bit.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/composite.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define NOFA_AVX2_INTERVALS 1
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")
extern "C" {
__m256 Sleef_expf8_u10(__m256) __attribute__((weak));
__m256 Sleef_log1pf8_u10(__m256) __attribute__((weak));
}
#pragma GCC pop_options
#endif

namespace nofa {

#ifdef NOFA_AVX2_INTERVALS
// Same operations, in the same order, as interval_at.
__attribute__((target("avx2,fma"))) inline void fill_intervals_avx2(const float* dens,
                                                                    const float* z, int64_t K,
                                                                    float* buf) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  const __m256 threshold = _mm256_set1_ps(20.0f), sign = _mm256_set1_ps(-0.0f);
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 dmid = _mm256_mul_ps(_mm256_add_ps(_mm256_loadu_ps(dens + k), _mm256_loadu_ps(dens + k + 1)), half);
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
  for (; k < K; ++k) store_interval(buf, K, int64_t(1), k, interval_at(dens, z, k));
}

inline bool avx2_intervals_available() {
  static const bool ok = Sleef_expf8_u10 != nullptr && Sleef_log1pf8_u10 != nullptr &&
                         __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}
#endif

// Whether fill_intervals_cpu may take the SIMD path: AVX2 + FMA + SLEEF present and the
// environment variable NOFA_COMPOSITE_SCALAR unset or "0" (it forces the scalar path, the
// one non-AVX2 CPUs and the CUDA kernels run, so the tests can compare it too).
inline bool use_simd_intervals() {
  const char* force = std::getenv("NOFA_COMPOSITE_SCALAR");
  if (force && *force && std::strcmp(force, "0") != 0) return false;
#ifdef NOFA_AVX2_INTERVALS
  return avx2_intervals_available();
#else
  return false;
#endif
}

// The scratch (stride 1) of one ray with K intervals: every field but kTrans.
template <typename T>
inline void fill_intervals_cpu(const T* dens, const T* z, int64_t K, T* buf, bool /*simd*/) {
  fill_intervals(dens, z, K, buf, int64_t(1));
}

template <>
inline void fill_intervals_cpu<float>(const float* dens, const float* z, int64_t K, float* buf,
                                      bool simd) {
#ifdef NOFA_AVX2_INTERVALS
  if (simd) {
    fill_intervals_avx2(dens, z, K, buf);
    return;
  }
#endif
  fill_intervals(dens, z, K, buf, int64_t(1));
}

}  // namespace nofa
