// Raw-pointer launcher of the decode_triplane CUDA forward kernel (no torch headers).
// Planes are channels-last: [N, 3, H, W, C].
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace nofa {

// Points per thread block of the general kernel for C features and Hd hidden units, so
// that its shared memory (tile * (C + Hd) values) stays within the default 48 KiB; 0 when
// C or Hd is not positive (the glue refuses those first).
int64_t decode_triplane_tile(int64_t C, int64_t Hd, int64_t elem_size);

// Whether the fast kernel (decoder in registers, weights in shared memory) takes these
// sizes on the current device: float32 planes, C <= 32, 1 + F <= 33.
bool decode_triplane_fast_path(int64_t C, int64_t Hd, int64_t O, int64_t H, int64_t W,
                               int64_t elem_size);

// fast: w0 / w1 in nn.Linear layout ([Hd, C], [O, Hd]); otherwise transposed ([C, Hd],
// [Hd, O]) for the general kernel's coalesced reads.
template <typename T>
void launch_decode_triplane_forward(const T* planes_cl, const T* points, const T* w0, const T* b0,
                                    const T* w1, const T* b1, T* density, T* features, int64_t N,
                                    int64_t M, int64_t C, int64_t H, int64_t W, int64_t Hd,
                                    int64_t O, T scale, bool fast, cudaStream_t stream);

// The fast kernel with half-precision planes (float16, or bfloat16 when bf16; e.g. under
// torch.autocast): float32 points, weights, arithmetic and outputs. Only for sizes that
// decode_triplane_fast_path accepts (with elem_size 4).
void launch_decode_triplane_forward_half(const void* planes_cl, bool bf16, const float* points,
                                         const float* w0, const float* b0, const float* w1,
                                         const float* b1, float* density, float* features,
                                         int64_t N, int64_t M, int64_t C, int64_t H, int64_t W,
                                         int64_t Hd, int64_t O, float scale, cudaStream_t stream);

}  // namespace nofa
