// Raw-pointer launchers of the sample_triplane CUDA kernels (no torch headers, so the .cu
// compiles in seconds). Planes and their gradient are channels-last: [N, 3, H, W, C].
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace nofa {

template <typename T>
void launch_sample_triplane_forward(const T* planes_cl, const T* points, T* out, int64_t N,
                                    int64_t M, int64_t C, int64_t H, int64_t W, T scale, int reduce,
                                    cudaStream_t stream);

// grad_planes_cl (zero-initialised) and grad_points may each be null when not needed.
template <typename T>
void launch_sample_triplane_backward(const T* grad_out, const T* planes_cl, const T* points,
                                     T* grad_planes_cl, T* grad_points, int64_t N, int64_t M,
                                     int64_t C, int64_t H, int64_t W, T scale, int reduce,
                                     cudaStream_t stream);

// Half-precision planes (float16, or bfloat16 when bf16) with float32 points: output in
// the planes' type, accumulated in float32. Pointers to [N, 3, H, W, C] planes and the
// [N, M, C or 3C] output of that type.
void launch_sample_triplane_forward_half(const void* planes_cl, bool bf16, const float* points,
                                         void* out, int64_t N, int64_t M, int64_t C, int64_t H,
                                         int64_t W, float scale, int reduce, cudaStream_t stream);

}  // namespace nofa
