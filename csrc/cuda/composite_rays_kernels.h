// Raw-pointer launchers of the composite_rays and composite_rays_merged CUDA kernels (no
// torch headers, so the .cu compiles in seconds). All tensors are contiguous; "rays" is
// N * R, K = S - 1.
#pragma once
#include <cuda_runtime.h>

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

// lo / hi point to the depth clamp range (min / max of depths) on the device.
template <typename T>
void launch_composite_rays_forward(const ColorRows<const T>& colors, const T* densities,
                                   const T* depths, const T* lo, const T* hi, T* features,
                                   T* depth, T* weights, int64_t rays, int64_t S, int64_t C,
                                   bool white_back, cudaStream_t stream);

// grad_features / grad_depth / grad_weights may each be null (no cotangent).
// Scratch: e [rays * S] (used when grad_features is given) and w [K * kScratch * rays]
// (kScratch from common/composite.h).
// grad_densities [rays * S] is always written; grad_depths and bounds ([rays, 2] per-ray
// gradients of the clamp bounds) may be null; grad_colors is skipped when both its a and
// b are null.
template <typename T>
void launch_composite_rays_backward(const T* grad_features, const T* grad_depth,
                                    const T* grad_weights, const ColorRows<const T>& colors,
                                    const T* densities, const T* depths, const T* lo, const T* hi,
                                    T* scratch_e, T* scratch_w, const ColorRows<T>& grad_colors,
                                    T* grad_densities, T* grad_depths, T* bounds, int64_t rays,
                                    int64_t S, int64_t C, bool white_back, cudaStream_t stream);

// grad_depths[i] += share of the clamp bounds' gradients for every depths[i] equal to *lo /
// *hi: totals [2] = (dL/d lo, dL/d hi) summed over rays, counts [2] = how many elements
// equal lo / hi; nothing is added where a total is 0 (common/composite.h bound_share).
template <typename T>
void launch_composite_bound_grads(const T* depths, T* grad_depths, int64_t n, const T* lo,
                                  const T* hi, const T* totals, const int64_t* counts,
                                  cudaStream_t stream);

// composite_rays_merged: per ray, the merged densities / depths [rays, Sa + Sb] of two
// sorted sets and the source row of each merged sample (src, as in ColorRows).
template <typename T>
void launch_merge_sets(const T* densities_a, const T* depths_a, const T* densities_b,
                       const T* depths_b, int64_t rays, int64_t Sa, int64_t Sb, T* densities,
                       T* depths, int32_t* src, cudaStream_t stream);

// values [rays, Sa + Sb] in merged order -> out_a [rays, Sa], out_b [rays, Sb].
template <typename T>
void launch_scatter_sets(const T* values, const int32_t* src, int64_t rays, int64_t Sa,
                         int64_t Sb, T* out_a, T* out_b, cudaStream_t stream);

}  // namespace nofa
