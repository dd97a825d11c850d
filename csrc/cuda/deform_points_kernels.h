// Raw-pointer launchers of the deform_points CUDA kernels (no torch headers, so the .cu
// compiles in seconds); their arguments are in cuda/deform_points_args.h.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/deform_points_args.h"

namespace nofa {

// Shared memory a launch needs (0 if the configuration is unsupported).
template <typename T>
size_t deform_smem_bytes(int P, int max_width);

template <typename T>
void launch_deform_forward(const DeformArgs<T>& a, int max_width, cudaStream_t stream);

// Needs a.acts filled by launch_deform_forward for the same chunk.
template <typename T>
void launch_deform_backward(const DeformArgs<T>& a, int max_width, cudaStream_t stream);

}  // namespace nofa
