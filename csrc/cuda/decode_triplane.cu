// Launchers of the decode_triplane CUDA forward kernels (docs/decode_triplane.md, "CUDA"):
// the kernels, and how they split the work, are in cuda/decode_triplane_device.h (device code
// only, so that tests/cpp/test_decode_forward_emulated.cpp can run the same source on the CPU).
// Raw pointers, no torch headers; declared in cuda/decode_triplane_cuda.cpp, which calls them.
#include <type_traits>

#include "cuda/decode_triplane_device.h"
#include "cuda/common/half_types.h"
#include "cuda/common/shared_memory_limit.h"

namespace nofa {
namespace {

template <typename T>
struct Accum {
  using type = float;
};
template <>
struct Accum<double> {
  using type = double;
};

}  // namespace

int64_t decode_triplane_tile(int64_t C, int64_t Hd, int64_t elem_size) {
  if (C <= 0 || Hd <= 0 || elem_size <= 0) return 0;  // refused by the glue; never divide by 0
  const int64_t fit = kSharedBytes / ((C + Hd) * elem_size);
  return fit < kMaxTile ? fit : kMaxTile;
}

bool decode_triplane_fast_path(int64_t C, int64_t Hd, int64_t O, int64_t H, int64_t W,
                               int64_t elem_size) {
  if (elem_size == static_cast<int64_t>(sizeof(double))) return false;  // registers: float only
  if (C < 1 || C > kFastC || O < 1 || O > kFastO || Hd < 1) return false;
  if (H * W >= (int64_t(1) << 31)) return false;  // texel offsets are kept as int
  const int64_t bytes = fast_layout(C, Hd, O).total * static_cast<int64_t>(sizeof(float));
  return fits_shared_memory(bytes);
}

template <typename T>
void launch_decode_triplane_forward(const T* planes_cl, const T* points, const T* w0, const T* b0,
                                    const T* w1, const T* b1, T* density, T* features, int64_t N,
                                    int64_t M, int64_t C, int64_t H, int64_t W, int64_t Hd,
                                    int64_t O, T scale, bool fast, cudaStream_t stream) {
  const int64_t P = N * M;
  if (P == 0) return;
  if constexpr (!std::is_same<T, double>::value) {  // double never takes the fast path
    if (fast) {
      using A = typename Accum<T>::type;
      const FastLayout L = fast_layout(C, Hd, O);
      const size_t smem = static_cast<size_t>(L.total) * sizeof(A);
      auto kernel = fast_forward_kernel<T, A, kFastC, kFastO>;  // T = A = float here
      if (smem > static_cast<size_t>(kSharedBytes)) {
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(smem));
      }
      const unsigned int blocks = static_cast<unsigned int>((P + kFastPoints - 1) / kFastPoints);
      kernel<<<blocks, kFastPoints, smem, stream>>>(
          planes_cl, points, w0, b0, w1, b1, density, features, P, M, static_cast<int>(C), H, W,
          static_cast<int>(Hd), static_cast<int>(O), static_cast<A>(scale), L);
      return;
    }
  }
  const int64_t tile = decode_triplane_tile(C, Hd, sizeof(T));
  if (tile < 1) return;
  const unsigned int blocks = static_cast<unsigned int>((P + tile - 1) / tile);
  const size_t smem = static_cast<size_t>(tile * (C + Hd)) * sizeof(T);
  forward_kernel<T><<<blocks, kThreads, smem, stream>>>(
      planes_cl, points, w0, b0, w1, b1, density, features, P, M, C, H, W, Hd, O, scale, tile);
}

void launch_decode_triplane_forward_half(const void* planes_cl, bool bf16, const float* points,
                                         const float* w0, const float* b0, const float* w1,
                                         const float* b1, float* density, float* features,
                                         int64_t N, int64_t M, int64_t C, int64_t H, int64_t W,
                                         int64_t Hd, int64_t O, float scale, cudaStream_t stream) {
  const int64_t P = N * M;
  if (P == 0) return;
  const FastLayout L = fast_layout(C, Hd, O);
  const size_t smem = static_cast<size_t>(L.total) * sizeof(float);
  const unsigned int blocks = static_cast<unsigned int>((P + kFastPoints - 1) / kFastPoints);
  auto run = [&](auto kernel, const auto* planes) {
    if (smem > static_cast<size_t>(kSharedBytes)) {
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(smem));
    }
    kernel<<<blocks, kFastPoints, smem, stream>>>(
        planes, points, w0, b0, w1, b1, density, features, P, M, static_cast<int>(C), H, W,
        static_cast<int>(Hd), static_cast<int>(O), scale, L);
  };
  if (bf16) {
    run(fast_forward_kernel<__nv_bfloat16, float, kFastC, kFastO>,
        static_cast<const __nv_bfloat16*>(planes_cl));
  } else {
    run(fast_forward_kernel<__half, float, kFastC, kFastO>, static_cast<const __half*>(planes_cl));
  }
}

#define NOFA_INSTANTIATE(T)                                                                 \
  template void launch_decode_triplane_forward<T>(                                          \
      const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, int64_t, int64_t, \
      int64_t, int64_t, int64_t, int64_t, int64_t, T, bool, cudaStream_t);
NOFA_INSTANTIATE(float)
NOFA_INSTANTIATE(double)
#undef NOFA_INSTANTIATE

}  // namespace nofa
