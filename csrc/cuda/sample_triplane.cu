// Launchers of the sample_triplane CUDA kernels (docs/sample_triplane.md): the kernels, and
// how they split the work, are in cuda/sample_triplane_device.h (device code only, so that
// tests/cpp/test_sample_triplane_emulated.cpp can run the same source on the CPU). Raw
// pointers, no torch headers; declared where they are called: cuda/sample_triplane_cuda.cpp
// and, for the chunked backward, cuda/decode_triplane_cuda.cpp.
#include <cstdint>
#include <type_traits>

#include "cuda/common/half_types.h"
#include "cuda/sample_triplane_device.h"

namespace nofa {

template <typename T>
void launch_sample_triplane_forward(const T* planes_cl, const T* points, T* out, int64_t N,
                                    int64_t M, int64_t C, int64_t H, int64_t W, T scale, int reduce,
                                    cudaStream_t stream) {
  const int64_t n = N * M * C;
  if (n == 0) return;
  if constexpr (std::is_same<T, float>::value) {
    if (vec4_ok(planes_cl, out, C)) {
      forward_vec4_kernel<<<blocks_for(n / 4), kThreads, 0, stream>>>(planes_cl, points, out, N, M,
                                                                      C, H, W, scale, reduce);
      return;
    }
  }
  forward_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(planes_cl, points, out, N, M, C, H, W,
                                                            scale, reduce);
}

template <typename T>
void launch_sample_triplane_backward(const T* grad_out, const T* planes_cl, const T* points,
                                     T* grad_planes_cl, T* grad_points, int64_t N, int64_t M,
                                     int64_t C, int64_t H, int64_t W, T scale, int reduce,
                                     cudaStream_t stream) {
  if (N * M * C == 0) return;
  if (grad_planes_cl) {
    bool done = false;
    if constexpr (std::is_same<T, float>::value) {
      if (vec4_ok(grad_out, grad_planes_cl, C)) {
        backward_planes_vec4_kernel<<<blocks_for(N * M * C / 4), kThreads, 0, stream>>>(
            grad_out, points, grad_planes_cl, N, M, C, H, W, scale, reduce);
        done = true;
      }
    }
    if (!done) {
      backward_planes_kernel<T><<<blocks_for(N * M * C), kThreads, 0, stream>>>(
          grad_out, points, grad_planes_cl, N, M, C, H, W, scale, reduce);
    }
  }
  if (grad_points) {
    backward_points_kernel<T><<<blocks_for(N * M * kWarp), kThreads, 0, stream>>>(
        grad_out, planes_cl, points, grad_points, N, M, C, H, W, scale, reduce);
  }
}

void launch_sample_triplane_forward_half(const void* planes_cl, bool bf16, const float* points,
                                         void* out, int64_t N, int64_t M, int64_t C, int64_t H,
                                         int64_t W, float scale, int reduce, cudaStream_t stream) {
  const int64_t n = N * M * C;
  if (n == 0) return;
  if (bf16) {
    forward_half_kernel<__nv_bfloat16><<<blocks_for(n), kThreads, 0, stream>>>(
        static_cast<const __nv_bfloat16*>(planes_cl), points, static_cast<__nv_bfloat16*>(out), N,
        M, C, H, W, scale, reduce);
  } else {
    forward_half_kernel<__half><<<blocks_for(n), kThreads, 0, stream>>>(
        static_cast<const __half*>(planes_cl), points, static_cast<__half*>(out), N, M, C, H, W,
        scale, reduce);
  }
}

#define NOFA_INSTANTIATE(T)                                                                       \
  template void launch_sample_triplane_forward<T>(                                                \
      const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, T, int, cudaStream_t); \
  template void launch_sample_triplane_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, \
                                                   int64_t, int64_t, int64_t, int64_t, T, int,    \
                                                   cudaStream_t);
NOFA_INSTANTIATE(float)
NOFA_INSTANTIATE(double)
#undef NOFA_INSTANTIATE

}  // namespace nofa
