// decode_triplane CUDA backward, fused: host side (sizes, grid, launch). The kernel and its
// design: cuda/decode_triplane_backward_device.h. Raw pointers, no torch headers; declared in
// cuda/decode_triplane_cuda.cpp, which calls them.
#include <cstdint>

#include "cuda/decode_triplane_backward_device.h"
#include "cuda/common/shared_memory_limit.h"

namespace nofa {
namespace {

// The kernel with the shared memory it needs for these sizes (opted in above 48 KiB).
auto prepared_kernel(int64_t C, int64_t Hd, int64_t O, size_t& smem) {
  auto kernel = fused_backward_kernel<kMaxC, kMaxO>;
  smem = static_cast<size_t>(layout(C, Hd, O).total) * sizeof(float);
  if (smem > static_cast<size_t>(kDefaultSharedBytes)) {
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(smem));
  }
  return kernel;
}

}  // namespace

int64_t decode_triplane_weight_grad_size(int64_t C, int64_t Hd, int64_t O) {
  const Layout l = layout(C, Hd, O);
  return l.total - l.acc;
}

bool decode_triplane_fused_backward_ok(int64_t C, int64_t Hd, int64_t O) {
  if (C < 1 || C > kMaxC || O < 1 || O > kMaxO || Hd < 1) return false;
  const int64_t bytes = layout(C, Hd, O).total * static_cast<int64_t>(sizeof(float));
  return fits_shared_memory(bytes);
}

int64_t decode_triplane_fused_backward_blocks(int64_t P, int64_t C, int64_t Hd, int64_t O) {
  const int64_t tiles = (P + kPoints - 1) / kPoints;
  if (tiles == 0) return 0;
  size_t smem = 0;
  auto kernel = prepared_kernel(C, Hd, O, smem);
  int device = 0, sms = 0, per_sm = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kPoints, smem) !=
          cudaSuccess) {
    cudaGetLastError();
    sms = 0;
  }
  const int64_t resident = static_cast<int64_t>(sms > 0 ? sms : 1) * (per_sm > 0 ? per_sm : 1);
  return tiles < resident ? tiles : resident;
}

void launch_decode_triplane_backward_fused(const float* gd, const float* gf, const float* planes_cl,
                                           const float* points, const float* w0, const float* b0,
                                           const float* w1, const float* b1, float* grad_planes_cl,
                                           float* grad_points, float* grad_weights, int64_t P,
                                           int64_t M, int64_t C, int64_t H, int64_t W, int64_t Hd,
                                           int64_t O, float scale, int64_t blocks,
                                           cudaStream_t stream) {
  if (P == 0 || blocks < 1) return;
  size_t smem = 0;
  auto kernel = prepared_kernel(C, Hd, O, smem);
  kernel<<<static_cast<unsigned int>(blocks), kPoints, smem, stream>>>(
      gd, gf, planes_cl, points, w0, b0, w1, b1, grad_planes_cl, grad_points, grad_weights, P, M,
      static_cast<int>(C), H, W, static_cast<int>(Hd), static_cast<int>(O), scale,
      layout(C, Hd, O));
}

}  // namespace nofa
