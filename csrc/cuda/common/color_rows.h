// ColorRows: where the composite kernels find a sample's colour row. Plain C++ (no CUDA
// headers), shared by the kernels (cuda/composite_rays_device.h), their launchers
// (cuda/composite_rays.cu), the ATen glue of composite_rays and composite_rays_merged
// (cuda/composite_rays_cuda.cpp) and the CPU emulation of the kernels
// (tests/cpp/test_composite_emulated.cpp).
#pragma once
#include <cstdint>

#include "common/macros.h"

namespace nofa {

// Where sample s of ray r keeps its colour row (P = const T for colours, T for their
// gradient): composite_rays' own [rays, S, C] rows (src null, a the tensor), or, for
// composite_rays_merged, the merge of set a [rays, Sa, C] and set b [rays, Sb, C] with
// src [rays, S] the merged order's source rows (i < Sa: row i of a, else row i - Sa of b).
template <typename P>
struct ColorRows {
  P* a;
  P* b;
  const int32_t* src;
  int64_t Sa, Sb, C;
  NOFA_HD P* row(int64_t r, int64_t s, int64_t S) const {
    if (!src) return a + (r * S + s) * C;
    const int64_t i = src[r * S + s];
    return i < Sa ? a + (r * Sa + i) * C : b + (r * Sb + (i - Sa)) * C;
  }
};

}  // namespace nofa
