// Raw-pointer launchers of the composite_rays and composite_rays_merged CUDA kernels (no
// torch headers, so the .cu compiles in seconds). All tensors are contiguous; "rays" is
// N * R, K = S - 1.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "common/macros.h"
#include "cuda/color_rows.h"

namespace nofa {

// Layouts (docs/composite_rays.md, "CUDA"): the per-ray arrays are sample-major, so that
// the one-thread-per-ray scans (thread r walks column r) coalesce: densities, depths,
// grad_densities, grad_depths and the colour dot products are [S, rays] (sample s of ray
// r at [s * rays + r]); weights and grad_weights are [K, rays]. Colours, features and
// grad_features keep their [rays, S, C] / [rays, C] rows (their kernels run one thread
// per channel). The host transposes with ATen.
//
// Types: T is the accumulation and per-ray type (float or double); P the colours' (and
// their gradient's) type: T itself, or __half / __nv_bfloat16 with T = float (autocast).
// lo / hi point to the depth clamp range (min / max of depths) on the device.
template <typename T, typename P>
void launch_composite_rays_forward(const ColorRows<const P>& colors, const T* densities_t,
                                   const T* depths_t, const T* lo, const T* hi, T* features,
                                   T* depth, T* weights_t, int64_t rays, int64_t S, int64_t C,
                                   bool white_back, cudaStream_t stream);

// grad_features [rays, C] / grad_depth [rays] / grad_weights_t [K, rays] may each be null (no
// cotangent). grad_features_sum [rays] = 2 * sum_c grad_features[r, c], needed (non-null)
// with white_back and grad_features, else ignored.
// Scratch: e_t [S * rays] (used when grad_features is given) and w [K * kScratch * rays]
// (kScratch from common/composite.h, field f of interval k of ray r at
// [(f * K + k) * rays + r]).
// grad_densities_t [S, rays] is always written; grad_depths_t [S, rays] and bounds ([2, rays]:
// per-ray dL/d lo, then dL/d hi) may be null; grad_colors is skipped when both its a and b
// are null.
template <typename T, typename P>
void launch_composite_rays_backward(const T* grad_features, const T* grad_features_sum,
                                    const T* grad_depth, const T* grad_weights_t,
                                    const ColorRows<const P>& colors, const T* densities_t,
                                    const T* depths_t, const T* lo, const T* hi, T* scratch_e_t,
                                    T* scratch_w, const ColorRows<P>& grad_colors,
                                    T* grad_densities_t, T* grad_depths_t, T* bounds, int64_t rays,
                                    int64_t S, int64_t C, bool white_back, cudaStream_t stream);

// grad_depths[i] += share of the clamp bounds' gradients for every depths[i] equal to *lo /
// *hi: totals [2] = (dL/d lo, dL/d hi) summed over rays, counts [2] = how many elements
// equal lo / hi; nothing is added where a total is 0 (common/composite.h bound_share).
template <typename T>
void launch_composite_bound_grads(const T* depths, T* grad_depths, int64_t n, const T* lo,
                                  const T* hi, const T* totals, const int64_t* counts,
                                  cudaStream_t stream);

// composite_rays_merged: per ray, the merged densities / depths of two sorted sets and the
// source row of each merged sample (src [rays, Sa + Sb], as in ColorRows). Sample-major like
// the compositing kernels: inputs [Sa, rays] / [Sb, rays], outputs [Sa + Sb, rays].
template <typename T>
void launch_merge_sets(const T* densities_a_t, const T* depths_a_t, const T* densities_b_t,
                       const T* depths_b_t, int64_t rays, int64_t Sa, int64_t Sb, T* densities_t,
                       T* depths_t, int32_t* src, cudaStream_t stream);

// values [rays, Sa + Sb] in merged order -> out_a [rays, Sa], out_b [rays, Sb].
template <typename T>
void launch_scatter_sets(const T* values, const int32_t* src, int64_t rays, int64_t Sa, int64_t Sb,
                         T* out_a, T* out_b, cudaStream_t stream);

}  // namespace nofa
