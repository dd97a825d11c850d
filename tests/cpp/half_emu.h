// Host stand-ins for the half-precision types of cuda/common/half_types.h (nvcc only), shared by
// the CPU-thread runs of CUDA kernel sources (tests/cpp/test_*_emulated.cpp): bfloat16 as raw bits
// (conversions with round-to-nearest-even, as __float2bfloat16_rn), float16 as the compiler's
// _Float16 where it has one (round-to-nearest-even, as __float2half_rn; NOFA_EMU_FLOAT16 says
// whether it exists), and nofa::to_float / from_float for them; emu::store<P>, the
// glue's channels-last plane copy in type P, and emu::rounded_to<P> for the references: values
// as a tensor of type P holds them.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace emu {
struct Bf16 {
  uint16_t bits;
};
#if defined(__FLT16_MAX__)
#define NOFA_EMU_FLOAT16 1
struct Half {
  _Float16 v;
};
#endif
}  // namespace emu

namespace nofa {
inline float to_float(float v) { return v; }
inline double to_float(double v) { return v; }
inline float to_float(emu::Bf16 v) {
  const uint32_t u = static_cast<uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}
template <typename P>
P from_float(float v);
template <>
inline emu::Bf16 from_float<emu::Bf16>(float v) {
  if (v != v) return {0x7fc0};
  uint32_t u;
  std::memcpy(&u, &v, sizeof(u));
  u += 0x7fffu + ((u >> 16) & 1u);
  return {static_cast<uint16_t>(u >> 16)};
}
#if defined(NOFA_EMU_FLOAT16)
inline float to_float(emu::Half v) { return static_cast<float>(v.v); }
template <>
inline emu::Half from_float<emu::Half>(float v) {
  return {static_cast<_Float16>(v)};
}
#endif
}  // namespace nofa

namespace emu {
// v stored in type P (float, double or a half type).
template <typename P>
P store(float v) {
  if constexpr (std::is_same_v<P, float> || std::is_same_v<P, double>) {
    return static_cast<P>(v);
  } else {
    return nofa::from_float<P>(v);
  }
}

// planes [NP, C, HW] (float) as the glue's channels-last copy [NP, HW, C] of type P
// (planes.permute(0, 1, 3, 4, 2).contiguous()), into out.
template <typename P>
void to_channels_last(const std::vector<float>& planes, int64_t NP, int64_t C, int64_t HW, P* out) {
  for (int64_t np = 0; np < NP; ++np) {
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t t = 0; t < HW; ++t)
        out[(np * HW + t) * C + c] = store<P>(planes[(np * C + c) * HW + t]);
    }
  }
}

// The values v as stored in type P (float, double: unchanged; a half type: rounded to it).
template <typename P>
std::vector<double> rounded_to(const std::vector<float>& v) {
  std::vector<double> r(v.size());
  for (size_t k = 0; k < v.size(); ++k) {
    if constexpr (std::is_same_v<P, float> || std::is_same_v<P, double>) {
      r[k] = v[k];
    } else {
      r[k] = nofa::to_float(nofa::from_float<P>(v[k]));
    }
  }
  return r;
}
}  // namespace emu
