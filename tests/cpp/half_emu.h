// Host stand-ins for the half-precision types of cuda/half_types.h (nvcc only), shared by the
// CPU-thread runs of CUDA kernel sources (tests/cpp/test_*_emulated.cpp): bfloat16 as raw bits
// (conversions with round-to-nearest-even, as __float2bfloat16_rn), float16 as the compiler's
// _Float16 where it has one (round-to-nearest-even, as __float2half_rn; NOFA_EMU_FLOAT16 says
// whether it exists), and nofa::to_float / from_float for them; emu::rounded_to<P> for the
// references: values as a tensor of type P holds them.
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
