// decode_triplane's AVX2 path: the primitives of cpu/decode_triplane_tile_body.h on 8-float vectors
// (AVX2 + FMA), and that body compiled for AVX2 (see cpu/decode_triplane_tile.h, docs/cpu_isa.md).
// Differences from the AVX-512 primitives: 16 registers instead of 32 (blocks of 4 points x
// 2 output vectors), masks as vectors (blends, maskload / maskstore), the 2^n scaling of exp
// by building the exponent bits, a 12-bit reciprocal estimate (plus one Newton step), and
// softplus in the forward by exp + log1p (no 32-entry permute for the table form).
#include "common/triplane.h"
#include "cpu/decode_triplane_tile.h"

#if NOFA_ISA_X86
#include <immintrin.h>

// Everything below is compiled for AVX2 + FMA and only called after isa::path_for says so.
#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace nofa {
namespace fastdec {
namespace avx2 {
namespace {

constexpr isa::Isa kIsa = isa::Isa::kAvx2;
using V = __m256;
constexpr int kW = 8;
constexpr int kGroup = 4;  // 4 points x 2 vectors of accumulators + 2 weight rows + 1 broadcast
constexpr int kVB = 2;

inline V zero() { return _mm256_setzero_ps(); }
inline V set1(float x) { return _mm256_set1_ps(x); }
inline V loadu(const float* p) { return _mm256_loadu_ps(p); }
inline void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
inline V add(V a, V b) { return _mm256_add_ps(a, b); }
inline V sub(V a, V b) { return _mm256_sub_ps(a, b); }
inline V mul(V a, V b) { return _mm256_mul_ps(a, b); }
inline V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
inline V fmsub(V a, V b, V c) { return _mm256_fmsub_ps(a, b, c); }
inline V max(V a, V b) { return _mm256_max_ps(a, b); }  // b when either is NaN
inline V abs(V a) { return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
inline V select_neg(V x, V a, V b) {
  return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, zero(), _CMP_LT_OQ));
}
inline float hsum(V a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
alignas(64) const int32_t kLanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
inline __m256i first(int n) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLanes + 8 - n));
}
inline V load_first(const float* p, int n) { return _mm256_maskload_ps(p, first(n)); }
inline void store_first(float* p, V v, int n) { _mm256_maskstore_ps(p, first(n), v); }

// exp(x) for x <= 0, as the AVX-512 twin: Cody-Waite reduction, degree-7 Taylor polynomial,
// then 2^n from its exponent bits (n >= -126 after the clamp: a normal float).
inline V exp_nonpositive(V x) {
  x = max(set1(-87.0f), x);  // operand order: NaN propagates
  const V n = _mm256_round_ps(mul(x, set1(1.44269504088896341f)),
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
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return mul(p, _mm256_castsi256_ps(e));
}

// 1 / d for d in [1, 3]: the 12-bit estimate refined by one Newton step (~2 ulp).
inline V reciprocal(V d) {
  const V r = _mm256_rcp_ps(d);
  return mul(r, fnmadd(d, r, set1(2.0f)));
}

inline V softplus(V z, V* grad);  // from the body
inline V softplus_forward(V z) { return softplus(z, nullptr); }

#include "cpu/decode_triplane_tile_body.h"

}  // namespace
}  // namespace avx2

const Kernels* kernels_avx2() { return &avx2::kKernels; }

}  // namespace fastdec
}  // namespace nofa

#pragma GCC pop_options

#else

namespace nofa::fastdec {
const Kernels* kernels_avx2() { return nullptr; }  // not an x86-64 build
}  // namespace nofa::fastdec

#endif
