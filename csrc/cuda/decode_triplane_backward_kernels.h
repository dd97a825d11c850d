// Raw-pointer launcher of the fused decode_triplane CUDA backward kernel (no torch headers).
// Planes and their gradient are channels-last: [N, 3, H, W, C].
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace nofa {

// Values in one row of the fused kernel's weight-gradient output, in this order:
// fc0 weight [Hd, C], fc0 bias [Hd], fc1 weight [O, Hd], fc1 bias [O].
int64_t decode_triplane_weight_grad_size(int64_t C, int64_t Hd, int64_t O);

// Whether the fused kernel takes these sizes on the current device (float32 only; the
// caller checks the dtype): C <= 32, 1 + F = O <= 33, and its shared memory within the
// device's opt-in limit per block.
bool decode_triplane_fused_backward_ok(int64_t C, int64_t Hd, int64_t O);

// Thread blocks the fused kernel is launched with for P points: at most one per tile of
// 128 points and at most what the device keeps resident at once. The weight-gradient
// output has this many rows.
int64_t decode_triplane_fused_backward_blocks(int64_t P, int64_t C, int64_t Hd, int64_t O);

// The fused backward. gd [P], gf [P, O - 1]: cotangents of density and features; w0 / w1
// in nn.Linear layout ([Hd, C], [O, Hd]). Each of grad_planes_cl (zero-initialised
// [N, 3, H, W, C], accumulated with atomics), grad_points ([P, 3], written) and
// grad_weights ([blocks, decode_triplane_weight_grad_size], one partial sum per block,
// written; the caller sums the rows) may be null when not wanted. `blocks` comes from
// decode_triplane_fused_backward_blocks.
void launch_decode_triplane_backward_fused(const float* gd, const float* gf, const float* planes_cl,
                                           const float* points, const float* w0, const float* b0,
                                           const float* w1, const float* b1, float* grad_planes_cl,
                                           float* grad_points, float* grad_weights, int64_t P,
                                           int64_t M, int64_t C, int64_t H, int64_t W, int64_t Hd,
                                           int64_t O, float scale, int64_t blocks,
                                           cudaStream_t stream);

}  // namespace nofa
