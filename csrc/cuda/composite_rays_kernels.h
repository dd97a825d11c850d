// Raw-pointer launchers of the composite_rays CUDA kernels (no torch headers, so the .cu
// compiles in seconds). All tensors are contiguous; "rays" is N * R, K = S - 1.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace nofa {

// lo / hi point to the depth clamp range (min / max of depths) on the device.
template <typename T>
void launch_composite_rays_forward(const T* colors, const T* densities, const T* depths,
                                   const T* lo, const T* hi, T* features, T* depth, T* weights,
                                   int64_t rays, int64_t S, int64_t C, bool white_back,
                                   cudaStream_t stream);

// grad_features / grad_depth / grad_weights may each be null (no cotangent).
// Scratch: e [rays * S] (used when grad_features is given) and w [K * kScratch * rays]
// (kScratch from common/composite.h).
// grad_densities [rays * S] is always written; grad_colors, grad_depths and bounds
// ([rays, 2] per-ray gradients of the clamp bounds) may be null.
template <typename T>
void launch_composite_rays_backward(const T* grad_features, const T* grad_depth,
                                    const T* grad_weights, const T* colors, const T* densities,
                                    const T* depths, const T* lo, const T* hi, T* scratch_e,
                                    T* scratch_w, T* grad_colors, T* grad_densities,
                                    T* grad_depths, T* bounds, int64_t rays, int64_t S, int64_t C,
                                    bool white_back, cudaStream_t stream);

}  // namespace nofa
