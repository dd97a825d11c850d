// Raw-pointer launcher of the decode_triplane CUDA forward kernel (no torch headers).
// Planes are channels-last: [N, 3, H, W, C]; fc weights in nn.Linear layout.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace nofa {

// Points per thread block for C features and Hd hidden units, so that the block's shared
// memory (tile * (C + Hd) values) stays within the default 48 KiB.
int64_t decode_triplane_tile(int64_t C, int64_t Hd, int64_t elem_size);

template <typename T>
void launch_decode_triplane_forward(const T* planes_cl, const T* points, const T* w0, const T* b0,
                                    const T* w1, const T* b1, T* density, T* features, int64_t N,
                                    int64_t M, int64_t C, int64_t H, int64_t W, int64_t Hd, int64_t O,
                                    T scale, cudaStream_t stream);

}  // namespace nofa
