// The sum of a 3-vector over the 32 lanes of a full warp, by butterfly shuffles in a fixed
// order (the result does not depend on the run; every lane ends with the total). Shared by
// the point gradients of sample_triplane and the fused decode_triplane backward. Device code
// only (the CPU-thread tests supply __shfl_xor_sync).
#pragma once

namespace nofa {

template <typename T>
__device__ __forceinline__ void warp_sum3(T (&v)[3]) {
#pragma unroll
  for (int a = 0; a < 3; ++a) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v[a] += __shfl_xor_sync(0xffffffffu, v[a], off);
  }
}

}  // namespace nofa
